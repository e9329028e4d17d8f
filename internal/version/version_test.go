package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuild(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-02T18:22:58Z"}, {Key: "vcs.modified", Value: modified}}
	}
	rev := "73baad4c6464e15eea3ae8f8721707a5b97075d1"
	cases := []struct {
		name   string
		linked string
		bi     *debug.BuildInfo
		want   string
	}{
		{"link-time version wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v1.2.3"},
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{"pseudo-version from VCS", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261202182258-73baad4c6464+dirty"}, Settings: vcs(rev, "true")},
			"v0.0.0-20261202182258-73baad4c6464+dirty"},
		{"devel with a revision", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "(devel) 73baad4c6464+dirty"},
		{"devel, clean", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "(devel) 73baad4c6464"},
		{"nothing recorded", "", &debug.BuildInfo{}, "(devel)"},
		{"no build info", "", nil, "(devel)"},
		{"no build info, linked", " v2.0.0\n", nil, "v2.0.0"},
	}
	for _, c := range cases {
		if got := fromBuild(c.linked, c.bi).String(); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	i := fromBuild("", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")})
	long := i.Long()
	for _, want := range []string{"version   (devel)\n", "revision  " + rev + " (with uncommitted changes)\n",
		"committed 2026-12-02T18:22:58Z\n", "go        go1.99.1 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(long, want) {
			t.Errorf("Long() = %q lacks %q", long, want)
		}
	}
}

// TestGetInTest: a test binary has build information; its version is
// never empty.
func TestGetInTest(t *testing.T) {
	i := Get()
	if i.Version == "" || i.Go != runtime.Version() || String() == "" {
		t.Errorf("Get() = %+v", i)
	}
}
