package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/imaptest"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// The readers of the suppression loop: what each does after the first
// campaign.
const (
	loopGone      = "gone@example.net"       // 1: the server refuses it, 550 5.1.1
	loopBounced   = "bounced@example.com"    // 2: a DSN comes back
	loopComplains = "complainer@example.com" // 3: an ARF abuse report
	loopMails     = "Mailer@example.org"     // 4: mails the unsubscribe address
	loopAway      = "away@example.net"       // 5: a vacation reply, and another campaign's bounce
	loopClicks    = "clicker@example.com"    // 6: one-click unsubscribe
	loopStays     = "stays@example.org"      // 7: does nothing
	loopSMTPPass  = "smtp-pw-never-shown-4711"
	loopIMAPPass  = "imap-pw-never-shown-0815"
	loopOne       = "2026-12-loop"
	loopTwo       = "2027-01-loop"
)

// TestSuppressionLoop is issue 13's "done when", end to end through the
// batch command run as a process: a campaign is sent over STARTTLS with
// AUTH to smtptest, which refuses the first reader with 550 5.1.1; batch
// bounces reads a mailbox holding a DSN for the second and an ARF
// complaint for the third, both about the very messages the server
// received (their Message-IDs), a mail to the unsubscribe address from the
// fourth, a vacation reply from the fifth and a DSN naming the fifth for a
// message of another campaign; the sixth unsubscribes with one click on
// batch unsubscribe-server, at the URL of the List-Unsubscribe header the
// server received (a GET alone doesn't). A second campaign sharing the
// suppression list then skips the first four and the sixth, by reason,
// and sends to the fifth and the seventh; the mailbox still holds what
// batch did not handle. Once with a Maildir, once over IMAP.
func TestSuppressionLoop(t *testing.T) {
	t.Run("maildir", func(t *testing.T) { testSuppressionLoop(t, false) })
	t.Run("imap", func(t *testing.T) { testSuppressionLoop(t, true) })
}

