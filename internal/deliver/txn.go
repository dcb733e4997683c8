package deliver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/batch-mailer/batch/internal/render"
)

// After the greeting, TLS and AUTH, which go-smtp's Client does, batch
// speaks the mail transactions itself, over the same connection, so that
// a message costs as few round trips and system calls as the server
// allows:
//
//   - PIPELINING (RFC 2920): MAIL FROM, RCPT TO and DATA go in one write,
//     and their replies are read together: one round trip instead of three.
//   - CHUNKING (RFC 3030): the content goes as a BDAT chunk in that same
//     write, with no dot-stuffing for either side, and "BDAT 0 LAST" ends
//     it: a message in two round trips.
//   - Without them, the classic way, a command at a time; the content is
//     dot-stuffed a line at a time rather than a byte at a time.
//
// Whatever the way, nothing the server could take goes out before the
// journal holds the message's "sending" record: the Tracker's Ready waits
// for it before what ends the message (the final dot, or BDAT LAST), which
// alone makes the server take it (RFC 5321 §4.1.1.4). Until then a
// connection that drops delivers nothing, so the record, appended once the
// transaction's first command is written (the Tracker's Begun), goes to
// disk while the server answers the commands before, instead of between
// two messages: on a fast server an fsync takes as long as a message.
// With DATA, the content and its final dot then go in one write, or, if
// the journal isn't ready yet (the Tracker's ReadyNow), the content goes
// while it syncs and the dot after.
//
// The bookkeeping between two messages waits for the wire: once the first
// command of a transaction is written, and the server busy with it, the
// worker tells the last message's outcome and begins this one (its
// "sending" record), and the content is dot-stuffed; once what ends the
// message is written, the next message may be queued (see progress). So
// between a reply and the next command batch does no more than a bare
// client would, and the goroutines that write the journal and feed the
// queue run while the connection has nothing to do.
//
// A server's replies become *smtp.SMTPError values, as go-smtp's would.
// What it says is bounded (see boundedConn): a reply past the bounds
// drops the connection with a *ConnError, which is the connection's
// problem and not the recipient's, but for the reply to what ends the
// message, after which the server may have it: that is still the
// message's *SendError at "end of DATA", wrapping the *ConnError.
// Each reply is read within the timeout from when it is asked for, one
// deadline for the whole of it, so a server that trickles can't draw it out.

// startSession takes the connection over from go-smtp's Client, which has
// read everything the server said so far.
func (c *conn) startSession(ext func(string) bool) {
	var r io.Reader = c.raw
	if c.log != nil {
		r = io.TeeReader(c.raw, c.log)
	}
	c.r = textproto.NewReader(bufio.NewReader(r))
	c.pipelining, c.chunking = ext("PIPELINING"), ext("CHUNKING")
}

// send writes b, and copies it to the transcript.
func (c *conn) send(b []byte) error { return c.write(b, b) }

// write writes b, in one system call where TLS would make one a record,
// and copies shown (what the transcript shows of it) to the transcript.
func (c *conn) write(b, shown []byte) error {
	c.raw.SetWriteDeadline(time.Now().Add(c.timeout))
	if c.g != nil {
		c.g.gather()
	}
	_, err := c.raw.Write(b)
	if c.g != nil {
		if serr := c.g.send(); err == nil {
			err = serr
		}
	}
	if c.log != nil {
		c.log.Write(shown)
	}
	return err
}

// commands appends the steps' command lines to c.buf, emptied first.
func (c *conn) commands(steps []step) {
	c.buf = c.buf[:0]
	for _, s := range steps {
		c.buf = append(append(c.buf, s.line...), "\r\n"...)
	}
}

// reply reads the reply to stage; a code other than expect is an
// *smtp.SMTPError.
func (c *conn) reply(expect int, stage string) error {
	c.bc.expect(stage)
	c.raw.SetReadDeadline(time.Now().Add(c.timeout))
	_, _, err := c.r.ReadResponse(expect)
	var te *textproto.Error
	if errors.As(err, &te) {
		return replyError(te)
	}
	return err
}

// cmd sends one command and reads its reply.
func (c *conn) cmd(s step) error {
	if err := c.say(s); err != nil {
		return err
	}
	return c.reply(s.expect, s.stage)
}

// say writes the command of s, without waiting for its reply.
func (c *conn) say(s step) error {
	c.buf = append(append(c.buf[:0], s.line...), "\r\n"...)
	return c.send(c.buf)
}

