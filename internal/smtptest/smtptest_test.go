package smtptest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestMain fails the run if a server left a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if stacks := serverGoroutines(2 * time.Second); stacks != "" {
			fmt.Fprintf(os.Stderr, "smtptest: goroutines left behind:\n%s\n", stacks)
			code = 1
		}
	}
	os.Exit(code)
}

// serverGoroutines waits up to d for the server side's goroutines to end,
// and returns the stacks of those that didn't.
func serverGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			for _, frame := range []string{"smtptest.(*Server)", "smtptest.(*session)", "go-smtp.(*Server)", "go-smtp.(*Conn)"} {
				if strings.Contains(g, frame) {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const sender = "news@example.org"

func dial(t *testing.T, s *Server) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
	if err != nil {
		t.Fatal(err)
	}
	c.CommandTimeout = 2 * time.Second
	c.SubmissionTimeout = 2 * time.Second
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func message(to string) string {
	return "From: <" + sender + ">\r\nTo: <" + to + ">\r\nSubject: test\r\n\r\nHello,\r\n.a line that starts with a dot\r\n"
}

// send runs one transaction; on failure it returns the step that failed:
// "mail", "rcpt", "data" (the DATA command), "write" or "dot" (the reply to
// the final dot).
func send(c *smtp.Client, msg string, to ...string) (string, error) {
	if err := c.Mail(sender, nil); err != nil {
		return "mail", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "rcpt", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "data", err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return "write", err
	}
	if err := w.Close(); err != nil {
		return "dot", err
	}
	return "", nil
}

// wantReply checks that err is the server's reply code, with enh.
func wantReply(t *testing.T, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("got error %v, want an SMTP reply %d", err, code)
	}
	if se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("got reply %d %v, want %d %v", se.Code, se.EnhancedCode, code, enh)
	}
}

// wantHangUp checks that err is a broken connection, not a reply.
func wantHangUp(t *testing.T, err error) {
	t.Helper()
	var se *smtp.SMTPError
	switch {
	case err == nil:
		t.Fatal("no error, want the connection to be gone")
	case errors.As(err, &se):
		t.Fatalf("got reply %d %v, want the connection to be gone", se.Code, se.EnhancedCode)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("got a timeout (%v), want the connection to be gone", err)
	}
}

// wantCounts compares counts by recipient; a zero in want is no entry.
func wantCounts(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	want = maps.Clone(want)
	if want == nil {
		want = map[string]int{}
	}
	maps.DeleteFunc(want, func(_ string, n int) bool { return n == 0 })
	if !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestDeliver(t *testing.T) {
	s := Start(t)
	if s.Host() != "127.0.0.1" || s.Port() == 0 {
		t.Fatalf("listening on %s:%d", s.Host(), s.Port())
	}
	c := dial(t, s)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("the server offers AUTH")
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("the server offers STARTTLS")
	}
	m1 := message("a@example.net")
	if step, err := send(c, m1, "A@Example.NET", "b@example.net"); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	m2 := message("c@example.net")
	if step, err := send(c, m2, "c@example.net"); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a@example.net": 1, "b@example.net": 1, "c@example.net": 1}
	wantCounts(t, "Delivered", s.Delivered(), want)
	wantCounts(t, "Received", s.Received(), want)
	wantCounts(t, "Attempts", s.Attempts(), want)
	msgs := s.Messages()
	if len(msgs) != 2 || string(msgs[0].Data) != m1 || string(msgs[1].Data) != m2 {
		t.Fatalf("Messages = %+v, want %q", msgs, []string{m1, m2})
	}
	if m := msgs[0]; m.Conn != 1 || m.Helo != "client.test" || m.TLS || m.User != "" || m.From != sender ||
		!slices.Equal(m.To, []string{"A@Example.NET", "b@example.net"}) {
		t.Errorf("first message %+v: want on connection 1 from client.test, in plain text, no user, from %s to both as given", m, sender)
	}
	msgs[0].Data[0] = 'X' // a copy
	msgs[0].To[0] = "X"
	if m := s.Messages()[0]; m.Data[0] != 'F' || m.To[0] != "A@Example.NET" {
		t.Error("Messages returns the server's own buffers")
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections = %d, want 1", n)
	}
}

