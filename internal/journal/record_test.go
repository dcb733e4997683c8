package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTornLastLine(t *testing.T) {
	path := Path(t.TempDir(), "test")
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
		j, st, err := Open(path, "test")
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
		st, err = Read(path, bytes.NewReader(data))
		if err != nil || st.Get("c@example.org").Status != Sent {
			t.Fatalf("cut at %d: after reopening: %v, c %s", cut, err, st.Get("c@example.org").Status)
		}
	}
}

func TestDamagedLine(t *testing.T) {
	path := Path(t.TempDir(), "test")
	j, _ := openTestJournal(t, path)
	j.Append(Record{Kind: KindSent, To: "a@example.org"})
	j.Append(Record{Kind: KindSent, To: "b@example.org"})
	j.Append(Record{Kind: KindSent, To: "c@example.org"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	damaged := bytes.Replace(data, []byte("b@example.org"), []byte("x@example.org"), 1)
	_, err := Read(path, bytes.NewReader(damaged))
	var je *Error
	if !errors.As(err, &je) || je.Line != 2 || je.Path != path {
		t.Fatalf("Read of a journal damaged at line 2: %v", err)
	}
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(path, "test"); !errors.As(err, &je) {
		t.Errorf("Open of a damaged journal: %v", err)
	}
}

func TestPath(t *testing.T) {
	if got := Path("c", "2026-11-meetup"); got != filepath.Join("c", ".batch", "2026-11-meetup.journal") {
		t.Errorf("got %s", got)
	}
	a, b := Path("c", "news/letter"), Path("c", "news letter")
	if a == b || strings.Contains(filepath.Base(a), "/") || filepath.Dir(a) != filepath.Join("c", ".batch") {
		t.Errorf("unsafe names: %s, %s", a, b)
	}
}

// FuzzReadJournal reads arbitrary bytes as a journal: never a panic; either
// a state or an error, a *Error when a line is damaged.
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
		st, err := Read("fuzz.journal", bytes.NewReader(data))
		if err != nil {
			var je *Error
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
