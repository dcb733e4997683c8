package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// onBoot has the reading take boot, not this machine's, as the boot it
// runs on (see Record.Boot): "" for none known, as if each run's records
// were read after a crash of its machine.
func onBoot(boot string) ReadOption {
	return func(s *State) { s.boot = boot }
}

func TestStates(t *testing.T) {
	path := Path(t.TempDir(), "test")
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
		{Kind: KindSending, To: "handed@example.org", Row: 8},
		{Kind: KindHandover, To: "handed@example.org", Row: 8},
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
	want := map[string]Status{
		"SENT@example.org":     Sent, // addresses compare without case
		"failed@example.org":   Failed,
		"handed@example.org":   Unknown, // "handover" with nothing after it
		"unknown@example.org":  Unknown,
		"deferred@example.org": Pending,
		"released@example.org": Pending,
		"retried@example.org":  Sent,
		"never@example.org":    Pending,
	}
	// "sending" with nothing after it: read on the boot that wrote it,
	// the message's end never went; read after a reboot (or where no
	// boot is known) the "handover" may have been lost with the machine.
	for _, tc := range []struct {
		name string
		opts []ReadOption
		lost Status
	}{
		{"this boot", nil, Pending},
		{"another boot", []ReadOption{onBoot("another")}, Unknown},
		{"no boot known", []ReadOption{onBoot("")}, Unknown},
	} {
		st, err = Read(path, bytes.NewReader(data), tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		want["lost@example.org"] = tc.lost
		for addr, status := range want {
			if got := st.Get(addr).Status; got != status {
				t.Errorf("%s: %s: %s, want %s", tc.name, addr, got, status)
			}
		}
	}
	if boot := thisBoot(); boot != "" && !bytes.Contains(data, []byte(`"boot":"`+boot+`"`)) {
		t.Errorf("the open record has not this machine's boot %s:\n%s", boot, data)
	}
	if e := st.Get("failed@example.org"); e.Code != 550 || e.Error != "550 5.1.1 no such user" || e.Row != 2 {
		t.Errorf("failed entry %+v", e)
	}
	if info, err := os.Stat(filepath.Join(filepath.Dir(path), ".gitignore")); err != nil || info.Size() == 0 {
		t.Errorf(".batch/.gitignore: %v", err)
	}
}

func TestSendings(t *testing.T) {
	var b []byte
	for _, r := range []Record{
		{Kind: KindOpen, At: 100},
		{Kind: KindSending, To: "a@example.org", At: 100},
		{Kind: KindSent, To: "a@example.org", At: 101},
		{Kind: KindSending, To: "b@example.org", At: 200},
		{Kind: KindFailed, To: "b@example.org", At: 201},
		{Kind: KindSending, To: "c@example.org", At: 300},
		{Kind: KindSending, To: "d@example.org", At: 400},
		{Kind: KindSending, To: "e@example.org", At: 500},
		// A lease's records of messages never started, released when
		// the run stopped: they went nowhere.
		{Kind: KindSending, To: "f@example.org", At: 600},
		{Kind: KindSending, To: "f2@example.org", At: 600},
		{Kind: KindReleased, To: "f@example.org", At: 601},
		{Kind: KindReleased, To: "f2@example.org", At: 601},
		// Handed over, then released: its end went, it counts.
		{Kind: KindSending, To: "g@example.org", At: 700},
		{Kind: KindHandover, To: "g@example.org", At: 700},
		{Kind: KindReleased, To: "g@example.org", At: 701},
		// A second "sending" with nothing between: the first's run died
		// with it in flight, and both count.
		{Kind: KindSending, To: "h@example.org", At: 800},
		{Kind: KindOpen, At: 850},
		{Kind: KindSending, To: "h@example.org", At: 900},
	} {
		b = encodeRecord(b, &r)
	}
	for _, tc := range []struct {
		since int64
		keep  int
		want  []int64
	}{
		{0, 10, []int64{100, 200, 300, 400, 500, 700, 800, 900}},
		{200, 10, []int64{200, 300, 400, 500, 700, 800, 900}},
		{0, 3, []int64{700, 800, 900}},
		{450, 3, []int64{700, 800, 900}},
		{850, 3, []int64{900}},
		{0, 0, []int64{}},
	} {
		got, err := Sendings("j", bytes.NewReader(b), tc.since, tc.keep)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Sendings(since %d, keep %d) = %v, want %v", tc.since, tc.keep, got, tc.want)
		}
	}
	damaged := append([]byte("00000000 {}\n"), b...)
	var je *Error
	if _, err := Sendings("j", bytes.NewReader(damaged), 0, 5); !errors.As(err, &je) || je.Line != 1 {
		t.Errorf("a damaged journal: %v, want an *Error at line 1", err)
	}
}

