package deliver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/render"
)

// This file holds the tests of servers that don't behave: one that says
// too much, or says it too slowly, at each stage of a session. They are
// written out by hand on raw connections, since a real server library
// won't misbehave on purpose.

// hostile is an SMTP server on loopback that speaks just enough SMTP to
// bring batch to one stage, and there says what misbehave says instead of
// its reply. Until then it is a fair server: EHLO offers PIPELINING,
// CHUNKING, AUTH PLAIN LOGIN and ext, and STARTTLS with a certificate.
type hostile struct {
	t         testing.TB
	port      int
	at        string // "greeting", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "dot", "BDAT LAST"; "" to behave
	misbehave func(w io.Writer, r *bufio.Reader) error
	mechs     string      // AUTH mechanisms; "PLAIN LOGIN" by default
	ext       []string    // more EHLO lines
	text      int         // lines of text in each reply to MAIL, RCPT, DATA and BDAT
	tls       *tls.Config // nil: no STARTTLS
	implicit  bool        // TLS from the first byte

	wrote    atomic.Int64 // bytes misbehave wrote, or was writing
	mu       sync.Mutex
	accepted []string // recipients of the messages taken
}

func startHostile(t testing.TB, h *hostile) *hostile {
	t.Helper()
	h.t = t
	if h.mechs == "" {
		h.mechs = "PLAIN LOGIN"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.port = l.Addr().(*net.TCPAddr).Port
	var wg sync.WaitGroup
	var open sync.Map // net.Conn → struct{}
	t.Cleanup(func() {
		l.Close()
		open.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			open.Store(c, struct{}{})
			wg.Go(func() {
				defer open.Delete(c)
				defer c.Close()
				h.serve(c)
			})
		}
	})
	return h
}

func (h *hostile) config(sec Security) SMTPConfig {
	return SMTPConfig{
		Host:     "127.0.0.1",
		Port:     h.port,
		Security: sec,
		RootCAs:  certs(h.t).roots,
		HELO:     testHELO,
		Username: testUser,
		Password: testPass,
		Timeout:  30 * time.Second, // so that only a bound ends a test promptly
	}
}

// counting counts what misbehave writes, as it starts to write it: the
// client may have read it, and hung up, before Write returns.
type counting struct {
	w io.Writer
	n *atomic.Int64
}

func (c counting) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.w.Write(b)
}

func (h *hostile) serve(c net.Conn) {
	var nc net.Conn = c
	if h.implicit {
		nc = tls.Server(c, h.tls)
	}
	r := bufio.NewReader(nc)
	bad := func() { h.misbehave(counting{nc, &h.wrote}, r) }
	if h.at == "greeting" {
		bad()
		return
	}
	fmt.Fprintf(nc, "220 mx.test ESMTP\r\n")
	ok := func(code int, what string) {
		var b strings.Builder
		for i := range h.text {
			fmt.Fprintf(&b, "%d-%d %s\r\n", code, i, strings.Repeat("t", 900))
		}
		fmt.Fprintf(&b, "%d %s\r\n", code, what)
		io.WriteString(nc, b.String())
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if verb == h.at || verb == "EHLO" && h.at == "EHLO" {
			bad()
			return
		}
		switch verb {
		case "EHLO", "HELO":
			var b strings.Builder
			b.WriteString("250-mx.test\r\n")
			for _, e := range h.ext {
				b.WriteString("250-" + e + "\r\n")
			}
			if h.tls != nil && !h.implicit {
				if _, isTLS := nc.(*tls.Conn); !isTLS {
					b.WriteString("250-STARTTLS\r\n")
				}
			}
			b.WriteString("250-PIPELINING\r\n250-CHUNKING\r\n250 AUTH " + h.mechs + "\r\n")
			io.WriteString(nc, b.String())
		case "STARTTLS":
			io.WriteString(nc, "220 go ahead\r\n")
			nc = tls.Server(c, h.tls)
			r = bufio.NewReader(nc)
		case "AUTH":
			io.WriteString(nc, "235 2.7.0 ok\r\n")
		case "MAIL", "RSET", "NOOP":
			ok(250, "ok")
		case "RCPT":
			ok(250, "ok")
			h.mu.Lock()
			h.accepted = append(h.accepted, strings.TrimSuffix(strings.TrimPrefix(arg, "TO:<"), ">"))
			h.mu.Unlock()
		case "DATA":
			ok(354, "go ahead")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			if h.at == "dot" {
				bad()
				return
			}
			ok(250, "queued")
		case "BDAT":
			size, last, _ := strings.Cut(arg, " ")
			n, _ := strconv.Atoi(size)
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return
			}
			if last == "LAST" && h.at == "BDAT LAST" {
				bad()
				return
			}
			ok(250, "ok")
		case "QUIT":
			io.WriteString(nc, "221 bye\r\n")
			return
		default:
			io.WriteString(nc, "500 what?\r\n")
		}
	}
}

