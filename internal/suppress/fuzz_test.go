package suppress

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzAppend takes any file as a hand-edited list: reading it never
// panics, and when it reads, Append keeps it a list that reads, with its
// bytes before what was added, every address it had with the reason it
// had, and the new one; Remove then drops only that one.
//
//	go test -fuzz=FuzzAppend -fuzztime=30s ./internal/suppress/
func FuzzAppend(f *testing.F) {
	f.Add([]byte("\uFEFFemail,reason,at,campaign,detail\r\nada@example.org,bounced,2026-12-01T16:19:14Z,dec,\"a, b\"\r\n\r\nbob@example.org,manual"), "-1@example.org", "=cmd|' /C calc'!A0")
	f.Add([]byte("email,reason,at,campaign,detail\n"), "zoe@example.org", "550\r\n5.1.1")
	f.Add([]byte(""), "ada@example.org", "")
	f.Add([]byte("email,reason\nada@example.org,gone\n"), "ada@example.org", "x")
	f.Fuzz(func(t *testing.T, content []byte, addr, detail string) {
		path := filepath.Join(t.TempDir(), "s.csv")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(path)
		if err != nil {
			return // a bad line, named
		}
		var before []Entry
		if err := Scan(path, bytes.NewReader(content), func(e Entry) error { before = append(before, e); return nil }); err != nil {
			t.Fatalf("Open reads it, Scan does not: %v", err)
		}
		n, err := l.Append(Entry{Email: addr, Reason: Bounced, Campaign: detail, Detail: detail})
		if err != nil {
			if _, had := l.Has(addr); had {
				t.Fatalf("Append of %q, which the list has, failed: %v", addr, err)
			}
			return // an address batch can't write
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(after, content) {
			t.Fatalf("Append changed the file's bytes:\n%q\n%q", content, after)
		}
		again, err := Open(path)
		if err != nil {
			t.Fatalf("the file does not read after Append: %v\n%q", err, after)
		}
		for _, e := range before {
			got, ok := again.Has(e.Email)
			if !ok {
				t.Fatalf("%s lost", e.Email)
			}
			if first, _ := l.Has(e.Email); got.Reason != first.Reason || got.Line != first.Line {
				t.Fatalf("%s: %+v read again, %+v before", e.Email, got, first)
			}
		}
		if _, ok := again.Has(addr); !ok {
			t.Fatalf("%q not suppressed after Append (%d added)", addr, n)
		}
		if again.Len() != l.Len() {
			t.Fatalf("%d addresses read again, %d in the list", again.Len(), l.Len())
		}
		removed, err := again.Remove(addr)
		if err != nil || removed == 0 {
			t.Fatalf("Remove = %d, %v", removed, err)
		}
		if _, ok := again.Has(addr); ok || again.Len() != l.Len()-1 {
			t.Fatalf("after Remove: has it, or %d addresses of %d", again.Len(), l.Len())
		}
		if strings.Count(string(after), "\n") < strings.Count(string(content), "\n") {
			t.Fatal("Append lost line ends")
		}
	})
}

// FuzzAppendSoft takes any file as a hand-edited soft-bounce record:
// reading it never panics, and when it reads, Append keeps it a record
// that reads, with its bytes before what was added, every address's
// count, and the new campaign counted once, however often it is appended;
// Remove then drops the address's lines, and only those.
//
//	go test -fuzz=FuzzAppendSoft -fuzztime=30s ./internal/suppress/
func FuzzAppendSoft(f *testing.F) {
	f.Add([]byte("\uFEFFemail,at,campaign,status,detail\r\nada@example.org,,oct,4.2.2,\"a, b\"\r\n\r\nbob@example.org,,nov"), "ada@example.org", "dec", "=cmd|' /C calc'!A0")
	f.Add([]byte("email,at,campaign,status,detail\n"), "zoe@example.org", "a\r\nb", "452\r\n4.2.2")
	f.Add([]byte(""), "ada@example.org", "oct", "")
	f.Add([]byte("email,at,campaign\nada@example.org,,\n"), "ada@example.org", "x", "x")
	f.Add([]byte("email,at,campaign,status,detail\n"), "ada@example.org", "\x01", "")
	f.Fuzz(func(t *testing.T, content []byte, addr, campaign, detail string) {
		path := filepath.Join(t.TempDir(), "s.soft.csv")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := OpenSoft(path)
		if err != nil {
			return // a bad line, named
		}
		var before []SoftBounce
		if err := ScanSoft(path, bytes.NewReader(content), func(b SoftBounce) error { before = append(before, b); return nil }); err != nil {
			t.Fatalf("OpenSoft reads it, ScanSoft does not: %v", err)
		}
		had := l.Count(addr)
		n, err := l.Append(SoftBounce{Email: addr, Campaign: campaign, Status: detail, Detail: detail}, SoftBounce{Email: addr, Campaign: campaign})
		if err != nil {
			return // an address or a campaign batch can't write
		}
		if n > 1 {
			t.Fatalf("one campaign appended %d times", n)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(after, content) {
			t.Fatalf("Append changed the file's bytes:\n%q\n%q", content, after)
		}
		again, err := OpenSoft(path)
		if err != nil {
			t.Fatalf("the file does not read after Append: %v\n%q", err, after)
		}
		for _, b := range before {
			if l.addrKey(b.Email) == l.addrKey(addr) {
				continue
			}
			if again.Count(b.Email) != l.Count(b.Email) {
				t.Fatalf("%s: %d read again, %d before", b.Email, again.Count(b.Email), l.Count(b.Email))
			}
		}
		if got := again.Count(addr); got != had+n || got == 0 {
			t.Fatalf("%q counted %d after Append, %d before, %d added", addr, got, had, n)
		}
		if m, err := again.Append(SoftBounce{Email: addr, Campaign: campaign}); err != nil || m != 0 {
			t.Fatalf("the same campaign again: %d, %v", m, err)
		}
		if removed, err := again.Remove(addr); err != nil || removed == 0 || again.Count(addr) != 0 {
			t.Fatalf("Remove = %d, %v; count %d", removed, err, again.Count(addr))
		}
	})
}
