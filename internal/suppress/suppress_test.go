package suppress

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustOpen(t *testing.T, path string) *List {
	t.Helper()
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func scanAll(t *testing.T, path string) []Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var all []Entry
	if err := Scan(path, f, func(e Entry) error { all = append(all, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return all
}

// A file a person edited: a byte order mark, CRLF, blank lines, short
// lines, a quoted detail with a comma, a time with an offset, no final
// line end, an address twice.
func TestReadHandEdited(t *testing.T) {
	path := writeFile(t, "suppressed.csv", "\uFEFFEmail,Reason,At,Campaign,Detail\r\n"+
		"ada@example.org,bounced,2026-12-01T16:19:14Z,dec,\"550 5.1.1 no such user, sorry\"\r\n"+
		"\r\n"+
		"  Bob@Example.ORG , Manual \r\n"+
		"carol@example.org,complained,2026-11-30T10:00:00+01:00\r\n"+
		"\n"+
		"ADA@example.org,unsubscribed,,,\n"+
		"dan@example.org,unsubscribed")
	l := mustOpen(t, path)
	if l.Len() != 4 {
		t.Errorf("Len = %d, want 4", l.Len())
	}
	for r, want := range map[Reason]int{Bounced: 1, Manual: 1, Complained: 1, Unsubscribed: 1} {
		if got := l.Count(r); got != want {
			t.Errorf("Count(%s) = %d, want %d", r, got, want)
		}
	}
	for _, tc := range []struct {
		addr   string
		reason Reason
		line   int
		at     string
	}{
		{"ada@example.org", Bounced, 2, "2026-12-01T16:19:14Z"}, // the first line counts
		{"Ada@EXAMPLE.org", Bounced, 2, "2026-12-01T16:19:14Z"},
		{"bob@example.org", Manual, 4, ""},
		{"carol@example.org", Complained, 5, "2026-11-30T09:00:00Z"},
		{"dan@example.org", Unsubscribed, 8, ""},
	} {
		e, ok := l.Has(tc.addr)
		if !ok {
			t.Errorf("Has(%s) = false", tc.addr)
			continue
		}
		if e.Reason != tc.reason || e.Line != tc.line || e.Email != tc.addr {
			t.Errorf("Has(%s) = %+v, want reason %s line %d", tc.addr, e, tc.reason, tc.line)
		}
		if at := formatAt(e.At); at != tc.at {
			t.Errorf("Has(%s).At = %s, want %s", tc.addr, at, tc.at)
		}
	}
	for _, addr := range []string{"ada+x@example.org", "eve@example.org", "example.org"} {
		if _, ok := l.Has(addr); ok {
			t.Errorf("Has(%s) = true", addr)
		}
	}
	all := scanAll(t, path)
	if len(all) != 5 {
		t.Fatalf("Scan gave %d entries, want 5: %+v", len(all), all)
	}
	if e := all[0]; e.Campaign != "dec" || e.Detail != "550 5.1.1 no such user, sorry" {
		t.Errorf("Scan's first entry = %+v", e)
	}
	if e := all[1]; e.Email != "Bob@Example.ORG" || e.Reason != Manual || e.Campaign != "" {
		t.Errorf("Scan's second entry = %+v", e)
	}
}

func formatAt(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

func TestOpenMissingAndEmpty(t *testing.T) {
	for name, content := range map[string]*string{"missing": nil, "empty": ptr(""), "blank": ptr("\n\r\n\n"), "bom": ptr("\uFEFF"), "header only": ptr("email,reason,at,campaign,detail")} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.csv")
			if content != nil {
				os.WriteFile(path, []byte(*content), 0o644)
			}
			l := mustOpen(t, path)
			if l.Len() != 0 {
				t.Errorf("Len = %d", l.Len())
			}
			n, err := l.Append(Entry{Email: "ada@example.org", Reason: Manual})
			if err != nil || n != 1 {
				t.Fatalf("Append = %d, %v", n, err)
			}
			all := scanAll(t, path)
			if len(all) != 1 || all[0].Email != "ada@example.org" {
				t.Errorf("after Append the file reads %+v:\n%s", all, readFile(t, path))
			}
			if got := strings.Count(strings.ToLower(readFile(t, path)), "email,reason"); got != 1 {
				t.Errorf("%d headers:\n%s", got, readFile(t, path))
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestReadBadLines(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		lines         []int
	}{
		{"no header", "ada@example.org,manual\n", []int{1}},
		{"other header", "address,why\nada@example.org,manual\n", []int{1}},
		{"one field", "email,reason,at,campaign,detail\nada@example.org\n", []int{2}},
		{"a comment", "email,reason,at,campaign,detail\n# bounced last year\nada@example.org,manual\n", []int{2}},
		{"too many fields", "email,reason,at,campaign,detail\nada@example.org,manual,,c,d,e\n", []int{2}},
		{"bad address", "email,reason,at,campaign,detail\n\nada@,manual\n", []int{3}},
		{"bad reason", "email,reason,at,campaign,detail\nada@example.org,gone\n", []int{2}},
		{"bad time", "email,reason,at,campaign,detail\nada@example.org,manual,yesterday\n", []int{2}},
		{"not utf-8", "email,reason,at,campaign,detail\nada@example.org,manual,,,caf\xe9\n", []int{2}},
		{"bare quote", "email,reason,at,campaign,detail\nada@example.org,manual,,,say \"hi\"\nbob@example.org,manual\n", []int{2}},
		{"several", "email,reason,at,campaign,detail\nada@example.org,gone\nbob@example.org,manual\ncarol,manual\r\n", []int{2, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "s.csv", tc.content)
			_, err := Open(path)
			if err == nil {
				t.Fatal("no error")
			}
			var lines []int
			for _, e := range unjoin(err) {
				var re *merge.RowError
				if !errors.As(e, &re) {
					t.Fatalf("%v is no *merge.RowError", e)
				}
				if re.Path != path {
					t.Errorf("error names %s, want %s", re.Path, path)
				}
				if !strings.Contains(re.Err.Error(), ": ") {
					t.Errorf("error %q says no more than what is wrong", re.Err)
				}
				lines = append(lines, re.Line)
			}
			if !equalInts(lines, tc.lines) {
				t.Errorf("errors on lines %v, want %v: %v", lines, tc.lines, err)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Append adds lines after what is there and touches no byte of it: a hand
// edit without a final line end gets one.
func TestAppendKeepsTheFile(t *testing.T) {
	for name, before := range map[string]string{
		"lf":             "email,reason,at,campaign,detail\nada@example.org,manual\n",
		"crlf":           "\uFEFFemail,reason,at,campaign,detail\r\nada@example.org,manual\r\n\r\n",
		"no final end":   "email,reason,at,campaign,detail\r\nada@example.org,manual",
		"quoted at end":  "email,reason,at,campaign,detail\nada@example.org,manual,,,\"a, b\"",
		"spaces, no end": "email,reason,at,campaign,detail\nada@example.org,manual\n   \n\t",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, "s.csv", before)
			l := mustOpen(t, path)
			at := time.Date(2026, 12, 1, 16, 19, 14, 500, time.FixedZone("CET", 3600))
			n, err := l.Append(
				Entry{Email: "bob@example.org", Reason: Bounced, At: at, Campaign: "dec", Detail: "550 5.1.1\r\nuser unknown"},
				Entry{Email: "ADA@example.org", Reason: Bounced}, // already there
				Entry{Email: "carol@example.org", Reason: Complained, At: at},
				Entry{Email: "Carol@example.org", Reason: Manual}, // twice in one call
			)
			if err != nil || n != 2 {
				t.Fatalf("Append = %d, %v", n, err)
			}
			after := readFile(t, path)
			if !strings.HasPrefix(after, before) {
				t.Fatalf("the file's bytes changed:\n%q\nto\n%q", before, after)
			}
			added := after[len(before):]
			want := "bob@example.org,bounced,2026-12-01T15:19:14Z,dec,550 5.1.1 user unknown\ncarol@example.org,complained,2026-12-01T15:19:14Z,,\n"
			if !strings.HasSuffix(before, "\n") {
				want = "\n" + want
			}
			if added != want {
				t.Errorf("appended\n%q\nwant\n%q", added, want)
			}
			if e, ok := l.Has("bob@example.org"); !ok || e.Reason != Bounced {
				t.Errorf("the list does not have what it appended: %+v %v", e, ok)
			}
			again := mustOpen(t, path)
			for _, addr := range []string{"ada@example.org", "bob@example.org", "carol@example.org"} {
				e1, ok1 := l.Has(addr)
				e2, ok2 := again.Has(addr)
				if !ok1 || !ok2 || e1 != e2 {
					t.Errorf("Has(%s): %+v %v after Append, %+v %v read again", addr, e1, ok1, e2, ok2)
				}
			}
		})
	}
}

// Cells batch writes can't run in a spreadsheet, and read back as they
// were: an address may begin with - or =.
func TestAppendFormulas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.csv")
	l := mustOpen(t, path)
	if _, err := l.Append(Entry{Email: "-2+3@example.org", Reason: Bounced, Campaign: "@SUM(A1)", Detail: `=HYPERLINK("http://evil.example","x")`}); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, path)
	if !strings.Contains(got, "\n'-2+3@example.org,") || !strings.Contains(got, `,'@SUM(A1),"'=HYPERLINK(`) {
		t.Errorf("cells not made text:\n%s", got)
	}
	all := scanAll(t, path)
	if len(all) != 1 || all[0].Email != "-2+3@example.org" {
		t.Fatalf("read back %+v", all)
	}
	if _, ok := mustOpen(t, path).Has("-2+3@example.org"); !ok {
		t.Error("the address is not suppressed once read back")
	}
	if n, err := l.Append(Entry{Email: "-2+3@example.org", Reason: Manual}); n != 0 || err != nil {
		t.Errorf("appended it again: %d, %v", n, err)
	}
}

func TestAppendRefusesBadEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.csv")
	l := mustOpen(t, path)
	for _, e := range []Entry{
		{Email: "not an address", Reason: Bounced},
		{Email: "ada@example.org\r\nBcc: eve@example.org", Reason: Bounced},
		{Email: "ada@example.org", Reason: "gone"},
		{Email: "ada@example.org"},
	} {
		if _, err := l.Append(e); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(%+v) = %v, want ErrInvalid", e, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused Append made the file")
	}
}

// Each List sees what another appended since it read the file, and what a
// person changed in it.
func TestAppendReadsOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.csv")
	a, b := mustOpen(t, path), mustOpen(t, path)
	if n, err := a.Append(Entry{Email: "ada@example.org", Reason: Bounced}); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := b.Append(Entry{Email: "ada@example.org", Reason: Complained}, Entry{Email: "bob@example.org", Reason: Manual}); n != 1 || err != nil {
		t.Fatalf("b appended %d, %v: want only bob", n, err)
	}
	if e, ok := b.Has("ada@example.org"); !ok || e.Reason != Bounced || e.Line != 2 {
		t.Errorf("b.Has(ada) = %+v, %v", e, ok)
	}
	if e, ok := b.Has("bob@example.org"); !ok || e.Line != 3 {
		t.Errorf("b.Has(bob) = %+v, %v", e, ok)
	}
	// An edit in place, same size: ada's reason changed, bob's line made
	// blank.
	content := readFile(t, path)
	i := strings.Index(content, "bounced,")
	edited := content[:i] + "manual," + strings.Repeat(" ", len("bounced,2026-12-01T16:19:14Z")-len("manual,")) + content[i+len("bounced,2026-12-01T16:19:14Z"):]
	j := strings.Index(edited, "bob@")
	edited = edited[:j] + strings.Repeat("\n", len(edited)-j)
	if len(edited) != len(content) {
		t.Fatal("the edit must keep the size")
	}
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte(edited), 0)
	f.Close()
	if n, err := a.Append(Entry{Email: "bob@example.org", Reason: Bounced}); n != 1 || err != nil {
		t.Fatalf("a appended %d, %v: want bob, whose line was deleted", n, err)
	}
	if e, _ := a.Has("ada@example.org"); e.Reason != Manual {
		t.Errorf("a did not read the edit: ada is %s", e.Reason)
	}
}