// endless is a reply of lines that never ends: "220-" lines for ever.
func endless(prefix string) func(io.Writer, *bufio.Reader) error {
	return func(w io.Writer, _ *bufio.Reader) error {
		var b bytes.Buffer
		for i := 0; b.Len() < 8<<10; i++ {
			fmt.Fprintf(&b, "%s%d and so on and so forth\r\n", prefix, i)
		}
		for {
			if _, err := w.Write(b.Bytes()); err != nil {
				return err
			}
		}
	}
}

// endlessLine is one line that never ends: no CRLF, ever.
func endlessLine(code string) func(io.Writer, *bufio.Reader) error {
	return func(w io.Writer, _ *bufio.Reader) error {
		b := append([]byte(code+" "), bytes.Repeat([]byte("x"), 8<<10)...)
		if _, err := w.Write(b); err != nil {
			return err
		}
		for {
			if _, err := w.Write(b[4:]); err != nil {
				return err
			}
		}
	}
}

// trickle says prefix lines one byte every 50 ms, at most max bytes, then
// closes the connection: a deadline that each byte pushed back would
// never come.
func trickle(prefix string, max int) func(io.Writer, *bufio.Reader) error {
	return func(w io.Writer, _ *bufio.Reader) error {
		var b bytes.Buffer
		for i := 0; b.Len() < max; i++ {
			fmt.Fprintf(&b, "%s%d\r\n", prefix, i)
		}
		for _, c := range b.Bytes()[:max] {
			if _, err := w.Write([]byte{c}); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	}
}

// sendOne dials and sends m, and returns the dial's error or m's outcome
// and what Close returned.
func sendOne(t *testing.T, cfg SMTPConfig, m *render.Message) (dialErr, outcome, closed error) {
	t.Helper()
	ctx := context.Background()
	s, err := DialSMTP(ctx, cfg)
	if err != nil {
		return err, nil, nil
	}
	o := newOutcomes()
	if err := s.Send(ctx, m, o.done(m)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	closed = s.Close()
	return nil, o.check(t, []*render.Message{m})[m.To], closed
}

// tooMuch checks that err is the *ConnError of a server that said more than
// batch takes at stage, and returns its *ReplyLimitError.
func tooMuch(t *testing.T, err error, h *hostile, step, stage string) *ReplyLimitError {
	t.Helper()
	var ce *ConnError
	var rl *ReplyLimitError
	if !errors.As(err, &ce) || !errors.As(err, &rl) {
		t.Fatalf("%v (%T), want a *ConnError with a *ReplyLimitError", err, err)
	}
	if ce.Step != step || rl.Stage != stage {
		t.Errorf("step %q, stage %q; want %q, %q (%v)", ce.Step, rl.Stage, step, stage, err)
	}
	if want := "127.0.0.1:" + strconv.Itoa(h.port); ce.Addr != want || !strings.Contains(err.Error(), want+": "+step+": ") {
		t.Errorf("%q does not name the server, %s, and %s", err, want, step)
	}
	if ce.Hint != HintReplyLimit {
		t.Errorf("hint %q, want %q", ce.Hint, HintReplyLimit)
	}
	if h.wrote.Load() <= maxReplyLine {
		t.Errorf("the server wrote %d bytes: the test did not reach a bound", h.wrote.Load())
	}
	return rl
}

func TestSMTPEndlessBeforeLogin(t *testing.T) {
	for _, tc := range []struct {
		name, at string
		sec      Security
		say      func(io.Writer, *bufio.Reader) error
		step     string // the ConnError's
		stage    string // the ReplyLimitError's
		line     bool
	}{
		{"greeting", "greeting", NoTLS, endless("220-"), "hello", "greeting", false},
		{"greeting line", "greeting", NoTLS, endlessLine("220"), "hello", "greeting", true},
		{"greeting before STARTTLS", "greeting", StartTLS, endless("220-"), "starttls", "greeting", false},
		{"greeting in TLS", "greeting", ImplicitTLS, endless("220-"), "hello", "greeting", false},
		{"EHLO", "EHLO", NoTLS, endless("250-X-EXTENSION-"), "hello", "EHLO", false},
		{"EHLO line", "EHLO", NoTLS, endlessLine("250"), "hello", "EHLO", true},
		{"EHLO before STARTTLS", "EHLO", StartTLS, endless("250-X-"), "starttls", "EHLO", false},
		{"STARTTLS", "STARTTLS", StartTLS, endless("220-"), "starttls", "STARTTLS", false},
		{"AUTH", "AUTH", NoTLS, endless("334-"), "auth", "AUTH", false},
		{"AUTH line", "AUTH", ImplicitTLS, endlessLine("334"), "auth", "AUTH", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHostile(t, &hostile{at: tc.at, misbehave: tc.say, tls: &tls.Config{Certificates: []tls.Certificate{certs(t).good}}, implicit: tc.sec == ImplicitTLS})
			var debug bytes.Buffer
			cfg := h.config(tc.sec)
			cfg.Debug = &debug
			err, _, _ := sendOne(t, cfg, testMessage(1, 500))
			if rl := tooMuch(t, err, h, tc.step, tc.stage); rl.Line != tc.line {
				t.Errorf("Line %v, want %v", rl.Line, tc.line)
			}
			// The transcript holds what batch read, no more.
			if debug.Len() > 2*maxReplies {
				t.Errorf("a transcript of %d bytes", debug.Len())
			}
		})
	}
}

func TestSMTPEndlessInTransaction(t *testing.T) {
	for _, tc := range []struct {
		name, at string
		without  []string
		say      func(io.Writer, *bufio.Reader) error
		stage    string
		line     bool
	}{
		{"MAIL", "MAIL", []string{"PIPELINING", "CHUNKING"}, endless("250-"), "MAIL FROM", false},
		{"RCPT pipelined", "RCPT", []string{"CHUNKING"}, endless("250-"), "RCPT TO", false},
		{"RCPT pipelined line", "RCPT", nil, endlessLine("250"), "RCPT TO", true},
		{"DATA", "DATA", []string{"CHUNKING"}, endless("354-"), "DATA", false},
		{"BDAT", "BDAT", nil, endless("250-"), "message", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHostile(t, &hostile{at: tc.at, misbehave: tc.say})
			m := testMessage(1, 500)
			dialErr, outcome, closed := sendOne(t, withoutExt(h.config(NoTLS), tc.without), m)
			if dialErr != nil {
				t.Fatal(dialErr)
			}
			// The connection's error, not the recipient's: nothing was
			// handed over, and the sender stops for it.
			var se *SendError
			if errors.As(outcome, &se) {
				t.Errorf("outcome %v: a *SendError, want the connection's", outcome)
			}
			if rl := tooMuch(t, outcome, h, "send", tc.stage); rl.Line != tc.line {
				t.Errorf("Line %v, want %v", rl.Line, tc.line)
			}
			if Classify(outcome) != Temporary {
				t.Errorf("Classify(%v) = %v, want Temporary", outcome, Classify(outcome))
			}
			tooMuch(t, closed, h, "send", tc.stage)
		})
	}
}

