// Package smtptest provides an SMTP server for the tests of SMTP clients, as
// net/http/httptest does for HTTP: a non-test package that only tests import.
//
// The server listens on 127.0.0.1 without TLS or AUTH, speaks SMTP (RFC 5321)
// as github.com/emersion/go-smtp does, records every transaction, and fails
// on demand: a Fault rejects a command with a reply code (and an RFC 3463
// enhanced code), hangs up, stalls, swallows a message without a word, or
// answers with a reply that never ends, for one recipient or all, a number
// of times or always.
//
// Messages are sent with DATA, where the faults are: the server hides
// go-smtp's CHUNKING from its EHLO reply, and refuses a BDAT transaction
// all the same. It offers PIPELINING.
package smtptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Stage is where in a transaction a fault strikes.
type Stage int

const (
	AtMail Stage = iota // reply to MAIL FROM
	AtRcpt              // reply to RCPT TO
	AtData              // reply to the final dot (end of DATA)
)

func stageName(st Stage) string {
	switch st {
	case AtMail:
		return "AtMail"
	case AtRcpt:
		return "AtRcpt"
	case AtData:
		return "AtData"
	}
	return fmt.Sprintf("Stage(%d)", int(st))
}

// Fault makes the server misbehave for one recipient.
//
// When several faults apply to the same command, the first in order that has
// strikes left strikes, so faults for the same recipient and stage run in
// sequence: {Times: 1, Code: 451} then {Times: 1, HangUp: true} answers 451
// to the first attempt, hangs up on the second, and accepts the third.
//
// A fault at data strikes once for the transaction (there is one reply to the
// final dot), when any of its recipients matches; that reply is then the
// fate of every recipient of the transaction.
type Fault struct {
	// Rcpt is the recipient the fault applies to (case-insensitive); ""
	// for every recipient. A fault AtMail must leave it "": at MAIL FROM
	// the server doesn't know the recipients yet.
	Rcpt  string
	Stage Stage
	// Code is the reply, 4xx or 5xx, e.g. 451; 0 for none, for a fault that
	// only hangs up, stalls or notifies. Enhanced is its enhanced code, e.g.
	// [3]int{4, 7, 1}; zero for X.0.0, where X is the class of Code.
	Code     int
	Enhanced [3]int
	// Times is how many times the fault strikes before the server behaves;
	// 0 for always. Strikes are counted per fault, across connections, as
	// the fault is chosen: when the command arrives, or AtData when the
	// message starts.
	Times int
	// HangUp closes the connection instead of replying or, with a Code,
	// right after the reply (421 with HangUp is what a real server does
	// when it goes away).
	HangUp bool
	// Silent, AtData only: read the whole message, then never reply; the
	// connection stays open until the client closes it or the server
	// stops. The message is Received but not Delivered.
	Silent bool
	// Delay is how long the server waits before it acts (replies, or hangs
	// up): a slow server. A fault with only a Delay replies as usual after
	// it. The wait ends early when the server stops.
	Delay time.Duration
	// MidData, AtData only: hang up in the middle of the message, after
	// reading its first bytes and before the final dot.
	MidData bool
	// Flood answers with a reply that never ends: "250-" lines, written
	// until the client hangs up or the server stops, then the server
	// hangs up. AtData the whole message is read first (it is Received,
	// not Delivered).
	Flood bool
	// Notify, if not nil, receives the recipient (lower-cased; "" AtMail)
	// when the fault acts: when the command arrives AtMail and AtRcpt, once
	// the whole message is in AtData, once its first bytes are with
	// MidData; before any Delay. The send never blocks: when nobody is
	// ready to receive, the notice is dropped, so give the channel a buffer
	// (and don't close it while the server runs).
	Notify chan<- string
}

