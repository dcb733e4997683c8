package suppress

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The test binary, run again with these set, is one of the processes of
// TestProcessesAppendAtOnce.
const (
	helperPath = "BATCH_SUPPRESS_HELPER_PATH"
	helperID   = "BATCH_SUPPRESS_HELPER_ID"
)

const (
	procs      = 4
	perProc    = 60
	shared     = 15
	removeRuns = 10
)

func TestMain(m *testing.M) {
	if path := os.Getenv(helperPath); path != "" {
		if err := helper(path, os.Getenv(helperID)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper appends, one entry at a time, its own addresses and the shared
// ones, each process in another order; the process "remove" removes and
// appends gone@example.org again and again, rewriting the file under the
// others.
func helper(path, id string) error {
	l, err := Open(path)
	if err != nil {
		return err
	}
	if id == "remove" {
		for range removeRuns {
			if _, err := l.Remove("gone@example.org"); err != nil {
				return err
			}
			if _, err := l.Append(Entry{Email: "gone@example.org", Reason: Manual}); err != nil {
				return err
			}
		}
		return nil
	}
	n, _ := strconv.Atoi(id)
	for j := range perProc {
		if _, err := l.Append(Entry{Email: fmt.Sprintf("p%d-%d@example.org", n, j), Reason: Bounced, Campaign: id}); err != nil {
			return err
		}
		if j < shared {
			s := (j + n*7) % shared
			if _, err := l.Append(Entry{Email: fmt.Sprintf("shared-%d@example.org", s), Reason: Complained, Campaign: id}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Several processes appending at once, while another rewrites the file,
// lose nothing and write each address once.
func TestProcessesAppendAtOnce(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "suppressed.csv")
	ids := []string{"remove"}
	for i := range procs {
		ids = append(ids, strconv.Itoa(i))
	}
	var cmds []*exec.Cmd
	outs := make([]*strings.Builder, len(ids))
	for i, id := range ids {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperPath+"="+path, helperID+"="+id)
		outs[i] = new(strings.Builder)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %s: %v\n%s", ids[i], err, outs[i])
		}
	}
	seen := map[string]int{}
	for _, e := range scanAll(t, path) {
		seen[e.Email]++
	}
	want := map[string]int{"gone@example.org": 1}
	for n := range procs {
		for j := range perProc {
			want[fmt.Sprintf("p%d-%d@example.org", n, j)] = 1
		}
	}
	for s := range shared {
		want[fmt.Sprintf("shared-%d@example.org", s)] = 1
	}
	for addr := range want {
		if seen[addr] != 1 {
			t.Errorf("%s is in the file %d times", addr, seen[addr])
		}
	}
	for addr := range seen {
		if want[addr] == 0 {
			t.Errorf("%s is in the file, and no process wrote it", addr)
		}
	}
	if got := strings.Count(readFile(t, path), "email,reason"); got != 1 {
		t.Errorf("%d headers", got)
	}
}