// TestSMTPEndlessAfterEnd: after the final dot or BDAT LAST the server
// may have the message: it is not sent again, but unknown.
func TestSMTPEndlessAfterEnd(t *testing.T) {
	for _, tc := range []struct {
		name, at string
		without  []string
	}{
		{"final dot", "dot", []string{"PIPELINING", "CHUNKING"}},
		{"final dot pipelined", "dot", []string{"CHUNKING"}},
		{"BDAT LAST", "BDAT LAST", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, conns := range []int{1, 2} {
				h := startHostile(t, &hostile{at: tc.at, misbehave: endless("250-")})
				cfg := withoutExt(h.config(NoTLS), tc.without)
				cfg.Connections = conns
				m := testMessage(1, 500)
				dialErr, outcome, closed := sendOne(t, cfg, m)
				if dialErr != nil {
					t.Fatal(dialErr)
				}
				var se *SendError
				if !errors.As(outcome, &se) || se.Stage != "end of DATA" || se.To != m.To {
					t.Fatalf("outcome %v, want %s's *SendError at end of DATA", outcome, m.To)
				}
				if Classify(outcome) != Uncertain {
					t.Errorf("Classify(%v) = %v, want Uncertain", outcome, Classify(outcome))
				}
				tooMuch(t, outcome, h, "send", "end of DATA")
				// Not handed to another connection: sent once.
				h.mu.Lock()
				if len(h.accepted) != 1 {
					t.Errorf("%d connections: RCPT TO accepted %d times, want once: %v", conns, len(h.accepted), h.accepted)
				}
				h.mu.Unlock()
				// The last connection standing stops the sender. (With
				// two, the other may have left first, the queue closed.)
				if conns == 1 {
					tooMuch(t, closed, h, "send", "end of DATA")
				}
			}
		})
	}
}

