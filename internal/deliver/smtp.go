package deliver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/batch-mailer/batch/internal/render"
)

// SMTPConfig says how to reach and use a submission server.
type SMTPConfig struct {
	Host             string
	Port             int
	Security         Security
	Username         string // "" for no AUTH
	Password         string
	Auth             Auth           // how to log in: the password by default
	Token            Token          // the access token, for AuthXOAUTH2 and AuthOAuthBearer
	RootCAs          *x509.CertPool // nil for the system's
	Roots            *Roots         // if not nil, in RootCAs' place: the system's and one's own, one's own first
	HELO             string         // the name batch gives in EHLO
	Timeout          time.Duration  // for connecting and each command
	Connections      int            // sending in parallel
	Queue            int            // messages of up to QueuedMax bytes that may wait for a connection, beyond one for each
	MaxPerConnection int            // messages before a new connection
	Limiter          *Limiter       // nil for no limit
	Sender           string         // MAIL FROM; "" for each message's From
	Debug            io.Writer      // the SMTP dialogue, secrets redacted; nil for none
	IdleCheck        time.Duration  // NOOP a connection idle this long before reuse

	// remote makes tests treat a loopback server as a remote one, where
	// AUTH needs TLS.
	remote bool
	// redialWait is the first pause before opening again a connection
	// the server turned away for now; 1s unless a test says otherwise.
	redialWait time.Duration
	// without are extensions to take as not offered, for tests of each
	// way of sending (PIPELINING, CHUNKING).
	without []string
}

// SMTP delivers messages to a server over a set of reused connections at
// the configured pace (RFC 5321, RFC 6409). Messages are queued by Send
// and sent by one goroutine per connection; each outcome is reported
// through the callback given to Send.
type SMTP struct {
	cfg SMTPConfig
	// ctx is DialSMTP's, under which the connections after the first open
	// before their first message (see worker.open).
	ctx     context.Context
	debugMu sync.Mutex
	jobs    chan job
	wg      sync.WaitGroup
	closed  bool

	// slots (one for each connection) and queue (SMTPConfig.Queue more,
	// for messages of up to QueuedMax bytes) are the messages that may be
	// queued or on their way before their end: Send takes one of either,
	// and the connection gives it back once what ends the message is
	// written, when the server is busy with it and the goroutine that
	// feeds the queue costs the connection nothing. A Go channel would
	// wake that goroutine as each message left it, between a reply and
	// the next command.
	slots chan struct{}
	queue chan struct{}

	mu     sync.Mutex
	fatal  error
	broken chan struct{} // closed on a fatal error
	alive  int           // workers still running
	retry  []job         // messages handed back by a worker that retired
	// handed tells a worker waiting for a job that retry has one: without
	// it, a message handed back after the last job was taken waited for
	// ever, and so did the campaign for its outcome.
	handed chan struct{}

	dials atomic.Int64 // connections opened, for tests and the summary
}

var _ Sender = (*SMTP)(nil)

type job struct {
	ctx context.Context
	m   *render.Message
	t   Tracker
	// freed: the job's slot is given back. A job handed back by a worker
	// that retired keeps its slot.
	freed bool
	// queued: its slot is one of the queue's (SMTPConfig.Queue).
	queued bool
}

// SendError is a message the server did not take, or whose transfer broke.
type SendError struct {
	To    string
	Stage string // "RSET", "MAIL FROM", "RCPT TO", "DATA", "message", "before the final dot" or "end of DATA"
	Err   error  // a *smtp.SMTPError when the server replied
}

