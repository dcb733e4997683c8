// Package deliver hands rendered messages to their destination: a directory
// of .eml files or one mbox file (a dry run), or an SMTP submission server (RFC 5321, RFC
// 6409) over TLS (RFC 8314 implicit TLS, or RFC 3207 STARTTLS, never
// dropped), with AUTH PLAIN or LOGIN (RFC 4954), or XOAUTH2 or
// OAUTHBEARER (RFC 7628) with an OAuth2 token fetched again when the server
// refuses it, a set of reused
// connections and a shared rate limit. A server's replies are bounded in
// size (a *ReplyLimitError past the bounds) and in time (the timeout holds
// for the whole of each), so that no server can fill memory or hang a run.
// A connection that fails is a *ConnError whose Hint says what to check, as
// a kind, in the connection's terms: the caller names the settings as its
// user knows them.
package deliver

import (
	"context"
	"errors"

	"github.com/batch-mailer/batch/internal/render"
)

// Sender delivers messages. Send is called from one goroutine at a time.
type Sender interface {
	// Send delivers m, or queues it and returns; t follows it. An error
	// from Send itself means the sender can't go on: m was not taken and
	// t is not called. Once it has called t.Done, the sender reads
	// nothing of m again: its bytes may be another message's from then
	// (render.Message.Release).
	Send(ctx context.Context, m *render.Message, t Tracker) error
	// Close waits for every outcome, and makes what was written durable.
	Close() error
}

// Tracker follows one message through delivery.
type Tracker interface {
	// Start is called when a connection takes the message, before it
	// says anything of it to the server; an error leaves the message
	// unsent (Done is told that error).
	Start() error
	// Begun is called once the message's first command is on the wire,
	// while the server reads it, and before anything that could deliver
	// it (for a file, before it is written): work that Ready will wait
	// for is best started here (the journal's record), so that it runs
	// while the connection has nothing to do.
	Begun()
	// Ending is called, where commands go one at a time, once DATA is on
	// the wire, while the server reads it: work that Ready must have
	// done (the journal's "handover" record) is best done here, where the
	// connection waits anyway. Ready follows, unless the server refuses.
	Ending()
	// Ready is called just before the message is handed over: before
	// its final dot, and before its content too if ReadyNow says so; an
	// error stops the message there, undelivered.
	Ready() error
	// ReadyNow reports whether Ready would return at once: if so, the
	// content and its final dot go in one write; if not, the content
	// goes while Ready waits.
	ReadyNow() bool
	// Done is called once, with the outcome.
	Done(err error)
}

// DoneFunc is a Tracker that only wants the outcome.
type DoneFunc func(error)

// Start always starts.
func (DoneFunc) Start() error { return nil }

// Begun does nothing.
func (DoneFunc) Begun() {}

// Ending does nothing.
func (DoneFunc) Ending() {}

// ReadyNow is always true.
func (DoneFunc) ReadyNow() bool { return true }

// Ready is always ready.
func (DoneFunc) Ready() error { return nil }

// Done calls f.
func (f DoneFunc) Done(err error) { f(err) }

// Failure says what a delivery error means for the message.
type Failure int

const (
	// Temporary: not delivered, try again later (a 4xx reply, or the
	// connection broke before the message was handed over).
	Temporary Failure = iota
	// Permanent: refused for good (a 5xx reply); don't try again.
	Permanent
	// Uncertain: the connection broke after the message was handed over
	// and before the server's reply; the server may have it.
	Uncertain
)

// Classify tells what err, the outcome of a delivery, means.
func Classify(err error) Failure {
	var se *SendError
	if !errors.As(err, &se) {
		return Temporary
	}
	if reply, ok := se.Reply(); ok {
		if reply.Code >= 500 {
			return Permanent
		}
		return Temporary
	}
	if se.Stage == stageEndOfData {
		return Uncertain
	}
	return Temporary
}
