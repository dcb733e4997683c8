package deliver

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// This file holds the tests of the connections after the first, which
// open as DialSMTP starts them, before any message (worker.open).

// waitLoggedIn waits until the server has seen n connections log in.
func waitLoggedIn(t *testing.T, ts *testServer, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		in := 0
		for _, c := range ts.Conns() {
			if len(c.Auths) > 0 {
				in++
			}
		}
		if in >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server saw %d connections log in, want %d before any message", in, n)
		}
	}
}

// TestSMTPConnectionsOpenEarly: every connection is opened and logged in
// once DialSMTP returns, before any message, and a Close without a
// message says QUIT on each, with no MAIL.
func TestSMTPConnectionsOpenEarly(t *testing.T) {
	for _, sec := range []Security{NoTLS, StartTLS} {
		t.Run(sec.String(), func(t *testing.T) {
			o := serverOpts{mechs: []string{"PLAIN"}}
			if sec == StartTLS {
				o.cert = &certs(t).good
			}
			ts := startServer(t, o)
			cfg := ts.config(t, sec)
			cfg.Connections = 3
			var debug bytes.Buffer
			cfg.Debug = &debug
			s, err := DialSMTP(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			waitLoggedIn(t, ts, 3)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			conns := ts.Conns()
			if len(conns) != 3 || s.Dials() != 3 {
				t.Fatalf("%d connections, %d dials; want 3, 3", len(conns), s.Dials())
			}
			for _, c := range conns {
				if len(c.Auths) != 1 || len(c.Mails) != 0 {
					t.Errorf("connection %d: %d logins, MAIL %q; want one login, no MAIL", c.ID, len(c.Auths), c.Mails)
				}
				if v := verbs(c.Commands()); sec == NoTLS && (len(v) == 0 || v[len(v)-1] != "QUIT") {
					t.Errorf("connection %d: commands %v, want QUIT last", c.ID, v)
				}
			}
			// The transcript tells each connection by its number.
			out := debug.String()
			for id := 1; id <= 3; id++ {
				for _, want := range []string{
					fmt.Sprintf("[%d] -- connecting to", id),
					fmt.Sprintf("[%d] C: EHLO %s", id, testHELO),
					fmt.Sprintf("[%d] C: AUTH PLAIN ***", id),
					fmt.Sprintf("[%d] S: 235", id),
					fmt.Sprintf("[%d] C: QUIT", id),
				} {
					if !strings.Contains(out, want) {
						t.Errorf("transcript lacks %q", want)
					}
				}
			}
			if strings.Contains(out, "C: MAIL") {
				t.Errorf("MAIL in the transcript of a Close without a message")
			}
			if t.Failed() {
				t.Logf("transcript:\n%s", out)
			}
		})
	}
}

// TestSMTPEarlyTurnedAway: a server that takes one connection turns the
// second and third away as they open (421 at EHLO); DialSMTP does not
// fail, and every message goes over the first.
func TestSMTPEarlyTurnedAway(t *testing.T) {
	refused := make(chan string, 8)
	ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}, more: []smtptest.Option{
		smtptest.Fault{Stage: smtptest.AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, WhenOpen: 1, Notify: refused},
	}})
	cfg := ts.config(t, NoTLS)
	cfg.Connections = 3
	var debug bytes.Buffer
	cfg.Debug = &debug
	ctx := context.Background()
	s, err := DialSMTP(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSMTP: %v", err)
	}
	// Both early opens are turned away before the first message: an open
	// slow enough to reach the server after the first connection's QUIT
	// would be let in, and log in for nothing.
	for range 2 {
		select {
		case <-refused:
		case <-time.After(10 * time.Second):
			t.Fatal("the second and third connections were not turned away as they opened")
		}
	}
	msgs := testMessages(10)
	o := newOutcomes()
	for _, m := range msgs {
		if err := s.Send(ctx, m, o.done(m)); err != nil {
			t.Fatalf("Send %s: %v", m.To, err)
		}
	}
	// Closed once every message is out: a worker that finds the queue
	// closed leaves, and one turned away with a message would then be the
	// last standing, which tries harder (TestSMTPTurnedAwayLast).
	for _, m := range msgs {
		if err := o.wait(t, m); err != nil {
			t.Errorf("%s: %v", m.To, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	o.check(t, msgs)
	conns, got := ts.snapshot()
	deliveredOnce(t, got, msgs)
	// Each of the two was tried as it opened, and perhaps once more with
	// a message, handed back as it retired.
	if len(conns) < 3 || conns[0].Delivered != len(msgs) || s.Dials() != 1 {
		t.Fatalf("%d connections, the first delivered %d, %d dials; want at least 3, %d, 1", len(conns), conns[0].Delivered, s.Dials(), len(msgs))
	}
	for _, c := range conns[1:] {
		if len(c.Hellos) != 0 || len(c.Mails) != 0 {
			t.Errorf("connection %d: sessions %v, MAIL %q; want it turned away", c.ID, c.Hellos, c.Mails)
		}
	}
	out := debug.String()
	for id := 2; id <= 3; id++ {
		if want := fmt.Sprintf("[%d] -- could not open the connection before any message", id); !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
}

// TestSMTPEarlyIdle: connections that opened before the first message
// and idled (as through a long check) are checked with NOOP before their
// first message, and opened again when the server closed them meanwhile.
func TestSMTPEarlyIdle(t *testing.T) {
	for _, dropped := range []bool{false, true} {
		t.Run(fmt.Sprintf("dropped=%v", dropped), func(t *testing.T) {
			gate := make(chan struct{})
			ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}, more: []smtptest.Option{
				// The first message waits at its end until the other is
				// sent: each goes over its own connection.
				smtptest.Fault{Stage: smtptest.AtData, Times: 1, Hold: gate},
			}})
			cfg := ts.config(t, NoTLS)
			cfg.Connections = 2
			cfg.IdleCheck = time.Nanosecond // idled for longer: any wait does
			var debug bytes.Buffer
			cfg.Debug = &debug
			ctx := context.Background()
			s, err := DialSMTP(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			waitLoggedIn(t, ts, 2)
			if dropped {
				ts.Drop()
			}
			msgs := testMessages(2)
			o := newOutcomes()
			for _, m := range msgs {
				if err := s.Send(ctx, m, o.done(m)); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-o.ch:
			case <-time.After(5 * time.Second):
				t.Fatal("no message sent while the other waited")
			}
			close(gate)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			o.allSent(t, msgs)
			conns, got := ts.snapshot()
			deliveredOnce(t, got, msgs)
			senders := conns
			if dropped {
				// The two early ones said NOOP (after the server closed
				// them: only the transcript has it), lost the server, and
				// each worker opened one anew, with no NOOP there.
				if len(conns) != 4 || s.Dials() != 4 {
					t.Fatalf("%d connections, %d dials; want 4, 4", len(conns), s.Dials())
				}
				for _, c := range conns[:2] {
					if len(c.Mails) != 0 {
						t.Errorf("early connection %d: MAIL %q, want none", c.ID, c.Mails)
					}
				}
				for id := 1; id <= 2; id++ {
					if want := fmt.Sprintf("[%d] C: NOOP", id); !strings.Contains(debug.String(), want) {
						t.Errorf("transcript lacks %q:\n%s", want, debug.String())
					}
				}
				senders = conns[2:]
			} else if len(conns) != 2 || s.Dials() != 2 {
				t.Fatalf("%d connections, %d dials; want 2, 2", len(conns), s.Dials())
			}
			for _, c := range senders {
				v := verbs(c.Commands())
				noop, mail := slices.Index(v, "NOOP"), slices.Index(v, "MAIL")
				if c.Delivered != 1 || mail < 0 || dropped != (noop < 0) || !dropped && noop > mail {
					t.Errorf("connection %d: %d delivered, commands %v; want one message, NOOP before MAIL unless new", c.ID, c.Delivered, v)
				}
			}
		})
	}
}

// TestSMTPEarlyOpenCalledOff: a connection still being opened when
// DialSMTP's context is canceled (the campaign abandoned the dial) ends at
// once, however long the timeout; Close says QUIT on the first and
// returns.
func TestSMTPEarlyOpenCalledOff(t *testing.T) {
	stalled := make(chan string, 1)
	hold := make(chan struct{})
	defer close(hold)
	ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}, more: []smtptest.Option{
		// The second connection gets no reply to its EHLO.
		smtptest.Fault{Stage: smtptest.AtHello, WhenOpen: 1, Notify: stalled, Hold: hold},
	}})
	cfg := ts.config(t, NoTLS)
	cfg.Connections = 2
	cfg.Timeout = 10 * time.Minute
	var debug bytes.Buffer
	cfg.Debug = &debug
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := DialSMTP(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(5 * time.Second):
		t.Fatal("the second connection did not open before any message")
	}
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(time.Minute): // a watchdog, far from the moment it takes
		t.Fatal("Close waits for the connection being opened (timeout 10m)")
	}
	conns := ts.Conns()
	if len(conns) != 2 || s.Dials() != 1 {
		t.Fatalf("%d connections, %d dials; want 2, 1", len(conns), s.Dials())
	}
	if v := verbs(conns[0].Commands()); len(conns[0].Mails) != 0 || len(v) == 0 || v[len(v)-1] != "QUIT" {
		t.Errorf("first connection: commands %v; want QUIT last, no MAIL", v)
	}
	if want := "[2] -- the connection was called off before any message"; !strings.Contains(debug.String(), want) {
		t.Errorf("transcript lacks %q:\n%s", want, debug.String())
	}
}

// TestSMTPEarlyMaxPerConnection: connections opened before the first
// message are replaced after max_per_connection messages, as any.
func TestSMTPEarlyMaxPerConnection(t *testing.T) {
	ts := startServer(t, serverOpts{mechs: []string{"PLAIN"}})
	cfg := ts.config(t, NoTLS)
	cfg.Connections, cfg.MaxPerConnection = 2, 3
	msgs := testMessages(10)
	s, o := sendAll(t, cfg, msgs)
	o.allSent(t, msgs)
	conns, got := ts.snapshot()
	deliveredOnce(t, got, msgs)
	if s.Dials() != len(conns) || len(conns) < 4 {
		t.Errorf("%d connections, %d dials; want at least 4 (10 messages, 3 each), as many dials", len(conns), s.Dials())
	}
	for _, c := range conns {
		if c.Delivered > 3 || len(c.Auths) != 1 {
			t.Errorf("connection %d: %d messages, %d logins; want at most 3, one", c.ID, c.Delivered, len(c.Auths))
		}
	}
}