func TestReply(t *testing.T) {
	const rcpt = "reader@example.net"
	for _, tc := range []struct {
		name     string
		fault    Fault
		step     string
		enh      smtp.EnhancedCode
		received int // before the retry
	}{
		{"mail", Fault{Stage: AtMail, Code: 451, Enhanced: [3]int{4, 3, 0}}, "mail", smtp.EnhancedCode{4, 3, 0}, 0},
		{"rcpt", Fault{Rcpt: "Reader@Example.net", Stage: AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}}, "rcpt", smtp.EnhancedCode{5, 1, 1}, 0},
		{"data", Fault{Stage: AtData, Code: 554, Enhanced: [3]int{5, 7, 1}}, "dot", smtp.EnhancedCode{5, 7, 1}, 1},
		{"no enhanced code", Fault{Rcpt: rcpt, Stage: AtData, Code: 452}, "dot", smtp.EnhancedCode{4, 0, 0}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fault.Times = 1
			s := Start(t, tc.fault)
			c := dial(t, s)
			step, err := send(c, message(rcpt), rcpt)
			if step != tc.step {
				t.Fatalf("failed at %q (%v), want at %q", step, err, tc.step)
			}
			wantReply(t, err, tc.fault.Code, tc.enh)
			wantCounts(t, "Delivered", s.Delivered(), nil)
			wantCounts(t, "Received", s.Received(), map[string]int{rcpt: tc.received})
			if len(s.Messages()) != 0 {
				t.Errorf("a rejected message is in Messages")
			}
			// The connection goes on, and the fault has struck its once.
			if err := c.Reset(); err != nil {
				t.Fatal(err)
			}
			if step, err := send(c, message(rcpt), rcpt); err != nil {
				t.Fatalf("retry: %s: %v", step, err)
			}
			wantCounts(t, "Delivered", s.Delivered(), map[string]int{rcpt: 1})
			wantCounts(t, "Received", s.Received(), map[string]int{rcpt: tc.received + 1})
			attempts := 2
			if tc.fault.Stage == AtMail {
				attempts = 1
			}
			wantCounts(t, "Attempts", s.Attempts(), map[string]int{rcpt: attempts})
		})
	}
}

// TestRcptFaultIsPerRecipient checks that a fault for one recipient leaves
// the others alone, always (Times 0).
func TestRcptFaultIsPerRecipient(t *testing.T) {
	s := Start(t, Fault{Rcpt: "bad@example.net", Stage: AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}})
	c := dial(t, s)
	for range 3 {
		if step, err := send(c, message("ok"), "ok@example.net"); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		_, err := send(c, message("bad"), "BAD@example.net")
		wantReply(t, err, 550, smtp.EnhancedCode{5, 1, 1})
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	wantCounts(t, "Delivered", s.Delivered(), map[string]int{"ok@example.net": 3})
	wantCounts(t, "Attempts", s.Attempts(), map[string]int{"ok@example.net": 3, "bad@example.net": 3})
}

func TestHangUp(t *testing.T) {
	const rcpt = "reader@example.net"
	for _, tc := range []struct {
		stage    Stage
		step     string
		attempts int
		received int
	}{
		{AtMail, "mail", 0, 0},
		{AtRcpt, "rcpt", 1, 0},
		{AtData, "dot", 1, 1},
	} {
		t.Run(stageName(tc.stage), func(t *testing.T) {
			notify := make(chan string, 1)
			s := Start(t, Fault{Stage: tc.stage, HangUp: true, Notify: notify})
			c := dial(t, s)
			step, err := send(c, message(rcpt), rcpt)
			if step != tc.step {
				t.Fatalf("failed at %q (%v), want at %q", step, err, tc.step)
			}
			wantHangUp(t, err)
			wantHangUp(t, c.Noop())
			want := rcpt
			if tc.stage == AtMail {
				want = ""
			}
			if got := <-notify; got != want {
				t.Errorf("notified %q, want %q", got, want)
			}
			wantCounts(t, "Delivered", s.Delivered(), nil)
			wantCounts(t, "Attempts", s.Attempts(), map[string]int{rcpt: tc.attempts})
			wantCounts(t, "Received", s.Received(), map[string]int{rcpt: tc.received})
		})
	}
}

