package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

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
	st, err = Read(path, bytes.NewReader(data))
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
	} {
		b = encodeRecord(b, &r)
	}
	for _, tc := range []struct {
		since int64
		keep  int
		want  []int64
	}{
		{0, 10, []int64{100, 200, 300, 400, 500}},
		{200, 10, []int64{200, 300, 400, 500}},
		{0, 3, []int64{300, 400, 500}},
		{450, 3, []int64{500}},
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