func TestRemove(t *testing.T) {
	before := "\uFEFFemail,reason,at,campaign,detail\r\n" +
		"ada@example.org,bounced,2026-12-01T16:19:14Z,dec,\"a, b\"\r\n" +
		"bob@example.org,manual\r\n" +
		"\r\n" +
		"ADA@example.org,manual\n" +
		"carol@example.org,unsubscribed"
	path := writeFile(t, "s.csv", before)
	os.Chmod(path, 0o600)
	l := mustOpen(t, path)
	if n, err := l.Remove("eve@example.org"); n != 0 || err != nil {
		t.Fatalf("Remove(eve) = %d, %v", n, err)
	}
	if readFile(t, path) != before {
		t.Fatal("Remove of an address not there changed the file")
	}
	n, err := l.Remove("Ada@Example.org")
	if err != nil || n != 2 {
		t.Fatalf("Remove(ada) = %d, %v", n, err)
	}
	want := "\uFEFFemail,reason,at,campaign,detail\r\n" +
		"bob@example.org,manual\r\n" +
		"carol@example.org,unsubscribed"
	if got := readFile(t, path); got != want {
		t.Errorf("after Remove:\n%q\nwant\n%q", got, want)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	if _, ok := l.Has("ada@example.org"); ok {
		t.Error("the list still has ada")
	}
	if e, ok := l.Has("carol@example.org"); !ok || e.Line != 3 {
		t.Errorf("Has(carol) = %+v, %v: want line 3", e, ok)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if n, err := l.Append(Entry{Email: "ada@example.org", Reason: Manual}); n != 1 || err != nil {
		t.Errorf("Append after Remove = %d, %v", n, err)
	}
	if got := readFile(t, path); !strings.HasPrefix(got, want+"\n") || len(scanAll(t, path)) != 3 {
		t.Errorf("after Append:\n%q", got)
	}
	// Several addresses at once, one of them not there.
	if n, err := l.Remove("BOB@example.org", "eve@example.org", "ada@example.org"); n != 2 || err != nil {
		t.Fatalf("Remove(bob, eve, ada) = %d, %v", n, err)
	}
	if got := readFile(t, path); got != "\uFEFFemail,reason,at,campaign,detail\r\ncarol@example.org,unsubscribed\n" || l.Len() != 1 {
		t.Errorf("after Remove of two:\n%q, Len %d", got, l.Len())
	}
}

func TestRemoveMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.csv")
	if n, err := mustOpen(t, path).Remove("ada@example.org"); n != 0 || err != nil {
		t.Fatalf("Remove = %d, %v", n, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("Remove made the file")
	}
}

// A list that another process keeps locked is an error, after a while.
func TestLocked(t *testing.T) {
	path := writeFile(t, "s.csv", "email,reason,at,campaign,detail\nada@example.org,manual\n")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, path)
	l.wait = 20 * time.Millisecond
	if _, err := l.Append(Entry{Email: "bob@example.org", Reason: Manual}); !errors.Is(err, ErrLocked) {
		t.Errorf("Append = %v, want ErrLocked", err)
	}
	if _, err := l.Remove("ada@example.org"); !errors.Is(err, ErrLocked) {
		t.Errorf("Remove = %v, want ErrLocked", err)
	}
	if _, ok := mustOpen(t, path).Has("ada@example.org"); !ok {
		t.Error("ada was removed")
	}
}

// A server's reply is not always UTF-8, and the file must be: what Append
// writes reads back.
func TestAppendNotUTF8(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.csv")
	l := mustOpen(t, path)
	if _, err := l.Append(Entry{Email: "ada@example.org", Reason: Bounced, Campaign: "d\xe9c", Detail: "550 caf\xe9\x00 gone"}); err != nil {
		t.Fatal(err)
	}
	all := scanAll(t, path)
	if len(all) != 1 || all[0].Campaign != "d\uFFFDc" || all[0].Detail != "550 caf\uFFFD gone" {
		t.Errorf("read back %+v", all)
	}
}

// A line without its end that a person then finishes is read whole.
func TestAppendAfterALineIsFinished(t *testing.T) {
	path := writeFile(t, "s.csv", "email,reason,at,campaign,detail\nada@example.org,manual")
	l := mustOpen(t, path)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(",,,left in March\n")
	f.Close()
	if n, err := l.Append(Entry{Email: "bob@example.org", Reason: Bounced}); n != 1 || err != nil {
		t.Fatalf("Append = %d, %v", n, err)
	}
	if e, ok := l.Has("ada@example.org"); !ok || e.Line != 2 {
		t.Errorf("Has(ada) = %+v, %v", e, ok)
	}
	if all := scanAll(t, path); len(all) != 2 || all[0].Detail != "left in March" {
		t.Errorf("read back %+v", all)
	}
}

func TestReasons(t *testing.T) {
	want := []Reason{Unsubscribed, Bounced, Complained, Manual}
	got := Reasons()
	if !slices.Equal(got, want) {
		t.Fatalf("Reasons() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if Reasons()[0] != Unsubscribed {
		t.Error("Reasons() returns the package's array, not a copy")
	}
}
