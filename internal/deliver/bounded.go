package deliver

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"
)

// What batch takes from a server between two of its own writes: one
// reply, or the replies to one pipelined group. RFC 5321 §4.5.3.1.5 gives
// a reply line 512 octets; real replies are far shorter, and the longest,
// an EHLO with every extension there is, a few KiB.
const (
	maxReplyLine = 1 << 10  // a line, its CRLF included
	maxReplies   = 64 << 10 // in all
)

// ReplyLimitError is a server that said more than batch takes (a line
// longer than 1 KiB, or 64 KiB in all before batch wrote again): the
// connection is dropped, since a server that never stops could otherwise
// fill memory. It comes wrapped in a *ConnError, the connection's error.
type ReplyLimitError struct {
	Stage string // what the reply answers: "greeting", "EHLO", "AUTH", "RCPT TO"…
	Line  bool   // a line too long, rather than too much in all
}

func (e *ReplyLimitError) Error() string {
	what := "reply to " + e.Stage
	switch e.Stage {
	case stageGreeting:
		what = "greeting"
	case stageMessage:
		what = "reply to BDAT"
	case stageEndOfData:
		what = "reply to the message's end (the final dot or BDAT LAST)"
	}
	if e.Line {
		return fmt.Sprintf("the server's %s has a line longer than %d bytes", what, maxReplyLine)
	}
	return fmt.Sprintf("the server's %s goes on past %d bytes", what, maxReplies)
}

// isReplyLimit reports whether err is, or wraps, a *ReplyLimitError.
func isReplyLimit(err error) bool {
	var rl *ReplyLimitError
	return errors.As(err, &rl)
}

// boundedConn is a connection to a server, on the plain-text side of TLS,
// that holds what the server says to the bounds above: it counts what was
// read since batch last wrote, gives what is within maxReplies, in lines
// of at most maxReplyLine, and fails the read after with a
// *ReplyLimitError, and every read from then on. The reply whose reading
// needs more is the one named, even when the bytes past the bound came in
// one read with the replies before it, as pipelined replies do.
// Whoever reads through it (go-smtp's client, batch's own session) thus
// never buffers more, nor does the transcript that copies what they read.
//
// It gives whole lines only, and holds the start of one until its line
// end comes: bufio's ReadLine, under textproto, takes what it has of a
// line for the whole line when the read after fails, so a line cut at a
// bound would pass for a reply.
//
// It also holds every deadline set on it to a stage's own, when one is
// set (see within): go-smtp's client sets one for each command, and a
// stage of several commands (an AUTH exchange) must not go on for ever.
type boundedConn struct {
	net.Conn
	stage string    // what the reply being read answers, once batch wrote
	wrote bool      // until batch writes, the server's greeting
	read  int       // bytes read since batch last wrote
	line  int       // bytes of the line so far, without its LF
	past  bound     // the bound reached, if one was: the next read fails
	until time.Time // the stage's deadline; zero for none
	err   error

	// What was read and not yet given: buf[given:lines] whole lines,
	// buf[lines:n] the start of the next.
	buf             []byte
	given, lines, n int
}

// bound is which of the bounds a server reached.
type bound int

const (
	withinBounds bound = iota
	pastLine
	pastAll
)

func newBoundedConn(c net.Conn) *boundedConn { return &boundedConn{Conn: c} }

// expect names what the replies read from now on answer.
func (c *boundedConn) expect(stage string) { c.stage = stage }

func (c *boundedConn) Read(b []byte) (int, error) {
	for c.given == c.lines {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	k := copy(b, c.buf[c.given:c.lines])
	c.given += k
	return k, nil
}

// fill reads from the server, after the start of a line it holds, and
// readies the whole lines there are within the bounds. An error of the
// connection's comes once those are given: reading again gives it again.
func (c *boundedConn) fill() error {
	if c.err == nil && c.past != withinBounds {
		c.err = &ReplyLimitError{Stage: c.reading(), Line: c.past == pastLine}
	}
	if c.err != nil {
		return c.err
	}
	if c.buf == nil {
		c.buf = make([]byte, 4*maxReplyLine) // room beside a line's start
	}
	c.n = copy(c.buf, c.buf[c.lines:c.n])
	c.given, c.lines = 0, 0
	n, err := c.Conn.Read(c.buf[c.n:])
	c.n += c.count(c.buf[c.n : c.n+n])
	if i := bytes.LastIndexByte(c.buf[:c.n], '\n'); i >= 0 {
		c.lines = i + 1
		return nil
	}
	return err
}

// count counts p, just read, and returns how much of it is within the
// bounds.
func (c *boundedConn) count(p []byte) int {
	if room := maxReplies - c.read; len(p) > room {
		p, c.past = p[:room], pastAll
	}
	for i, ch := range p {
		if ch == '\n' {
			c.line = 0
			continue
		}
		if c.line++; c.line >= maxReplyLine { // its LF would pass it
			p, c.past = p[:i], pastLine
			break
		}
	}
	c.read += len(p)
	return len(p)
}

// reading returns what the reply being read answers.
func (c *boundedConn) reading() string {
	if !c.wrote {
		return stageGreeting
	}
	return c.stage
}

// Write sends b; what the server says next is counted afresh.
func (c *boundedConn) Write(b []byte) (int, error) {
	c.wrote, c.read = true, 0
	return c.Conn.Write(b)
}

// within gives the stage that starts now d in all: a deadline set on c
// meanwhile can't go past it. d == 0 ends the stage, and its deadline.
func (c *boundedConn) within(d time.Duration) {
	c.until = time.Time{}
	if d > 0 {
		c.until = time.Now().Add(d)
	}
	c.Conn.SetDeadline(c.until)
}

func (c *boundedConn) capped(t time.Time) time.Time {
	if !c.until.IsZero() && (t.IsZero() || t.After(c.until)) {
		return c.until
	}
	return t
}

func (c *boundedConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.capped(t)) }

func (c *boundedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.capped(t))
}

func (c *boundedConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.capped(t))
}
