package deliver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openTestJournal(t *testing.T, path string) (*Journal, *State) {
	t.Helper()
	j, st, err := OpenJournal(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	return j, st
}

func TestJournalStates(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, st := openTestJournal(t, path)
	if st.Len() != 0 {
		t.Fatalf("a new journal knows %d recipients", st.Len())
	}
	for _, r := range []Record{
		{Kind: KindOpen, Campaign: "test"},
		{Kind: KindSending, To: "Sent@Example.org", Row: 1},
		{Kind: KindSent, To: "sent@example.org", Row: 1},
		{Kind: KindSending, To: "failed@example.org", Row: 2},
		{Kind: KindFailed, To: "failed@example.org", Row: 2, Code: 550, Error: "550 5.1.1 no such user"},
		{Kind: KindSending, To: "lost@example.org", Row: 3},
		{Kind: KindSending, To: "unknown@example.org", Row: 4},
		{Kind: KindUnknown, To: "unknown@example.org", Row: 4, Error: "EOF"},
		{Kind: KindSending, To: "deferred@example.org", Row: 5},
		{Kind: KindDeferred, To: "deferred@example.org", Row: 5, Code: 451},
		{Kind: KindSending, To: "released@example.org", Row: 6},
		{Kind: KindReleased, To: "released@example.org", Row: 6},
		{Kind: KindFailed, To: "retried@example.org", Row: 7, Code: 550},
		{Kind: KindSending, To: "retried@example.org", Row: 7},
		{Kind: KindSent, To: "retried@example.org", Row: 7},
	} {
		j.Append(r)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err = ReadJournal(path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{
		"SENT@example.org":     Sent, // addresses compare without case
		"failed@example.org":   Failed,
		"lost@example.org":     Unknown, // "sending" with nothing after it
		"unknown@example.org":  Unknown,
		"deferred@example.org": Pending,
		"released@example.org": Pending,
		"retried@example.org":  Sent,
		"never@example.org":    Pending,
	}
	for addr, status := range want {
		if got := st.Get(addr).Status; got != status {
			t.Errorf("%s: %s, want %s", addr, got, status)
		}
	}
	if e := st.Get("failed@example.org"); e.Code != 550 || e.Error != "550 5.1.1 no such user" || e.Row != 2 {
		t.Errorf("failed entry %+v", e)
	}
	if info, err := os.Stat(filepath.Join(filepath.Dir(path), ".gitignore")); err != nil || info.Size() == 0 {
		t.Errorf(".batch/.gitignore: %v", err)
	}
}

func TestJournalTornLastLine(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	j.Append(Record{Kind: KindSending, To: "a@example.org"})
	j.Append(Record{Kind: KindSent, To: "a@example.org"})
	j.Append(Record{Kind: KindSending, To: "b@example.org"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(data, []byte("\n"))
	// Every cut of the last record, as a crash mid-write would leave it.
	last := lines[2]
	for cut := 1; cut < 2*len(last); cut++ {
		torn := append(append([]byte{}, bytes.Join(lines[:2], nil)...), last[:cut%len(last)]...)
		if cut >= len(last) {
			// As a killed run leaves it: the record cut short, then the
			// zeros made ahead of the records.
			torn = append(torn, make([]byte, 3000)...)
		}
		if err := os.WriteFile(path, torn, 0o644); err != nil {
			t.Fatal(err)
		}
		j, st, err := OpenJournal(path, "test")
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if st.Get("a@example.org").Status != Sent || st.Get("b@example.org").Status != Pending {
			t.Fatalf("cut at %d: a %s, b %s", cut, st.Get("a@example.org").Status, st.Get("b@example.org").Status)
		}
		// The torn line is cut off, so that the next record reads.
		j.Append(Record{Kind: KindSent, To: "c@example.org"})
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		st, err = ReadJournal(path, bytes.NewReader(data))
		if err != nil || st.Get("c@example.org").Status != Sent {
			t.Fatalf("cut at %d: after reopening: %v, c %s", cut, err, st.Get("c@example.org").Status)
		}
	}
}

func TestJournalDamagedLine(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	j.Append(Record{Kind: KindSent, To: "a@example.org"})
	j.Append(Record{Kind: KindSent, To: "b@example.org"})
	j.Append(Record{Kind: KindSent, To: "c@example.org"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	damaged := bytes.Replace(data, []byte("b@example.org"), []byte("x@example.org"), 1)
	_, err := ReadJournal(path, bytes.NewReader(damaged))
	var je *JournalError
	if !errors.As(err, &je) || je.Line != 2 || je.Path != path {
		t.Fatalf("ReadJournal of a journal damaged at line 2: %v", err)
	}
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenJournal(path, "test"); !errors.As(err, &je) {
		t.Errorf("OpenJournal of a damaged journal: %v", err)
	}
}

func TestJournalLocked(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	_, _, err := OpenJournal(path, "test")
	if err == nil || !strings.Contains(err.Error(), "another batch is sending this campaign") {
		t.Errorf("a second OpenJournal: %v", err)
	}
	j.Close()
	j2, _ := openTestJournal(t, path)
	j2.Close()
}

// TestJournalGroupedWaits appends from many goroutines at once: every
// record is on disk when its Wait returns, and every one reads back.
func TestJournalGroupedWaits(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				to := string(rune('a'+g)) + strings.Repeat("x", i) + "@example.org"
				tk := j.Append(Record{Kind: KindSending, To: to})
				if err := j.Wait(tk); err != nil {
					t.Error(err)
					return
				}
				data, err := os.ReadFile(path)
				if err != nil || !bytes.Contains(data, []byte(`"to":"`+to+`"`)) {
					t.Errorf("%s: not in the file after Wait", to)
					return
				}
				j.Append(Record{Kind: KindSent, To: to})
			}
		}()
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	st, err := ReadJournal(path, bytes.NewReader(data))
	if err != nil || st.Len() != 400 {
		t.Fatalf("%v; %d recipients, want 400", err, st.Len())
	}
}

func TestJournalPath(t *testing.T) {
	if got := JournalPath("c", "2026-11-meetup"); got != filepath.Join("c", ".batch", "2026-11-meetup.journal") {
		t.Errorf("got %s", got)
	}
	a, b := JournalPath("c", "news/letter"), JournalPath("c", "news letter")
	if a == b || strings.Contains(filepath.Base(a), "/") || filepath.Dir(a) != filepath.Join("c", ".batch") {
		t.Errorf("unsafe names: %s, %s", a, b)
	}
}

// FuzzReadJournal reads arbitrary bytes as a journal: never a panic; either
// a state or an error, a *JournalError when a line is damaged.
func FuzzReadJournal(f *testing.F) {
	var good bytes.Buffer
	for _, r := range []Record{{Kind: KindSending, To: "a@example.org"}, {Kind: KindSent, To: "a@example.org"}, {Kind: KindFailed, To: "b@example.org", Code: 550}} {
		good.Write(encodeRecord(nil, &r))
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:good.Len()-7])
	f.Add([]byte("00000000 {}\n"))
	f.Add([]byte("zzzzzzzz {\"t\":\"sent\"}\n"))
	f.Add([]byte("\n\n"))
	f.Add(append(append([]byte{}, good.Bytes()...), make([]byte, 100)...))
	f.Add(append(append(append([]byte{}, good.Bytes()...), make([]byte, 5)...), good.Bytes()...))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ReadJournal("fuzz.journal", bytes.NewReader(data))
		if err != nil {
			var je *JournalError
			if !errors.As(err, &je) || je.Line < 1 || !strings.Contains(err.Error(), "fuzz.journal:") {
				t.Fatalf("an error that names no line: %v", err)
			}
			return
		}
		if st == nil {
			t.Fatal("no state and no error")
		}
		// Every recipient has the status of its last record, as a plain
		// map by address has it.
		want := map[string]Status{}
		for line := range bytes.Lines(data) {
			r, err := parseRecord(line)
			if err != nil || line[len(line)-1] != '\n' || r.To == "" {
				continue // the torn last line, or a record of no one
			}
			switch r.Kind {
			case KindSending, KindUnknown:
				want[r.To] = Unknown
			case KindSent:
				want[r.To] = Sent
			case KindFailed:
				want[r.To] = Failed
			case KindDeferred, KindReleased:
				want[r.To] = Pending
			}
		}
		if st.Len() != len(want) {
			t.Fatalf("%d recipients, want %d", st.Len(), len(want))
		}
		for addr, status := range want {
			if got := st.Get(addr).Status; got != status {
				t.Fatalf("%s: %v, want %v", addr, got, status)
			}
		}
	})
}

// TestJournalSyncsOnlyForWaits: outcome records reach the file at once, so
// that a killed process keeps them, but cost no fsync of their own; they
// go to disk with the next record a connection waits for.
func TestJournalSyncsOnlyForWaits(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	syncs := func() int {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.syncs
	}
	for i := range 100 {
		j.Append(Record{Kind: KindSent, To: fmt.Sprintf("r%d@example.org", i)})
	}
	last := `"to":"r99@example.org"`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		data, err := os.ReadFile(path)
		if err == nil && bytes.Contains(data, []byte(last)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("outcome records not written to the file without a Wait")
		}
	}
	if n := syncs(); n != 0 {
		t.Errorf("%d fsyncs for records nobody waited for, want 0", n)
	}
	tk := j.Append(Record{Kind: KindSending, To: "w@example.org"})
	if err := j.Wait(tk); err != nil {
		t.Fatal(err)
	}
	if n := syncs(); n != 1 {
		t.Errorf("%d fsyncs after one Wait, want 1", n)
	}
	j.Append(Record{Kind: KindSent, To: "w@example.org"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if j.syncs != 2 {
		t.Errorf("%d fsyncs after Close, want 2: Close syncs what is left", j.syncs)
	}
	data, _ := os.ReadFile(path)
	if st, err := ReadJournal(path, bytes.NewReader(data)); err != nil || st.Get("w@example.org").Status != Sent || st.Len() != 101 {
		t.Errorf("journal after Close: %v, %d recipients, w is %v", err, st.Len(), st.Get("w@example.org").Status)
	}
}

// TestJournalMadeAhead: a journal in use is made ahead of its records
// (zeros), which a reader skips and Close takes away; zeros before a
// record are damage.
func TestJournalMadeAhead(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	tk := j.Append(Record{Kind: KindSending, To: "a@example.org"})
	if err := j.Wait(tk); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	records := bytes.TrimRight(data, "\x00")
	j.mu.Lock()
	madeAhead := !j.noAhead
	j.mu.Unlock()
	if runtime.GOOS == "linux" && madeAhead && len(data) < journalChunk {
		t.Errorf("the journal in use is %d bytes, want it made ahead to %d", len(data), journalChunk)
	}
	if runtime.GOOS == "linux" && !madeAhead {
		t.Log("this filesystem can't make a file ahead (fallocate): the journal grows as it is written")
	}
	st, err := ReadJournal(path, bytes.NewReader(data))
	if err != nil || st.Get("a@example.org").Status != Unknown {
		t.Fatalf("reading the journal in use: %v, a is %v", err, st.Get("a@example.org").Status)
	}
	j.Append(Record{Kind: KindSent, To: "a@example.org"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if bytes.IndexByte(data, 0) >= 0 || !bytes.HasPrefix(data, records) || bytes.Count(data, []byte("\n")) != 2 {
		t.Errorf("after Close: %q, want the two records and no zeros", data)
	}
	// Zeros before a record are damage, not blocks made ahead.
	bad := append(append(append(append([]byte{}, records...), make([]byte, 10)...), records...), records...)
	var je *JournalError
	if _, err := ReadJournal(path, bytes.NewReader(bad)); !errors.As(err, &je) || je.Line != 2 {
		t.Errorf("zeros before a record: %v, want a *JournalError at line 2", err)
	}
}

// TestJournalGroupSyncs: grouped, "sending" records are synced when a
// connection waits, all at once, not each as it comes.
func TestJournalGroupSyncs(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	j.GroupSyncs()
	var last Ticket
	for i := range 3 {
		last = j.Append(Record{Kind: KindSending, To: fmt.Sprintf("r%d@example.org", i)})
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte(`"to":"r2@example.org"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the records were not written")
		}
	}
	j.mu.Lock()
	before := j.syncs
	j.mu.Unlock()
	if err := j.Wait(last); err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	after, synced := j.syncs, j.synced
	j.mu.Unlock()
	if before != 0 || after != 1 || synced != uint64(last) {
		t.Errorf("fsyncs %d before the wait, %d after (synced up to %d of %d); want 0, then 1 for all", before, after, synced, last)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestJournalAppendThen: AppendThen tells each record's fate once it is in
// the file, in order, and whether it is there agrees with Holds and with
// what a reader finds; on a closed journal it says so at once.
func TestJournalAppendThen(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	type fate struct {
		i   int
		err error
	}
	fates := make(chan fate, 10)
	sending := j.Append(Record{Kind: KindSending, To: "a@example.org"})
	for i := range 5 {
		j.AppendThen(Record{Kind: KindSent, To: fmt.Sprintf("r%d@example.org", i)}, func(err error) { fates <- fate{i, err} })
	}
	for want := range 5 {
		select {
		case f := <-fates:
			if f.i != want || f.err != nil {
				t.Fatalf("fate %d: record %d, %v; want record %d written", want, f.i, f.err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no word on record %d", want)
		}
	}
	if !j.Holds(sending) {
		t.Error("Holds: the record before them is not in the file")
	}
	data, _ := os.ReadFile(path)
	if st, err := ReadJournal(path, bytes.NewReader(data)); err != nil || st.Get("r4@example.org").Status != Sent {
		t.Errorf("a reader finds %v: %v", st.Get("r4@example.org").Status, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j.AppendThen(Record{Kind: KindSent, To: "late@example.org"}, func(err error) { fates <- fate{-1, err} })
	if f := <-fates; !errors.Is(f.err, os.ErrClosed) {
		t.Errorf("AppendThen on a closed journal: %v, want os.ErrClosed", f.err)
	}
}

// TestJournalWriteFails: a journal whose file refuses writes fails for
// good: the records it could not write are not held, their AppendThen
// says why, Wait returns the error, and what it wrote before stays.
func TestJournalWriteFails(t *testing.T) {
	path := JournalPath(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	before := j.Append(Record{Kind: KindSending, To: "a@example.org"})
	if err := j.Wait(before); err != nil {
		t.Fatal(err)
	}
	// The same file, read-only: every write to it fails (EBADF).
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	rw := j.f
	j.f = ro
	j.mu.Unlock()
	defer rw.Close()

	fate := make(chan error, 2)
	j.AppendThen(Record{Kind: KindSent, To: "a@example.org"}, func(err error) { fate <- err })
	select {
	case err := <-fate:
		if !errors.Is(err, syscall.EBADF) || !strings.Contains(err.Error(), path) {
			t.Errorf("the record's fate: %v, want the write's error, naming the journal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no word on a record the journal could not write")
	}
	next := j.Append(Record{Kind: KindSending, To: "b@example.org"})
	if err := j.Wait(next); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Wait after the failure: %v, want the write's error", err)
	}
	if !j.Holds(before) || j.Holds(next) || j.Holds(next-1) {
		t.Errorf("Holds: %v %v %v, want the record written before the failure only", j.Holds(before), j.Holds(next-1), j.Holds(next))
	}
	j.AppendThen(Record{Kind: KindSent, To: "b@example.org"}, func(err error) { fate <- err })
	if err := <-fate; !errors.Is(err, syscall.EBADF) {
		t.Errorf("AppendThen on a failed journal: %v, want the error at once", err)
	}
	if err := j.Close(); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Close: %v, want the write's error", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadJournal(path, bytes.NewReader(data))
	if err != nil || st.Get("a@example.org").Status != Unknown || st.Get("b@example.org").Status != Pending {
		t.Errorf("a reader finds a %v, b %v (%v); want unknown (the sending record), pending", st.Get("a@example.org").Status, st.Get("b@example.org").Status, err)
	}
}
