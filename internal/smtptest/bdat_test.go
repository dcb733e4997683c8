package smtptest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// raw is a client that writes what it is told, for BDAT, which go-smtp's
// client doesn't send.
type raw struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, s *Server) *raw {
	t.Helper()
	conn, err := net.Dial("tcp", net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := &raw{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.reply() // the greeting
	return c
}

// reply reads a reply and returns its lines; an error is the connection's.
func (c *raw) replyErr() ([]string, error) {
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		lines = append(lines, strings.TrimSuffix(l, "\r\n"))
		if len(l) < 4 || l[3] != '-' {
			return lines, nil
		}
	}
}

func (c *raw) reply() []string {
	c.t.Helper()
	lines, err := c.replyErr()
	if err != nil {
		c.t.Fatalf("reading a reply: %v (so far %q)", err, lines)
	}
	return lines
}

// cmd writes a command and returns the last line of its reply.
func (c *raw) cmd(format string, args ...any) string {
	c.t.Helper()
	fmt.Fprintf(c.conn, format+"\r\n", args...)
	lines := c.reply()
	return lines[len(lines)-1]
}

// bdat writes each chunk with its BDAT command, the last with LAST, and
// returns the replies to all but the last; the last's is for the caller.
func (c *raw) bdat(chunks ...string) []string {
	c.t.Helper()
	var replies []string
	for i, ch := range chunks {
		last := ""
		if i == len(chunks)-1 {
			last = " LAST"
		}
		fmt.Fprintf(c.conn, "BDAT %d%s\r\n%s", len(ch), last, ch)
		if last == "" {
			replies = append(replies, c.reply()...)
		}
	}
	return replies
}

// TestBDAT: a message in chunks is taken whole by default; without
// CHUNKING, or with RefuseBDAT, it is refused, and DATA works.
func TestBDAT(t *testing.T) {
	const rcpt = "a@example.net"
	msg := message(rcpt)
	chunks := []string{msg[:10], msg[10:]}
	for _, tc := range []struct {
		name     string
		opts     []Option
		offered  bool
		accepted bool
	}{
		{"default", nil, true, true},
		{"without CHUNKING", []Option{Without(Chunking)}, false, false},
		{"RefuseBDAT", []Option{RefuseBDAT()}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, tc.opts...)
			c := dialRaw(t, s)
			fmt.Fprintf(c.conn, "EHLO client.test\r\n")
			if got := slices.Contains(c.reply(), "250-CHUNKING"); got != tc.offered {
				t.Errorf("CHUNKING offered: %v, want %v", got, tc.offered)
			}
			c.cmd("MAIL FROM:<%s>", sender)
			c.cmd("RCPT TO:<%s>", rcpt)
			first, want := c.bdat(chunks...), "250 2.0.0 Continue"
			if !tc.accepted {
				want = "502 5.5.1 smtptest: BDAT is not supported, use DATA"
			}
			if !slices.Equal(first, []string{want}) {
				t.Errorf("reply to the first chunk: %q, want %q", first, want)
			}
			last := c.reply()
			if !tc.accepted {
				// The second chunk has no transaction left.
				if !strings.HasPrefix(last[0], "502 ") {
					t.Errorf("BDAT LAST: %q, want 502", last)
				}
				wantCounts(t, "Delivered", s.Delivered(), nil)
				// DATA works all the same.
				c.cmd("MAIL FROM:<%s>", sender)
				c.cmd("RCPT TO:<%s>", rcpt)
				if r := c.cmd("DATA"); !strings.HasPrefix(r, "354 ") {
					t.Fatalf("DATA: %q", r)
				}
				if r := c.cmd("%s.", strings.ReplaceAll(msg, "\r\n.", "\r\n..")); !strings.HasPrefix(r, "250 ") {
					t.Fatalf("the final dot: %q", r)
				}
			} else if !strings.HasPrefix(last[0], "250 ") {
				t.Fatalf("BDAT LAST: %q, want 250", last)
			}
			wantCounts(t, "Delivered", s.Delivered(), map[string]int{rcpt: 1})
			if msgs := s.Messages(); len(msgs) != 1 || string(msgs[0].Data) != msg {
				t.Errorf("Messages %+v, want the message whole", msgs)
			}
		})
	}
}

