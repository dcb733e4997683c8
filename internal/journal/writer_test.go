package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openTestJournal(t *testing.T, path string) (*Journal, *State) {
	t.Helper()
	j, st, err := Open(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	return j, st
}
func TestLocked(t *testing.T) {
	path := Path(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	_, _, err := Open(path, "test")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another batch is sending this campaign") {
		t.Errorf("a second Open: %v", err)
	}
	j.Close()
	j2, _ := openTestJournal(t, path)
	j2.Close()
}

// TestGroupedWaits appends from many goroutines at once: every
// record is on disk when its Wait returns, and every one reads back.
func TestGroupedWaits(t *testing.T) {
	path := Path(t.TempDir(), "test")
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
	st, err := Read(path, bytes.NewReader(data))
	if err != nil || st.Len() != 400 {
		t.Fatalf("%v; %d recipients, want 400", err, st.Len())
	}
}

// TestSyncsOnlyForWaits: outcome records reach the file at once, so
// that a killed process keeps them, but cost no fsync of their own; they
// go to disk with the next record a connection waits for.
func TestSyncsOnlyForWaits(t *testing.T) {
	path := Path(t.TempDir(), "test")
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
	if st, err := Read(path, bytes.NewReader(data)); err != nil || st.Get("w@example.org").Status != Sent || st.Len() != 101 {
		t.Errorf("journal after Close: %v, %d recipients, w is %v", err, st.Len(), st.Get("w@example.org").Status)
	}
}

// TestMadeAhead: a journal in use is made ahead of its records
// (zeros), which a reader skips and Close takes away; zeros before a
// record are damage.
func TestMadeAhead(t *testing.T) {
	path := Path(t.TempDir(), "test")
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
	st, err := Read(path, bytes.NewReader(data))
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
	var je *Error
	if _, err := Read(path, bytes.NewReader(bad)); !errors.As(err, &je) || je.Line != 2 {
		t.Errorf("zeros before a record: %v, want a *Error at line 2", err)
	}
}

// TestGroupSyncs: grouped, "sending" records are synced when a
// connection waits, all at once, not each as it comes.
func TestGroupSyncs(t *testing.T) {
	path := Path(t.TempDir(), "test")
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

	// A handover doesn't sync.
	if err := j.Handover(Record{To: "r2@example.org"}); err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	after = j.syncs
	j.mu.Unlock()
	if after != 1 {
		t.Errorf("%d fsyncs after the handover, want 1", after)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAppendThen: AppendThen tells each record's fate once it is in
// the file, in order, and whether it is there agrees with Holds and with
// what a reader finds; on a closed journal it says so at once.
func TestAppendThen(t *testing.T) {
	path := Path(t.TempDir(), "test")
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
	if st, err := Read(path, bytes.NewReader(data)); err != nil || st.Get("r4@example.org").Status != Sent {
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

// TestWriteFails: a journal whose file refuses writes fails for
// good: the records it could not write are not held, their AppendThen
// says why, Wait returns the error, and what it wrote before stays.
func TestWriteFails(t *testing.T) {
	path := Path(t.TempDir(), "test")
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
	if err := j.Handover(Record{To: "a@example.org"}); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Handover after the failure: %v, want the write's error", err)
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
	st, err := Read(path, bytes.NewReader(data))
	if err != nil || st.Get("a@example.org").Status != Unknown || st.Get("b@example.org").Status != Pending {
		t.Errorf("a reader finds a %v, b %v (%v); want unknown (the sending record), pending", st.Get("a@example.org").Status, st.Get("b@example.org").Status, err)
	}
}

// TestSynced: Synced tells, without waiting, whether a record is on
// disk: not before its sync, yes after, and yes once the journal has
// failed (Wait would return at once, with the error).
func TestSynced(t *testing.T) {
	path := Path(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	j.mu.Lock() // the flusher can't write it yet
	tk := j.append(&Record{Kind: KindSending, To: "s@example.org"})
	j.mu.Unlock()
	if j.Synced(tk) && !j.Holds(tk) {
		t.Fatal("Synced before the record was in the file")
	}
	if err := j.Wait(tk); err != nil {
		t.Fatal(err)
	}
	if !j.Synced(tk) {
		t.Error("after Wait, not Synced")
	}
	later := j.Append(Record{Kind: KindSending, To: "t@example.org"})
	j.mu.Lock()
	j.err = errors.New("the disk is gone")
	j.disk.Broadcast()
	j.mu.Unlock()
	if !j.Synced(later) {
		t.Error("a failed journal: Synced false, while Wait returns at once")
	}
	if err := j.Wait(later); err == nil {
		t.Error("a failed journal's Wait: no error")
	}
}

// TestHandover: Handover returns once the message's "handover" record is
// in the file, after the records appended before it, and it doesn't wait
// for a sync to end.
func TestHandover(t *testing.T) {
	path := Path(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	defer j.Close()
	read := func() *State {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Read(path, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	j.Append(Record{Kind: KindOpen, Campaign: "test"})
	a := j.Append(Record{Kind: KindSending, To: "a@example.org"})
	j.AppendThen(Record{Kind: KindSent, To: "z@example.org"}, func(error) {})
	if err := j.Wait(a); err != nil {
		t.Fatal(err)
	}
	if st := read(); st.Get("a@example.org").Status != Pending && thisBoot() != "" {
		t.Errorf("before its handover, a is %v on the boot that wrote it, want pending", st.Get("a@example.org").Status)
	}

	// The next sync is held back; a's handover goes meanwhile.
	syncing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	j.mu.Lock()
	j.beforeSync = func() {
		once.Do(func() { close(syncing) })
		<-release
	}
	j.mu.Unlock()
	defer close(release)
	b := j.Append(Record{Kind: KindSending, To: "b@example.org"})
	<-syncing
	done := make(chan error, 1)
	go func() { done <- j.Handover(Record{Kind: KindSent, To: "a@example.org", Row: 1}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Handover waited for a later record's sync")
	}
	if j.Synced(b) {
		t.Fatal("b synced while its sync was held back")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(bytes.TrimRight(data, "\x00")), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, `"t":"handover","to":"a@example.org","row":1`) || !strings.Contains(lines[len(lines)-2], `"t":"sending","to":"b@example.org"`) {
		t.Errorf("the journal ends\n%s\n%s\nwant b's sending, then a's handover (its kind Handover's, whatever asked)", lines[len(lines)-2], last)
	}
	if st := read(); st.Get("a@example.org").Status != Unknown {
		t.Errorf("after its handover, a is %v, want unknown", st.Get("a@example.org").Status)
	}
}

// TestAppendTogether: "sending" records appended in one call go to disk in
// one sync, each record in its place, and the ticket returned is the
// last's.
func TestAppendTogether(t *testing.T) {
	path := Path(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	first := j.Append(Record{Kind: KindOpen, Campaign: "test"})
	if err := j.Wait(first); err != nil {
		t.Fatal(err)
	}
	var rs []Record
	for i := range 8 {
		rs = append(rs, Record{Kind: KindSending, To: fmt.Sprintf("r%d@example.org", i), Row: i + 2})
	}
	j.mu.Lock()
	before := j.syncs
	j.mu.Unlock()
	last := j.Append(rs...)
	if last != first+8 {
		t.Errorf("Append of 8 after ticket %d gave ticket %d, want %d", first, last, first+8)
	}
	if err := j.Wait(last); err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	syncs, synced := j.syncs-before, j.synced
	j.mu.Unlock()
	if syncs != 1 || synced != uint64(last) {
		t.Errorf("%d fsyncs for 8 records appended together (synced up to %d of %d), want 1 for all", syncs, synced, last)
	}
	if j.Append() != last {
		t.Error("Append of nothing did not give the last ticket")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 9 {
		t.Fatalf("the journal has %d lines, want 9:\n%s", len(lines), data)
	}
	for i, line := range lines[1:] {
		if want := fmt.Sprintf(`"to":"r%d@example.org"`, i); !strings.Contains(line, want) || !strings.Contains(line, `"t":"sending"`) {
			t.Errorf("line %d is %s, want the sending record of r%d", i+2, line, i)
		}
	}
}

// TestLost: a recipient whose outcome record is lost stands as a reader on
// this boot takes it: unknown once its "handover" record is in the file;
// with only its "sending" record, pending where the journal knows the boot
// and unknown where it doesn't; pending with neither.
func TestLost(t *testing.T) {
	j, _ := openTestJournal(t, Path(t.TempDir(), "test"))
	sending := j.Append(Record{Kind: KindSending, To: "r@example.org"})
	if err := j.Wait(sending); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		boot       string
		sending    Ticket
		handedOver bool
		want       Status
	}{
		{"b1", sending, true, Unknown},
		{"", sending, true, Unknown},
		{"b1", sending, false, Pending},
		{"", sending, false, Unknown},
		{"", 0, false, Pending},
		{"b1", 0, false, Pending},
	} {
		j.boot = tc.boot
		if got := j.Lost(tc.sending, tc.handedOver); got != tc.want {
			t.Errorf("boot %q, sending %d, handed over %v: %v, want %v", tc.boot, tc.sending, tc.handedOver, got, tc.want)
		}
	}
}