// TestSendingsOpenBounded: the "sending" records held until their next
// record are bounded; those beyond the bound count at once, though
// released after.
func TestSendingsOpenBounded(t *testing.T) {
	const n = maxOpen + 100
	var b []byte
	for i := range n {
		b = encodeRecord(b, &Record{Kind: KindSending, To: fmt.Sprintf("r%d@example.org", i), At: int64(i)})
	}
	for i := range n {
		b = encodeRecord(b, &Record{Kind: KindReleased, To: fmt.Sprintf("r%d@example.org", i), At: n})
	}
	got, err := Sendings("j", bytes.NewReader(b), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 || got[0] != maxOpen {
		t.Errorf("%d sendings counted from %v, want the 100 beyond the %d held, from %d", len(got), got[:min(len(got), 3)], maxOpen, maxOpen)
	}
}

// TestKeepWindow: a reading asked to keep the quota's window keeps what
// Sendings finds, from the same read as the State, and the State is as
// without it; the latest by time, whatever the journal's order (two
// connections append in either order).
func TestKeepWindow(t *testing.T) {
	path := Path(t.TempDir(), "test")
	j, st := openTestJournal(t, path)
	if st.Window() != nil {
		t.Errorf("a reading not asked to keeps a window: %+v", st.Window())
	}
	for _, r := range []Record{
		{Kind: KindOpen, At: 100},
		{Kind: KindSending, To: "a@example.org", At: 100},
		{Kind: KindSent, To: "a@example.org", At: 101},
		{Kind: KindSending, To: "c@example.org", At: 300},
		{Kind: KindSending, To: "b@example.org", At: 200}, // appended after c's
		{Kind: KindFailed, To: "b@example.org", At: 201, Code: 550},
		{Kind: KindSending, To: "d@example.org", At: 400},
		{Kind: KindDeferred, To: "d@example.org", At: 401},
		{Kind: KindSending, To: "d@example.org", At: 500}, // tried again: another message
		{Kind: KindSending, To: "e@example.org", At: 450},
	} {
		j.Append(r)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		since int64
		keep  int
		want  []int64
	}{
		{0, 10, []int64{100, 200, 300, 400, 450, 500}},
		{200, 10, []int64{200, 300, 400, 450, 500}},
		{0, 3, []int64{400, 450, 500}},
		{0, 4, []int64{300, 400, 450, 500}}, // not b's 200, later in the journal than c's 300
		{460, 3, []int64{500}},
		{0, 0, nil},
	} {
		j, st, err := Open(path, "test", KeepWindow(tc.since, tc.keep))
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		w := st.Window()
		if w == nil || w.Since != tc.since || w.Keep != tc.keep || !slices.Equal(w.At, tc.want) {
			t.Errorf("KeepWindow(%d, %d): %+v, want the times %v", tc.since, tc.keep, w, tc.want)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Sendings(path, bytes.NewReader(data), tc.since, tc.keep); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Sendings(%d, %d) = %v, %v; want %v", tc.since, tc.keep, got, err, tc.want)
		}
		read, err := Read(path, bytes.NewReader(data), KeepWindow(tc.since, tc.keep))
		if err != nil || !slices.Equal(read.Window().At, tc.want) {
			t.Errorf("Read with KeepWindow(%d, %d): %v, %v; want %v", tc.since, tc.keep, read.Window(), err, tc.want)
		}
		// d and e: "sending" with nothing after, read on the boot that wrote
		// them.
		for addr, want := range map[string]Status{"a@example.org": Sent, "b@example.org": Failed, "d@example.org": Pending, "e@example.org": Pending} {
			if got := st.Get(addr).Status; got != want {
				t.Errorf("KeepWindow(%d, %d): %s %v, want %v", tc.since, tc.keep, addr, got, want)
			}
		}
	}
	damaged := []byte("00000000 {}\n" + `1c2f9a0b {"t":"sending"}` + "\n")
	var je *Error
	if _, err := Read("j", bytes.NewReader(damaged), KeepWindow(0, 5)); !errors.As(err, &je) || je.Line != 1 {
		t.Errorf("a damaged journal: %v, want an *Error at line 1", err)
	}
}

// BenchmarkSendings reads a journal of 100,000 messages, each a "sending"
// and a "sent" record, for a quota of 2,000: what it keeps is the
// quota's, not the journal's.
func BenchmarkSendings(b *testing.B) {
	var data []byte
	for i := range 100_000 {
		r := Record{Kind: KindSending, To: "reader@example.org", Row: i + 1, ID: "x@example.org", At: int64(i)}
		data = encodeRecord(data, &r)
		r.Kind = KindSent
		data = encodeRecord(data, &r)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		at, err := Sendings("j", bytes.NewReader(data), 0, 2000)
		if err != nil || len(at) != 2000 || at[0] != 98_000 {
			b.Fatalf("%d times from %v, %v", len(at), at[:1], err)
		}
	}
}

// TestRunsBoots reads journals of several runs, each judged by the boot
// its own "open" record names: a "sending" record with nothing after it
// is pending only in a run that began on the boot that reads it.
func TestRunsBoots(t *testing.T) {
	var b []byte
	add := func(rs ...Record) {
		for _, r := range rs {
			b = encodeRecord(b, &r)
		}
	}
	add(
		Record{Kind: KindOpen}, // an older batch's run: no boot, no "handover" records
		Record{Kind: KindSending, To: "old@example.org"},
		Record{Kind: KindOpen, Boot: "before"}, // a run on an earlier boot
		Record{Kind: KindSending, To: "before@example.org"},
		Record{Kind: KindSending, To: "handed-before@example.org"},
		Record{Kind: KindHandover, To: "handed-before@example.org"},
		Record{Kind: KindOpen, Boot: "now"}, // a run on this one
		Record{Kind: KindSending, To: "now@example.org"},
		Record{Kind: KindSending, To: "handed-now@example.org"},
		Record{Kind: KindHandover, To: "handed-now@example.org"},
		Record{Kind: KindSending, To: "sent-now@example.org"},
		Record{Kind: KindHandover, To: "sent-now@example.org"},
		Record{Kind: KindSent, To: "sent-now@example.org"},
	)
	st, err := Read("j", bytes.NewReader(b), onBoot("now"))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]Status{
		"old@example.org":           Unknown,
		"before@example.org":        Unknown,
		"handed-before@example.org": Unknown,
		"now@example.org":           Pending,
		"handed-now@example.org":    Unknown,
		"sent-now@example.org":      Sent,
	} {
		if got := st.Get(addr).Status; got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
}
