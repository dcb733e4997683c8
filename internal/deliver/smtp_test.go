package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// dialFails runs DialSMTP, which must fail, and returns its *ConnError
// after checking its Step.
func dialFails(t *testing.T, cfg SMTPConfig, step string) *ConnError {
	t.Helper()
	s, err := DialSMTP(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("DialSMTP succeeded, want an error")
	}
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("DialSMTP: %v (%T), want a *ConnError", err, err)
	}
	if ce.Step != step {
		t.Errorf("Step %q, want %q (%v)", ce.Step, step, err)
	}
	if want := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)); ce.Addr != want {
		t.Errorf("Addr %q, want %q", ce.Addr, want)
	}
	return ce
}

// nothingSent checks that the server saw no login and no transaction.
func nothingSent(t *testing.T, ts *testServer) []smtptest.Conn {
	t.Helper()
	conns, msgs := ts.snapshot()
	for _, c := range conns {
		if len(c.Auths) > 0 {
			t.Errorf("connection %d: the server saw AUTH as %v", c.ID, c.Auths)
		}
		if len(c.Mails) > 0 {
			t.Errorf("connection %d: the server saw MAIL FROM %v", c.ID, c.Mails)
		}
	}
	if len(msgs) > 0 {
		t.Errorf("the server accepted %d messages", len(msgs))
	}
	return conns
}

func TestSMTPStartTLS(t *testing.T) {
	ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{"PLAIN"}})
	cfg := ts.config(t, StartTLS)
	cfg.Host = "localhost"
	msgs := testMessages(3)
	msgs[1].Data = testMessage(2, 40<<10).Data // bigger than any buffer on the way
	s, o := sendAll(t, cfg, msgs)
	o.allSent(t, msgs)
	conns, got := ts.snapshot()
	if len(conns) != 1 || s.Dials() != 1 {
		t.Fatalf("%d connections, %d dials; want 1", len(conns), s.Dials())
	}
	// go-smtp starts a session for each EHLO: one in plain text, one in TLS.
	want := []smtptest.Hello{{Name: testHELO, TLS: false}, {Name: testHELO, TLS: true}}
	if !slices.Equal(conns[0].Hellos, want) {
		t.Errorf("EHLO names and TLS %v, want %v", conns[0].Hellos, want)
	}
	if cmds := conns[0].Commands(); !slices.Equal(cmds, []string{"EHLO " + testHELO, "STARTTLS"}) {
		t.Errorf("commands in plain text %q, want only EHLO and STARTTLS", cmds)
	}
	for _, r := range deliveredOnce(t, got, msgs) {
		if !r.TLS || r.Helo != testHELO || r.User != testUser || r.From != "news@example.org" {
			t.Errorf("%v: tls %v, helo %q, user %q, from %q", r.To, r.TLS, r.Helo, r.User, r.From)
		}
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	ts := startServer(t, serverOpts{cert: &certs(t).good, implicit: true, mechs: []string{"PLAIN"}})
	msgs := testMessages(3)
	s, o := sendAll(t, ts.config(t, ImplicitTLS), msgs)
	o.allSent(t, msgs)
	conns, got := ts.snapshot()
	if len(conns) != 1 || s.Dials() != 1 {
		t.Fatalf("%d connections, %d dials; want 1", len(conns), s.Dials())
	}
	if want := []smtptest.Hello{{Name: testHELO, TLS: true}}; !slices.Equal(conns[0].Hellos, want) {
		t.Errorf("EHLO names and TLS %v, want %v", conns[0].Hellos, want)
	}
	if in := conns[0].In; len(in) == 0 || in[0] != 0x16 {
		t.Errorf("the first byte from the client is not a TLS handshake record: %q", in[:min(len(in), 16)])
	}
	for _, r := range deliveredOnce(t, got, msgs) {
		if !r.TLS || r.Helo != testHELO || r.User != testUser {
			t.Errorf("%v: tls %v, helo %q, user %q", r.To, r.TLS, r.Helo, r.User)
		}
	}
}

func TestSMTPNoTLSLoopback(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
			cfg := ts.config(t, NoTLS)
			cfg.Host = host
			msgs := testMessages(2)
			_, o := sendAll(t, cfg, msgs)
			o.allSent(t, msgs)
			conns, got := ts.snapshot()
			if len(conns) != 1 {
				t.Fatalf("%d connections, want 1", len(conns))
			}
			if v := verbs(conns[0].Commands()); !slices.Contains(v, "AUTH") || slices.Contains(v, "STARTTLS") {
				t.Errorf("commands %v: want AUTH in plain text on loopback, and no STARTTLS", v)
			}
			for _, r := range deliveredOnce(t, got, msgs) {
				if r.TLS || r.User != testUser || r.Helo != testHELO {
					t.Errorf("%v: tls %v, user %q, helo %q", r.To, r.TLS, r.User, r.Helo)
				}
			}
		})
	}
}

func TestSMTPStartTLSNotOffered(t *testing.T) {
	// A server without TLS that would take AUTH in plain text: batch must
	// not fall back, even on loopback where it allows a plain-text login.
	ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
	ce := dialFails(t, ts.config(t, StartTLS), "starttls")
	if ce.Hint != HintNoSTARTTLS {
		t.Errorf("hint %q, want HintNoSTARTTLS: what to set", ce.Hint)
	}
	conns := nothingSent(t, ts)
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	if v := verbs(conns[0].Commands()); !slices.Equal(v, []string{"EHLO"}) {
		t.Errorf("commands %v, want only EHLO", v)
	}
}

func TestSMTPWrongCA(t *testing.T) {
	for _, tc := range []struct {
		sec  Security
		step string
	}{{StartTLS, "starttls"}, {ImplicitTLS, "tls"}} {
		t.Run(tc.sec.String(), func(t *testing.T) {
			ts := startServer(t, serverOpts{cert: &certs(t).untrusted, implicit: tc.sec == ImplicitTLS, mechs: []string{"PLAIN"}})
			ce := dialFails(t, ts.config(t, tc.sec), tc.step)
			var unknown x509.UnknownAuthorityError
			if !errors.As(ce, &unknown) {
				t.Errorf("error %v is not an x509.UnknownAuthorityError", ce.Err)
			}
			if ce.Hint != HintUntrusted {
				t.Errorf("hint %q, want HintUntrusted: the CA certificate to trust", ce.Hint)
			}
			conns := nothingSent(t, ts)
			for _, c := range conns {
				for _, h := range c.Hellos {
					if h.TLS {
						t.Errorf("connection %d: EHLO %q in TLS", c.ID, h.Name)
					}
				}
			}
		})
	}
}