func (e *SendError) Error() string {
	if r, ok := e.Reply(); ok {
		// As the server said it: "550 5.1.1 no such user".
		reply := strconv.Itoa(r.Code)
		if r.EnhancedCode != (smtp.EnhancedCode{}) && r.EnhancedCode != smtp.NoEnhancedCode {
			reply += fmt.Sprintf(" %d.%d.%d", r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2])
		}
		return fmt.Sprintf("%s: %s: %s %s", e.To, e.Stage, reply, r.Message)
	}
	return fmt.Sprintf("%s: %s: %v", e.To, e.Stage, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// Reply returns the server's reply to the failed command, if it gave one.
func (e *SendError) Reply() (*smtp.SMTPError, bool) {
	var se *smtp.SMTPError
	ok := errors.As(e.Err, &se)
	return se, ok
}

// DialSMTP opens a first connection, secured and logged in, so that a wrong
// address, certificate or password stops the campaign before any message.
// The other connections open at once in the background, under ctx, and
// only log in: one that fails to open is tried again when its first
// message comes, and a server that takes fewer connections than asked for
// gets the messages over those it took. A connection opened after that,
// for max_per_connection or to replace one the server closed, opens under
// its message's context. Canceling ctx ends the opens still under way.
func DialSMTP(ctx context.Context, cfg SMTPConfig) (*SMTP, error) {
	if cfg.Connections < 1 {
		cfg.Connections = 1
	}
	if cfg.MaxPerConnection < 1 {
		cfg.MaxPerConnection = 100
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.IdleCheck <= 0 {
		cfg.IdleCheck = 5 * time.Second
	}
	if cfg.redialWait <= 0 {
		cfg.redialWait = time.Second
	}
	if cfg.Auth != AuthPassword && cfg.Token == nil {
		return nil, fmt.Errorf("%s needs a Token", cfg.Auth)
	}
	queue := max(cfg.Queue, 0)
	s := &SMTP{cfg: cfg, ctx: ctx, jobs: make(chan job, cfg.Connections+queue), handed: make(chan struct{}, 1), broken: make(chan struct{}), alive: cfg.Connections}
	s.slots, s.queue = filled(cfg.Connections), filled(queue)
	first, err := s.redial(ctx, 1)
	if err != nil {
		return nil, err
	}
	s.dials.Add(1)
	for i := range cfg.Connections {
		w := &worker{s: s, id: i + 1}
		if i == 0 {
			w.c = first
		}
		s.wg.Add(1)
		go w.run()
	}
	return s, nil
}

// Dials returns how many connections were opened.
func (s *SMTP) Dials() int { return int(s.dials.Load()) }

// Send queues m for the next free connection; t hears from that
// connection's goroutine. Send blocks while every slot is taken: one for
// each connection, and SMTPConfig.Queue more for messages of up to
// QueuedMax bytes. It returns an error, and queues nothing, once the
// server can no longer be reached.
func (s *SMTP) Send(ctx context.Context, m *render.Message, t Tracker) error {
	if err := s.err(); err != nil {
		return err
	}
	queue := s.queue
	if len(m.Data) > QueuedMax {
		queue = nil // a connection's slot only
	}
	j := job{ctx: ctx, m: m, t: t}
	select {
	case <-s.slots:
	case <-queue:
		j.queued = true
	case <-s.broken:
		return s.err()
	case <-ctx.Done():
		return ctx.Err()
	}
	s.jobs <- j // room for every slot
	return nil
}

// QueuedMax is the size of the largest message that may take one of
// SMTPConfig.Queue's slots: a larger one waits for a connection's, so that
// the queue holds at most Queue times QueuedMax bytes, whatever the
// messages carry.
const QueuedMax = 256 << 10

// filled returns a channel holding n tokens.
func filled(n int) chan struct{} {
	c := make(chan struct{}, n)
	for range n {
		c <- struct{}{}
	}
	return c
}

// free gives j's slot back, once.
func (s *SMTP) free(j *job) {
	switch {
	case j.freed:
	case j.queued:
		s.queue <- struct{}{}
	default:
		s.slots <- struct{}{}
	}
	j.freed = true
}

// Close waits for the queued messages, then says QUIT on every connection.
// It returns the error that stopped delivery, if one did.
func (s *SMTP) Close() error {
	if !s.closed {
		s.closed = true
		close(s.jobs)
	}
	s.wg.Wait()
	return s.err()
}

func (s *SMTP) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatal
}

func (s *SMTP) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fatal == nil {
		s.fatal = err
		close(s.broken)
	}
}

// worker sends messages over one connection, reopening it as needed.
type worker struct {
	s  *SMTP
	id int
	c  *conn
	// triedHard: the last connection the worker opened, or failed to,
	// was tried again while the server turned it away (see redial).
	triedHard bool
	// sent is the message last delivered, whose outcome is told once the
	// next message's first command is on the wire (see progress), or
	// before the worker waits for anything else.
	sent Tracker
}

// tell tells the outcome of the message last delivered, if not yet told.
func (w *worker) tell() {
	if t := w.sent; t != nil {
		w.sent = nil
		t.Done(nil)
	}
}

