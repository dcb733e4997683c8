// Package smtptest provides an SMTP server for the tests of SMTP clients, as
// net/http/httptest does for HTTP: a non-test package that only tests import.
//
// Start starts one on 127.0.0.1. It speaks SMTP (RFC 5321) as
// github.com/emersion/go-smtp does, and by default offers PIPELINING and
// CHUNKING (BDAT, RFC 3030), without TLS or AUTH. Options change that:
//
//   - StartTLS and ImplicitTLS give it TLS, with a certificate that a CA
//     (NewCA) made in the test issued;
//   - WithAuth asks for AUTH PLAIN or LOGIN as one user, or offers it, or
//     XOAUTH2 and OAUTHBEARER with an access token the test can change;
//   - Without leaves PIPELINING or CHUNKING out of the EHLO reply, and
//     RefuseBDAT offers CHUNKING and refuses BDAT, as some servers do;
//   - a Fault makes it misbehave on demand: it rejects a command with a
//     reply code (and an RFC 3463 enhanced code), hangs up, stalls, waits
//     for the test, swallows a message without a word, or answers with a
//     reply that never ends, at EHLO, MAIL FROM, RCPT TO or the message
//     (DATA or BDAT alike), for one recipient or all, a number of times or
//     always.
//
// The server records what it was told: every byte of each connection and
// its commands (Conns), the messages it accepted (Messages), and counts by
// recipient (Attempts, Received, Delivered).
package smtptest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// An Option configures a server at Start. A Fault is one too.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is what the options say.
type config struct {
	cert       *tls.Certificate
	implicit   bool
	auth       *Auth
	without    []Extension
	refuseBDAT bool
	faults     []Fault
}

// StartTLS offers STARTTLS with cert; AUTH, with WithAuth, is then offered
// only after it.
func StartTLS(cert tls.Certificate) Option {
	return optionFunc(func(c *config) { c.cert, c.implicit = &cert, false })
}

// ImplicitTLS speaks TLS from the first byte (the way of port 465), with
// cert.
func ImplicitTLS(cert tls.Certificate) Option {
	return optionFunc(func(c *config) { c.cert, c.implicit = &cert, true })
}

// Auth is the login a server with WithAuth takes.
type Auth struct {
	Username, Password string
	// Mechanisms are the mechanisms offered, "PLAIN" and "LOGIN" if none.
	// Another name is offered all the same, and refused when tried (504),
	// for the tests of a client that has no mechanism in common.
	Mechanisms []string
	// Optional takes mail without AUTH too; by default MAIL FROM before
	// AUTH is refused (502 5.7.0).
	Optional bool
	// Token, if not nil, is the only OAuth2 access token that XOAUTH2 and
	// OAUTHBEARER take, asked at each login so that a test can change it;
	// those mechanisms must be among Mechanisms to be offered. A token
	// refused gets the mechanism's error challenge, then 535 5.7.8.
	Token func() string
}

// WithAuth offers AUTH and takes a's login: in plain text only when the
// server has no TLS, as go-smtp does.
func WithAuth(a Auth) Option {
	if len(a.Mechanisms) == 0 {
		a.Mechanisms = []string{"PLAIN", "LOGIN"}
	}
	return optionFunc(func(c *config) { c.auth = &a })
}

// Extension is an SMTP extension the server can leave out of its EHLO
// reply.
type Extension string

const (
	Pipelining Extension = "PIPELINING" // RFC 2920
	Chunking   Extension = "CHUNKING"   // RFC 3030: BDAT
)

// Without leaves exts out of the EHLO reply (Without() leaves nothing
// out); without CHUNKING, BDAT is refused (502 5.5.1) as by a server that
// doesn't know it. go-smtp offers
// both and has no option to leave them out, so the server takes their
// lines out of its EHLO reply (see withoutExtensions); it can't inside
// TLS, which go-smtp writes itself, so Without and TLS don't go together.
func Without(exts ...Extension) Option {
	return optionFunc(func(c *config) { c.without = append(c.without, exts...) })
}