func TestSMTPImplicitTLSToPlainServer(t *testing.T) {
	ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
	ce := dialFails(t, ts.config(t, ImplicitTLS), "tls")
	var rec tls.RecordHeaderError
	if !errors.As(ce, &rec) {
		t.Errorf("error %v is not a tls.RecordHeaderError", ce.Err)
	}
	if ce.Hint != HintTakesSTARTTLS {
		t.Errorf("hint %q, want HintTakesSTARTTLS", ce.Hint)
	}
	nothingSent(t, ts)
}

func TestSMTPHostnameMismatch(t *testing.T) {
	for _, tc := range []struct {
		sec  Security
		step string
	}{{StartTLS, "starttls"}, {ImplicitTLS, "tls"}} {
		t.Run(tc.sec.String(), func(t *testing.T) {
			ts := startServer(t, serverOpts{cert: &certs(t).otherHost, implicit: tc.sec == ImplicitTLS, mechs: []string{"PLAIN"}})
			cfg := ts.config(t, tc.sec)
			cfg.Host = "localhost"
			ce := dialFails(t, cfg, tc.step)
			var host x509.HostnameError
			if !errors.As(ce, &host) {
				t.Errorf("error %v is not an x509.HostnameError", ce.Err)
			}
			if ce.Hint != HintCertHost {
				t.Errorf("hint %q, want HintCertHost: the host to check", ce.Hint)
			}
			nothingSent(t, ts)
		})
	}
}

func TestSMTPWrongPassword(t *testing.T) {
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{mech}})
			cfg := ts.config(t, StartTLS)
			cfg.Password = "wrong"
			ce := dialFails(t, cfg, "auth")
			var se *smtp.SMTPError
			if !errors.As(ce, &se) || se.Code != 535 {
				t.Errorf("error %v, want the server's 535", ce.Err)
			}
			if ce.Hint != HintCredentials {
				t.Errorf("hint %q, want HintCredentials: the username and password", ce.Hint)
			}
			conns, _ := ts.snapshot()
			if len(conns) != 1 || !slices.Equal(conns[0].Auths, []string{testUser}) || len(conns[0].Mails) > 0 {
				t.Errorf("server saw %d connections, AUTH as %v, MAIL %v", len(conns), conns[0].Auths, conns[0].Mails)
			}
		})
	}
}

func TestSMTPLoginOnly(t *testing.T) {
	ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{"LOGIN"}})
	msgs := testMessages(2)
	_, o := sendAll(t, ts.config(t, StartTLS), msgs)
	o.allSent(t, msgs)
	_, got := ts.snapshot()
	for _, r := range deliveredOnce(t, got, msgs) {
		if r.User != testUser || !r.TLS {
			t.Errorf("%v: user %q, tls %v", r.To, r.User, r.TLS)
		}
	}
}

func TestSMTPNoCommonMechanism(t *testing.T) {
	ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{"CRAM-MD5"}})
	ce := dialFails(t, ts.config(t, StartTLS), "auth")
	if !strings.Contains(ce.Error(), "CRAM-MD5") {
		t.Errorf("error %q does not say what the server offers", ce)
	}
	nothingSent(t, ts)
}

func TestSMTPConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := SMTPConfig{Host: "127.0.0.1", Port: port, Security: NoTLS, HELO: testHELO, Timeout: 2 * time.Second}
	ce := dialFails(t, cfg, "connect")
	if !errors.Is(ce, syscall.ECONNREFUSED) {
		t.Errorf("error %v, want ECONNREFUSED", ce.Err)
	}
	if ce.Hint != HintReachable {
		t.Errorf("hint %q, want HintReachable: the host and port", ce.Hint)
	}
}

func TestSMTPReuse(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) { testSMTPReuse(t, w.without) })
	}
}

func testSMTPReuse(t *testing.T, without []string) {
	for _, tc := range []struct {
		max  int
		want []int // messages on each connection
	}{
		{100, []int{10}},
		{3, []int{3, 3, 3, 1}},
	} {
		t.Run(fmt.Sprintf("max=%d", tc.max), func(t *testing.T) {
			ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
			cfg := withoutExt(ts.config(t, NoTLS), without)
			cfg.Connections, cfg.MaxPerConnection = 1, tc.max
			msgs := testMessages(10)
			s, o := sendAll(t, cfg, msgs)
			o.allSent(t, msgs)
			conns, got := ts.snapshot()
			deliveredOnce(t, got, msgs)
			var per []int
			for _, c := range conns {
				per = append(per, c.Delivered)
				if v := verbs(c.Commands()); v[len(v)-1] != "QUIT" {
					t.Errorf("connection %d ended with %s, not QUIT", c.ID, v[len(v)-1])
				}
				if n := strings.Count(strings.Join(verbs(c.Commands()), " "), "AUTH"); n != 1 {
					t.Errorf("connection %d: %d logins, want 1", c.ID, n)
				}
			}
			if !slices.Equal(per, tc.want) || s.Dials() != len(tc.want) {
				t.Errorf("messages per connection %v, dials %d; want %v, %d", per, s.Dials(), tc.want, len(tc.want))
			}
		})
	}
}

// TestSMTPServerCloses covers a server that ends a connection between
// messages: the message is sent again on a new connection, once, unless
// the server had already been handed it.
func TestSMTPServerCloses(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) { testSMTPServerCloses(t, w.without) })
	}
}

