package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/batch-mailer/batch/internal/dnstest"
)

// TestMain lets the test binary act as the batch command, the way age's
// tests do: testscript puts it in the scripts' PATH under that name, so a
// script's "batch ..." runs command, as main does, with its own arguments,
// environment and working directory, with no separate build.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"batch": func() { os.Exit(command(os.Args[1:])) },
	})
}

// TestScripts runs the scripts in testdata/*.txtar: each unpacks a small
// campaign, runs batch on it and checks what it prints and writes.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                "testdata",
		RequireUniqueNames: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":  cmdExitcode,
			"ls":        cmdLs,
			"csvcells":  cmdCSVCells,
			"dnsserver": cmdDNSServer,
			"mboxeq":    cmdMboxEq,
		},
	})
}

// cmdLs lists the names in a directory, one a line, sorted the way ls sorts
// them in the C locale, dot files included (a leftover temporary file must
// show): "ls out" then "cmp stdout want" checks what a run wrote.
func cmdLs(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! ls")
	}
	if len(args) != 1 {
		ts.Fatalf("usage: ls dir")
	}
	entries, err := os.ReadDir(ts.MkAbs(args[0]))
	ts.Check(err)
	for _, e := range entries {
		fmt.Fprintln(ts.Stdout(), e.Name())
	}
}

// cmdCSVCells reads a CSV file with encoding/csv and compares every cell
// with a JSON file that holds the records, a list of lists of strings:
// "csvcells out.csv want.json".
func cmdCSVCells(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! csvcells")
	}
	if len(args) != 2 {
		ts.Fatalf("usage: csvcells file.csv want.json")
	}
	rd := csv.NewReader(strings.NewReader(ts.ReadFile(args[0])))
	rd.FieldsPerRecord = -1
	got, err := rd.ReadAll()
	if err != nil {
		ts.Fatalf("%s: %v", args[0], err)
	}
	var want [][]string
	if err := json.Unmarshal([]byte(ts.ReadFile(args[1])), &want); err != nil {
		ts.Fatalf("%s: %v", args[1], err)
	}
	for i := range max(len(got), len(want)) {
		var g, w []string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if !slices.Equal(g, w) {
			ts.Logf("record %d: got %q, want %q", i+1, g, w)
			err = errors.New("cells differ")
		}
	}
	ts.Check(err)
}

// cmdExitcode runs a command, like exec, and checks its exit status:
// "exitcode 2 batch" asserts a usage error where "! batch" would accept any
// failure. stdout and stderr are the command's, as after exec.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdDNSServer starts a DNS server on the loopback that answers from a
// zone file, as an authoritative server would (dnstest.Zone), until the
// script ends, and points batch at it with BATCH_RESOLVER: "dnsserver
// dns.zone". "dnsserver -closed" instead names a port where nothing
// listens, which refuses every query at once.
func cmdDNSServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! dnsserver")
	}
	if len(args) != 1 {
		ts.Fatalf("usage: dnsserver zone-file | -closed")
	}
	if args[0] == "-closed" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		ts.Check(err)
		addr := pc.LocalAddr().String()
		ts.Check(pc.Close())
		ts.Setenv("BATCH_RESOLVER", addr)
		return
	}
	z, err := dnstest.ParseZone(args[0], strings.NewReader(ts.ReadFile(args[0])))
	ts.Check(err)
	addr, stop, err := dnstest.Start(z)
	ts.Check(err)
	ts.Defer(stop)
	ts.Setenv("BATCH_RESOLVER", addr)
}