// RefuseBDAT offers CHUNKING and refuses BDAT (502 5.5.1), as a server
// that offers more than it does.
func RefuseBDAT() Option {
	return optionFunc(func(c *config) { c.refuseBDAT = true })
}

func (c *config) check() error {
	for _, e := range c.without {
		if e != Pipelining && e != Chunking {
			return fmt.Errorf("can't leave out %q: only %s and %s", e, Pipelining, Chunking)
		}
	}
	switch {
	case len(c.without) > 0 && c.cert != nil:
		return errors.New("Without can't be combined with TLS: go-smtp encrypts its EHLO reply past where the server can change it")
	case c.refuseBDAT && slices.Contains(c.without, Chunking):
		return errors.New("RefuseBDAT offers CHUNKING, which Without leaves out")
	case c.auth != nil && c.auth.Username == "":
		return errors.New("WithAuth needs a Username")
	}
	return nil
}

// offers reports whether the server offers e.
func (c *config) offers(e Extension) bool { return !slices.Contains(c.without, e) }

// Server is an SMTP server on 127.0.0.1 for tests.
type Server struct {
	t      testing.TB
	cfg    config
	port   int
	srv    *smtp.Server
	ln     net.Listener
	done   chan struct{} // closed when the server starts to stop
	served chan struct{} // closed when Serve has returned
	stop   sync.Once

	mu        sync.Mutex
	faults    []*fault
	conns     []*conn // every connection accepted, in order
	open      int     // connections open now
	peak      int     // most connections open at once
	attempts  map[string]int
	received  map[string]int
	delivered map[string]int
	messages  []Message
}

// Start starts a server; it stops at t.Cleanup, or at Close. Invalid
// options are a fatal error of t, so Start must be called from the test's
// goroutine.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		t:         t,
		done:      make(chan struct{}),
		served:    make(chan struct{}),
		attempts:  map[string]int{},
		received:  map[string]int{},
		delivered: map[string]int{},
	}
	for _, o := range opts {
		o.apply(&s.cfg)
	}
	if err := s.cfg.check(); err != nil {
		t.Fatalf("smtptest: %v", err)
		return nil
	}
	if !s.setFaults(s.cfg.faults) {
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: %v", err)
		return nil
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	s.ln = &listener{Listener: l, s: s}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "mx.test"
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	if cert := s.cfg.cert; cert != nil {
		tc := &tls.Config{Certificates: []tls.Certificate{*cert}}
		if s.cfg.implicit {
			s.ln = tls.NewListener(s.ln, tc)
		} else {
			s.srv.TLSConfig = tc
		}
	}
	s.srv.AllowInsecureAuth = s.cfg.cert == nil
	go func() {
		defer close(s.served)
		s.srv.Serve(s.ln)
	}()
	t.Cleanup(s.Close)
	return s
}

// Host returns the address the server listens on, "127.0.0.1".
func (s *Server) Host() string { return "127.0.0.1" }

// Port returns the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// SetFaults replaces the faults (for a second run against the same server);
// the new faults have all their strikes left. The counts and messages stay.
// An invalid fault is a fatal error of the test, so SetFaults must be called
// from the test's goroutine.
func (s *Server) SetFaults(faults ...Fault) {
	s.t.Helper()
	s.setFaults(faults)
}

func (s *Server) setFaults(faults []Fault) bool {
	s.t.Helper()
	fs := make([]*fault, len(faults))
	for i, f := range faults {
		if err := f.check(); err != nil {
			s.t.Fatalf("smtptest: fault %d (%s %q): %v", i, stageName(f.Stage), f.Rcpt, err)
			return false
		}
		fs[i] = &fault{Fault: f, rcpt: strings.ToLower(f.Rcpt)}
	}
	s.mu.Lock()
	s.faults = fs
	s.mu.Unlock()
	return true
}

// Delivered returns, for each recipient address (lower-cased), how many
// times the server accepted a message for it (replied 250 to its end). A
// message counts once the server has decided to reply 250, before the
// reply is written: a client that gave up waiting (see Fault.Delay)
// doesn't know the message was delivered, but the server does.
func (s *Server) Delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.delivered)
}