func testSMTPServerCloses(t *testing.T, without []string) {
	// A server that takes perConn messages a connection, then says so.
	const perConn = 2
	closing := smtptest.Fault{Code: 421, Enhanced: [3]int{4, 3, 2}}
	for _, tc := range []struct {
		name  string
		fault smtptest.Fault
	}{
		{"421 at MAIL", smtptest.Fault{Stage: smtptest.AtMail, Code: closing.Code, Enhanced: closing.Enhanced, AfterMessages: perConn}},
		{"421 at RCPT", smtptest.Fault{Stage: smtptest.AtRcpt, Code: closing.Code, Enhanced: closing.Enhanced, AfterMessages: perConn}},
		{"closed at MAIL", smtptest.Fault{Stage: smtptest.AtMail, HangUp: true, AfterMessages: perConn}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}, more: []smtptest.Option{tc.fault}})
			msgs := testMessages(7)
			s, o := sendAll(t, withoutExt(ts.config(t, NoTLS), without), msgs)
			o.allSent(t, msgs)
			conns, got := ts.snapshot()
			deliveredOnce(t, got, msgs)
			var per []int
			for _, c := range conns {
				per = append(per, c.Delivered)
			}
			if want := []int{2, 2, 2, 1}; !slices.Equal(per, want) || s.Dials() != 4 {
				t.Errorf("messages per connection %v, dials %d; want %v, 4", per, s.Dials(), want)
			}
		})
	}

	t.Run("closed while idle", func(t *testing.T) {
		ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
		msgs := testMessages(3)
		s, o := sendEach(t, withoutExt(ts.config(t, NoTLS), without), msgs, func(i int) {
			if i == 0 {
				ts.Drop()
			}
		})
		o.check(t, msgs)
		conns, got := ts.snapshot()
		deliveredOnce(t, got, msgs)
		if len(conns) != 2 || s.Dials() != 2 {
			t.Errorf("%d connections, %d dials; want 2", len(conns), s.Dials())
		}
	})

	t.Run("421 after DATA is not retried", func(t *testing.T) {
		// The server took the whole message, then failed: batch can't
		// know whether it will be delivered, and sends it at most once.
		ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}, more: []smtptest.Option{
			smtptest.Fault{Rcpt: "reader002@example.net", Stage: smtptest.AtData, Code: closing.Code, Enhanced: closing.Enhanced, Times: 1},
		}})
		msgs := testMessages(3)
		s, o := sendAll(t, withoutExt(ts.config(t, NoTLS), without), msgs)
		outcome := o.check(t, msgs)
		var se *SendError
		if err := outcome[msgs[1].To]; !errors.As(err, &se) || se.Stage != "end of DATA" {
			t.Fatalf("%s: %v, want a *SendError at end of DATA", msgs[1].To, err)
		}
		if r, ok := se.Reply(); !ok || r.Code != 421 {
			t.Errorf("reply %v, want 421", r)
		}
		for _, m := range []*render.Message{msgs[0], msgs[2]} {
			if outcome[m.To] != nil {
				t.Errorf("%s: %v", m.To, outcome[m.To])
			}
		}
		conns, got := ts.snapshot()
		deliveredOnce(t, got, []*render.Message{msgs[0], msgs[2]})
		if len(conns) != 2 || s.Dials() != 2 {
			t.Errorf("%d connections, %d dials; want 2", len(conns), s.Dials())
		}
	})

	t.Run("server gone", func(t *testing.T) {
		ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
		ctx := context.Background()
		s, err := DialSMTP(ctx, withoutExt(ts.config(t, NoTLS), without))
		if err != nil {
			t.Fatal(err)
		}
		msgs := testMessages(3)
		o := newOutcomes()
		if err := s.Send(ctx, msgs[0], o.done(msgs[0])); err != nil {
			t.Fatal(err)
		}
		if err := o.wait(t, msgs[0]); err != nil {
			t.Fatal(err)
		}
		ts.Close() // the listener and every connection
		if err := s.Send(ctx, msgs[1], o.done(msgs[1])); err != nil {
			t.Fatal(err)
		}
		var ce *ConnError
		if err := o.wait(t, msgs[1]); !errors.As(err, &ce) || ce.Step != "connect" {
			t.Errorf("%s: %v, want a *ConnError at connect", msgs[1].To, err)
		}
		// Either Send refuses the next message, or its done reports why.
		if err := s.Send(ctx, msgs[2], o.done(msgs[2])); err != nil {
			if !errors.As(err, &ce) {
				t.Errorf("Send after the server went: %v, want a *ConnError", err)
			}
		} else if err := o.wait(t, msgs[2]); !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a *ConnError", msgs[2].To, err)
		}
		if err := s.Close(); !errors.As(err, &ce) {
			t.Errorf("Close: %v, want the *ConnError that stopped delivery", err)
		}
		_, got := ts.snapshot()
		deliveredOnce(t, got, msgs[:1])
	})
}

func TestSMTPRecipientRejected(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) { testSMTPRecipientRejected(t, w.without) })
	}
}

func testSMTPRecipientRejected(t *testing.T, without []string) {
	const bad = "reader002@example.net"
	ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}, more: []smtptest.Option{
		smtptest.Fault{Rcpt: bad, Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}},
	}})
	msgs := testMessages(4)
	s, o := sendAll(t, withoutExt(ts.config(t, NoTLS), without), msgs)
	outcome := o.check(t, msgs)
	var se *SendError
	if err := outcome[bad]; !errors.As(err, &se) {
		t.Fatalf("%s: %v, want a *SendError", bad, err)
	}
	if se.Stage != "RCPT TO" || se.To != bad {
		t.Errorf("Stage %q, To %q; want RCPT TO, %s", se.Stage, se.To, bad)
	}
	r, ok := se.Reply()
	if !ok || r.Code != 550 || r.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) || r.Temporary() {
		t.Errorf("Reply %+v, %v; want 550 5.1.1", r, ok)
	}
	for _, m := range msgs {
		if m.To != bad && outcome[m.To] != nil {
			t.Errorf("%s: %v", m.To, outcome[m.To])
		}
	}
	conns, got := ts.snapshot()
	deliveredOnce(t, got, []*render.Message{msgs[0], msgs[2], msgs[3]})
	if len(conns) != 1 || s.Dials() != 1 {
		t.Fatalf("%d connections, %d dials; want the same one for all", len(conns), s.Dials())
	}
	if conns[0].Nested != 0 {
		t.Errorf("%d MAIL FROM inside an open transaction", conns[0].Nested)
	}
	// The transaction left open by the rejected RCPT is reset before the
	// next MAIL, and only then.
	cmds := conns[0].Commands()
	i := slices.Index(cmds, "RCPT TO:<"+bad+">")
	if i < 0 {
		t.Fatalf("no RCPT TO:<%s> in %q", bad, cmds)
	}
	next := slices.IndexFunc(cmds[i+1:], func(c string) bool { return strings.HasPrefix(c, "MAIL ") })
	if next < 0 || !slices.Contains(verbs(cmds[i+1:i+1+next]), "RSET") {
		t.Errorf("no RSET between the rejected RCPT and the next MAIL: %q", cmds[i:])
	}
	if n := slices.Index(verbs(cmds), "RSET"); n >= 0 && n < i {
		t.Errorf("RSET before any failure: %q", cmds)
	}
	if n := strings.Count(strings.Join(verbs(cmds), " "), "RSET"); n != 1 {
		t.Errorf("%d RSETs, want 1", n)
	}
}