// TestReplyThenHangUp checks that a code with HangUp is replied before the
// connection goes, as a server that shuts down replies 421.
func TestReplyThenHangUp(t *testing.T) {
	const rcpt = "reader@example.net"
	for _, tc := range []struct {
		stage Stage
		step  string
	}{
		{AtMail, "mail"},
		{AtRcpt, "rcpt"},
		{AtData, "dot"},
	} {
		t.Run(stageName(tc.stage), func(t *testing.T) {
			s := Start(t, Fault{Stage: tc.stage, Code: 421, Enhanced: [3]int{4, 3, 2}, HangUp: true})
			c := dial(t, s)
			step, err := send(c, message(rcpt), rcpt)
			if step != tc.step {
				t.Fatalf("failed at %q (%v), want at %q", step, err, tc.step)
			}
			wantReply(t, err, 421, smtp.EnhancedCode{4, 3, 2})
			wantHangUp(t, c.Noop())
			wantCounts(t, "Delivered", s.Delivered(), nil)
		})
	}
}

// TestSequence checks that faults for the same recipient and stage strike
// in order, each its Times, across connections.
func TestSequence(t *testing.T) {
	const rcpt = "reader@example.net"
	s := Start(t,
		Fault{Rcpt: rcpt, Stage: AtRcpt, Code: 451, Times: 1},
		Fault{Rcpt: rcpt, Stage: AtRcpt, HangUp: true, Times: 1},
	)
	c := dial(t, s)
	_, err := send(c, message(rcpt), rcpt)
	wantReply(t, err, 451, smtp.EnhancedCode{4, 0, 0})
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if step, err := send(c, message("other"), "other@example.net"); err != nil {
		t.Fatalf("other recipient: %s: %v", step, err)
	}
	_, err = send(c, message(rcpt), rcpt)
	wantHangUp(t, err)

	c = dial(t, s)
	if step, err := send(c, message(rcpt), rcpt); err != nil {
		t.Fatalf("third attempt: %s: %v", step, err)
	}
	wantCounts(t, "Attempts", s.Attempts(), map[string]int{rcpt: 3, "other@example.net": 1})
	wantCounts(t, "Delivered", s.Delivered(), map[string]int{rcpt: 1, "other@example.net": 1})
	if n := s.Connections(); n != 2 {
		t.Errorf("Connections = %d, want 2", n)
	}
}

// TestTimesConcurrent checks that Times holds when clients race for it.
func TestTimesConcurrent(t *testing.T) {
	const clients, times = 12, 5
	s := Start(t, Fault{Stage: AtData, Code: 451, Times: times})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		rejected int
	)
	conns := make([]*smtp.Client, clients)
	for i := range conns {
		conns[i] = dial(t, s)
	}
	for i, c := range conns {
		wg.Go(func() {
			rcpt := fmt.Sprintf("r%d@example.net", i)
			step, err := send(c, message(rcpt), rcpt)
			var se *smtp.SMTPError
			switch {
			case err == nil:
			case step == "dot" && errors.As(err, &se) && se.Code == 451:
				mu.Lock()
				rejected++
				mu.Unlock()
			default:
				t.Errorf("%s: %s: %v", rcpt, step, err)
			}
		})
	}
	wg.Wait()
	if rejected != times {
		t.Errorf("%d rejected, want %d", rejected, times)
	}
	delivered := 0
	for _, n := range s.Delivered() {
		delivered += n
	}
	if delivered != clients-times || len(s.Messages()) != clients-times {
		t.Errorf("%d delivered, %d messages, want %d", delivered, len(s.Messages()), clients-times)
	}
	if n := len(s.Received()); n != clients {
		t.Errorf("received for %d recipients, want %d", n, clients)
	}
	if n := s.Connections(); n != clients {
		t.Errorf("Connections = %d, want %d", n, clients)
	}
}