// check reports what is wrong with f.
func (f Fault) check() error {
	switch {
	case f.Stage < AtMail || f.Stage > AtData:
		return fmt.Errorf("unknown stage %d", int(f.Stage))
	case f.Stage == AtMail && f.Rcpt != "":
		return errors.New("a fault AtMail can't name a recipient: the server doesn't know it at MAIL FROM")
	case f.Code != 0 && (f.Code < 400 || f.Code > 599):
		return fmt.Errorf("code %d is not a 4xx or 5xx reply", f.Code)
	case f.Enhanced != [3]int{} && f.Code == 0:
		return errors.New("an enhanced code needs a Code")
	case f.Enhanced != [3]int{} && f.Enhanced[0] != f.Code/100:
		return fmt.Errorf("enhanced code %d.%d.%d is not of the class of code %d",
			f.Enhanced[0], f.Enhanced[1], f.Enhanced[2], f.Code)
	case f.Times < 0:
		return errors.New("negative Times")
	case f.Delay < 0:
		return errors.New("negative Delay")
	case (f.Silent || f.MidData) && f.Stage != AtData:
		return errors.New("faults Silent and MidData are for the stage AtData only")
	case f.Silent && (f.Code != 0 || f.HangUp || f.MidData || f.Delay != 0):
		return errors.New("a Silent fault can't have a Code, HangUp, MidData or Delay")
	case f.MidData && f.Code != 0:
		return errors.New("MidData can't be combined with a Code: the server hangs up before it could reply")
	case f.Flood && (f.Code != 0 || f.HangUp || f.Silent || f.MidData):
		return errors.New("a Flood fault can't have a Code, HangUp, Silent or MidData: its reply never ends")
	}
	return nil
}

// reply returns the error that makes go-smtp send f's reply.
func (f Fault) reply() error {
	return &smtp.SMTPError{
		Code:         f.Code,
		EnhancedCode: smtp.EnhancedCode(f.Enhanced), // zero: go-smtp sends X.0.0
		Message:      "smtptest: injected fault",
	}
}

// fault is a Fault as the server keeps it.
type fault struct {
	Fault
	rcpt   string // lower-cased
	struck int
}

// Server is an SMTP server on 127.0.0.1 for tests: no TLS, no AUTH (batch
// allows plain text to loopback), that records every transaction and fails
// on demand.
type Server struct {
	t      testing.TB
	port   int
	srv    *smtp.Server
	ln     net.Listener
	done   chan struct{} // closed when the server starts to stop
	served chan struct{} // closed when Serve has returned

	mu        sync.Mutex
	faults    []*fault
	conns     map[*conn]struct{} // open connections
	accepted  int
	attempts  map[string]int
	received  map[string]int
	delivered map[string]int
	messages  [][]byte
}

// Start starts a server; it stops at t.Cleanup. An invalid fault is a fatal
// error of t, so Start must be called from the test's goroutine.
func Start(t testing.TB, faults ...Fault) *Server {
	t.Helper()
	s := &Server{
		t:         t,
		done:      make(chan struct{}),
		served:    make(chan struct{}),
		conns:     map[*conn]struct{}{},
		attempts:  map[string]int{},
		received:  map[string]int{},
		delivered: map[string]int{},
	}
	if !s.setFaults(faults) {
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
	s.srv.Domain = "localhost"
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() {
		defer close(s.served)
		s.srv.Serve(s.ln)
	}()
	t.Cleanup(s.close)
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
// times the server accepted a message for it (replied 250 to the final
// dot). A message counts once the server has decided to reply 250, before
// the reply is written: a client that gave up waiting (see Fault.Delay)
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
// message for it to the final dot, whatever it then replied (or didn't):
// Received minus Delivered is how often the server got the bytes but did not
// say OK.
func (s *Server) Received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.received)
}

// Messages returns the accepted messages' data, in order of acceptance,
// with CRLF line ends and dot-stuffing removed.
func (s *Server) Messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := make([][]byte, len(s.messages))
	for i, m := range s.messages {
		msgs[i] = append([]byte(nil), m...)
	}
	return msgs
}

// Connections returns how many connections the server has accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// close stops the server and waits for every goroutine it started.
func (s *Server) close() {
	close(s.done) // ends every Delay
	s.ln.Close()
	<-s.served // no connection is accepted from here on
	s.mu.Lock()
	open := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Close() // ends every read, including a Silent fault's
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Shutdown closes the (closed) listener again and waits for the
	// connections' goroutines.
	if err := s.srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
		s.t.Errorf("smtptest: the server did not stop: %v", err)
	}
}

// sleep waits for d, or until the server stops; it reports whether it
// waited the whole time.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-s.done:
		return false
	}
}