// withoutExt makes cfg take the extensions as not offered.
func withoutExt(cfg SMTPConfig, without []string) SMTPConfig {
	cfg.without = without
	return cfg
}

// refusingTracker's Ready says no: the journal could not record the
// message, so it must not be handed over.
type refusingTracker struct {
	DoneFunc
	ready chan struct{} // closed when Ready is asked
}

func (r refusingTracker) Ready() error {
	close(r.ready)
	return errors.New("the journal is full")
}

func TestSMTPReadyRefused(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) { testSMTPReadyRefused(t, w.without) })
	}
}

func testSMTPReadyRefused(t *testing.T, without []string) {
	ts := startServer(t, serverOpts{})
	msgs := testMessages(3)
	s, err := DialSMTP(context.Background(), withoutExt(ts.config(t, NoTLS), without))
	if err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	refuse := refusingTracker{DoneFunc: o.done(msgs[1]), ready: make(chan struct{})}
	for i, m := range msgs {
		var tr Tracker = o.done(m)
		if i == 1 {
			tr = refuse
		}
		if err := s.Send(context.Background(), m, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	outcome := o.check(t, msgs)
	var se *SendError
	if !errors.As(outcome[msgs[1].To], &se) || se.Stage != StageReady {
		t.Fatalf("%s: %v, want a SendError at %q", msgs[1].To, outcome[msgs[1].To], StageReady)
	}
	// Ready came after DATA, before the final dot, and the connection
	// was dropped there: the server never saw the message end. (The
	// server notices the drop on its own time.)
	conns, got := ts.snapshot()
	for deadline := time.Now().Add(5 * time.Second); len(conns) > 0 && !conns[0].Closed && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		conns, got = ts.snapshot()
	}
	deliveredOnce(t, got, []*render.Message{msgs[0], msgs[2]})
	if len(conns) != 2 || !conns[0].Closed {
		t.Fatalf("%d connections (the first closed: %v), want the first dropped and a second for the last message", len(conns), len(conns) > 0 && conns[0].Closed)
	}
	cmds := conns[0].Commands()
	if slices.Contains(without, "CHUNKING") {
		if v := verbs(cmds); strings.Count(strings.Join(v, " "), "DATA") != 2 {
			t.Errorf("first connection: %v, want DATA for the first message and the refused one", v)
		}
		in := string(conns[0].In)
		if i := strings.Index(in, "Subject: Issue 2\r\n"); i >= 0 && strings.Contains(in[i:], "\r\n.\r\n") {
			t.Errorf("the refused message was ended with a dot")
		}
	} else {
		want := []string{"MAIL", "RCPT", "BDAT", "BDAT 0 LAST", "MAIL", "RCPT", "BDAT"} // the refused one's content, and no LAST
		var got []string
		for _, c := range cmds[1:] {
			if c != "BDAT 0 LAST" {
				c, _, _ = strings.Cut(c, " ")
			}
			got = append(got, c)
		}
		if !slices.Equal(got, want) {
			t.Errorf("first connection after EHLO: %q, want %q", got, want)
		}
	}
}

func TestSMTPSender(t *testing.T) {
	for _, tc := range []struct{ sender, want string }{
		{"", "news@example.org"},
		{"bounces+x@example.org", "bounces+x@example.org"},
	} {
		t.Run("sender="+tc.sender, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			cfg := ts.config(t, NoTLS)
			cfg.Sender = tc.sender
			msgs := testMessages(2)
			sendAll(t, cfg, msgs)
			conns, got := ts.snapshot()
			for _, r := range deliveredOnce(t, got, msgs) {
				if r.From != tc.want {
					t.Errorf("%v: MAIL FROM %q, want %q", r.To, r.From, tc.want)
				}
			}
			if !slices.Equal(conns[0].Mails, []string{tc.want, tc.want}) {
				t.Errorf("MAIL FROM %q", conns[0].Mails)
			}
		})
	}
}

func TestSMTPConnections(t *testing.T) {
	ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{"PLAIN"}})
	cfg := ts.config(t, StartTLS)
	cfg.Connections = 4
	msgs := testMessages(40)
	s, o := sendAll(t, cfg, msgs)
	o.allSent(t, msgs)
	conns, got := ts.snapshot()
	deliveredOnce(t, got, msgs)
	if n := ts.Peak(); n > 4 {
		t.Errorf("%d connections at once, want at most 4", n)
	}
	if len(conns) > 4 || s.Dials() != len(conns) {
		t.Errorf("%d connections, %d dials; want at most 4, the same", len(conns), s.Dials())
	}
	for _, c := range conns {
		if len(c.Auths) != 1 {
			t.Errorf("connection %d: %d logins", c.ID, len(c.Auths))
		}
	}
}

