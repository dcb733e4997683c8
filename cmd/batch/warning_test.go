package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// TestSendBidiWarning sends to a list whose second name holds U+202E
// (RIGHT-TO-LEFT OVERRIDE): send warns of it once, before asking, sends
// it all the same, and counts it in its summary.
func TestSendBidiWarning(t *testing.T) {
	srv := smtptest.Start(t)
	dir := t.TempDir()
	files := map[string]string{
		"c.toml": fmt.Sprintf("name = \"bidi\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\n"+
			"template = \"t.md\"\nrecipients = \"r.csv\"\n[smtp]\nhost = \"127.0.0.1\"\nport = %d\nsecurity = \"none\"\n", srv.Port()),
		"t.md":  "Hi {{.name}}\n",
		"r.csv": "email,name\nann@example.org,Ann\nada@example.org,\u202eadA\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := batch(t, nil, "send", "--yes", filepath.Join(dir, "c.toml"))
	if code != exitOK {
		t.Fatalf("send: exit %d\n%s%s", code, stdout, stderr)
	}
	warning := regexp.MustCompile(`(?m)^batch: warning: .*r\.csv:3: row 2: the name "\\u202eadA" holds bidirectional control characters \(U\+202E\)`)
	if n := len(warning.FindAllString(stderr, -1)); n != 1 {
		t.Errorf("the warning %d times, want once:\n%s", n, stderr)
	}
	if plan := strings.Index(stderr, "about to send"); plan < 0 || plan < strings.Index(stderr, "warning:") {
		t.Errorf("the warning is not before the plan:\n%s", stderr)
	}
	if !strings.Contains(stdout, "sent 2, failed 0, unknown 0, skipped 0, warned 1 in ") {
		t.Errorf("summary:\n%s", stdout)
	}
	if d := srv.Delivered(); d["ada@example.org"] != 1 || d["ann@example.org"] != 1 {
		t.Errorf("delivered %v, want both once", d)
	}
}
