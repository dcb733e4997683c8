package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdMboxEq reads an mbox file with Python's mailbox module, an
// independent reader, and compares its messages, in order, with the .eml
// files of a dry run's directory, modulo line ends and mboxrd's quoting
// of From lines (which Python leaves in): "[exec:python3] mboxeq out.mbox
// dir".
func cmdMboxEq(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! mboxeq")
	}
	if len(args) != 2 {
		ts.Fatalf("usage: mboxeq file.mbox dir")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		ts.Fatalf("no python3: guard mboxeq with [exec:python3]")
	}
	script := `import json, mailbox, sys
box = mailbox.mbox(sys.argv[1], create=False)
json.dump([box.get_bytes(k).decode("latin-1") for k in box.iterkeys()], sys.stdout)
`
	out, err := exec.Command(py, "-c", script, ts.MkAbs(args[0])).Output()
	if err != nil {
		ts.Fatalf("python3 reading %s: %v", args[0], err)
	}
	var got []string
	ts.Check(json.Unmarshal(out, &got))
	names, err := filepath.Glob(filepath.Join(ts.MkAbs(args[1]), "*.eml"))
	ts.Check(err)
	slices.Sort(names)
	if len(got) != len(names) {
		ts.Fatalf("%s holds %d messages, %s %d", args[0], len(got), args[1], len(names))
	}
	for i, name := range names {
		eml, err := os.ReadFile(name)
		ts.Check(err)
		want := bytes.ReplaceAll(eml, []byte("\r\n"), []byte("\n"))
		lines := bytes.SplitAfter([]byte(got[i]), []byte("\n"))
		for j, l := range lines {
			if len(l) > 0 && l[0] == '>' && bytes.HasPrefix(bytes.TrimLeft(l, ">"), []byte("From ")) {
				lines[j] = l[1:]
			}
		}
		if g := bytes.Join(lines, nil); !bytes.Equal(g, want) {
			ts.Fatalf("message %d of %s differs from %s:\n%s", i+1, args[0], filepath.Base(name), g)
		}
	}
	ts.Logf("%s: %d messages, each its .eml", args[0], len(got))
}

// TestTuneGCMbox: a dry run into an mbox gets a dry run's memory limit,
// whichever way the flag is written, and a send none.
func TestTuneGCMbox(t *testing.T) {
	limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetMemoryLimit(limit); debug.SetGCPercent(percent) })
	none := func(string) string { return "" }
	for _, args := range [][]string{
		{"send", "--mbox", "out.mbox", "c.toml"},
		{"send", "-mbox=out.mbox", "c.toml"},
		{"send", "--dry-run", "out", "c.toml"},
	} {
		debug.SetMemoryLimit(math.MaxInt64)
		tuneGC(args, none)
		if got := debug.SetMemoryLimit(-1); got != 48<<20 {
			t.Errorf("%q: memory limit %d, want 48 MiB", args, got)
		}
	}
	debug.SetMemoryLimit(math.MaxInt64)
	tuneGC([]string{"send", "--yes", "c.toml"}, none)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("a send got a memory limit, %d", got)
	}
}
