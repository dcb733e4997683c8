package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/campaign"
	"github.com/batch-mailer/batch/internal/imaptest"
)

// TestBouncesIMAPCommand: batch bounces --imap through the command line,
// against go-imap's in-memory server over TLS: --dry-run changes nothing,
// then the DSN, the complaint and the unsubscribe are suppressed and moved
// to Processed, and the vacation reply stays in INBOX, unseen.
func TestBouncesIMAPCommand(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Username: "bounces@example.org", Password: "pw", Folders: []string{"Processed"}})
	dir := t.TempDir()
	files := map[string]string{
		"c.toml": fmt.Sprintf("name = \"truth\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\n"+
			"template = \"t.md\"\nrecipients = \"r.csv\"\nsuppress = \"suppressed.csv\"\n[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n"+
			"[bounces]\nimap = \"imaps://bounces%%40example.org@%s/INBOX\"\nca_file = %q\nmove_to = \"Processed\"\ntimeout = \"10s\"\n", srv.Addr(), srv.CAFile()),
		"t.md":  "Hello {{.name}}!\n",
		"r.csv": "email,name\nr1@example.org,One\nr2@example.org,Two\nr3@example.org,Three\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "c.toml")
	camp, err := campaign.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	mail := func(name string, oldnew ...string) {
		data, err := os.ReadFile(filepath.Join("..", "..", "internal", "bounce", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.NewReplacer(oldnew...).Replace(string(data))
		srv.Append(t, "INBOX", text)
	}
	mail("postfix-hard.eml", "ada.lovelace@mx.example.net", "r1@example.org", "6sy7fazoktoq2yi3mav6n6mu@example.org", camp.MessageID("r1@example.org"))
	mail("arf-abuse.eml", "frank@example.com", "r2@example.org", "vpn3qlnt6mbfnungl5nsjnai@example.org", camp.MessageID("r2@example.org"))
	mail("unsubscribe.eml", "Ada@Example.net", "r3@example.org")
	mail("vacation-gmail.eml")
	status := func(folder string) string { return srv.Status(t, folder) }

	env := map[string]string{campaign.DefaultIMAPPasswordEnv: "pw"}
	// A move_to the server doesn't have: nothing read, nothing changed.
	elsewhere := filepath.Join(dir, "archive.toml")
	if err := os.WriteFile(elsewhere, []byte(strings.Replace(files["c.toml"], `move_to = "Processed"`, `move_to = "Archive"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := batch(t, env, "bounces", "--imap", elsewhere)
	if code != exitProblem || stdout != "" || !strings.Contains(stderr, "archive.toml:12: bounces.move_to: \"Archive\": no such folder on the IMAP server (") ||
		!strings.HasSuffix(stderr, "): create it on the server, or name a folder that exists; nothing was read, suppressed or moved\n") {
		t.Errorf("move_to Archive: exit %d\n%s%s", code, stdout, stderr)
	}
	if in := status("INBOX"); in != "4 messages, 4 unseen" {
		t.Errorf("after move_to Archive: INBOX %s", in)
	}
	code, stdout, stderr = batch(t, env, "bounces", "--imap", "--dry-run", path)
	if code != 0 || !strings.Contains(stdout, "/INBOX: 4 messages: 1 hard bounce, 0 soft bounces, 1 complaint, 1 unsubscribe, 1 left alone\n") ||
		!strings.Contains(stdout, "would suppress r2@example.org as complained: imaps://") || !strings.Contains(stdout, "would add 3, 0 on it already") {
		t.Errorf("dry run: exit %d\n%s%s", code, stdout, stderr)
	}
	if in, done := status("INBOX"), status("Processed"); in != "4 messages, 4 unseen" || done != "0 messages, 0 unseen" {
		t.Errorf("after the dry run: INBOX %s, Processed %s", in, done)
	}

	code, stdout, stderr = batch(t, env, "bounces", "--imap", path)
	if code != 0 || !strings.Contains(stdout, "suppressed.csv: added 3, 0 on it already\n") || !strings.Contains(stdout, "/INBOX: moved 3 messages to Processed\n") ||
		!strings.Contains(stdout, ";UID=4: an automatic message (Auto-Submitted: auto-replied") {
		t.Errorf("bounces --imap: exit %d\n%s%s", code, stdout, stderr)
	}
	if in, done := status("INBOX"), status("Processed"); in != "1 messages, 1 unseen" || done != "3 messages, 3 unseen" {
		t.Errorf("after: INBOX %s, Processed %s; want the vacation reply alone in INBOX, unseen", in, done)
	}
	code, stdout, _ = batch(t, nil, "suppress", "list", path)
	for _, want := range []string{"\nr1@example.org,bounced,", "\nr2@example.org,complained,", "\nr3@example.org,unsubscribed,"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("suppress list has no %q:\n%s", want, stdout)
		}
	}
}
