package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// TestSendSuppressed: a send skips the suppressed, says so in its plan
// and summary apart from failures, adds a hard bounce to the list, and
// status counts the suppressed apart from pending.
func TestSendSuppressed(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Fault{Rcpt: "r3@example.org", Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}})
	path := smtpCampaign(t, srv, 4, "")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.Replace(string(text), "[smtp]\n", "suppress = \"suppressed.csv\"\n[smtp]\n", 1))
	list := filepath.Join(filepath.Dir(path), "suppressed.csv")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, []byte("email,reason,at,campaign,detail\nR1@example.org,unsubscribed\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := batch(t, nil, "send", "--yes", path)
	if code != exitFailed {
		t.Errorf("send: exit %d, want %d (r3 failed)\n%s%s", code, exitFailed, stdout, stderr)
	}
	if !strings.Contains(stderr, `about to send 3 messages of campaign "truth" (1 suppressed: 1 unsubscribed) through `) {
		t.Errorf("plan:\n%s", stderr)
	}
	if !strings.HasPrefix(stdout, "sent 2, failed 1, unknown 0, skipped 0, suppressed 1 (1 unsubscribed), 1 hard bounce added to the suppression list in ") {
		t.Errorf("summary: %s", stdout)
	}
	if n := srv.Attempts()["r1@example.org"]; n != 0 {
		t.Errorf("r1, suppressed, was tried %d times", n)
	}

	code, stdout, _ = batch(t, nil, "status", path)
	if code != 0 || stdout != "sent 2\nfailed 1\nunknown 0\npending 0\nsuppressed 1 (1 unsubscribed)\n" {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = batch(t, nil, "suppress", "list", path)
	want := regexp.MustCompile(`(?m)^r3@example\.org,bounced,20[-0-9T:]+Z,truth,r3@example\.org: RCPT TO: 550 5\.1\.1 .*$`)
	if code != 0 || !want.MatchString(stdout) {
		t.Errorf("suppress list: exit %d\n%s", code, stdout)
	}

	// Sending again: r1 is all that is left, and suppressed.
	code, stdout, _ = batch(t, nil, "send", "--yes", path)
	if code != exitFailed || stdout != "nothing to send: 2 sent before, 1 failed, 0 unknown, 1 suppressed (1 unsubscribed)\n" {
		t.Errorf("send again: exit %d\n%s", code, stdout)
	}

	// A test send takes the list as a send would, the journal aside: the
	// suppressed stay out, and nothing is added to the list.
	code, stdout, stderr = batch(t, nil, "send", "--yes", "--to", "tester@example.org", path)
	if code != 0 || !strings.Contains(stderr, "(2 suppressed: 1 unsubscribed, 1 bounced)") || !strings.HasPrefix(stdout, "test-sent 2 to tester@example.org, failed 0, unknown 0, skipped 0, suppressed 2 (1 unsubscribed, 1 bounced) in ") {
		t.Errorf("test send: exit %d\n%s%s", code, stdout, stderr)
	}
}