// TestSMTPTrickle: a server that sends a byte every 50 ms gets the
// timeout for the whole of a reply, not for each byte. Each trickle stops
// after 60 bytes (3 s) and closes, so that a deadline pushed back by each
// byte shows as the end of the connection, not as a timeout.
func TestSMTPTrickle(t *testing.T) {
	const timeout = 400 * time.Millisecond
	for _, tc := range []struct {
		name, at string
		sec      Security
		without  []string
		prefix   string
		check    func(t *testing.T, dialErr, outcome error)
	}{
		{"greeting", "greeting", NoTLS, nil, "220-", dialStep("hello", "greeting")},
		{"greeting before STARTTLS", "greeting", StartTLS, nil, "220-", dialStep("starttls", "greeting")},
		{"EHLO", "EHLO", ImplicitTLS, nil, "250-", dialStep("hello", "EHLO")},
		{"AUTH", "AUTH", NoTLS, nil, "334-", dialStep("auth", "")},
		{"RCPT pipelined", "RCPT", NoTLS, nil, "250-", sendStage("RCPT TO")},
		{"final dot", "dot", NoTLS, []string{"PIPELINING", "CHUNKING"}, "250-", sendStage("end of DATA")},
		{"BDAT LAST", "BDAT LAST", StartTLS, nil, "250-", sendStage("end of DATA")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const max = 60
			h := startHostile(t, &hostile{at: tc.at, misbehave: trickle(tc.prefix, max), tls: &tls.Config{Certificates: []tls.Certificate{certs(t).good}}, implicit: tc.sec == ImplicitTLS})
			cfg := withoutExt(h.config(tc.sec), tc.without)
			cfg.Host = "localhost"
			cfg.Timeout = timeout
			dialErr, outcome, _ := sendOne(t, cfg, testMessage(1, 500))
			err := dialErr
			if err == nil {
				err = outcome
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%v, want a timeout", err)
			}
			if n := h.wrote.Load(); n >= max {
				t.Errorf("the server trickled all of its %d bytes", n)
			}
			tc.check(t, dialErr, outcome)
		})
	}
}

// dialStep checks that the dial failed at step, and names stage.
func dialStep(step, stage string) func(t *testing.T, dialErr, outcome error) {
	return func(t *testing.T, dialErr, _ error) {
		var ce *ConnError
		if !errors.As(dialErr, &ce) || ce.Step != step {
			t.Fatalf("%v, want a *ConnError at %s", dialErr, step)
		}
		if !strings.Contains(dialErr.Error(), ": "+step+": "+stage) {
			t.Errorf("%q does not name %s: %s", dialErr, step, stage)
		}
		if stage == stageGreeting && ce.Hint != HintNotSMTP {
			t.Errorf("hint %q: want the settings to check for a server that does not greet (HintNotSMTP)", ce.Hint)
		}
	}
}

// sendStage checks that the message failed at stage.
func sendStage(stage string) func(t *testing.T, dialErr, outcome error) {
	return func(t *testing.T, dialErr, outcome error) {
		var se *SendError
		if dialErr != nil || !errors.As(outcome, &se) || se.Stage != stage {
			t.Fatalf("dial %v, outcome %v; want a *SendError at %s", dialErr, outcome, stage)
		}
	}
}

