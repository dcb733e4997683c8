package suppress

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
)

func TestSoftPath(t *testing.T) {
	for in, want := range map[string]string{
		"suppressed.csv":           "suppressed.soft.csv",
		"../lists/suppressed.csv":  "../lists/suppressed.soft.csv",
		"suppressed":               "suppressed.soft.csv",
		filepath.Join("a.b", "do"): filepath.Join("a.b", "do") + ".soft.csv",
	} {
		if got := SoftPath(in); got != want {
			t.Errorf("SoftPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// Each (address, campaign) counts once, in one Append or across them,
// whatever the address's case; a second List sees the first's lines.
func TestSoftAppendCountsCampaigns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "suppressed.soft.csv")
	l, err := OpenSoft(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 16, 19, 14, 0, time.UTC)
	n, err := l.Append(
		SoftBounce{Email: "ada@example.org", Campaign: "a", Status: "4.2.2", Detail: "452 4.2.2 mailbox\nfull", At: at},
		SoftBounce{Email: "Ada@Example.org", Campaign: "a", Status: "4.4.1"}, // the same message, failed after delayed
		SoftBounce{Email: "bob@example.org", Campaign: "a", Status: "4.4.1", At: at},
	)
	if err != nil || n != 2 {
		t.Fatalf("added %d, %v; want 2", n, err)
	}
	if n, err := l.Append(SoftBounce{Email: "ada@example.org", Campaign: "a", Status: "4.0.0"}, SoftBounce{Email: "ada@example.org", Campaign: "b", Status: "4.4.1", At: at}); err != nil || n != 1 {
		t.Fatalf("again: added %d, %v; want 1", n, err)
	}
	want := "email,at,campaign,status,detail\n" +
		"ada@example.org,2026-12-01T16:19:14Z,a,4.2.2,452 4.2.2 mailbox full\n" +
		"bob@example.org,2026-12-01T16:19:14Z,a,4.4.1,\n" +
		"ada@example.org,2026-12-01T16:19:14Z,b,4.4.1,\n"
	if got := readFile(t, path); got != want {
		t.Errorf("the file:\n%s\nwant:\n%s", got, want)
	}
	if l.Count("ADA@example.org") != 2 || l.Count("bob@example.org") != 1 || l.Count("carol@example.org") != 0 || !l.Has("ada@example.org", "b") || l.Has("bob@example.org", "b") || l.Len() != 3 {
		t.Errorf("counts: ada %d, bob %d, len %d", l.Count("ada@example.org"), l.Count("bob@example.org"), l.Len())
	}
	other, err := OpenSoft(path, "Ada@example.org")
	if err != nil || other.Count("ada@example.org") != 2 {
		t.Fatalf("read again: %v", err)
	}
	got := other.Lines("Ada@example.org")
	if len(got) != 2 || got[0].Campaign != "a" || got[0].Status != "4.2.2" || got[0].Line != 2 || got[1].Campaign != "b" || got[1].Line != 4 {
		t.Errorf("Lines: %+v", got)
	}
	if got := other.Lines("bob@example.org"); got != nil {
		t.Errorf("Lines of an address not kept: %+v", got)
	}
	// A line another process appended is read before Append writes.
	if n, err := other.Append(SoftBounce{Email: "ada@example.org", Campaign: "c"}); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if got := other.Lines("ada@example.org"); len(got) != 3 || got[2].Campaign != "c" || got[2].Line != 5 || got[2].At.IsZero() {
		t.Errorf("Lines after Append: %+v", got)
	}
	if n, err := l.Append(SoftBounce{Email: "ada@example.org", Campaign: "c"}); err != nil || n != 0 || l.Count("ada@example.org") != 3 {
		t.Errorf("the other's line: added %d, %v, count %d; want 0 and 3", n, err, l.Count("ada@example.org"))
	}
}

// Deleting an address's lines by hand, or with Remove, resets its count.
func TestSoftHandEdited(t *testing.T) {
	path := writeFile(t, "s.soft.csv", "\uFEFFemail,at,campaign,status,detail\r\n"+
		"ada@example.org,,a,4.2.2,\"full, again\"\r\n\r\n"+
		"ada@example.org,2026-12-01T17:19:14+01:00,b\r\n"+
		"bob@example.org,,a")
	l, err := OpenSoft(path, "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if l.Count("ada@example.org") != 2 || l.Count("bob@example.org") != 1 || len(l.Lines("ada@example.org")) != 2 {
		t.Fatalf("ada %d (%d lines), bob %d", l.Count("ada@example.org"), len(l.Lines("ada@example.org")), l.Count("bob@example.org"))
	}
	if n, err := l.Append(SoftBounce{Email: "bob@example.org", Campaign: "b"}); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if !strings.Contains(readFile(t, path), "\r\nbob@example.org,,a\nbob@example.org,") {
		t.Errorf("the line without its end was not finished first:\n%s", readFile(t, path))
	}
	if n, err := l.Remove("ADA@example.org"); err != nil || n != 2 || l.Count("ada@example.org") != 0 || l.Count("bob@example.org") != 2 {
		t.Errorf("removed %d, %v; ada %d, bob %d", n, err, l.Count("ada@example.org"), l.Count("bob@example.org"))
	}
	if got := l.Lines("ada@example.org"); len(got) != 0 {
		t.Errorf("ada's lines after Remove: %+v", got)
	}
	if strings.Contains(readFile(t, path), "ada@") {
		t.Errorf("ada is still there:\n%s", readFile(t, path))
	}
}

func TestSoftBadLines(t *testing.T) {
	for content, want := range map[string]string{
		"email,reason,at,campaign,detail\n":                   "s.soft.csv:1: the first line must be the header email,at,campaign,status,detail",
		"email,at,campaign,status,detail\nada@example.org\n":  "s.soft.csv:2: 1 fields: a line is email,at,campaign,status,detail",
		"email,at,campaign,status,detail\nada,,a\n":           "s.soft.csv:2: invalid address \"ada\"",
		"email,at,campaign,status,detail\nada@x.org,soon,a\n": "s.soft.csv:2: time \"soon\" for ada@x.org",
		"email,at,campaign,status,detail\nada@x.org,, \n":     "s.soft.csv:2: no campaign for ada@x.org",
	} {
		_, err := OpenSoft(writeFile(t, "s.soft.csv", content))
		var re *merge.RowError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", content, err, want)
		}
	}
	l, err := OpenSoft(filepath.Join(t.TempDir(), "s.soft.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []SoftBounce{{Email: "nobody", Campaign: "a"}, {Email: "ada@example.org"}, {Email: "ada@example.org", Campaign: "\x01\r\n"}} {
		if _, err := l.Append(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", b, err)
		}
	}
}

func TestSoftLinesMissingFile(t *testing.T) {
	l, err := OpenSoft(filepath.Join(t.TempDir(), "none.soft.csv"), "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Lines("ada@example.org"); len(got) != 0 {
		t.Errorf("got %v", got)
	}
}