func testSuppressionLoop(t *testing.T, overIMAP bool) {
	ca, err := smtptest.NewCA("loop test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtptest.Start(t, smtptest.StartTLS(cert),
		smtptest.WithAuth(smtptest.Auth{Username: "news@example.org", Password: loopSMTPPass}),
		smtptest.Fault{Rcpt: loopGone, Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}})
	var imapSrv *imaptest.Server
	bounces := ""
	if overIMAP {
		imapSrv = imaptest.Start(t, imaptest.Options{Username: "bounces@example.org", Password: loopIMAPPass, Folders: []string{"Processed"}})
		bounces = fmt.Sprintf("[bounces]\nimap = \"imaps://bounces%%40example.org@%s/INBOX\"\nca_file = %q\nmove_to = \"Processed\"\ntimeout = \"10s\"\n",
			imapSrv.Addr(), imapSrv.CAFile())
	}

	dir := t.TempDir()
	list := "email,name\n" + strings.Join([]string{
		loopGone + ",Gone", loopBounced + ",Bounced", loopComplains + ",Complains", loopMails + ",Mails",
		loopAway + ",Away", loopClicks + ",Clicks", loopStays + ",Stays",
	}, "\n") + "\n"
	files := map[string]string{
		"smtp-ca.pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate().Raw})),
		"one/c.toml": fmt.Sprintf(`name = %q
from = "News <news@example.org>"
subject = "Hi {{.name}}"
template = "t.md"
recipients = "r.csv"
suppress = "../suppressed.csv"

[smtp]
host = "127.0.0.1"
port = %d
security = "starttls"
username = "news@example.org"
ca_file = "../smtp-ca.pem"
timeout = "10s"

[unsubscribe]
url = "https://news.example.org/unsubscribe"
mailto = "unsubscribe@example.org"
token = true
secret_env = "BATCH_UNSUBSCRIBE_SECRET"
%s`, loopOne, srv.Port(), bounces),
		"one/t.md":  "Hello {{.name}}!\n",
		"one/r.csv": list,
		"two/c.toml": fmt.Sprintf(`name = %q
from = "News <news@example.org>"
subject = "January for {{.name}}"
template = "t.md"
recipients = "r.csv"
suppress = "../suppressed.csv"
`, loopTwo),
		"two/t.md":  "Happy new year, {{.name}}!\n",
		"two/r.csv": list,
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	one, two := filepath.Join(dir, "one", "c.toml"), filepath.Join(dir, "two", "c.toml")
	listFile := filepath.Join(dir, "suppressed.csv")
	t.Setenv("BATCH_UNSUBSCRIBE_SECRET", unsubscribeSecret) // for unsubscribe-server, which startBatch runs
	env := map[string]string{"BATCH_SMTP_PASSWORD": loopSMTPPass, "BATCH_IMAP_PASSWORD": loopIMAPPass, "BATCH_UNSUBSCRIBE_SECRET": unsubscribeSecret}
	var said strings.Builder // everything batch printed, for the passwords
	run := func(args ...string) (int, string, string) {
		t.Helper()
		code, stdout, stderr := batchProcess(t, env, args...)
		said.WriteString(stdout + stderr)
		return code, stdout, stderr
	}

	// 1. The send: the first reader refused for good, the rest delivered.
	code, stdout, stderr := run("send", "--yes", one)
	if code != exitFailed || !strings.HasPrefix(stdout, "sent 6, failed 1, unknown 0, skipped 0, ") ||
		!strings.Contains(stdout+stderr, "1 hard bounce added to the suppression list") {
		t.Fatalf("send: exit %d, want %d\n%s%s", code, exitFailed, stdout, stderr)
	}
	sent := map[string]*mail.Message{}
	raw := map[string][]byte{}
	for _, m := range srv.Messages() {
		if !m.TLS || m.User != "news@example.org" || len(m.To) != 1 {
			t.Errorf("a message came without TLS or login, or to %v: TLS %v, user %q", m.To, m.TLS, m.User)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		sent[strings.ToLower(m.To[0])] = msg
		raw[strings.ToLower(m.To[0])] = m.Data
	}
	if len(sent) != 6 || sent[loopGone] != nil {
		t.Fatalf("the server took messages for %v, want all but %s", slices.Sorted(maps.Keys(sent)), loopGone)
	}
	msgID := func(to string) string {
		t.Helper()
		id := strings.Trim(sent[strings.ToLower(to)].Header.Get("Message-Id"), "<>")
		if id == "" {
			t.Fatalf("the message to %s has no Message-ID", to)
		}
		return id
	}

	// 2. The mailbox: what came back.
	mailbox := map[string]string{
		"dsn":      loopDSN(t, loopBounced, msgID(loopBounced)),
		"arf":      loopARF(t, loopComplains, raw[loopComplains]),
		"unsub":    testdataMessage(t, "unsubscribe.eml", "Ada@Example.net", strings.ToUpper(loopMails)),
		"vacation": testdataMessage(t, "vacation-gmail.eml", "carol@gmail.com", loopAway, "olrswzamxs5twf2fear6jehh@example.org", msgID(loopAway)),
		// The fifth's address, but another campaign's message: not this
		// campaign's to act on.
		"other": loopDSN(t, loopAway, "x3mbj5qfktnwe2d4v7l9pqrs@example.org"),
	}
	handled := []string{"dsn", "arf", "unsub"}
	kept := []string{"vacation", "other"}
	var source []string
	maildir := filepath.Join(dir, "Maildir")
	if overIMAP {
		for _, k := range []string{"dsn", "arf", "unsub", "vacation", "other"} {
			imapSrv.Append(t, "INBOX", mailbox[k])
		}
		source = []string{"--imap"}
	} else {
		for i, k := range []string{"dsn", "arf", "unsub", "vacation", "other"} {
			sub := "new"
			if i%2 == 1 {
				sub = "cur"
			}
			name := fmt.Sprintf("17646059%02d.M%dP1.mx.example.org", i, i)
			if sub == "cur" {
				name += ":2,S"
			}
			writeFile(t, filepath.Join(maildir, sub, name), mailbox[k])
		}
		if err := os.MkdirAll(filepath.Join(maildir, "tmp"), 0o755); err != nil {
			t.Fatal(err)
		}
		source = []string{"--maildir", maildir}
	}
	code, stdout, stderr = run(append(append([]string{"bounces"}, source...), one)...)
	if code != exitOK || !strings.Contains(stdout, ": 5 messages: 1 hard bounce, 0 soft bounces, 1 complaint, 1 unsubscribe, 2 left alone\n") ||
		!strings.Contains(stdout, "suppressed.csv: added 3, 0 on it already\n") {
		t.Fatalf("bounces: exit %d\n%s%s", code, stdout, stderr)
	}
	if n := strings.Count(stdout, "left alone: "); n != 2 || !strings.Contains(stdout, "auto-replied") || !strings.Contains(stdout, "about no recipient of campaign \""+loopOne+"\"") {
		t.Errorf("bounces says of what it left alone:\n%s", stdout)
	}

	// 3. One click, on the link the sixth reader's message carries.
	link := regexp.MustCompile(`<(https://[^>]+)>`).FindStringSubmatch(sent[loopClicks].Header.Get("List-Unsubscribe"))
	if link == nil || sent[loopClicks].Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Fatalf("the sixth message's List-Unsubscribe: %q", sent[loopClicks].Header.Get("List-Unsubscribe"))
	}
	u, err := url.Parse(link[1])
	if err != nil {
		t.Fatal(err)
	}
	p := startBatch(t, "unsubscribe-server", "--listen", "127.0.0.1:0", one)
	target := strings.TrimSuffix(p.url, "/") + u.RequestURI()
	client := &http.Client{Timeout: 10 * time.Second}
	r, err := client.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(`<form method="post">`)) {
		t.Errorf("GET %s: %d\n%s", u.RequestURI(), r.StatusCode, page)
	}
	if rows := loopList(t, listFile); rows[strings.ToLower(loopClicks)] != nil {
		t.Errorf("a GET unsubscribed %s: %v", loopClicks, rows[strings.ToLower(loopClicks)])
	}
	r, err = client.Post(target, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Errorf("one-click POST: %d, want 200", r.StatusCode)
	}
	p.stop(t)
	said.WriteString(p.stderr.String())

	// 4. The list: each of the five once, with its reason and the first
	// campaign; the fifth and the seventh not on it.
	rows := loopList(t, listFile)
	want := map[string]string{loopGone: "bounced", loopBounced: "bounced", loopComplains: "complained", loopMails: "unsubscribed", loopClicks: "unsubscribed"}
	for email, reason := range want {
		got := rows[strings.ToLower(email)]
		if len(got) != 1 {
			t.Errorf("%s is on the list %d times: %v", email, len(got), got)
			continue
		}
		if e := got[0]; e[0] != email || e[1] != reason || e[3] != loopOne {
			t.Errorf("%s's line is %q, want the address as the list has it, %s and campaign %s", email, e, reason, loopOne)
		} else if _, err := time.Parse(time.RFC3339, e[2]); err != nil {
			t.Errorf("%s's line has the time %q: %v", email, e[2], err)
		}
	}
	if len(rows) != len(want) {
		t.Errorf("the list has %d addresses, want the %d: %v", len(rows), len(want), rows)
	}
	if d := rows[loopGone]; len(d) == 1 && !strings.Contains(d[0][4], "550 5.1.1") {
		t.Errorf("the refused address's detail is %q, want the server's reply", d[0][4])
	}
	if d := rows[loopBounced]; len(d) == 1 && !strings.Contains(d[0][4], "5.1.1") {
		t.Errorf("the DSN's detail is %q, want its status", d[0][4])
	}

	// 5. The second campaign skips the five, by reason, and not the fifth.
	code, stdout, stderr = run("check", two)
	if code != exitOK || !strings.Contains(stdout, ": ready: 2 messages (5 suppressed: 2 unsubscribed, 2 bounced, 1 complained)\n") {
		t.Errorf("check of the second campaign: exit %d\n%s%s", code, stdout, stderr)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr = run("send", "--dry-run", out, two)
	if code != exitOK {
		t.Fatalf("dry run of the second campaign: exit %d\n%s%s", code, stdout, stderr)
	}
	var to []string
	emls, _ := filepath.Glob(filepath.Join(out, "*.eml"))
	for _, name := range emls {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		a, err := mail.ParseAddress(msg.Header.Get("To"))
		if err != nil {
			t.Fatal(err)
		}
		to = append(to, a.Address)
	}
	slices.Sort(to)
	if !slices.Equal(to, []string{loopAway, loopStays}) {
		t.Errorf("the second campaign writes messages to %v, want %s and %s only", to, loopAway, loopStays)
	}

	// 6. The mailbox still holds what batch did not handle.
	if overIMAP {
		inbox, done := imapSrv.Messages(t, "INBOX"), imapSrv.Messages(t, "Processed")
		for i, k := range kept {
			if i >= len(inbox) || !sameText(inbox[i].Text, mailbox[k]) || len(inbox[i].Flags) != 0 {
				t.Errorf("INBOX has %d messages; want the %s message %d, unflagged", len(inbox), k, i+1)
			}
		}
		for i, k := range handled {
			if i >= len(done) || !sameText(done[i].Text, mailbox[k]) {
				t.Errorf("Processed has %d messages; want the %s message %d", len(done), k, i+1)
			}
		}
		if len(inbox) != len(kept) || len(done) != len(handled) {
			t.Errorf("INBOX has %d messages and Processed %d, want %d and %d", len(inbox), len(done), len(kept), len(handled))
		}
	} else {
		for sub, n := range map[string]int{"new": 3, "cur": 2, "tmp": 0} {
			entries, err := os.ReadDir(filepath.Join(maildir, sub))
			if err != nil || len(entries) != n {
				t.Errorf("the Maildir's %s has %d files (%v), want %d: batch moved, added or removed one", sub, len(entries), err, n)
			}
		}
		for i, k := range []string{"dsn", "arf", "unsub", "vacation", "other"} {
			sub, name := "new", fmt.Sprintf("17646059%02d.M%dP1.mx.example.org", i, i)
			if i%2 == 1 {
				sub, name = "cur", name+":2,S"
			}
			if data, err := os.ReadFile(filepath.Join(maildir, sub, name)); err != nil || string(data) != mailbox[k] {
				t.Errorf("the %s message in the Maildir changed: %v", k, err)
			}
		}
	}

	for _, pw := range []string{loopSMTPPass, loopIMAPPass} {
		if strings.Contains(said.String(), pw) {
			t.Errorf("a password appears in batch's output:\n%s", said.String())
		}
	}
}