// Attempts returns, for each recipient, how many transactions reached RCPT
// TO for it, whatever the reply.
func (s *Server) Attempts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.attempts)
}

// Received returns, for each recipient, how many times the server read a
// message for it to its end, whatever it then replied (or didn't):
// Received minus Delivered is how often the server got the bytes but did not
// say OK.
func (s *Server) Received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.received)
}

// Message is a message the server accepted, and how it came.
type Message struct {
	Conn int    // the connection's ID (see Conn)
	Helo string // the name the client gave in EHLO
	TLS  bool
	User string // who logged in; "" without AUTH
	From string // MAIL FROM
	To   []string
	// Data is the message as the client sent it, with CRLF line ends and
	// DATA's dot-stuffing removed.
	Data []byte
}

// Messages returns the accepted messages, in order of acceptance.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := make([]Message, len(s.messages))
	for i, m := range s.messages {
		m.To = slices.Clone(m.To)
		m.Data = slices.Clone(m.Data)
		msgs[i] = m
	}
	return msgs
}

// Connections returns how many connections the server has accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Conns returns what the server saw of each connection, in the order it
// accepted them.
func (s *Server) Conns() []Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Conn, len(s.conns))
	for i, c := range s.conns {
		out[i] = c.record()
	}
	return out
}

// Peak returns the most connections that were open at once, from when the
// server accepted each to when either side closed it.
func (s *Server) Peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Drop closes every open connection from the server's side without a
// word, as a server that times out idle clients does.
func (s *Server) Drop() {
	for _, c := range s.openConns() {
		c.Close()
	}
}

func (s *Server) openConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var open []*conn
	for _, c := range s.conns {
		if !c.closed {
			open = append(open, c)
		}
	}
	return open
}

// Close stops the server, as a server that goes away: it stops listening
// and closes every connection. It waits for every goroutine the server
// started, and may be called from any goroutine, more than once.
func (s *Server) Close() {
	s.stop.Do(func() {
		close(s.done) // ends every Hold and Delay
		s.ln.Close()
		<-s.served // no connection is accepted from here on
		s.Drop()   // ends every read, including a Silent fault's
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Shutdown closes the (closed) listener again and waits for the
		// connections' goroutines.
		if err := s.srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
			s.t.Errorf("smtptest: the server did not stop: %v", err)
		}
	})
}

// wait waits for f's Hold and Delay, or until the server stops; it
// reports whether it waited the whole time.
func (s *Server) wait(f Fault) bool {
	if f.Hold != nil {
		select {
		case <-f.Hold:
		case <-s.done:
			return false
		}
	}
	if f.Delay <= 0 {
		return true
	}
	timer := time.NewTimer(f.Delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-s.done:
		return false
	}
}

// strike finds the fault that applies at stage on c to one of rcpts, and
// counts the strike; s.mu is held.
func (s *Server) strike(stage Stage, c *conn, rcpts []string) (Fault, string, bool) {
	for _, f := range s.faults {
		if f.Stage != stage || (f.Times > 0 && f.struck >= f.Times) || c.delivered < f.AfterMessages {
			continue
		}
		if f.WhenOpen > 0 && s.sessions(c) < f.WhenOpen {
			continue
		}
		for _, r := range rcpts {
			if f.rcpt == "" || f.rcpt == r {
				f.struck++
				return f.Fault, r, true
			}
		}
	}
	return Fault{}, "", false
}

// strikes is strike, with s.mu not held.
func (s *Server) strikes(stage Stage, c *conn, rcpts []string) (Fault, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.strike(stage, c, rcpts)
}

// sessions counts the connections other than c with a session open;
// s.mu is held.
func (s *Server) sessions(c *conn) int {
	n := 0
	for _, o := range s.conns {
		if o != c && o.admitted && !o.closed {
			n++
		}
	}
	return n
}

// count adds one to m for each of rcpts.
func (s *Server) count(m map[string]int, rcpts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rcpts {
		m[r]++
	}
}
