package campaign

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/batch-mailer/batch/internal/imaptest"
)

// startIMAP starts an IMAP server over TLS holding the user bounces's
// INBOX and Processed.
func startIMAP(t *testing.T, caps imap.CapSet) *imaptest.Server {
	t.Helper()
	return imaptest.Start(t, imaptest.Options{Username: "bounces", Password: "s3cret", Caps: caps, Folders: []string{"Processed"}})
}

// testdataMail is a message of internal/bounce/testdata, its strings
// replaced old, new, ….
func testdataMail(t *testing.T, name string, oldnew ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "bounce", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer(oldnew...).Replace(string(data))
}

// imapCampaign is a campaign whose [bounces] is s's INBOX, moving to
// moveTo, and s holding a DSN for bob, an ARF complaint for carol, an
// unsubscribe from dave and a vacation reply.
func imapCampaign(t *testing.T, s *imaptest.Server, moveTo string) *Campaign {
	t.Helper()
	return imapCampaignAt(t, s, "imaps://bounces@"+s.Addr()+"/INBOX", moveTo)
}

// imapCampaignAt is imapCampaign with [bounces] imap = url.
func imapCampaignAt(t *testing.T, s *imaptest.Server, url, moveTo string) *Campaign {
	t.Helper()
	table := fmt.Sprintf("[bounces]\nimap = %q\nca_file = %q\npassword_env = \"TEST_IMAP_PW\"\ntimeout = \"10s\"\n", url, s.CAFile())
	if moveTo != "" {
		table += fmt.Sprintf("move_to = %q\n", moveTo)
	}
	c := newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n", "suppress = \"suppressed.csv\"\n[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n"+table, nil)
	s.Append(t, "INBOX", testdataMail(t, "postfix-hard.eml", "ada.lovelace@mx.example.net", "bob@example.net", "6sy7fazoktoq2yi3mav6n6mu@example.org", c.MessageID("bob@example.net")))
	s.Append(t, "INBOX", testdataMail(t, "arf-abuse.eml", "frank@example.com", "carol@example.com", "vpn3qlnt6mbfnungl5nsjnai@example.org", c.MessageID("carol@example.com")))
	s.Append(t, "INBOX", testdataMail(t, "unsubscribe.eml", "Ada@Example.net", "dave@example.com"))
	s.Append(t, "INBOX", testdataMail(t, "vacation-gmail.eml"))
	return c
}

func imapSecrets() Secrets {
	return Secrets{Getenv: func(k string) string {
		if k == "TEST_IMAP_PW" {
			return "s3cret"
		}
		return ""
	}}
}

func TestBouncesIMAP(t *testing.T) {
	for name, caps := range map[string]imap.CapSet{
		"move":             {imap.CapIMAP4rev1: {}, imap.CapMove: {}},
		"copy and expunge": {imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}},
	} {
		t.Run(name, func(t *testing.T) {
			s := startIMAP(t, caps)
			c := imapCampaign(t, s, "Processed")
			const before = "4 messages, 4 unseen"
			rep, err := c.Bounces(BounceOptions{IMAP: true, DryRun: true, Secrets: imapSecrets()})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Messages != 4 || rep.Added != 3 || len(rep.Left) != 1 {
				t.Errorf("dry run: %d messages, %d to add, left alone %+v; want 4, 3, the vacation reply", rep.Messages, rep.Added, rep.Left)
			}
			if got := s.Status(t, "INBOX"); got != before {
				t.Errorf("after the dry run INBOX has %s, want %s", got, before)
			}
			if got := s.Status(t, "Processed"); got != "0 messages, 0 unseen" {
				t.Errorf("after the dry run Processed has %s", got)
			}
			if _, err := os.Stat(c.Suppress); err == nil {
				t.Error("the dry run wrote the list")
			}

			rep, err = c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()})
			if err != nil {
				t.Fatal(err)
			}
			var list bytes.Buffer
			if err := c.ListSuppressed(&list); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"\nbob@example.net,bounced,", "\ncarol@example.com,complained,", "\ndave@example.com,unsubscribed,"} {
				if !strings.Contains(list.String(), want) {
					t.Errorf("the list has no %q:\n%s", want, list.String())
				}
			}
			if rep.Added != 3 || rep.Filed != 3 || len(rep.Left) != 1 || !strings.HasSuffix(rep.Left[0].Message, ";UID=4") {
				t.Errorf("added %d, filed %d, left alone %+v; want 3, 3, UID 4", rep.Added, rep.Filed, rep.Left)
			}
			if got := s.Status(t, "INBOX"); got != "1 messages, 1 unseen" {
				t.Errorf("INBOX has %s, want the vacation reply only, unseen", got)
			}
			if got := s.Status(t, "Processed"); got != "3 messages, 3 unseen" {
				t.Errorf("Processed has %s, want the three handled", got)
			}
		})
	}
}