// TestSMTPEndlessChallenges: a server that asks for the password again and
// again, each time at once, can't keep AUTH going past the timeout.
func TestSMTPEndlessChallenges(t *testing.T) {
	start := time.Now()
	h := startHostile(t, &hostile{at: "AUTH", mechs: "LOGIN", misbehave: func(w io.Writer, r *bufio.Reader) error {
		for time.Since(start) < 5*time.Second { // then gone, rather than a timeout
			if _, err := io.WriteString(w, "334 UGFzc3dvcmQ6\r\n"); err != nil { // "Password:"
				return err
			}
			if _, err := r.ReadString('\n'); err != nil {
				return err
			}
		}
		return nil
	}})
	cfg := h.config(NoTLS)
	cfg.Timeout = 300 * time.Millisecond
	dialErr, _, _ := sendOne(t, cfg, testMessage(1, 500))
	var ce *ConnError
	if !errors.As(dialErr, &ce) || ce.Step != "auth" || !errors.Is(dialErr, os.ErrDeadlineExceeded) {
		t.Fatalf("%v, want a timeout at auth", dialErr)
	}
	if rounds := h.wrote.Load() / int64(len("334 UGFzc3dvcmQ6\r\n")); rounds < 3 {
		t.Errorf("%d challenges: the test did not keep AUTH going", rounds)
	}
}

// TestSMTPLongReplies: a server within the bounds, with a long EHLO (60
// extensions) and every reply of a pipelined group 20 lines of 900 bytes
// (54 KiB in all), is a server batch sends to, in every way.
func TestSMTPLongReplies(t *testing.T) {
	var ext []string
	for i := range 60 {
		ext = append(ext, fmt.Sprintf("X-EXTENSION-%02d with=some parameters", i))
	}
	for _, w := range ways {
		for _, sec := range []Security{NoTLS, StartTLS} {
			t.Run(w.name+"/"+sec.String(), func(t *testing.T) {
				h := startHostile(t, &hostile{ext: ext, text: 20, tls: &tls.Config{Certificates: []tls.Certificate{certs(t).good}}})
				cfg := withoutExt(h.config(sec), w.without)
				cfg.Host = "localhost"
				msgs := testMessages(3)
				_, o := sendAll(t, cfg, msgs)
				o.allSent(t, msgs)
				h.mu.Lock()
				defer h.mu.Unlock()
				if len(h.accepted) != len(msgs) {
					t.Errorf("RCPT TO accepted %v, want each of %d once", h.accepted, len(msgs))
				}
			})
		}
	}
}

func TestBoundedConn(t *testing.T) {
	// pipe returns a boundedConn reading what the goroutine writes.
	pipe := func(t *testing.T, server ...[]byte) *boundedConn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		go func() {
			for _, s := range server {
				if _, err := b.Write(s); err != nil {
					return
				}
			}
		}()
		go io.Copy(io.Discard, b) // what batch writes
		return newBoundedConn(a)
	}
	readAll := func(c *boundedConn, n int) error {
		buf := make([]byte, 4096)
		for n > 0 {
			k, err := c.Read(buf[:min(n, len(buf))])
			if err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
	line := func(n int) []byte { // n bytes, the CRLF included
		return append(bytes.Repeat([]byte("x"), n-2), "\r\n"...)
	}
	limit := func(t *testing.T, err error, stage string, isLine bool) {
		t.Helper()
		var rl *ReplyLimitError
		if !errors.As(err, &rl) || rl.Stage != stage || rl.Line != isLine {
			t.Fatalf("%v, want a *ReplyLimitError at %q, line %v", err, stage, isLine)
		}
	}

	t.Run("in all", func(t *testing.T) {
		l := line(1024)
		c := pipe(t, bytes.Repeat(l, 64), bytes.Repeat(l, 64), []byte("y"))
		if err := readAll(c, maxReplies); err != nil {
			t.Fatalf("64 KiB of greeting: %v", err)
		}
		c.Write([]byte("EHLO x\r\n"))
		c.expect(stageEHLO)
		if err := readAll(c, maxReplies); err != nil {
			t.Fatalf("64 KiB after a write: %v", err)
		}
		limit(t, readAll(c, 1), stageEHLO, false)
		limit(t, readAll(c, 1), stageEHLO, false) // and from then on
	})
	t.Run("greeting", func(t *testing.T) {
		c := pipe(t, bytes.Repeat(line(1000), 66))
		c.expect(stageEHLO) // nothing written yet
		limit(t, readAll(c, 66000), stageGreeting, false)
	})
	t.Run("line", func(t *testing.T) {
		c := pipe(t, line(1024), []byte("250 "), line(1021))
		if err := readAll(c, 1024); err != nil {
			t.Fatalf("a line of 1024 bytes: %v", err)
		}
		limit(t, readAll(c, 1025), stageGreeting, true)
	})
	t.Run("line without its end", func(t *testing.T) {
		// Nothing of a line is given before its end: 1024 bytes without
		// one are too many, its CRLF can't fit.
		c := pipe(t, []byte("220-ok\r\n"), bytes.Repeat([]byte("x"), 1023), []byte("x"))
		if err := readAll(c, 8); err != nil {
			t.Fatal(err)
		}
		limit(t, readAll(c, 1), stageGreeting, true)
	})
	t.Run("long line in pieces", func(t *testing.T) {
		// The start of a line, then the rest past the bound: textproto
		// must not take the start for the reply's last line.
		c := pipe(t, []byte("250-mx.test\r\n250 "), bytes.Repeat([]byte("x"), 1000), bytes.Repeat([]byte("x"), 100), []byte("\r\n"))
		code, msg, err := textproto.NewReader(bufio.NewReader(c)).ReadResponse(250)
		if !isReplyLimit(err) {
			t.Fatalf("reply %d %.20q…, %v; want a *ReplyLimitError", code, msg, err)
		}
	})
	t.Run("whole lines, then the connection's error", func(t *testing.T) {
		a, b := net.Pipe()
		c := newBoundedConn(a)
		go func() {
			b.Write([]byte("250-one\r\n250 two\r\n250 thr"))
			b.Close()
		}()
		got, err := io.ReadAll(c)
		if string(got) != "250-one\r\n250 two\r\n" || err != nil {
			t.Errorf("read %q, %v; want the whole lines, then EOF", got, err)
		}
	})
	t.Run("stage deadline", func(t *testing.T) {
		c := pipe(t) // a server that says nothing
		c.within(50 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(time.Hour)) // as go-smtp does
		if err := readAll(c, 1); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%v, want the stage's deadline", err)
		}
		c.within(0)
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if err := readAll(c, 1); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%v, want the deadline set", err)
		}
	})
}