// TestSilent checks that a Silent fault takes the message and never
// answers: the client times out, and the server knows it got the bytes.
func TestSilent(t *testing.T) {
	const rcpt = "reader@example.net"
	notify := make(chan string, 1)
	s := Start(t, Fault{Rcpt: rcpt, Stage: AtData, Silent: true, Notify: notify})
	c := dial(t, s)
	c.SubmissionTimeout = 100 * time.Millisecond
	start := time.Now()
	step, err := send(c, message(rcpt), rcpt)
	var ne net.Error
	if step != "dot" || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("failed at %q with %v, want a timeout at the dot", step, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	if got := <-notify; got != rcpt {
		t.Errorf("notified %q", got)
	}
	wantCounts(t, "Received", s.Received(), map[string]int{rcpt: 1})
	wantCounts(t, "Delivered", s.Delivered(), nil)
	if len(s.Messages()) != 0 {
		t.Error("a message the server never acknowledged is in Messages")
	}

	// When the client goes away, the server hangs up too and the next
	// connection works.
	c.Close()
	c = dial(t, s)
	if step, err := send(c, message("other"), "other@example.net"); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
}

func TestDelay(t *testing.T) {
	const rcpt = "reader@example.net"
	const delay = 150 * time.Millisecond
	notify := make(chan string, 1)
	s := Start(t, Fault{Stage: AtRcpt, Delay: delay, Times: 1, Notify: notify})
	c := dial(t, s)
	start := time.Now()
	if step, err := send(c, message(rcpt), rcpt); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("took %v, want at least %v", d, delay)
	}
	if got := <-notify; got != rcpt {
		t.Errorf("notified %q", got)
	}
	start = time.Now()
	if step, err := send(c, message(rcpt), rcpt); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	if d := time.Since(start); d >= delay {
		t.Errorf("the second transaction took %v: the fault struck more than Times", d)
	}
	wantCounts(t, "Delivered", s.Delivered(), map[string]int{rcpt: 2})
}

// TestDelayedAcceptance is the at-most-once case: the client gives up
// waiting for the reply to the dot, but the server then accepts the
// message.
func TestDelayedAcceptance(t *testing.T) {
	const rcpt = "reader@example.net"
	s := Start(t, Fault{Stage: AtData, Delay: 200 * time.Millisecond})
	c := dial(t, s)
	c.SubmissionTimeout = 50 * time.Millisecond
	step, err := send(c, message(rcpt), rcpt)
	var ne net.Error
	if step != "dot" || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("failed at %q with %v, want a timeout at the dot", step, err)
	}
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for s.Delivered()[rcpt] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server never accepted the message")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantCounts(t, "Delivered", s.Delivered(), map[string]int{rcpt: 1})
}

func TestMidData(t *testing.T) {
	const rcpt = "reader@example.net"
	for _, size := range []int{200, 4 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			notify := make(chan string, 1)
			s := Start(t, Fault{Stage: AtData, MidData: true, Notify: notify})
			c := dial(t, s)
			msg := message(rcpt)
			msg += strings.Repeat(strings.Repeat("x", 78)+"\r\n", (size-len(msg))/80+1)
			step, err := send(c, msg, rcpt)
			if step != "write" && step != "dot" {
				t.Fatalf("failed at %q (%v), want in the data", step, err)
			}
			wantHangUp(t, err)
			if got := <-notify; got != rcpt {
				t.Errorf("notified %q", got)
			}
			wantCounts(t, "Attempts", s.Attempts(), map[string]int{rcpt: 1})
			wantCounts(t, "Received", s.Received(), nil)
			wantCounts(t, "Delivered", s.Delivered(), nil)
		})
	}
}