// TestSMTPFewerConnections: a server that takes 2 connections at once
// while the campaign asks for 4. The connections that can't open hand
// their messages to the others; every message is delivered once.
//
// The four open as DialSMTP starts them, before any message: one of the
// three after the first is let in, the other two turned away, and tried
// again each with its first message, turned away again while two are
// open. The server holds every message at its end until it has turned two
// connections away, so that all four are tried while two are busy, and the
// list is closed only once those two have retired, so that no worker
// leaves before. (A worker that finds the queue closed leaves, and lets a
// late one open a third connection, or makes the last one turned away the
// last standing: see TestSMTPTurnedAwayLast.)
func TestSMTPFewerConnections(t *testing.T) {
	refused := make(chan string, 4)
	gate := make(chan struct{})
	go func() {
		defer close(gate)
		for range 2 {
			select {
			case <-refused:
			case <-t.Context().Done():
				return
			}
		}
	}()
	ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{"PLAIN"}, more: []smtptest.Option{
		smtptest.Fault{Stage: smtptest.AtHello, Code: 451, Enhanced: [3]int{4, 7, 0}, WhenOpen: 2, Notify: refused},
		smtptest.Fault{Stage: smtptest.AtData, Hold: gate},
	}})
	cfg := ts.config(t, StartTLS)
	cfg.Connections = 4
	ctx := context.Background()
	s, err := DialSMTP(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	msgs := testMessages(30)
	o := newOutcomes()
	for _, m := range msgs {
		if err := s.Send(ctx, m, o.done(m)); err != nil {
			t.Fatalf("Send %s: %v", m.To, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); s.workers() > 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers at work, want 2: those turned away did not retire", s.workers())
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	o.allSent(t, msgs)
	conns, got := ts.snapshot()
	deliveredOnce(t, got, msgs)
	if s.Dials() != 2 {
		t.Errorf("%d connections opened, want 2: the server takes 2", s.Dials())
	}
	turnedAway := 0
	for _, c := range conns {
		if len(c.Hellos) == 0 {
			turnedAway++
		}
	}
	if len(conns) != 6 || turnedAway != 4 {
		t.Errorf("the server saw %d connections, %d turned away; want 6, 4: each worker tried once before its first message, and the two turned away once more with it", len(conns), turnedAway)
	}
}

// workers returns how many workers are still at work.
func (s *SMTP) workers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alive
}

// TestSMTPTurnedAwayLast: a connection turned away while another works,
// whose worker finds itself the last one standing when the answer comes
// (the other found the queue empty and left), tries again as the last one
// does, instead of stopping the campaign.
func TestSMTPTurnedAwayLast(t *testing.T) {
	dialed := make(chan string, 1)
	sent, refuse := make(chan struct{}), make(chan struct{})
	ts := startServer(t, serverOpts{more: []smtptest.Option{
		// The second connection is turned away as it opens, before any
		// message; its worker tries again with its first message.
		smtptest.Fault{Stage: smtptest.AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, WhenOpen: 1, Times: 1},
		// The first message waits until the second connection is tried
		// with the other; that one is turned away once the first has gone.
		smtptest.Fault{Stage: smtptest.AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, WhenOpen: 1, Times: 1, Notify: dialed, Hold: refuse},
		smtptest.Fault{Stage: smtptest.AtData, Hold: sent},
	}})
	go func() {
		select {
		case <-dialed:
		case <-t.Context().Done():
		}
		close(sent)
		for deadline := time.Now().Add(5 * time.Second); !ts.Conns()[0].Closed && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		close(refuse)
	}()
	cfg := ts.config(t, NoTLS)
	cfg.Connections = 2
	cfg.redialWait = time.Millisecond
	msgs := testMessages(2)
	s, o := sendAll(t, cfg, msgs)
	o.allSent(t, msgs)
	conns, got := ts.snapshot()
	deliveredOnce(t, got, msgs)
	if len(conns) != 4 || len(conns[1].Hellos) != 0 || len(conns[2].Hellos) != 0 || s.Dials() != 2 {
		t.Errorf("%d connections (the second and third turned away: %v), %d dials; want 4, the second and third turned away, 2",
			len(conns), len(conns) > 2 && len(conns[1].Hellos) == 0 && len(conns[2].Hellos) == 0, s.Dials())
	}
}

// TestSMTPBusyServer: a server that turns the first connections away for
// now (421 at EHLO) is tried again, and the campaign goes on; a wrong
// password is not tried again.
func TestSMTPBusyServer(t *testing.T) {
	ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{"PLAIN"}, more: []smtptest.Option{
		smtptest.Fault{Stage: smtptest.AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, Times: 2},
	}})
	cfg := ts.config(t, StartTLS)
	cfg.redialWait = time.Millisecond
	msgs := testMessages(3)
	_, o := sendAll(t, cfg, msgs)
	o.allSent(t, msgs)
	_, got := ts.snapshot()
	deliveredOnce(t, got, msgs)

	cfg.Password = "wrong"
	cfg.redialWait = time.Hour // a retry would hang the test
	dialFails(t, cfg, "auth")
}

// TestSMTPStartTLSRemote sends with TLS and AUTH as to any real server: the
// loopback server is treated as a remote one, where AUTH needs TLS. (Tests
// send only to loopback.)
func TestSMTPStartTLSRemote(t *testing.T) {
	for _, sec := range []Security{ImplicitTLS, StartTLS} {
		t.Run(sec.String(), func(t *testing.T) {
			ts := startServer(t, serverOpts{cert: &certs(t).good, implicit: sec == ImplicitTLS, mechs: []string{"PLAIN"}})
			ctx := context.Background()
			cfg := ts.config(t, sec)
			cfg.remote = true
			s, err := DialSMTP(ctx, cfg)
			if err != nil {
				t.Fatalf("DialSMTP: %v", err)
			}
			msgs := testMessages(1)
			o := newOutcomes()
			if err := s.Send(ctx, msgs[0], o.done(msgs[0])); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			_, got := ts.snapshot()
			deliveredOnce(t, got, msgs)
		})
	}
	t.Run("none refuses AUTH", func(t *testing.T) {
		ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
		cfg := ts.config(t, NoTLS)
		cfg.remote = true
		ce := dialFails(t, cfg, "auth")
		if !errors.Is(ce, errUnencrypted) {
			t.Errorf("error %v, want errUnencrypted", ce.Err)
		}
		nothingSent(t, ts)
	})
}

// fakeClock is a Clock whose Sleep moves its time on at once.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	return nil
}

func TestLimiterFakeClock(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	l := NewLimiter(20, clock)
	var at []time.Time
	for range 101 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		at = append(at, clock.Now())
	}
	if d := at[len(at)-1].Sub(start); d < 5*time.Second-time.Millisecond || d > 5*time.Second+time.Millisecond {
		t.Errorf("101 messages at 20/s took %v of fake time, want 5s", d)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 50*time.Millisecond-time.Microsecond {
			t.Errorf("messages %d and %d %v apart, want at least 50ms", i, i+1, gap)
		}
	}
	if got := l.String(); got != "20/s" {
		t.Errorf("String %q, want 20/s", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v", err)
	}
	var nilLimiter *Limiter
	if err := nilLimiter.Wait(context.Background()); err != nil || nilLimiter.String() != "no limit" {
		t.Errorf("nil Limiter: %v, %q", err, nilLimiter.String())
	}
	if got := NewLimiter(0.25, clock).String(); got != "1 every 4s" {
		t.Errorf("String for 0.25/s %q", got)
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{"20/s", 20},
		{" 20 / s ", 20},
		{"600/min", 10},
		{"3600/h", 1},
		{"86400/day", 1},
		{"1/day", 1.0 / 86400},
		{"0.5/s", 0.5},
	} {
		got, err := ParseRate(tc.in)
		if err != nil || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"20", "0/s", "-1/s", "x/s", "5/week", "", "/s", "20/", "Inf/s", "1e7/s"} {
		if got, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseRateNaN(t *testing.T) {
	// ParseRate once checked v <= 0 || v > 1e6, which NaN passes, so
	// rate = "NaN/s" is taken as a rate.
	if got, err := ParseRate("NaN/s"); err == nil {
		t.Errorf("ParseRate(%q) = %v, want an error", "NaN/s", got)
	}
}

func TestSMTPDebugTranscript(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) { testSMTPDebugTranscript(t, w.without) })
	}
}