// Without move_to the handled messages are flagged \Seen, and stay.
func TestBouncesIMAPSeen(t *testing.T) {
	s := startIMAP(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	c := imapCampaign(t, s, "")
	if _, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()}); err != nil {
		t.Fatal(err)
	}
	if got := s.Status(t, "INBOX"); got != "4 messages, 1 unseen" {
		t.Errorf("INBOX has %s, want all four, the vacation reply alone unseen", got)
	}
}

func TestBouncesIMAPErrors(t *testing.T) {
	s := startIMAP(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	c := imapCampaign(t, s, "Processed")
	if _, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()}); err == nil || !strings.Contains(err.Error(), "neither MOVE nor UIDPLUS") {
		t.Errorf("a server without MOVE and UIDPLUS: %v", err)
	}
	if got := s.Status(t, "INBOX"); got != "4 messages, 4 unseen" {
		t.Errorf("INBOX has %s after the refused move", got)
	}
	// The list was written before the move: it keeps what was added.
	var list bytes.Buffer
	if err := c.ListSuppressed(&list); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nbob@example.net,bounced,", "\ncarol@example.com,complained,", "\ndave@example.com,unsubscribed,"} {
		if !strings.Contains(list.String(), want) {
			t.Errorf("after the refused move the list has no %q:\n%s", want, list.String())
		}
	}
	if _, err := c.Bounces(BounceOptions{IMAP: true, Secrets: Secrets{Getenv: func(string) string { return "" }}}); err == nil || !strings.Contains(err.Error(), "TEST_IMAP_PW") {
		t.Errorf("no password: %v", err)
	}
	plain := newCampaign(t, listOf(faultList), "# Hello\n", "suppress = \"s.csv\"\n", nil)
	if _, err := plain.Bounces(BounceOptions{IMAP: true}); !errors.Is(err, ErrNoBounceMailbox) {
		t.Errorf("no [bounces]: %v", err)
	}
	if _, err := c.Bounces(BounceOptions{IMAP: true, Mbox: "mbox"}); !errors.Is(err, ErrBounceSource) {
		t.Errorf("--imap and --mbox: %v", err)
	}
}

func TestLoadBounces(t *testing.T) {
	c, _, err := load(t, minimal+"[bounces]\nimap = \"imap://bounces%40example.org@imap.example.org:1143/Bounces\"\nmove_to = \"Done\"\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Bounce
	if b.Host != "imap.example.org" || b.Port != 1143 || b.TLS || b.Username != "bounces@example.org" || b.Mailbox != "Bounces" ||
		b.MoveTo != "Done" || b.PasswordEnv != DefaultIMAPPasswordEnv || b.Timeout != 30*time.Second {
		t.Errorf("got %+v", b)
	}
	c, _, err = load(t, minimal+"[bounces]\nimap = \"imaps://u@imap.example.org\"\n", nil)
	if err != nil || c.Bounce.Port != 993 || !c.Bounce.TLS || c.Bounce.Mailbox != "INBOX" {
		t.Errorf("imaps:// without a port or a folder: %+v, %v", c.Bounce, err)
	}
	for text, want := range map[string]string{
		"imap = \"pop3://u@h/INBOX\"\n":                        "c.toml:8: bounces.imap: \"pop3://u@h/INBOX\": want imaps://",
		"imap = \"imaps://imap.example.org/INBOX\"\n":          "c.toml:8: bounces.imap: \"imaps://imap.example.org/INBOX\": name the user",
		"imap = \"imaps://u:pw@imap.example.org/INBOX\"\n":     "c.toml:8: bounces.imap: a password can't be kept in the campaign file",
		"imap = \"imaps://u@h/\"\npassword = \"x\"\n":          "c.toml:9: bounces.password: a password can't be kept in the campaign file",
		"imap = \"imaps://u@h/\"\ntimeout = \"soon\"\n":        "c.toml:9: bounces.timeout: \"soon\": want a duration",
		"imap = \"imaps://u@h/\"\nfolder = \"x\"\n":            "c.toml:9: bounces.folder: unknown key",
		"password_env = \"A\"\npassword_cmd = \"b\"\n":         "bounces.password_cmd: give password_env or password_cmd, not both",
		"imap = \"imaps://u@h:99999/\"\n":                      "is not a port number",
		"imap = \"imaps://u@h/\"\nca_file = \"missing.pem\"\n": "c.toml:9: bounces.ca_file: stat ",
	} {
		_, _, err := load(t, minimal+"\n[bounces]\n"+text, nil)
		var p Problems
		if !errors.As(err, &p) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", text, err, want)
		}
	}
}