func TestSetFaults(t *testing.T) {
	const rcpt = "reader@example.net"
	s := Start(t, Fault{Rcpt: rcpt, Stage: AtRcpt, Code: 550})
	c := dial(t, s)
	_, err := send(c, message(rcpt), rcpt)
	wantReply(t, err, 550, smtp.EnhancedCode{5, 0, 0})
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}

	s.SetFaults()
	if step, err := send(c, message(rcpt), rcpt); err != nil {
		t.Fatalf("without faults: %s: %v", step, err)
	}

	f := Fault{Rcpt: rcpt, Stage: AtData, Code: 451, Times: 1}
	for run := range 2 {
		s.SetFaults(f) // with its strikes anew
		_, err = send(c, message(rcpt), rcpt)
		wantReply(t, err, 451, smtp.EnhancedCode{4, 0, 0})
		if step, err := send(c, message(rcpt), rcpt); err != nil {
			t.Fatalf("run %d: %s: %v", run, step, err)
		}
	}
	wantCounts(t, "Attempts", s.Attempts(), map[string]int{rcpt: 6})
	wantCounts(t, "Received", s.Received(), map[string]int{rcpt: 5})
	wantCounts(t, "Delivered", s.Delivered(), map[string]int{rcpt: 3})
}

// TestStopWhilePending checks that the server stops at Cleanup at once,
// without leaving a goroutine behind, while it keeps a client waiting.
func TestStopWhilePending(t *testing.T) {
	const rcpt = "reader@example.net"
	for _, tc := range []struct {
		name  string
		fault Fault
	}{
		{"silent", Fault{Stage: AtData, Silent: true}},
		{"delay at mail", Fault{Stage: AtMail, Delay: time.Minute}},
		{"delay at data", Fault{Stage: AtData, Delay: time.Minute, Code: 451}},
		{"delay mid data", Fault{Stage: AtData, Delay: time.Minute, MidData: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			result := make(chan error, 1)
			var stopped time.Time
			t.Run("server", func(t *testing.T) {
				notify := make(chan string, 1)
				tc.fault.Notify = notify
				s := Start(t, tc.fault)
				c, err := smtp.Dial(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
				if err != nil {
					t.Fatal(err)
				}
				c.CommandTimeout = time.Minute
				c.SubmissionTimeout = time.Minute
				go func() {
					defer c.Close()
					_, err := send(c, message(rcpt), rcpt)
					result <- err
				}()
				<-notify
				time.Sleep(20 * time.Millisecond) // into the wait
				stopped = time.Now()
			})
			select {
			case err := <-result:
				wantHangUp(t, err)
			case <-time.After(2 * time.Second):
				t.Fatal("the client still waits after the server stopped")
			}
			if d := time.Since(stopped); d > time.Second {
				t.Errorf("stopping took %v", d)
			}
			if stacks := serverGoroutines(time.Second); stacks != "" {
				t.Errorf("goroutines left behind:\n%s", stacks)
			}
		})
	}
}

func TestFaultCheck(t *testing.T) {
	for _, f := range []Fault{
		{Stage: AtMail, Code: 421, HangUp: true},
		{Rcpt: "a@example.net", Stage: AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}, Times: 2},
		{Stage: AtRcpt, HangUp: true, Delay: time.Second},
		{Stage: AtData, Silent: true},
		{Stage: AtData, MidData: true, HangUp: true},
		{Stage: AtData, Notify: make(chan string)},
		{Stage: AtRcpt, Flood: true, Delay: time.Second},
		{Stage: AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, Times: 2},
		{Stage: AtHello, Code: 451, WhenOpen: 2},
		{Stage: AtHello, HangUp: true, Delay: time.Second},
		{Stage: AtMail, Code: 421, AfterMessages: 2},
		{Stage: AtData, Hold: make(chan struct{})},
	} {
		if err := f.check(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
	for _, f := range []Fault{
		{Stage: AtHello + 1},
		{Stage: -1},
		{Rcpt: "a@example.net", Stage: AtHello, Code: 421},
		{Stage: AtRcpt, Code: 451, WhenOpen: 1},
		{Stage: AtHello, Code: 451, WhenOpen: -1},
		{Stage: AtMail, Code: 421, AfterMessages: -1},
		{Stage: AtHello, Silent: true},
		{Stage: AtHello, MidData: true},
		{Stage: AtData, Silent: true, Hold: make(chan struct{})},
		{Rcpt: "a@example.net", Stage: AtMail, Code: 451},
		{Stage: AtRcpt, Code: 250},
		{Stage: AtRcpt, Code: 600},
		{Stage: AtRcpt, Enhanced: [3]int{4, 0, 0}},
		{Stage: AtRcpt, Code: 451, Enhanced: [3]int{5, 1, 1}},
		{Stage: AtRcpt, Code: 451, Times: -1},
		{Stage: AtRcpt, Delay: -time.Second},
		{Stage: AtRcpt, Silent: true},
		{Stage: AtMail, MidData: true},
		{Stage: AtData, Silent: true, Code: 451},
		{Stage: AtData, Silent: true, HangUp: true},
		{Stage: AtData, Silent: true, MidData: true},
		{Stage: AtData, Silent: true, Delay: time.Second},
		{Stage: AtData, MidData: true, Code: 451},
		{Stage: AtRcpt, Flood: true, Code: 451},
		{Stage: AtRcpt, Flood: true, HangUp: true},
		{Stage: AtData, Flood: true, Silent: true},
		{Stage: AtData, Flood: true, MidData: true},
	} {
		if err := f.check(); err == nil {
			t.Errorf("%+v: no error", f)
		}
	}
}

// fatalTB records a fatal error instead of stopping the test.
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func TestInvalidFaultIsFatal(t *testing.T) {
	tb := &fatalTB{TB: t}
	if s := Start(tb, Fault{Stage: AtData}, Fault{Rcpt: "a@example.net", Stage: AtMail}); s != nil {
		t.Error("Start returned a server")
	}
	if !strings.Contains(tb.fatal, "fault 1") {
		t.Errorf("fatal error %q doesn't name fault 1", tb.fatal)
	}

	tb = &fatalTB{TB: t}
	s := Start(tb, Fault{Stage: AtRcpt, Code: 550, Times: 1})
	s.SetFaults(Fault{Stage: AtRcpt, Code: 200})
	if tb.fatal == "" {
		t.Error("SetFaults took an invalid fault")
	}
	// The old faults stay.
	c := dial(t, s)
	_, err := send(c, message("a@example.net"), "a@example.net")
	wantReply(t, err, 550, smtp.EnhancedCode{5, 0, 0})
}

// TestFlood reads a megabyte of a reply that never ends (a client with no
// bound would read on for ever), and hangs up: the server stops flooding.
func TestFlood(t *testing.T) {
	const rcpt = "reader@example.net"
	for _, stage := range []Stage{AtMail, AtRcpt, AtData} {
		t.Run(stageName(stage), func(t *testing.T) {
			f := Fault{Stage: stage, Flood: true, Times: 1}
			if stage != AtMail {
				f.Rcpt = rcpt
			}
			s := Start(t, f)
			conn, err := net.Dial("tcp", net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(conn)
			// reply reads a reply, and returns its last line.
			reply := func() string {
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						t.Fatalf("reading a reply: %v", err)
					}
					if len(l) < 4 || l[3] != '-' {
						return l
					}
				}
			}
			reply() // the greeting
			io.WriteString(conn, "EHLO client.test\r\n")
			reply()
			steps := []string{"MAIL FROM:<" + sender + ">", "RCPT TO:<" + rcpt + ">", "DATA"}
			steps = steps[:1+int(stage)]
			for _, cmd := range steps {
				io.WriteString(conn, cmd+"\r\n")
				if cmd != steps[len(steps)-1] {
					reply()
				}
			}
			if stage == AtData {
				if l := reply(); !strings.HasPrefix(l, "354 ") {
					t.Fatalf("DATA: %q", l)
				}
				io.WriteString(conn, message(rcpt)+".\r\n")
			}
			read := 0
			for read < 1<<20 {
				l, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(l, "250-") {
					t.Fatalf("after %d bytes: %q, %v; want more 250- lines", read, l, err)
				}
				read += len(l)
			}
			conn.Close()
			wantCounts(t, "Delivered", s.Delivered(), nil)
			received := map[string]int{}
			if stage == AtData {
				received[rcpt] = 1
			}
			wantCounts(t, "Received", s.Received(), received)
		})
	}
}