func testSMTPDebugTranscript(t *testing.T, without []string) {
	const password = "s3cret-pässword"
	ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{"PLAIN"}, password: password})
	var debug bytes.Buffer
	cfg := withoutExt(ts.config(t, StartTLS), without)
	cfg.Host = "localhost"
	cfg.Debug = &debug
	msgs := testMessages(2)
	sendAll(t, cfg, msgs)
	_, got := ts.snapshot()
	deliveredOnce(t, got, msgs)

	out := debug.String()
	m := msgs[0]
	lines := bytes.Count(m.Data, []byte("\r\n"))
	stuffed := len(m.Data) + 1 // the dot doubled at the start of a line
	if !slices.Contains(without, "CHUNKING") {
		stuffed = len(m.Data) // BDAT: as it is
	}
	for _, want := range []string{
		"[1] C: EHLO " + testHELO,
		"[1] S: 250",
		"[1] C: STARTTLS",
		"[1] C: AUTH PLAIN ***",
		"[1] S: 235",
		"[1] C: MAIL FROM:<news@example.org>",
		"[1] C: RCPT TO:<" + m.To + ">",
		fmt.Sprintf("[1] C: <message: %d lines, %d bytes>", lines, stuffed),
		"[1] C: QUIT",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if n := strings.Count(out, "C: EHLO "+testHELO); n != 2 {
		t.Errorf("%d EHLO %s, want 2 (before and after TLS)", n, testHELO)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + password))
	for _, secret := range []string{
		password,
		plain,
		plain[:len(plain)/2],
		base64.StdEncoding.EncodeToString([]byte(password)),
		base64.RawStdEncoding.EncodeToString([]byte(password)),
		"Subject: Issue 1", // content is summed up, not copied
		syntheticGreeting,  // the server never said it
	} {
		if strings.Contains(out, secret) {
			t.Errorf("transcript contains %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("transcript:\n%s", out)
	}
}

func TestTranscriptLogin(t *testing.T) {
	user := base64.StdEncoding.EncodeToString([]byte(testUser))
	pass := base64.StdEncoding.EncodeToString([]byte("pw-λ"))
	in := strings.Join([]string{
		"AUTH LOGIN",
		"334 VXNlcm5hbWU6",
		user,
		"334 UGFzc3dvcmQ6",
		pass,
		"235 2.7.0 ok",
		"MAIL FROM:<a@example.org>",
		"250 2.0.0 ok",
		"DATA",
		"354 go ahead",
		"line one pw-λ",
		"..dot",
		".",
		"250 2.0.0 queued",
		"NOOP pw-λ " + pass,
		"",
	}, "\r\n")
	var out bytes.Buffer
	var mu sync.Mutex
	tr := newTranscript(&out, &mu, 7, "pw-λ")
	for i := range len(in) { // a byte at a time: lines come whole anyway
		tr.Write([]byte{in[i]})
	}
	want := strings.Join([]string{
		"[7] C: AUTH LOGIN ***",
		"[7] S: 334 ***",
		"[7] C: ***",
		"[7] S: 334 ***",
		"[7] C: ***",
		"[7] S: 235 2.7.0 ok",
		"[7] C: MAIL FROM:<a@example.org>",
		"[7] S: 250 2.0.0 ok",
		"[7] C: DATA",
		"[7] S: 354 go ahead",
		"[7] C: <message: 2 lines, 23 bytes>",
		"[7] C: .",
		"[7] S: 250 2.0.0 queued",
		"[7] C: NOOP *** ***",
		"",
	}, "\n")
	if out.String() != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestSMTPIdleCheck(t *testing.T) {
	t.Run("NOOP before reuse", func(t *testing.T) {
		ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
		cfg := ts.config(t, NoTLS)
		cfg.IdleCheck = time.Millisecond
		msgs := testMessages(2)
		s, _ := sendEach(t, cfg, msgs, func(int) {
			time.Sleep(5 * time.Millisecond) // idle for longer than IdleCheck
		})
		conns, got := ts.snapshot()
		deliveredOnce(t, got, msgs)
		if len(conns) != 1 || s.Dials() != 1 {
			t.Fatalf("%d connections, %d dials; want 1", len(conns), s.Dials())
		}
		v := verbs(conns[0].Commands())
		first := slices.Index(v, "MAIL")
		noop := slices.Index(v, "NOOP")
		last := -1
		for i, verb := range v {
			if verb == "MAIL" {
				last = i
			}
		}
		if noop < first || noop > last {
			t.Errorf("commands %v: want NOOP between the two messages", v)
		}
	})

	t.Run("server closed idle connection", func(t *testing.T) {
		ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
		cfg := ts.config(t, NoTLS)
		cfg.IdleCheck = time.Millisecond
		var debug bytes.Buffer
		cfg.Debug = &debug
		ctx := context.Background()
		s, err := DialSMTP(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		msgs := testMessages(2)
		o := newOutcomes()
		if err := s.Send(ctx, msgs[0], o.done(msgs[0])); err != nil {
			t.Fatal(err)
		}
		if err := o.wait(t, msgs[0]); err != nil {
			t.Fatal(err)
		}
		ts.Drop()
		time.Sleep(5 * time.Millisecond)
		if err := s.Send(ctx, msgs[1], o.done(msgs[1])); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := o.check(t, msgs)[msgs[1].To]; err != nil {
			t.Errorf("%s: %v", msgs[1].To, err)
		}
		conns, got := ts.snapshot()
		deliveredOnce(t, got, msgs)
		if len(conns) != 2 || s.Dials() != 2 {
			t.Errorf("%d connections, %d dials; want 2", len(conns), s.Dials())
		}
		if !strings.Contains(debug.String(), "C: NOOP") {
			t.Errorf("no NOOP in the transcript:\n%s", debug.String())
		}
		if v := verbs(conns[1].Commands()); slices.Contains(v, "NOOP") {
			t.Errorf("NOOP on the new connection: %v", v)
		}
	})
}

// discardBackend takes every message and throws it away, for benchmarks.
type discardBackend struct{}

func (discardBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }

type discardSession struct{}

func (discardSession) Reset()                               {}
func (discardSession) Logout() error                        { return nil }
func (discardSession) Mail(string, *smtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

func startDiscardServer(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := smtp.NewServer(discardBackend{})
	srv.Domain = "mx.test"
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func benchMessages() []*render.Message {
	msgs := make([]*render.Message, 64)
	for i := range msgs {
		msgs[i] = testMessage(i+1, 35<<10)
	}
	return msgs
}

var benchConns = []int{1, 2, 4, 8}

// BenchmarkSMTP sends b.N messages of about 35 KB through SMTP.Send to a
// loopback server that discards them.
func BenchmarkSMTP(b *testing.B) { benchSMTP(b, nil) }

// BenchmarkSMTPClassic is BenchmarkSMTP a command at a time, with DATA:
// the server's PIPELINING and CHUNKING taken as not offered.
func BenchmarkSMTPClassic(b *testing.B) { benchSMTP(b, []string{"PIPELINING", "CHUNKING"}) }

func benchSMTP(b *testing.B, without []string) {
	msgs := benchMessages()
	for _, n := range benchConns {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			port := startDiscardServer(b)
			cfg := SMTPConfig{Host: "127.0.0.1", Port: port, Security: NoTLS, HELO: testHELO, Connections: n, Timeout: 10 * time.Second, without: without}
			ctx := context.Background()
			var failed atomic.Int64
			done := DoneFunc(func(err error) {
				if err != nil {
					failed.Add(1)
				}
			})
			b.SetBytes(int64(len(msgs[0].Data)))
			b.ResetTimer()
			s, err := DialSMTP(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				if err := s.Send(ctx, msgs[i%len(msgs)], done); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d messages failed", n)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkBareClient is the ceiling for BenchmarkSMTP: n goroutines, each
// with its own go-smtp Client, push the same messages in a loop.
func BenchmarkBareClient(b *testing.B) {
	msgs := benchMessages()
	for _, n := range benchConns {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			port := startDiscardServer(b)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			b.SetBytes(int64(len(msgs[0].Data)))
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Go(func() {
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						errs <- err
						return
					}
					c := smtp.NewClient(conn)
					defer c.Close()
					if err := c.Hello(testHELO); err != nil {
						errs <- err
						return
					}
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							break
						}
						m := msgs[int(i)%len(msgs)]
						if err := c.Mail(m.From, nil); err != nil {
							errs <- err
							return
						}
						if err := c.Rcpt(m.To, nil); err != nil {
							errs <- err
							return
						}
						w, err := c.Data()
						if err != nil {
							errs <- err
							return
						}
						if _, err := w.Write(m.Data); err != nil {
							errs <- err
							return
						}
						if err := w.Close(); err != nil {
							errs <- err
							return
						}
					}
					c.Quit()
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// TestSMTPLineEndInAddress: an address can't carry a command of its own,
// whichever way batch sends.
func TestSMTPLineEndInAddress(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			msgs := testMessages(2)
			msgs[0].To = "a@example.org>\r\nRCPT TO:<victim@example.net"
			_, o := sendAll(t, withoutExt(ts.config(t, NoTLS), w.without), msgs)
			var se *SendError
			if err := o.check(t, msgs)[msgs[0].To]; !errors.As(err, &se) || Classify(err) != Permanent {
				t.Errorf("an address with CRLF: %v, want a permanent *SendError", err)
			}
			conns, got := ts.snapshot()
			deliveredOnce(t, got, msgs[1:])
			if cmds := strings.Join(conns[0].Commands(), "\n"); strings.Contains(cmds, "victim") {
				t.Errorf("the server saw %q", cmds)
			}
		})
	}
}

// TestSMTPBDATRefused: a server that offers CHUNKING and refuses BDAT gets
// every message all the same, with DATA from then on.
func TestSMTPBDATRefused(t *testing.T) {
	ts := startServer(t, serverOpts{more: []smtptest.Option{smtptest.RefuseBDAT()}})
	msgs := testMessages(3)
	_, o := sendAll(t, ts.config(t, NoTLS), msgs)
	o.allSent(t, msgs)
	conns, got := ts.snapshot()
	deliveredOnce(t, got, msgs)
	if v := strings.Join(verbs(conns[0].Commands()), " "); v != "EHLO MAIL RCPT BDAT RSET MAIL RCPT DATA MAIL RCPT DATA MAIL RCPT DATA QUIT" {
		t.Errorf("commands %s, want one BDAT refused, then DATA for every message", v)
	}
}

// slowJournal's Ready waits for the test, as a journal whose sync is
// still under way, and ReadyNow says so.
type slowJournal struct {
	DoneFunc
	asked   chan struct{} // closed when Ready is asked
	release chan struct{} // closed by the test: the sync is done
}

func (j slowJournal) ReadyNow() bool { return false }

func (j slowJournal) Ready() error {
	close(j.asked)
	<-j.release
	return nil
}

// TestSMTPContentWhileReady: with DATA, when the journal isn't ready yet
// the content goes while it syncs, and only the final dot waits for it.
func TestSMTPContentWhileReady(t *testing.T) {
	ts := startServer(t, serverOpts{})
	msgs := testMessages(1)
	s, err := DialSMTP(context.Background(), withoutExt(ts.config(t, NoTLS), []string{"CHUNKING"}))
	if err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	j := slowJournal{DoneFunc: o.done(msgs[0]), asked: make(chan struct{}), release: make(chan struct{})}
	if err := s.Send(context.Background(), msgs[0], j); err != nil {
		t.Fatal(err)
	}
	<-j.asked
	// The content's last line is at the server, and no final dot.
	tail := msgs[0].Data[len(msgs[0].Data)-20:]
	var in string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		conns, _ := ts.snapshot()
		if in = string(conns[0].In); strings.Contains(in, string(tail)) {
			break
		}
	}
	close(j.release)
	i := strings.Index(in, string(tail))
	if i < 0 {
		t.Errorf("while Ready waited, the server had %d bytes, without the content's end", len(in))
	} else if strings.Contains(in[i:], ".\r\n") {
		t.Errorf("the final dot went before Ready returned")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o.check(t, msgs)
	_, got := ts.snapshot()
	deliveredOnce(t, got, msgs)
}

// endingTracker notes the Tracker's calls, in order, and at Ending what
// the server had read.
type endingTracker struct {
	DoneFunc
	ts    *testServer
	calls *[]string
	in    *string // the server's input at Ending, once it has DATA
}

func (e endingTracker) Begun() { *e.calls = append(*e.calls, "Begun") }

func (e endingTracker) Ending() {
	*e.calls = append(*e.calls, "Ending")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		conns, _ := e.ts.snapshot()
		if *e.in = string(conns[0].In); strings.Contains(*e.in, "DATA\r\n") {
			return
		}
	}
}

func (e endingTracker) Ready() error {
	*e.calls = append(*e.calls, "Ready")
	return nil
}

// TestSMTPEnding: a command at a time, the Tracker hears of DATA
// (Ending) once it is on the wire and before the content goes, then
// Ready before the end; pipelined, DATA goes with RCPT TO, and only Ready
// comes, after their replies, so that a run killed while the server sits
// on RCPT TO has written no "handover" record.
func TestSMTPEnding(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			msgs := testMessages(1)
			s, err := DialSMTP(context.Background(), withoutExt(ts.config(t, NoTLS), w.without))
			if err != nil {
				t.Fatal(err)
			}
			o := newOutcomes()
			var calls []string
			var in string
			if err := s.Send(context.Background(), msgs[0], endingTracker{DoneFunc: o.done(msgs[0]), ts: ts, calls: &calls, in: &in}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			o.check(t, msgs)
			want := "Begun Ready"
			if w.name == "classic" {
				want = "Begun Ending Ready"
				tail := msgs[0].Data[len(msgs[0].Data)-20:]
				if !strings.HasSuffix(in, "DATA\r\n") || strings.Contains(in, string(tail)) {
					t.Errorf("at Ending the server had read %q; want DATA last, and none of the content", in[max(0, len(in)-40):])
				}
			}
			if got := strings.Join(calls, " "); got != want {
				t.Errorf("the Tracker's calls: %s, want %s", got, want)
			}
		})
	}
}

// TestSMTPSendWaitsForEnd: Send takes a slot that the connection gives
// back once what ends a message is written, not when it takes the
// message: with one connection and the server sitting on the first
// message's RCPT TO, a second Send waits; once the first message is
// ended, it returns.
func TestSMTPSendWaitsForEnd(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			hold := make(chan struct{})
			atRcpt := make(chan string, 4)
			ts := startServer(t, serverOpts{more: []smtptest.Option{smtptest.Fault{Stage: smtptest.AtRcpt, Times: 1, Hold: hold, Notify: atRcpt}}})
			msgs := testMessages(3)
			s, err := DialSMTP(context.Background(), withoutExt(ts.config(t, NoTLS), w.without))
			if err != nil {
				t.Fatal(err)
			}
			o := newOutcomes()
			if err := s.Send(context.Background(), msgs[0], o.done(msgs[0])); err != nil {
				t.Fatal(err)
			}
			<-atRcpt // the connection has the first message, and waits
			second := make(chan error, 1)
			go func() { second <- s.Send(context.Background(), msgs[1], o.done(msgs[1])) }()
			select {
			case err := <-second:
				t.Fatalf("a second Send returned (%v) while the first message was at RCPT TO", err)
			case <-time.After(100 * time.Millisecond):
			}
			close(hold)
			if err := <-second; err != nil {
				t.Fatal(err)
			}
			if err := s.Send(context.Background(), msgs[2], o.done(msgs[2])); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			o.check(t, msgs)
			_, got := ts.snapshot()
			deliveredOnce(t, got, msgs)
		})
	}
}

