package deb

import "testing"

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"6.1.192-2", "6.1.192-2", 0},
		{"6.1.192-2", "6.1.38-1", 1},
		{"6.1.38-1", "6.1.192-2", -1},
		{"6.1.192-10", "6.1.192-9", 1},
		{"6.1.192-2", "6.1.192-2~bpo1", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0", "1.0-1", -1},
		{"1.0a", "1.0", 1},
		{"1.0+b1", "1.0", 1},
		{"1.0+b1", "1.0a", 1}, // non-letters sort after letters
		{"1:1.0", "2.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.01", "1.1", 0},
		{"6.12.12+bpo", "6.12.9", 1},
		{"2.0-1+deb12u1", "2.0-1", 1},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