// done tells j's outcome, after the one before.
func (w *worker) done(j *job, err error) {
	w.tell()
	w.s.free(j)
	j.t.Done(err)
}

// txn is a job's transaction, as its connection tells of it.
type txn struct {
	w *worker
	j *job
}

func (x txn) begun() {
	x.w.tell()
	x.j.t.Begun()
}

func (x txn) ended() { x.w.s.free(x.j) }

func (w *worker) run() {
	defer w.s.wg.Done()
	defer w.close(true)
	defer w.tell() // before QUIT
	if w.c == nil {
		w.open()
	}
	for {
		j, ok := w.s.next(w.tell)
		if !ok {
			return
		}
		if err := w.s.err(); err != nil {
			w.done(&j, err)
			continue
		}
		if lim := w.s.cfg.Limiter; lim != nil {
			w.tell()
			if err := lim.Wait(j.ctx); err != nil {
				w.done(&j, err)
				continue
			}
		}
		if err := j.t.Start(); err != nil {
			w.done(&j, err)
			continue
		}
		err := w.send(j.ctx, &j)
		if err == nil {
			w.tell()
			w.s.free(&j)
			w.sent = j.t
			continue
		}
		w.tell()
		var ce *ConnError
		if errors.As(err, &ce) {
			// This connection can't be opened again, or the server said
			// more than batch takes. While others work, they take its
			// message, unless the server may have it already, and the
			// campaign goes on with fewer connections (a server may
			// allow fewer than asked for); the last one standing stops
			// the campaign.
			handBack := &j
			if handedOver(err) {
				handBack = nil
			}
			if w.s.retire(handBack) {
				if handBack == nil {
					w.done(&j, err)
				}
				return
			}
			if handBack != nil && !w.triedHard && turnedAway(err) {
				// Turned away while others worked, and they left before
				// it could hand its message over: now the last one
				// standing, it tries harder, as it would have.
				err = w.send(j.ctx, &j)
			}
			if errors.As(err, &ce) {
				w.s.fail(ce)
			}
		}
		w.done(&j, err)
	}
}

// next returns the next message to send: one a retired worker handed back
// first, then the queue; waiting is called before it waits for one (the
// worker tells its last outcome). When the queue is closed and empty, the
// worker leaves.
func (s *SMTP) next(waiting func()) (job, bool) {
	for {
		if j, ok := s.popRetry(false); ok {
			return j, true
		}
		var j job
		var ok, got bool
		select {
		case j, ok = <-s.jobs:
			got = true
		default:
		}
		if !got {
			waiting()
			select {
			case j, ok = <-s.jobs:
			case <-s.handed: // a message handed back: look again
				continue
			}
		}
		if ok {
			return j, true
		}
		return s.popRetry(true)
	}
}

// popRetry takes a handed-back message; with leaving, a worker that finds
// none is counted out, under the same lock as retire counts.
func (s *SMTP) popRetry(leaving bool) (job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.retry) > 0 {
		j := s.retry[0]
		s.retry = s.retry[1:]
		if len(s.retry) > 0 {
			s.signalHanded() // for another waiting worker
		}
		return j, true
	}
	if leaving {
		s.alive--
	}
	return job{}, false
}

// lastStanding reports whether only one worker is left.
func (s *SMTP) lastStanding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alive <= 1
}

// retire counts a worker out and hands j, if not nil, to the others,
// unless none is left.
func (s *SMTP) retire(j *job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alive <= 1 {
		return false
	}
	s.alive--
	if j != nil {
		s.retry = append(s.retry, *j)
		s.signalHanded()
	}
	return true
}

// signalHanded wakes a worker waiting in next, if one is, for a message in
// retry; a signal already pending is enough.
func (s *SMTP) signalHanded() {
	select {
	case s.handed <- struct{}{}:
	default:
	}
}

// open opens the worker's connection before its first message, while the
// caller may still be checking what to send: logged in, it waits for one.
// A failure is no message's: the worker is left without a connection, and
// ready tries again, as for any connection, once it has a message (and
// retires, hands the message back or tries harder as it says).
func (w *worker) open() {
	c, err := w.s.dial(w.s.ctx, w.id)
	if err != nil {
		if w.s.cfg.Debug != nil {
			log := newTranscript(w.s.cfg.Debug, &w.s.debugMu, w.id, w.s.cfg.Password)
			if w.s.ctx.Err() != nil {
				log.note("the connection was called off before any message (%v)", err)
			} else {
				log.note("could not open the connection before any message (%v): it is tried again with the first that comes to it", err)
			}
		}
		return
	}
	w.s.dials.Add(1)
	w.c = c
}