// strike finds the fault that applies at stage to one of rcpts, and counts
// the strike.
func (s *Server) strike(stage Stage, rcpts []string) (Fault, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.Stage != stage || (f.Times > 0 && f.struck >= f.Times) {
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

func notify(f Fault, rcpt string) {
	if f.Notify == nil {
		return
	}
	select {
	case f.Notify <- rcpt:
	default:
	}
}

// count adds one to m for each of rcpts.
func (s *Server) count(m map[string]int, rcpts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rcpts {
		m[r]++
	}
}

func (s *Server) deliver(rcpts []string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rcpts {
		s.delivered[r]++
	}
	s.messages = append(s.messages, data)
}

// listener keeps track of the connections it accepts.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, s: l.s}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.accepted++
	l.s.conns[c] = struct{}{}
	return c, nil
}

// conn is a connection that can hang up right after the server's next
// reply.
type conn struct {
	net.Conn
	s          *Server
	hangUpNext atomic.Bool
	closeOnce  sync.Once
}

// Write writes one reply (go-smtp flushes each line as it goes), and
// leaves CHUNKING out of the EHLO reply.
func (c *conn) Write(b []byte) (int, error) {
	if string(b) == "250-CHUNKING\r\n" {
		return len(b), nil
	}
	n, err := c.Conn.Write(b)
	if c.hangUpNext.Load() {
		c.Close()
	}
	return n, err
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

var (
	errHungUp   = errors.New("smtptest: hung up")
	errStopping = errors.New("smtptest: server stopping")
	errBDAT     = &smtp.SMTPError{
		Code:         502,
		EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message:      "smtptest: BDAT is not supported, use DATA",
	}
)

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	nc, ok := c.Conn().(*conn)
	if !ok {
		return nil, fmt.Errorf("smtptest: unexpected connection type %T", c.Conn())
	}
	return &session{s: s, c: nc}, nil
}

// session is one go-smtp session: the commands after an EHLO.
type session struct {
	s     *Server
	c     *conn
	rcpts []string // accepted for the current transaction, lower-cased
}

var _ smtp.Session = (*session)(nil)

func (ss *session) Mail(string, *smtp.MailOptions) error {
	ss.rcpts = nil
	if f, _, ok := ss.s.strike(AtMail, []string{""}); ok {
		notify(f, "")
		return ss.act(f)
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	rcpt := strings.ToLower(to)
	ss.s.count(ss.s.attempts, []string{rcpt})
	if f, _, ok := ss.s.strike(AtRcpt, []string{rcpt}); ok {
		notify(f, rcpt)
		if err := ss.act(f); err != nil {
			return err
		}
	}
	ss.rcpts = append(ss.rcpts, rcpt)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if _, ok := r.(*io.PipeReader); ok {
		return errBDAT // go-smtp hands BDAT chunks over through a pipe
	}
	rcpts := ss.rcpts
	f, rcpt, struck := ss.s.strike(AtData, rcpts)
	if struck && f.MidData {
		var first [1]byte
		io.ReadFull(r, first[:])
		notify(f, rcpt)
		ss.s.sleep(f.Delay)
		ss.c.Close()
		return errHungUp
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.count(ss.s.received, rcpts)
	if !struck {
		ss.s.deliver(rcpts, data)
		return nil
	}
	notify(f, rcpt)
	if f.Silent {
		ss.hold()
		return errHungUp
	}
	if err := ss.act(f); err != nil {
		return err
	}
	ss.s.deliver(rcpts, data)
	return nil
}

// act does what f says in place of the usual reply; nil lets the usual
// reply go.
func (ss *session) act(f Fault) error {
	if !ss.s.sleep(f.Delay) {
		ss.c.Close()
		return errStopping
	}
	switch {
	case f.Flood:
		ss.flood()
		return errHungUp
	case f.HangUp && f.Code == 0:
		ss.c.Close()
		return errHungUp
	case f.HangUp:
		ss.c.hangUpNext.Store(true)
	}
	if f.Code == 0 {
		return nil
	}
	return f.reply()
}

// flood writes "250-" lines until the client hangs up or the server stops
// (which closes the connection), then hangs up. go-smtp has flushed its
// replies so far: the lines go straight to the connection.
func (ss *session) flood() {
	var b strings.Builder
	for b.Len() < 4<<10 {
		b.WriteString("250-smtptest: and there is more\r\n")
	}
	lines := []byte(b.String())
	for {
		if _, err := ss.c.Conn.Write(lines); err != nil {
			break
		}
	}
	ss.c.Close()
}

// hold keeps the connection open without a word until the client closes it
// or the server stops (which closes it), then hangs up.
func (ss *session) hold() {
	ss.c.SetReadDeadline(time.Time{})
	io.Copy(io.Discard, ss.c.Conn)
	ss.c.Close()
}

func (ss *session) Reset() { ss.rcpts = nil }

func (ss *session) Logout() error { return nil }
