package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// These tests hold batch send to one truth: what the progress lines say of
// each recipient, the summary's counts, batch status and the exit status
// all come from the same outcomes, those the journal holds.

// smtpCampaign writes a campaign of n recipients, r1@example.org and on,
// that sends to srv with the [smtp] keys of more, and returns its path.
func smtpCampaign(t *testing.T, srv *smtptest.Server, n int, more string) string {
	t.Helper()
	dir := t.TempDir()
	var list strings.Builder
	list.WriteString("email,name\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&list, "r%d@example.org,Reader %d\n", i, i)
	}
	files := map[string]string{
		"c.toml": fmt.Sprintf("name = \"truth\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\n"+
			"template = \"t.md\"\nrecipients = \"r.csv\"\n[smtp]\nhost = \"127.0.0.1\"\nport = %d\nsecurity = \"none\"\n%s", srv.Port(), more),
		"t.md":  "Hello {{.name}}!\n",
		"r.csv": list.String(),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "c.toml")
}

// TestHangAfterData: a server that takes every message and doesn't answer
// the final dot within the timeout. Each outcome is unknown (the server may
// have the message), and every report says so: the line printed for each,
// the summary, status and the exit status, none of them "failed".
func TestHangAfterData(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Fault{Stage: smtptest.AtData, Delay: time.Second})
	path := smtpCampaign(t, srv, 3, "timeout = \"300ms\"\n")
	code, stdout, stderr := batch(t, nil, "send", "--yes", path)
	if code != exitFailed {
		t.Errorf("send: exit %d, want %d\n%s%s", code, exitFailed, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "sent 0, failed 0, unknown 3, skipped 0 in ") {
		t.Errorf("summary: %s", stdout)
	}
	for i := 1; i <= 3; i++ {
		line := regexp.MustCompile(fmt.Sprintf(`(?m)^batch: unknown: r%d@example\.org \(row %d\): .*end of DATA: .*i/o timeout$`, i, i))
		if !line.MatchString(stderr) {
			t.Errorf("no line says r%d's outcome is unknown:\n%s", i, stderr)
		}
	}
	if strings.Contains(stderr, "failed:") || !strings.Contains(stderr, "batch: 3 outcomes unknown") {
		t.Errorf("stderr calls an unknown outcome failed, or gives no hint:\n%s", stderr)
	}
	code, stdout, _ = batch(t, nil, "status", path)
	if code != 0 || stdout != "sent 0\nfailed 0\nunknown 3\npending 0\n" {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}
}
