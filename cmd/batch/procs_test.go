package main

import (
	"runtime"
	"testing"
)

// TestTuneProcs: a send to a server gets a second P when it has one, so
// that the journal's fdatasync doesn't hold the connection's; a dry run,
// an mbox, another command, more Ps or GOMAXPROCS set are left alone.
func TestTuneProcs(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(was) })
	none := func(string) string { return "" }
	set := func(k string) string {
		if k == "GOMAXPROCS" {
			return "1"
		}
		return ""
	}
	for _, tt := range []struct {
		args   []string
		getenv func(string) string
		procs  int // before
		want   int
	}{
		{[]string{"send", "--yes", "c.toml"}, none, 1, 2},
		{[]string{"send", "--to", "me@example.org", "c.toml"}, none, 1, 2},
		{[]string{"send", "--yes", "c.toml"}, none, 3, 3},
		{[]string{"send", "--yes", "c.toml"}, set, 1, 1},
		{[]string{"send", "--dry-run", "out", "c.toml"}, none, 1, 1},
		{[]string{"send", "-mbox=out.mbox", "c.toml"}, none, 1, 1},
		{[]string{"check", "c.toml"}, none, 1, 1},
		{nil, none, 1, 1},
	} {
		runtime.GOMAXPROCS(tt.procs)
		tuneProcs(tt.args, tt.getenv)
		if got := runtime.GOMAXPROCS(0); got != tt.want {
			t.Errorf("%q from %d Ps: %d, want %d", tt.args, tt.procs, got, tt.want)
		}
	}
}