// The server's certificate is verified: without ca_file its CA is
// unknown, and batch doesn't log in. password_cmd gives the password.
func TestBouncesIMAPTLS(t *testing.T) {
	s := startIMAP(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}})
	c := imapCampaign(t, s, "Processed")
	caFile := c.Bounce.CAFile
	c.Bounce.CAFile = ""
	var unknown x509.UnknownAuthorityError
	if _, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()}); !errors.As(err, &unknown) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("a certificate of an unknown CA: %v", err)
	}
	c.Bounce.CAFile = caFile
	c.Bounce.PasswordCmd = "echo wrong-pw-0815"
	if _, err := c.Bounces(BounceOptions{IMAP: true}); err == nil || !strings.Contains(err.Error(), "logging in as bounces") || strings.Contains(err.Error(), "wrong-pw-0815") {
		t.Errorf("a wrong password: %v", err)
	}
	c.Bounce.PasswordCmd = "echo s3cret"
	rep, err := c.Bounces(BounceOptions{IMAP: true})
	if err != nil || rep.Added != 3 {
		t.Fatalf("with password_cmd: %+v, %v", rep, err)
	}
	if got := s.Status(t, "Processed"); got != "3 messages, 3 unseen" {
		t.Errorf("Processed has %s", got)
	}
}

// A server that sends without end is stopped at the reply's bound, not
// read into memory: here a greeting that never ends, over imap:// in plain
// text to loopback.
func TestBouncesIMAPReplyBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan int64, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			sent <- 0
			return
		}
		defer conn.Close()
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		n, _ := conn.Write([]byte("* OK "))
		total := int64(n)
		for total < 4*replySize {
			n, err := conn.Write(chunk)
			total += int64(n)
			if err != nil {
				break
			}
		}
		sent <- total
	}()
	c := newCampaign(t, listOf(faultList), "# Hello\n", fmt.Sprintf("suppress = \"s.csv\"\n[bounces]\nimap = \"imap://u@%s/INBOX\"\npassword_env = \"TEST_IMAP_PW\"\ntimeout = \"5s\"\n", ln.Addr()), nil)
	_, err = c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()})
	ln.Close() // no wait, should batch give up before connecting
	if err == nil {
		t.Fatal("an endless greeting was taken")
	}
	// go-imap quotes the read's error as text, so its chain is lost.
	if !strings.Contains(err.Error(), ErrIMAPReplyTooLarge.Error()) {
		t.Errorf("got %v, want the reply's bound named", err)
	}
	if total := <-sent; total >= 4*replySize {
		t.Errorf("batch read all the server's %d bytes: %v", total, err)
	}
}

