package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// hostileText is what a server that doesn't behave says of a recipient: it
// sets the window's title, rings the bell, clears the line and turns what
// follows right to left.
const hostileText = "\x1b]0;pwned\x07\x1b[2Kno such user\u202e"

// hostileShown is hostileText as batch prints it.
const hostileShown = `\x1b]0;pwned\a\x1b[2Kno such user\u202e`

// noControls fails t when out, what batch printed, holds a byte or rune that
// drives a terminal or hides text: ESC, BEL, CR, C1 controls, bidi controls.
func noControls(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if r != '\n' && r != '\t' && shown(r) {
			t.Errorf("%s holds %q:\n%s", what, r, out)
			return
		}
	}
}

// hostileCampaign starts a server that refuses r2@example.org with
// hostileText and writes a campaign of two recipients, r1 and r2, that
// sends to it, into the directory it returns: c.toml, its suppression list
// suppressed.csv.
func hostileCampaign(t *testing.T) (*smtptest.Server, string) {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Fault{Rcpt: "r2@example.org", Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}, Text: hostileText})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.toml"), fmt.Sprintf(`name = "hostile"
from = "Python爱好者 <news@example.org>"
subject = "来自SMTP的问候 {{.name}}"
template = "t.md"
recipients = "r.csv"
suppress = "suppressed.csv"
[smtp]
host = "127.0.0.1"
port = %d
security = "none"
`, srv.Port()))
	writeFile(t, filepath.Join(dir, "t.md"), "Hello {{.name}}!\n")
	writeFile(t, filepath.Join(dir, "r.csv"), "email,name\nr1@example.org,Ada\nr2@example.org,来自SMTP的问候\n")
	return srv, dir
}

// TestHostileServerText: a server's reply and a bounce's diagnostic that
// hold control characters and a bidi override reach the terminal as
// visible escapes, the rest of their text with them, in every place batch
// prints them: send's progress lines and --debug's transcript, status's
// CSV, bounces' left-alone reasons; the journal and the suppression list
// keep what the server said.
func TestHostileServerText(t *testing.T) {
	srv, dir := hostileCampaign(t)
	path := filepath.Join(dir, "c.toml")

	code, stdout, stderr := batchProcess(t, nil, "send", "--yes", "--debug", path)
	if code != exitFailed {
		t.Fatalf("send: exit %d, want %d\n%s%s", code, exitFailed, stdout, stderr)
	}
	noControls(t, "send's stdout", stdout)
	noControls(t, "send's stderr", stderr)
	if !strings.Contains(stderr, "batch: failed: r2@example.org (row 2): ") || !strings.Contains(stderr, "5.1.1 "+hostileShown) {
		t.Errorf("send's line for r2 doesn't show the server's reply as escapes:\n%s", stderr)
	}
	if !strings.Contains(stderr, "] S: 550 5.1.1 "+hostileShown+"\n") {
		t.Errorf("--debug's transcript doesn't show the server's reply as escapes:\n%s", stderr)
	}
	if !strings.HasPrefix(stdout, "sent 1, failed 1, ") {
		t.Errorf("summary: %s", stdout)
	}

	// The journal, data, holds the reply as it came (JSON escapes it).
	journal, err := os.ReadFile(filepath.Join(dir, ".batch", "hostile.journal"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(journal, []byte(`\u001b]0;pwned\u0007\u001b[2Kno such user`+"\u202e")) {
		t.Errorf("the journal doesn't hold the server's reply as it came:\n%s", journal)
	}
	// The suppression list holds it as its cells hold any text: one line
	// (merge.OneLine), the bidi override as it came.
	list, err := os.ReadFile(filepath.Join(dir, "suppressed.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(list, []byte("pwned [2Kno such user\u202e")) {
		t.Errorf("the suppression list doesn't hold the server's reply:\n%s", list)
	}

	// status --failed prints the journal's error: escaped on a terminal
	// only (below, a pipe: the CSV's bytes), its count lines alike.
	code, stdout, stderr = batchProcess(t, nil, "status", path)
	if code != exitOK || !strings.HasPrefix(stdout, "sent 1\nfailed 1\n") {
		t.Errorf("status: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = batchProcess(t, nil, "status", "--failed", "--raw", path)
	if code != exitOK || !strings.Contains(stdout, "no such user\u202e") {
		t.Errorf("status --failed --raw into a pipe: exit %d\n%s%s", code, stdout, stderr)
	}

	// A bounce whose diagnostic says the same: bounces --dry-run prints
	// it, escaped.
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("the server took %d messages, want 1", len(msgs))
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	maildir := filepath.Join(dir, "Maildir")
	dsn := testdataMessage(t, "postfix-hard.eml",
		"ada.lovelace@mx.example.net", "r1@example.org", "ada@example.net", "r1@example.org",
		"6sy7fazoktoq2yi3mav6n6mu@example.org", strings.Trim(m.Header.Get("Message-Id"), "<>"),
		"Recipient\n    address rejected: User unknown in local recipient table", hostileText)
	writeFile(t, filepath.Join(maildir, "new", "1764605900.M1P1.mx.example.org"), dsn)
	// and a message that isn't one, whose subject quotes the same: it is
	// left alone.
	writeFile(t, filepath.Join(maildir, "new", "1764605901.M2P1.mx.example.org"),
		"From: MAILER-DAEMON@example.net\nTo: news@example.org\nSubject: x\n"+hostileText+"\n\nhello\n")
	if err := os.MkdirAll(filepath.Join(maildir, "cur"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = batchProcess(t, nil, "bounces", "--dry-run", "--maildir", maildir, path)
	if code != exitOK {
		t.Fatalf("bounces --dry-run: exit %d\n%s%s", code, stdout, stderr)
	}
	noControls(t, "bounces' stdout", stdout)
	noControls(t, "bounces' stderr", stderr)
	// It says the bounce's file, not its diagnostic; a left-alone reason
	// that quotes the header line is one line (merge.OneLine made ESC and
	// BEL spaces), the bidi override shown.
	if !strings.Contains(stdout, "would suppress r1@example.org as bounced: ") {
		t.Errorf("bounces --dry-run doesn't take the bounce:\n%s", stdout)
	}
	if !strings.Contains(stdout, `: not a message batch can read: message: malformed MIME header line: ]0;pwned [2Kno such user\u202e`+"\n") {
		t.Errorf("bounces --dry-run doesn't show why it left the second message alone, escaped:\n%s", stdout)
	}

	// The real run puts the diagnostic on the suppression list.
	code, stdout, stderr = batchProcess(t, nil, "bounces", "--maildir", maildir, path)
	if code != exitOK {
		t.Fatalf("bounces: exit %d\n%s%s", code, stdout, stderr)
	}
	noControls(t, "bounces' stdout", stdout)
	noControls(t, "bounces' stderr", stderr)
	if list, err = os.ReadFile(filepath.Join(dir, "suppressed.csv")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(list, []byte("r1@example.org,bounced,")) || bytes.Count(list, []byte("no such user\u202e")) != 2 {
		t.Errorf("the suppression list doesn't hold the bounce's diagnostic:\n%s", list)
	}

	// suppress list into a pipe writes the list's bytes.
	code, stdout, stderr = batchProcess(t, nil, "suppress", "list", path)
	if code != exitOK || stdout != string(list) {
		t.Errorf("suppress list into a pipe: exit %d\n%s%s\nwant\n%s", code, stdout, stderr, list)
	}
}

// TestHostileIMAPText: an IMAP server that refuses the login with
// hostileText: batch bounces' error shows it as escapes.
func TestHostileIMAPText(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard against a hung test
				fmt.Fprintf(conn, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
				lines := bufio.NewScanner(conn)
				for lines.Scan() {
					tag, cmd, _ := strings.Cut(lines.Text(), " ")
					switch verb, _, _ := strings.Cut(strings.ToUpper(cmd), " "); verb {
					case "CAPABILITY":
						fmt.Fprintf(conn, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK done\r\n", tag)
					case "LOGOUT":
						fmt.Fprintf(conn, "* BYE\r\n%s OK bye\r\n", tag)
						return
					default:
						fmt.Fprintf(conn, "%s NO [AUTHENTICATIONFAILED] %s\r\n", tag, hostileText)
					}
				}
			}()
		}
	}()
	_, dir := hostileCampaign(t)
	path := filepath.Join(dir, "c.toml")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[bounces]\nimap = \"imap://bounces%%40example.org@%s/INBOX\"\ntimeout = \"10s\"\n", ln.Addr())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := batchProcess(t, map[string]string{"BATCH_IMAP_PASSWORD": "secret"}, "bounces", "--imap", path)
	if code != exitProblem {
		t.Fatalf("bounces --imap: exit %d, want %d\n%s%s", code, exitProblem, stdout, stderr)
	}
	noControls(t, "bounces --imap's stdout", stdout)
	noControls(t, "bounces --imap's stderr", stderr)
	if !strings.Contains(stderr, "logging in as bounces@example.org: ") || !strings.Contains(stderr, hostileShown) {
		t.Errorf("bounces --imap's error doesn't show the server's text as escapes:\n%s", stderr)
	}
}

// TestHostileHello: a server that turns batch away at EHLO with
// hostileText: send's final error shows it as escapes.
func TestHostileHello(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Fault{Stage: smtptest.AtHello, Code: 554, Enhanced: [3]int{5, 7, 1}, Text: hostileText})
	path := smtpCampaign(t, srv, 1, "")
	code, stdout, stderr := batchProcess(t, nil, "send", "--yes", path)
	if code == exitOK {
		t.Fatalf("send: exit 0\n%s%s", stdout, stderr)
	}
	noControls(t, "send's stdout", stdout)
	noControls(t, "send's stderr", stderr)
	if !strings.Contains(stderr, "554: "+hostileShown+": the server did not accept EHLO") {
		t.Errorf("send's error doesn't show the server's reply as escapes:\n%s", stderr)
	}
}
