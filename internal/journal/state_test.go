package journal

import (
	"bytes"
	"os"
	"path/filepath"
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