// dialTo is a BounceMailbox's dial that reaches addr whatever the name.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// imap:// to a server not on this machine needs STARTTLS: with it, and
// the certificate verified, batch logs in after it; a certificate of an
// unknown CA stops it before the login, and a server that doesn't offer
// STARTTLS is an error that names the server and says what to do, with
// no login in plain text, nothing read and nothing added. No error holds
// the password.
func TestBouncesIMAPStartTLS(t *testing.T) {
	const url = "imap://bounces@imap.example.org/INBOX"
	s := imaptest.Start(t, imaptest.Options{Username: "bounces", Password: "s3cret", Security: imaptest.StartTLS,
		Folders: []string{"Processed"}, Names: []string{"imap.example.org"}})
	c := imapCampaignAt(t, s, url, "Processed")
	c.Bounce.dial = dialTo(s.Addr())
	if c.Bounce.TLS || c.Bounce.Port != 143 || c.Bounce.plainAllowed() {
		t.Fatalf("%s: TLS %v, port %d, plain text allowed %v; want STARTTLS on 143", url, c.Bounce.TLS, c.Bounce.Port, c.Bounce.plainAllowed())
	}
	caFile := c.Bounce.CAFile
	c.Bounce.CAFile = ""
	var unknown x509.UnknownAuthorityError
	_, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()})
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), url+": STARTTLS: ") || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("STARTTLS to a certificate of an unknown CA: %v", err)
	}
	login := regexp.MustCompile(`(?m)^\S+ LOGIN `)
	first := s.Transcript()
	if !strings.Contains(first, "STARTTLS\r\n") || login.MatchString(first) {
		t.Errorf("before a verified STARTTLS the server saw:\n%s", first)
	}

	c.Bounce.CAFile = caFile
	rep, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()})
	if err != nil || rep.Added != 3 || rep.Filed != 3 {
		t.Fatalf("over STARTTLS: %+v, %v", rep, err)
	}
	if got := s.Status(t, "Processed"); got != "3 messages, 3 unseen" {
		t.Errorf("Processed has %s", got)
	}
	tr := strings.TrimPrefix(s.Transcript(), first)
	if i, j := strings.Index(tr, "STARTTLS\r\n"), login.FindStringIndex(tr); i < 0 || j == nil || j[0] < i {
		t.Errorf("no STARTTLS before the login:\n%s", tr)
	}

	plain := imaptest.Start(t, imaptest.Options{Username: "bounces", Password: "s3cret", Security: imaptest.Plain, Folders: []string{"Processed"}})
	c = imapCampaignAt(t, plain, "imap://bounces@imap.example.org:1143/INBOX", "Processed")
	c.Bounce.dial = dialTo(plain.Addr())
	_, err = c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()})
	var no *imap.Error
	if !errors.Is(err, ErrIMAPNoStartTLS) || !errors.As(err, &no) ||
		!strings.HasPrefix(err.Error(), "imap://bounces@imap.example.org:1143/INBOX: the IMAP server doesn't offer STARTTLS (") ||
		!strings.Contains(err.Error(), "batch never logs in over plain text to another machine: use imaps:// (port 993), or have the server offer STARTTLS") {
		t.Errorf("a server without STARTTLS: %v", err)
	}
	if tr := plain.Transcript(); login.MatchString(tr) || strings.Contains(tr, "s3cret") {
		t.Errorf("a server without STARTTLS was sent a login in plain text:\n%s", tr)
	}
	if got := plain.Status(t, "INBOX"); got != "4 messages, 4 unseen" {
		t.Errorf("INBOX has %s", got)
	}
	if _, err := os.Stat(c.Suppress); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the list was written: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error has the password: %v", err)
	}
}

// A move_to the server doesn't have stops batch, dry run or not, before
// it reads a message: the error names the key's line and says to create
// the folder, the list is as it was and the mailbox untouched. batch
// doesn't create the folder itself, so that a typo doesn't hide the
// handled messages in a new one. Once it exists, the same run files them.
func TestBouncesIMAPNoMoveTo(t *testing.T) {
	s := startIMAP(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}})
	c := imapCampaign(t, s, "Archive")
	if _, err := c.AddSuppressed("", "", "zed@example.org"); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(c.Suppress)
	if err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		_, err := c.Bounces(BounceOptions{IMAP: true, DryRun: dry, Secrets: imapSecrets()})
		var no *imap.Error
		if !errors.Is(err, ErrIMAPNoFolder) || !errors.As(err, &no) ||
			!regexp.MustCompile(`c\.toml:\d+: bounces\.move_to: "Archive": no such folder on the IMAP server \(imaps://bounces@127\.0\.0\.1:\d+/INBOX: imap: NO .*\): create it on the server, or name a folder that exists; nothing was read, suppressed or moved$`).MatchString(err.Error()) {
			t.Errorf("dry run %v: a move_to the server doesn't have: %v", dry, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error has the password: %v", err)
		}
		if after, _ := os.ReadFile(c.Suppress); !bytes.Equal(after, before) {
			t.Errorf("dry run %v: the list changed:\n%s", dry, after)
		}
		if got := s.Status(t, "INBOX"); got != "4 messages, 4 unseen" {
			t.Errorf("dry run %v: INBOX has %s", dry, got)
		}
	}
	if err := s.User.Create("Archive", nil); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()})
	if err != nil || rep.Added != 3 || rep.Filed != 3 {
		t.Fatalf("with Archive made: %+v, %v", rep, err)
	}
	if in, done := s.Status(t, "INBOX"), s.Status(t, "Archive"); in != "1 messages, 1 unseen" || done != "3 messages, 3 unseen" {
		t.Errorf("INBOX has %s, Archive %s", in, done)
	}
	if after, _ := os.ReadFile(c.Suppress); !bytes.HasPrefix(after, before) || bytes.Count(after, []byte("\n")) != bytes.Count(before, []byte("\n"))+3 {
		t.Errorf("the list lost a line, or has not the three more:\n%s", after)
	}
}