// TestSMTPHandedBackWakes: a message handed back by a connection turned
// away wakes a worker already waiting for the queue, which is still open.
// Before, it sat in the retry list until the queue closed, and a send
// whose last message was handed back waited for its outcome for ever.
func TestSMTPHandedBackWakes(t *testing.T) {
	dialed := make(chan string, 1)
	refuse := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		select {
		case <-dialed:
		case <-t.Context().Done():
		}
		close(sent)
	}()
	ts := startServer(t, serverOpts{more: []smtptest.Option{
		// The second connection is turned away as it opens, before any
		// message; its worker tries again with its first message.
		smtptest.Fault{Stage: smtptest.AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, WhenOpen: 1, Times: 1},
		// Then it waits at its greeting until the test has seen the other
		// message sent, and is turned away; the other message waits at
		// its end until the second connection is tried, so that the
		// first connection doesn't take both.
		smtptest.Fault{Stage: smtptest.AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, WhenOpen: 1, Times: 1, Notify: dialed, Hold: refuse},
		smtptest.Fault{Stage: smtptest.AtData, Hold: sent},
	}})
	cfg := ts.config(t, NoTLS)
	cfg.Connections = 2
	s, err := DialSMTP(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs := testMessages(2)
	o := newOutcomes()
	for _, m := range msgs {
		if err := s.Send(context.Background(), m, o.done(m)); err != nil {
			t.Fatal(err)
		}
	}
	<-sent // one message is with the connection being opened
	var first string
	select {
	case first = <-o.ch: // the other is sent, by the first connection
	case <-time.After(5 * time.Second):
		t.Fatal("no message sent while the second connection waited")
	}
	// Give its worker the time to wait on the (empty, open) queue; if it
	// isn't there yet, it finds the message on its way, as well.
	time.Sleep(20 * time.Millisecond)
	close(refuse)
	for _, m := range msgs {
		if m.To == first {
			continue
		}
		if err := o.wait(t, m); err != nil {
			t.Errorf("%s: %v", m.To, err)
		}
	}
	if n := s.workers(); n != 1 {
		t.Errorf("%d workers left before Close, want 1: the turned-away one retired", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, got := ts.snapshot()
	deliveredOnce(t, got, msgs)
	if s.Dials() != 1 {
		t.Errorf("%d dials, want 1: the turned-away one isn't counted", s.Dials())
	}
}
