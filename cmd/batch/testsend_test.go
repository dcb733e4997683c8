package main

import (
	"bytes"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// TestTestSend: a test send (--to) carries Message-IDs of its own, never a
// recipient's: a receiver that drops a Message-ID it has seen would drop
// the real message to a recipient who was the test address too. They are
// the same for a repeated test send. The plan and the summary say so, and
// count the same rows skipped, in the same words. The real send that
// follows has the recipients' own Message-IDs.
func TestTestSend(t *testing.T) {
	srv := smtptest.Start(t)
	dir := t.TempDir()
	files := map[string]string{
		"c.toml": "name = \"t\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\ntemplate = \"t.md\"\nrecipients = \"r.csv\"\n" +
			fmt.Sprintf("[smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\nport = %d\n", srv.Port()),
		"t.md": "Hello {{.name}}!\n",
		// The test address is on the list too; an invalid row before the
		// second message, a repeated one after it.
		"r.csv": "email,name\nme@example.com,Me\nbad,Bad\nann@example.org,Ann\nme@example.com,Again\nben@example.org,Ben\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "c.toml")
	summary := regexp.MustCompile(`^test-sent 2 to tester@example\.net, failed 0, unknown 0, skipped 1 \(1 invalid, 0 repeated addresses\) in \S+ \(\S+ messages/s\), each with a Message-ID of its own, not its recipient's\n$`)
	plan := `batch: about to test-send 2 messages of campaign "t" to tester@example.net, each as its recipient would see it but for a Message-ID of its own (1 row skipped: 1 invalid, 0 repeated addresses) through `
	for range 2 {
		code, stdout, stderr := batch(t, nil, "send", "--yes", "--to", "tester@example.net", "--limit", "2", path)
		if code != exitOK || !summary.MatchString(stdout) || !strings.Contains(stderr, plan) {
			t.Errorf("test send: exit %d\n%s%s", code, stdout, stderr)
		}
	}
	if d := srv.Delivered(); len(d) != 1 || d["tester@example.net"] != 4 {
		t.Fatalf("delivered %v, want 4 messages to the test address", d)
	}
	code, stdout, stderr := batch(t, nil, "send", "--yes", path)
	if code != exitOK || !strings.HasPrefix(stdout, "sent 3, failed 0, unknown 0, skipped 2 (1 invalid, 1 repeated address) in ") {
		t.Fatalf("send: exit %d\n%s%s", code, stdout, stderr)
	}

	var ids []string
	for _, data := range srv.Messages() {
		m, err := mail.ReadMessage(bytes.NewReader(data.Data))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.Trim(m.Header.Get("Message-ID"), "<>"))
	}
	if len(ids) != 7 {
		t.Fatalf("%d messages, want 7", len(ids))
	}
	for i, rcpt := range []string{"me@example.com", "ann@example.org"} {
		own := render.MessageID("t", rcpt, "example.org")
		test := render.TestSendMessageID("t", rcpt, "tester@example.net", "example.org")
		if ids[i] != test || ids[i+2] != test {
			t.Errorf("test sends of %s: Message-IDs %s and %s, want %s both times", rcpt, ids[i], ids[i+2], test)
		}
		if ids[4+i] != own || own == test {
			t.Errorf("the real send to %s: Message-ID %s, want its own, %s, not the test's %s", rcpt, ids[4+i], own, test)
		}
	}
}
