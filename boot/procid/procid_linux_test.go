package procid

import "testing"

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "4242 (a b) c)) S 1 99 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 20 21\n"
	st, err := parseStat([]byte(line))
	if err != nil || st != (procStat{state: 'S', pgrp: 99, start: 777}) {
		t.Fatalf("parseStat = %+v %v", st, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 20"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}