// chunked is a connection whose reads give data in pieces of the sizes
// given, in turn.
type chunked struct {
	net.Conn
	data  []byte
	sizes []byte
	i     int
}

func (c *chunked) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = min(n, 1+int(c.sizes[c.i%len(c.sizes)])*8)
		c.i++
	}
	n = copy(b, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzBoundedConn holds the bounded connection, whatever the server's
// bytes and however they come, to this: what it gives is the server's
// whole lines, in order, no more than the bounds allow; it ends with
// io.EOF when the server's bytes are within them, and with a
// *ReplyLimitError when they aren't.
func FuzzBoundedConn(f *testing.F) {
	f.Add([]byte("220 mx.test\r\n"), uint16(1), []byte{0})
	f.Add([]byte("250-a\r\n250 b"), uint16(1), []byte{1, 200})
	f.Add([]byte("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), uint16(16), []byte{3})
	f.Add([]byte("250-0123456789\r\n"), uint16(5000), []byte{255, 7})
	f.Fuzz(func(t *testing.T, piece []byte, repeat uint16, sizes []byte) {
		// The server says piece repeat times: small inputs reach the
		// bound in all.
		data := bytes.Repeat(piece, int(repeat)%(2*maxReplies/max(1, len(piece))+2))
		c := newBoundedConn(&chunked{data: data, sizes: sizes})
		got, err := io.ReadAll(c)
		// The whole lines the server's bytes have within the bounds.
		want, over := data, false
		if i := bytes.LastIndexByte(want, '\n'); i >= 0 {
			want = want[:i+1]
		} else {
			want = nil
		}
		long := data
		if len(long) > maxReplies {
			long, over = long[:maxReplies], true
		}
		for l := range bytes.Lines(long) {
			if len(l) > maxReplyLine || !bytes.HasSuffix(l, []byte("\n")) && len(l) >= maxReplyLine {
				over = true
			}
		}
		if !over {
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("gave %d bytes, %v; want the %d of the whole lines, and EOF", len(got), err, len(want))
			}
			return
		}
		if !isReplyLimit(err) {
			t.Fatalf("%v, want a *ReplyLimitError", err)
		}
		if !bytes.HasPrefix(data, got) || len(got) > maxReplies || len(got) > 0 && got[len(got)-1] != '\n' {
			t.Fatalf("gave %d bytes that are not whole lines the server sent, within the bounds", len(got))
		}
	})
}
