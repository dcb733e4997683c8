package journal

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestWriteCutShort: a full disk cuts a write short, in the middle
// of a record. The records before it are in the file, whole, and held; the
// one it cut and those after are not, and a reader finds the same.
//
// The disk is made full for the journal by the file size limit
// (RLIMIT_FSIZE), which cuts a write at that size as a full disk does. The
// limit is the process's, for every file it writes, so the test runs in a
// child process of its own, whose output is a pipe.
func TestWriteCutShort(t *testing.T) {
	dir := os.Getenv("BATCH_TEST_CUT_SHORT")
	if dir == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWriteCutShort$", "-test.v")
		cmd.Env = append(os.Environ(), "BATCH_TEST_CUT_SHORT="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestWriteCutShort")) {
			t.Fatalf("the child process: %v\n%s", err, out)
		}
		return
	}
	path := Path(dir, "test")
	j, _ := openTestJournal(t, path)
	first := j.Append(Record{Kind: KindSending, To: "a@example.org"})
	if err := j.Wait(first); err != nil {
		t.Fatal(err)
	}
	// Room for the next record and half of the one after it.
	one := len(encodeRecord(nil, &Record{Kind: KindSent, To: "a@example.org"}))
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	end := j.off
	j.mu.Unlock()
	full := limit
	full.Cur = uint64(end) + uint64(one) + uint64(one)/2
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &full); err != nil {
		t.Skipf("can't limit the file size: %v", err)
	}
	fates := make(chan error, 3)
	for _, to := range []string{"a@example.org", "b@example.org", "c@example.org"} {
		j.AppendThen(Record{Kind: KindSent, To: to}, func(err error) { fates <- err })
	}
	var got []error
	for range 3 {
		select {
		case err := <-fates:
			got = append(got, err)
		case <-time.After(10 * time.Second):
			t.Fatal("no word on a record")
		}
	}
	err := j.Close()
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	if got[0] != nil || !errors.Is(got[1], syscall.EFBIG) || !errors.Is(got[2], syscall.EFBIG) {
		t.Errorf("fates %v, want the first written, the cut one and the next not: file too large", got)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Errorf("Close: %v, want the write's error", err)
	}
	if !j.Holds(first+1) || j.Holds(first+2) {
		t.Errorf("Holds %v %v, want the whole record held, the cut one not", j.Holds(first+1), j.Holds(first+2))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The blocks made ahead of the records are zeros.
	records := bytes.TrimRight(data, "\x00")
	b := encodeRecord(nil, &Record{Kind: KindSent, To: "b@example.org"})
	tail := records[bytes.LastIndexByte(records, '\n')+1:]
	if n := bytes.Count(records, []byte("\n")); n != 2 || len(tail) == 0 || !bytes.HasPrefix(b, tail) {
		t.Errorf("the file holds %d whole records and %q, want 2 and a part of b's", n, tail)
	}
	st, err := Read(path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]Status{"a@example.org": Sent, "b@example.org": Pending, "c@example.org": Pending} {
		if got := st.Get(addr).Status; got != want {
			t.Errorf("a reader finds %s %v, want %v", addr, got, want)
		}
	}
}