// replyError is a reply as an *smtp.SMTPError, its enhanced status code
// (RFC 3463) taken out of the text, as go-smtp does.
func replyError(te *textproto.Error) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: te.Code, Message: te.Msg, EnhancedCode: smtp.NoEnhancedCode}
	code, text, ok := strings.Cut(te.Msg, " ")
	if !ok {
		return e
	}
	parts := strings.Split(code, ".")
	if len(parts) != 3 {
		return e
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return e
		}
		ec[i] = n
	}
	if ec[0] < 2 || ec[0] > 5 {
		return e
	}
	// The code starts every line of a multi-line reply.
	e.EnhancedCode, e.Message = ec, strings.ReplaceAll(text, "\n"+code+" ", "\n")
	return e
}

// errNoChunking is a BDAT the server said it doesn't know, though it
// offered CHUNKING.
var errNoChunking = errors.New("BDAT refused")

// errLineEnd refuses an address with a line end in it.
var errLineEnd = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "batch: a line end in an address"}

// step is a command, its expected reply, and the stage a failure is
// named by.
type step struct {
	line   string
	expect int
	stage  string
}

var (
	rset = step{"RSET", 250, stageReset}
	noop = step{"NOOP", 250, stageNoop}
	quit = step{"QUIT", 221, stageQuit}
)

// progress hears, from a transaction, the moments its worker's
// bookkeeping waits for (see above).
type progress interface {
	// begun is called once the transaction's first command is written,
	// before its reply is read.
	begun()
	// ended is called once what ends the message is written.
	ended()
}

// transfer runs one mail transaction (see above).
func (c *conn) transfer(from string, m *render.Message, t Tracker, p progress) error {
	fail := func(stage string, err error) error {
		c.dirty = true
		if isReplyLimit(err) {
			err = &ConnError{Addr: c.addr, Step: "send", Hint: HintReplyLimit, Err: err}
			if stage != stageEndOfData {
				return err // the message not taken
			}
		}
		return &SendError{To: m.To, Stage: stage, Err: err}
	}
	// Checked when the list was read; checked again where a line end
	// would start a command of its own.
	if strings.ContainsAny(from, "\r\n") || strings.ContainsAny(m.To, "\r\n") {
		return &SendError{To: m.To, Stage: stageMail, Err: errLineEnd}
	}
	if c.dirty {
		if err := c.cmd(rset); err != nil {
			return fail(stageReset, err)
		}
		c.dirty = false
	}
	steps := []step{
		{"MAIL FROM:<" + from + ">", 250, stageMail},
		{"RCPT TO:<" + m.To + ">", 250, stageRcpt},
	}
	if c.pipelining && c.chunking {
		err := c.chunked(steps, m, t, p, fail)
		if !errors.Is(err, errNoChunking) {
			return err
		}
		// A server that offers CHUNKING and won't take BDAT: DATA on
		// this connection from now on, starting with this message.
		c.chunking = false
		if err := c.cmd(rset); err != nil {
			return fail(stageReset, err)
		}
	}
	return c.data(append(steps, step{"DATA", 354, stageData}), m, t, p, fail)
}

// data sends the message with DATA: the commands of steps, DATA last, all
// at once with PIPELINING, else one by one; then, the journal ready, the
// content, dot-stuffed, and its final dot in one write.
func (c *conn) data(steps []step, m *render.Message, t Tracker, p progress, fail func(string, error) error) error {
	first := steps[:1]
	if c.pipelining {
		first = steps
	}
	c.commands(first)
	if err := c.send(c.buf); err != nil {
		return fail(stageMail, err)
	}
	p.begun()
	c.content = dotStuff(c.content[:0], m.Data)
	body := len(c.content)
	c.content = append(c.content, dataEnd(c.content)...)
	if stage, err := c.replies(first); err != nil {
		return fail(stage, err)
	}
	if !c.pipelining {
		// A command at a time: RCPT TO, then DATA, which the Tracker
		// hears of while the server reads it. (Pipelined, DATA went with
		// MAIL FROM and RCPT TO, and the Tracker hears of nothing until
		// their replies are in: a run killed while the server sits on
		// them leaves the recipient pending.)
		mid, data := steps[1:len(steps)-1], steps[len(steps)-1]
		for _, s := range mid {
			if err := c.cmd(s); err != nil {
				return fail(s.stage, err)
			}
		}
		if err := c.say(data); err != nil {
			return fail(data.stage, err)
		}
		t.Ending()
		if err := c.reply(data.expect, data.stage); err != nil {
			return fail(data.stage, err)
		}
	}
	last := c.content
	if !t.ReadyNow() {
		// The content goes while the journal syncs; the dot waits.
		if err := c.send(c.content[:body]); err != nil {
			return fail(stageMessage, err)
		}
		last = c.content[body:]
	}
	if err := t.Ready(); err != nil {
		return fail(stageReady, err)
	}
	return c.end(last, p, fail)
}

