package campaign

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// smtpTable is an [smtp] table on lines 6 to 9, after minimal.
const smtpTable = "[smtp]\nhost = \"localhost\"\nusername = \"news\"\nsecurity = \"tls\"\n"

// TestConnHints: each of deliver's hints is said in the campaign file's
// terms, the keys it names at their lines (a key not written, at the
// [smtp] table's); the error is still deliver's *ConnError underneath.
func TestConnHints(t *testing.T) {
	c, path, err := load(t, minimal+smtpTable, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := func(line int) string { return fmt.Sprintf("(%s:%d)", path, line) }
	for _, tt := range []struct {
		hint deliver.Hint
		want []string
	}{
		{deliver.HintReachable, []string{"check [smtp] host and port " + at(7), "up and reachable"}},
		{deliver.HintHELO, []string{"EHLO example.org", "[smtp] helo " + at(6)}},
		{deliver.HintNoSTARTTLS, []string{"never falls back", `security = "tls" ` + at(9)}},
		{deliver.HintUntrusted, []string{"for a private relay, give its CA certificate in [smtp] ca_file " + at(6)}},
		{deliver.HintCertHost, []string{"not for localhost", "[smtp] host " + at(7)}},
		{deliver.HintTakesSTARTTLS, []string{`takes security = "starttls" ` + at(9)}},
		{deliver.HintTLS, []string{"[smtp] security, port and ca_file"}},
		{deliver.HintNotSMTP, []string{"check [smtp] host, port and security " + at(7)}},
		{deliver.HintCredentials, []string{"refused the username or password", "[smtp] username " + at(8) + " and the password"}},
		{deliver.HintNeedsTLS, []string{`"starttls" or "tls" ` + at(9)}},
		{deliver.HintNoAuth, []string{"remove [smtp] username " + at(8)}},
		{deliver.HintAuth, []string{"check [smtp] username " + at(8) + " and the password"}},
		{deliver.HintReplyLimit, []string{"batch dropped the connection; check that [smtp] host and port " + at(7) + " are an SMTP server's"}},
		{deliver.HintToken, []string{"refused the access token", "[smtp] username " + at(8), "token_cmd " + at(6)}},
		{deliver.HintBasicAuthDisabled, []string{"basic authentication is disabled", `set auth = "xoauth2" ` + at(6) + " and token_cmd"}},
		{deliver.HintAppPassword, []string{"app password", `set auth = "xoauth2" ` + at(6)}},
		{deliver.HintClosed, []string{"the server closed the connection"}},
		{deliver.HintReply, []string{"the server's reply says why"}},
	} {
		errRefused := errors.New("no")
		ce := &deliver.ConnError{Addr: "localhost:465", Step: "tls", Hint: tt.hint, Err: errRefused}
		err := c.explainConn(ce)
		for _, want := range tt.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("hint %d: %q does not say %q", int(tt.hint), err, want)
			}
		}
		if !strings.HasPrefix(err.Error(), "localhost:465: tls: no: ") {
			t.Errorf("hint %d: %q does not start with the server, the step and the error", int(tt.hint), err)
		}
		var got *deliver.ConnError
		if !errors.As(err, &got) || got != ce || !errors.Is(err, errRefused) {
			t.Errorf("hint %d: %v is not the *deliver.ConnError underneath", int(tt.hint), err)
		}
		// A message's, in a *deliver.SendError, is said so too.
		se := &deliver.SendError{To: "ada@example.org", Stage: "end of DATA", Err: ce}
		err = c.explainConn(se)
		var gotSE *deliver.SendError
		if !errors.As(err, &gotSE) || gotSE.To != se.To || gotSE.Stage != se.Stage || !errors.As(err, &got) || deliver.Classify(err) != deliver.Uncertain {
			t.Errorf("hint %d: %v is not the message's *deliver.SendError", int(tt.hint), err)
		}
		if !strings.Contains(err.Error(), tt.want[0]) {
			t.Errorf("hint %d: %q does not say %q", int(tt.hint), err, tt.want[0])
		}
	}
	// Without [smtp], the sender is not the campaign file's: deliver's words.
	c, _, err = load(t, minimal, nil)
	if err != nil {
		t.Fatal(err)
	}
	ce := &deliver.ConnError{Addr: "localhost:465", Step: "tls", Hint: deliver.HintUntrusted, Err: errors.New("no")}
	if err := c.explainConn(ce); err != ce {
		t.Errorf("without [smtp]: %v, want deliver's own", err)
	}
}

// TestConnHintsSent: a send says deliver's hints in the campaign file's
// terms: a server refused before anything is sent, and a server that
// floods its reply to a message's final dot, where the journal and the
// outcome told say it too.
func TestConnHintsSent(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		c := newCampaign(t, goodList, goodBody, fmt.Sprintf("[smtp]\nhost = \"127.0.0.1\"\nport = %d\nsecurity = \"none\"\n", port), nil)
		open := func(*Summary) (deliver.Sender, error) {
			cfg, err := c.SMTP.Config("", nil)
			if err != nil {
				return nil, err
			}
			return deliver.DialSMTP(context.Background(), cfg)
		}
		_, err = c.Send(context.Background(), open, Options{Now: now})
		if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), fmt.Sprintf("check [smtp] host and port (%s:7)", c.Path)) {
			t.Errorf("Send: %v, want the refusal, and [smtp] host and port at line 7", err)
		}
	})
	t.Run("flood", func(t *testing.T) {
		const target = "bob@example.net"
		srv := smtptest.Start(t, smtptest.Fault{Rcpt: target, Stage: smtptest.AtData, Flood: true, Times: 1})
		c := newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n", "[smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n", nil)
		var told error
		opts := faultOptions()
		opts.Outcome = func(m *render.Message, _ journal.Status, err error) {
			if m.To == target {
				told = err
			}
		}
		r := sendVia(t, c, srv, quick, opts)
		want := fmt.Sprintf("check that [smtp] host and port (%s:7) are an SMTP server's", c.Path)
		var ce *deliver.ConnError
		if !errors.As(r.err, &ce) || !strings.Contains(r.err.Error(), want) {
			t.Errorf("Send: %v, want the *deliver.ConnError, saying %q", r.err, want)
		}
		if told == nil || !strings.Contains(told.Error(), want) {
			t.Errorf("%s: told %v, want %q", target, told, want)
		}
		if e := readState(t, c).Get(target); e.Status != journal.Unknown || !strings.Contains(e.Error, want) {
			t.Errorf("%s: journal says %v (%q), want unknown, saying %q", target, e.Status, e.Error, want)
		}
	})
}