// close ends the connection, politely (QUIT) when it is still sound.
func (w *worker) close(polite bool) {
	if w.c == nil {
		return
	}
	if polite {
		_ = w.c.cmd(quit)
	}
	_ = w.c.raw.Close()
	w.c = nil
}

// ready makes sure the worker has a usable connection: a new one after
// max_per_connection messages, a checked one (NOOP) after idling.
func (w *worker) ready(ctx context.Context) error {
	cfg := &w.s.cfg
	if w.c != nil && w.c.sent < cfg.MaxPerConnection && time.Since(w.c.last) <= cfg.IdleCheck {
		return nil
	}
	w.tell() // before anything that waits
	if w.c != nil && w.c.sent >= cfg.MaxPerConnection {
		w.close(true)
	}
	if w.c != nil && time.Since(w.c.last) > cfg.IdleCheck {
		if err := w.c.cmd(noop); err != nil {
			w.close(false)
		}
	}
	if w.c != nil {
		return nil
	}
	// With other connections at work, one that can't open retires at
	// once and they take its message; the last one tries harder.
	dial := w.s.dial
	w.triedHard = w.s.lastStanding()
	if w.triedHard {
		dial = w.s.redial
	}
	c, err := dial(ctx, w.id)
	if err != nil {
		return err
	}
	w.s.dials.Add(1)
	w.c = c
	return nil
}

// redial opens a connection, trying again a few times when the server
// turns it away for now (a 4xx greeting such as "421 too busy", or a
// connection closed during the greeting): busy and greylisting servers do
// that. A refused connection, a certificate or a password problem fails
// at once.
func (s *SMTP) redial(ctx context.Context, id int) (*conn, error) {
	wait := s.cfg.redialWait // then 3 and 9 times as long
	for attempt := 0; ; attempt++ {
		c, err := s.dial(ctx, id)
		if err == nil || attempt == 3 || !turnedAway(err) {
			return c, err
		}
		if err := (RealClock{}).Sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait *= 3
	}
}

// turnedAway reports whether a connection failed for now: a 4xx reply
// before AUTH, or the server closing the connection at the greeting.
func turnedAway(err error) bool {
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Step == "auth" || ce.Step == "connect" {
		return false
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code >= 400 && se.Code < 500
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 400 && te.Code < 500
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// send delivers j's message, on a new connection once more if the server
// closed the one it had before the message was handed over.
func (w *worker) send(ctx context.Context, j *job) error {
	m := j.m
	from := w.s.cfg.Sender
	if from == "" {
		from = m.From
	}
	for attempt := 0; ; attempt++ {
		if err := w.ready(ctx); err != nil {
			return err
		}
		err := w.c.transfer(from, m, j.t, txn{w: w, j: j})
		if err == nil {
			return nil
		}
		var se *SendError
		if errors.As(err, &se) && se.Stage == stageReady {
			// The tracker said no, in the middle of DATA: the message
			// must not end, and only closing the connection stops it.
			w.close(false)
			return err
		}
		if isReplyLimit(err) {
			// Not tried again: the server would say as much once more.
			w.close(false)
			return err
		}
		if connectionLost(err) {
			w.close(false)
			if !handedOver(err) && attempt == 0 {
				continue
			}
		}
		return err
	}
}

// handedOver reports whether err came after what ends the message, when
// the server may have it.
func handedOver(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Stage == stageEndOfData
}

// StageReady is the stage of a SendError from the Tracker's Ready: the
// message was stopped before its final dot by the caller, not by the
// server, and the connection closed.
const StageReady = "before the final dot"

// Stages of a transaction, as SendError names them.
const (
	stageReset     = "RSET"
	stageMail      = "MAIL FROM"
	stageRcpt      = "RCPT TO"
	stageReady     = StageReady
	stageData      = "DATA"
	stageMessage   = "message"
	stageEndOfData = "end of DATA"
	stageNoop      = "NOOP"
	stageQuit      = "QUIT"
)

// connectionLost reports whether err means the connection can't be used
// again: a network error, or the server's 421 (closing).
func connectionLost(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code == 421
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