// dataEnd returns what ends content data, dot-stuffed, after DATA: the
// final dot on a line of its own.
func dataEnd(data []byte) string {
	switch {
	case len(data) >= 2 && string(data[len(data)-2:]) == "\r\n":
		return ".\r\n"
	case len(data) >= 1 && data[len(data)-1] == '\r':
		return "\n.\r\n"
	}
	return "\r\n.\r\n"
}

// chunked sends the message with PIPELINING and CHUNKING: MAIL FROM,
// RCPT TO and the content as one BDAT chunk in one write, and their
// replies; then, the journal ready, BDAT 0 LAST and its reply. Two round
// trips, and nothing ends the message before every earlier reply is in,
// so that a connection the server closed (after idling, say) is found out
// before the message could be taken.
func (c *conn) chunked(steps []step, m *render.Message, t Tracker, p progress, fail func(string, error) error) error {
	c.commands(append(steps, step{line: "BDAT " + strconv.Itoa(len(m.Data))}))
	head := len(c.buf)
	c.buf = append(c.buf, m.Data...)
	err := c.write(c.buf, c.buf[:head]) // the commands; the content summed up
	if c.log != nil {
		c.log.emit("C", fmt.Sprintf("<message: %d lines, %d bytes>", bytes.Count(m.Data, []byte("\n")), len(m.Data)))
	}
	if err != nil {
		return fail(stageMail, err)
	}
	p.begun()
	steps = append(steps, step{"BDAT", 250, stageMessage})
	if stage, err := c.replies(steps); err != nil {
		var se *smtp.SMTPError
		if stage == stageMessage && errors.As(err, &se) && (se.Code == 500 || se.Code == 502 || se.Code == 504) {
			return errNoChunking // MAIL FROM and RCPT TO taken, BDAT not known
		}
		return fail(stage, err)
	}
	if err := t.Ready(); err != nil {
		return fail(stageReady, err)
	}
	return c.end(bdatLast, p, fail)
}

var bdatLast = []byte("BDAT 0 LAST\r\n")

// end sends what ends the message, the content and its final dot or
// BDAT LAST, and reads the server's word on it. A write that fails did
// not send its end (the last TLS record, the last bytes of a write), so
// the server can't have the message; from then on it may.
func (c *conn) end(last []byte, p progress, fail func(string, error) error) error {
	if err := c.send(last); err != nil {
		return fail(stageMessage, err)
	}
	p.ended()
	if err := c.reply(250, stageEndOfData); err != nil {
		return fail(stageEndOfData, err)
	}
	c.sent++
	c.last = time.Now()
	return nil
}

// replies reads the replies to pipelined steps, every one even after a
// refusal, so that the next transaction starts in step. It returns the
// first refusal and its stage; a broken connection or a 421 (closing)
// ends it at once, and a reply past the bounds is what it returns.
func (c *conn) replies(steps []step) (string, error) {
	var stage string
	var refused error
	for i, s := range steps {
		err := c.reply(s.expect, s.stage)
		switch {
		case err == nil:
			if s.expect == 354 && refused != nil {
				// MAIL or RCPT refused and DATA accepted all the same,
				// which a server must not do (RFC 2920 §3.1): end the
				// empty message at once.
				if err := c.cmd(step{".", 0, s.stage}); err != nil && !isServerReply(err) {
					return steps[i].stage, err
				}
			}
		case !isServerReply(err):
			if refused != nil && !isReplyLimit(err) {
				return stage, refused // what the server said before it went
			}
			return s.stage, err
		case connectionLost(err):
			return s.stage, err // 421: the server closes; no more replies
		case refused == nil:
			stage, refused = s.stage, err
		}
	}
	return stage, refused
}

// isServerReply reports whether err is a reply of the server's rather
// than a broken connection.
func isServerReply(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
}