// batchProcess runs batch as a process (the test binary, as TestMain has
// it) with env added to this one's, and returns its exit status, stdout
// and stderr.
func batchProcess(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	bin, err := batchBinary()
	if err != nil {
		t.Fatalf("batch, which TestMain puts in PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a guard against a hung test, not a measure
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatalf("batch %s: %v", strings.Join(args, " "), err)
	}
	return 0, stdout.String(), stderr.String()
}

// loopList reads the suppression list with encoding/csv: its lines by
// address, lower-cased; none when it doesn't exist yet.
func loopList(t *testing.T, path string) map[string][][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(records) == 0 || !slices.Equal(records[0], []string{"email", "reason", "at", "campaign", "detail"}) {
		t.Fatalf("%s has no header:\n%s", path, data)
	}
	rows := map[string][][]string{}
	for _, r := range records[1:] {
		rows[strings.ToLower(r[0])] = append(rows[strings.ToLower(r[0])], r)
	}
	return rows
}

// testdataMessage is a message of internal/bounce/testdata, its strings
// replaced old, new, ….
func testdataMessage(t *testing.T, name string, oldnew ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "internal", "bounce", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer(oldnew...).Replace(string(data))
}

// loopDSN is Postfix's report that the message id to rcpt failed with
// 5.1.1.
func loopDSN(t *testing.T, rcpt, id string) string {
	return testdataMessage(t, "postfix-hard.eml", "ada.lovelace@mx.example.net", rcpt, "ada@example.net", rcpt, "6sy7fazoktoq2yi3mav6n6mu@example.org", id)
}

// loopARF is an abuse report from rcpt's provider on the message the
// server received for rcpt: its header, as ARF's text/rfc822-headers part
// carries it.
func loopARF(t *testing.T, rcpt string, msg []byte) string {
	t.Helper()
	head, _, ok := strings.Cut(strings.ReplaceAll(string(msg), "\r\n", "\n"), "\n\n")
	if !ok {
		t.Fatalf("the message to %s has no body", rcpt)
	}
	arf := testdataMessage(t, "arf-abuse.eml", "frank@example.com", rcpt)
	const part = "Content-Type: text/rfc822-headers\n\n"
	i, j := strings.Index(arf, part), strings.LastIndex(arf, "\n--part1_13d.2e68ed54_boundary--")
	if i < 0 || j < i {
		t.Fatal("arf-abuse.eml has no text/rfc822-headers part")
	}
	return arf[:i+len(part)] + head + "\n" + arf[j:]
}

// sameText reports whether a message IMAP gives back is text, whatever
// the line ends (go-imap's server gives the header CRLF and the body as
// it came).
func sameText(got, text string) bool {
	return strings.ReplaceAll(got, "\r\n", "\n") == strings.ReplaceAll(text, "\r\n", "\n")
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
