package main

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		info *debug.BuildInfo
		want string
	}{
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "030c04b80b0bb1d8c1fe9c780cb4d131fdb9b632"},
			{Key: "vcs.modified", Value: "false"},
		}}, "batch v1.2.0 (revision 030c04b80b0b) go1.26.8 " + platform},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "030c04b80b0bb1d8c1fe9c780cb4d131fdb9b632"},
			{Key: "vcs.modified", Value: "true"},
		}}, "batch (devel) (revision 030c04b80b0b, modified) go1.26.8 " + platform},
		{&debug.BuildInfo{GoVersion: "go1.27rc1"}, "batch (devel) (revision unknown) go1.27rc1 " + platform},
		{nil, "batch (devel) (revision unknown) " + runtime.Version() + " " + platform},
	} {
		if got := versionLine("", tc.info); got != tc.want {
			t.Errorf("versionLine(%+v) = %q, want %q", tc.info, got, tc.want)
		}
	}
}

// TestVersionOfThisBinary reads the test binary's own build information,
// as batch version does, and checks the line's format.
func TestVersionOfThisBinary(t *testing.T) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information in the test binary")
	}
	got := versionLine("", info)
	format := regexp.MustCompile(`^batch (v\S+|\(devel\)) \(revision ([0-9a-f]{12}|unknown)(, modified)?\) go1\.\d+\S* \w+/\w+$`)
	if !format.MatchString(got) {
		t.Errorf("version line %q doesn't match %s", got, format)
	}
}

// TestVersionStamped: a release build's version (main.version, set by
// -ldflags) wins over the module's.
func TestVersionStamped(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	if got := versionLine("v1.4.0", info); !strings.HasPrefix(got, "batch v1.4.0 (revision unknown) go1.26.8 ") {
		t.Errorf("versionLine = %q, want the stamped v1.4.0", got)
	}
}