// TestFaultsAtBDAT: a fault AtData strikes a message in chunks as one
// after DATA: at the first chunk, on the whole message, with its reply
// (or silence, or hang-up) to BDAT LAST; the chunks before are answered
// as usual. MidData hangs up in the first chunk.
func TestFaultsAtBDAT(t *testing.T) {
	const rcpt = "reader@example.net"
	msg := message(rcpt)
	chunks := []string{msg[:20], msg[20:]}
	gate := make(chan struct{})
	for _, tc := range []struct {
		name      string
		fault     Fault
		last      string // the start of the reply to BDAT LAST; "" for none
		hangUp    bool   // then the connection goes
		received  int
		delivered int
	}{
		{"code", Fault{Stage: AtData, Code: 554, Enhanced: [3]int{5, 7, 1}}, "554 5.7.1 ", false, 1, 0},
		{"code and hang-up", Fault{Stage: AtData, Code: 421, HangUp: true}, "421 4.0.0 ", true, 1, 0},
		{"hang-up", Fault{Stage: AtData, HangUp: true}, "", true, 1, 0},
		{"delay", Fault{Stage: AtData, Delay: 50 * time.Millisecond}, "250 ", false, 1, 1},
		{"hold", Fault{Stage: AtData, Hold: gate}, "250 ", false, 1, 1},
		{"flood", Fault{Stage: AtData, Flood: true}, "250-smtptest: and there is more", true, 1, 0},
		{"silent", Fault{Stage: AtData, Silent: true}, "", false, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notified := make(chan string, 1)
			tc.fault.Rcpt, tc.fault.Times, tc.fault.Notify = rcpt, 1, notified
			s := Start(t, tc.fault)
			c := dialRaw(t, s)
			c.cmd("EHLO client.test")
			c.cmd("MAIL FROM:<%s>", sender)
			c.cmd("RCPT TO:<%s>", rcpt)
			if r := c.bdat(chunks...); !slices.Equal(r, []string{"250 2.0.0 Continue"}) {
				t.Errorf("reply to the first chunk: %q, want it answered as usual", r)
			}
			if got := <-notified; got != rcpt {
				t.Errorf("notified %q", got)
			}
			if tc.fault.Hold != nil {
				// The message is in, and held: not delivered until the
				// gate opens.
				wantCounts(t, "Delivered before the gate opens", s.Delivered(), nil)
				close(gate)
			}
			if tc.fault.Silent {
				c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			}
			var lines []string
			var err error
			if tc.fault.Flood {
				var l string
				l, err = c.r.ReadString('\n') // the reply never ends
				lines = []string{l}
			} else {
				lines, err = c.replyErr()
			}
			var ne net.Error
			switch {
			case tc.fault.Silent:
				if !errors.As(err, &ne) || !ne.Timeout() || len(lines) > 0 {
					t.Errorf("BDAT LAST: %q, %v; want no reply", lines, err)
				}
			case tc.last == "":
				if err == nil || len(lines) > 0 {
					t.Errorf("BDAT LAST: %q, %v; want the connection gone", lines, err)
				}
			case len(lines) == 0 || !strings.HasPrefix(lines[0], tc.last):
				t.Errorf("BDAT LAST: %q, %v; want %q", lines, err, tc.last)
			}
			if tc.hangUp && tc.last != "" {
				if tc.fault.Flood {
					for range 100 { // a reply of at least 100 lines, then never mind
						if l, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "250-") {
							t.Fatalf("flood: %q, %v", l, err)
						}
					}
					c.conn.Close()
				} else if _, err := c.replyErr(); err == nil {
					t.Error("the connection is still open after the reply")
				}
			}
			wantCounts(t, "Received", s.Received(), map[string]int{rcpt: tc.received})
			wantCounts(t, "Delivered", s.Delivered(), map[string]int{rcpt: tc.delivered})
		})
	}

	t.Run("mid data", func(t *testing.T) {
		notified := make(chan string, 1)
		s := Start(t, Fault{Rcpt: rcpt, Stage: AtData, MidData: true, Notify: notified})
		c := dialRaw(t, s)
		c.cmd("EHLO client.test")
		c.cmd("MAIL FROM:<%s>", sender)
		c.cmd("RCPT TO:<%s>", rcpt)
		fmt.Fprintf(c.conn, "BDAT %d\r\n%s", len(chunks[0]), chunks[0])
		if got := <-notified; got != rcpt {
			t.Errorf("notified %q", got)
		}
		if lines, err := c.replyErr(); err == nil {
			t.Errorf("first chunk: %q; want the connection gone", lines)
		}
		wantCounts(t, "Received", s.Received(), nil)
		wantCounts(t, "Delivered", s.Delivered(), nil)
	})
}
