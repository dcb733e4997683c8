package campaign

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// deliverCampaign is a campaign of faultList whose [smtp] table points at
// srv.
func deliverCampaign(t *testing.T, srv *smtptest.Server) *Campaign {
	t.Helper()
	smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nretries = 0\n", srv.Host(), srv.Port())
	return newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n\nThe news.\n", smtp, nil)
}

// results collects what Deliver tells of the messages.
type results struct {
	mu  sync.Mutex
	all []Result
}

func (r *results) tell(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, res)
}

// byRow returns the results told, by row.
func (r *results) byRow() map[int]Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	by := map[int]Result{}
	for _, res := range r.all {
		if _, ok := by[res.Row]; ok {
			by[-1] = res // told twice
		}
		by[res.Row] = res
	}
	return by
}

// TestDeliverReport: Deliver opens the journal, asks before the first
// message, tells each outcome as the journal holds it, and reports the
// whole list by the journal's word after the run; run again, it has
// nothing to send and says so without reaching the server.
func TestDeliverReport(t *testing.T) {
	const refused, lost = "bob@example.net", "dave@example.com"
	srv := smtptest.Start(t,
		smtptest.Fault{Rcpt: refused, Stage: smtptest.AtRcpt, Code: 550},
		smtptest.Fault{Rcpt: lost, Stage: smtptest.AtData, HangUp: true, Times: 1})
	c := deliverCampaign(t, srv)
	var asked []int
	var told results
	req := SendRequest{
		Options: Options{Now: now},
		Confirm: func(planned *Summary) error {
			asked = append(asked, planned.Messages)
			if srv.Connections() == 0 {
				return errors.New("asked before the server was reached")
			}
			return nil
		},
		Outcome: told.tell,
	}
	rep, err := c.Deliver(t.Context(), req)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if len(asked) != 1 || asked[0] != len(faultList) {
		t.Errorf("Confirm was asked %v, want once, for %d messages", asked, len(faultList))
	}
	want := Counts{Sent: len(faultList) - 2, Failed: 1, Unknown: 1}
	if !maps.Equal(rep.List, want) {
		t.Errorf("List %v, want %v", rep.List, want)
	}
	if rep.Unsettled() != 2 || rep.Stopped {
		t.Errorf("Unsettled %d, Stopped %v; want 2, false", rep.Unsettled(), rep.Stopped)
	}
	if o := rep.Summary.Outcomes(); o.Sent != want[Sent] || o.Failed != 1 || o.Unknown != 1 {
		t.Errorf("the Summary counts %+v, want what the list does: %v", o, want)
	}
	got := told.byRow()
	if len(got) != len(faultList) {
		t.Errorf("%d outcomes told, want one for each of %d rows: %v", len(got), len(faultList), got)
	}
	st := readState(t, c)
	for i, a := range faultList {
		r, ok := got[i+1]
		if !ok {
			t.Errorf("%s: no outcome told", a)
			continue
		}
		if e := st.Get(a); r.To != a || r.Status != e.Status {
			t.Errorf("row %d: told %s %v, the journal holds %s %v", i+1, r.To, r.Status, a, e.Status)
		}
		if (r.Err == nil) != (r.Status == Sent) {
			t.Errorf("%s: %v with the error %v", a, r.Status, r.Err)
		}
	}
	if d := srv.Delivered(); d[refused] != 0 || d[lost] != 0 || d[faultList[0]] != 1 {
		t.Errorf("delivered %v", d)
	}

	conns := srv.Connections()
	asked = nil
	rep, err = c.Deliver(t.Context(), req)
	if !errors.Is(err, ErrNothingToSend) {
		t.Fatalf("Deliver again: %v, want ErrNothingToSend", err)
	}
	if !maps.Equal(rep.List, want) || rep.Unsettled() != 2 || rep.Summary != nil {
		t.Errorf("nothing to send: List %v, Unsettled %d, Summary %v; want %v, 2, none", rep.List, rep.Unsettled(), rep.Summary, want)
	}
	if len(asked) != 0 || srv.Connections() != conns {
		t.Errorf("nothing to send, yet Confirm was asked %v and the server got %d connections more", asked, srv.Connections()-conns)
	}
}

// TestDeliverTestSend: a test send goes to the test address, is not
// recorded, and reports this run's outcomes, not the list's.
func TestDeliverTestSend(t *testing.T) {
	const tester = "tester@example.org"
	srv := smtptest.Start(t)
	c := deliverCampaign(t, srv)
	var told results
	rep, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now, To: tester, Limit: 2}, Outcome: told.tell})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if d := srv.Delivered(); d[tester] != 2 || len(d) != 1 {
		t.Errorf("delivered %v, want 2 to %s only", d, tester)
	}
	if got := told.byRow(); len(got) != 2 || got[1].To != tester || got[2].To != tester || got[1].Status != Sent || got[2].Status != Sent {
		t.Errorf("told %v, want rows 1 and 2 sent to %s", got, tester)
	}
	if rep.List != nil || rep.Unsettled() != 0 || rep.Stopped || rep.Summary.Outcomes().Sent != 2 {
		t.Errorf("List %v, Unsettled %d, Stopped %v, Summary %+v; want none, 0, false, 2 sent", rep.List, rep.Unsettled(), rep.Stopped, rep.Summary.Outcomes())
	}
	if n := readState(t, c).Len(); n != 0 {
		t.Errorf("the journal knows %d recipients after a test send, want none", n)
	}
	// A test send's failures are its own outcomes.
	srv.SetFaults(smtptest.Fault{Stage: smtptest.AtRcpt, Code: 550})
	rep, err = c.Deliver(t.Context(), SendRequest{Options: Options{Now: now, To: tester, Limit: 1}})
	if err != nil || rep.Unsettled() != 1 {
		t.Errorf("a refused test send: %v, Unsettled %d; want no error, 1", err, rep.Unsettled())
	}
}

// TestDeliverDeclined: Confirm's error sends nothing and is Deliver's.
func TestDeliverDeclined(t *testing.T) {
	srv := smtptest.Start(t)
	c := deliverCampaign(t, srv)
	no := errors.New("no")
	rep, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now}, Confirm: func(*Summary) error { return no }})
	if !errors.Is(err, no) {
		t.Fatalf("Deliver: %v, want Confirm's error", err)
	}
	if len(srv.Received()) != 0 || rep.Summary != nil || rep.Stopped {
		t.Errorf("received %v, Summary %v, Stopped %v; want nothing", srv.Received(), rep.Summary, rep.Stopped)
	}
	if rep.List[Pending] != len(faultList) {
		t.Errorf("List %v, want all %d pending", rep.List, len(faultList))
	}
}

// TestDeliverStopped: a send interrupted once messages went out is
// stopped, and its report counts what the journal holds.
func TestDeliverStopped(t *testing.T) {
	srv := smtptest.Start(t)
	c := deliverCampaign(t, srv)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rep, err := c.Deliver(ctx, SendRequest{
		Options: Options{Now: now},
		Outcome: func(Result) { cancel() }, // Ctrl-C after the first message
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver: %v, want context.Canceled", err)
	}
	sent := len(srv.Delivered())
	if !rep.Stopped || rep.List[Sent] != sent || rep.List[Sent]+rep.List[Pending] != len(faultList) || sent == 0 || sent == len(faultList) {
		t.Errorf("Stopped %v, List %v, the server delivered %d; want stopped, some of %d sent as delivered, the rest pending", rep.Stopped, rep.List, sent, len(faultList))
	}
}

// overlapList has a first message to send, then a row skipped with a
// warning, by which time the check has started reaching the server, then
// more, and a last row that may be broken.
func overlapList(last string) string {
	return "email,name\n" +
		"ada@example.org,Ada\n" +
		"not-an-address,Nobody\n" + // row 2: skipped, with a warning
		"bob@example.net,Bob\n" +
		last
}

// awaitHello is a Warn that waits, at the row skipped, for the server to
// have seen the EHLO of a connection: the check, not over yet, reached
// the server from its first message on.
func awaitHello(t *testing.T, hello <-chan string) func(error) {
	return func(error) {
		select {
		case <-hello:
		case <-time.After(quick):
			t.Error("the check reached row 2 and the server saw no EHLO: the connection waits for the check to end")
		}
	}
}

// TestDeliverConnectsDuringCheck: the server is reached and logged into
// while the list is checked, and that connection carries the messages:
// one connection, EHLO before the check's end, Confirm asked after it.
func TestDeliverConnectsDuringCheck(t *testing.T) {
	hello := make(chan string, 1)
	srv := smtptest.Start(t, smtptest.Fault{Stage: smtptest.AtHello, Notify: hello})
	smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nretries = 0\n", srv.Host(), srv.Port())
	c := newCampaign(t, overlapList("carol@example.com,Carol\n"), "# Hello {{.name}}!\n", smtp, nil)
	var asked int
	rep, err := c.Deliver(t.Context(), SendRequest{
		Options: Options{Now: now, Warn: awaitHello(t, hello)},
		Confirm: func(planned *Summary) error { asked = planned.Messages; return nil },
	})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if asked != 3 || rep.List[Sent] != 3 {
		t.Errorf("Confirm asked for %d messages, the journal holds %d sent; want 3, 3", asked, rep.List[Sent])
	}
	conns := srv.Conns()
	if len(conns) != 1 || conns[0].Delivered != 3 {
		t.Fatalf("connections %+v, want one, which delivered the 3 messages", conns)
	}
}

// TestDeliverCheckFailsAfterConnecting: a check that finds a problem once
// the server is reached sends nothing: the connection says EHLO and QUIT,
// no MAIL, and the problem is Deliver's error.
func TestDeliverCheckFailsAfterConnecting(t *testing.T) {
	for _, conns := range []int{1, 2} {
		t.Run(fmt.Sprintf("connections=%d", conns), func(t *testing.T) {
			hello := make(chan string, 1)
			srv := smtptest.Start(t, smtptest.Fault{Stage: smtptest.AtHello, Notify: hello})
			smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nretries = 0\nconnections = %d\n", srv.Host(), srv.Port(), conns)
			c := newCampaign(t, overlapList("carol@example.com,Carol,too many\n"), "# Hello {{.name}}!\n", smtp, nil)
			confirmed := false
			rep, err := c.Deliver(t.Context(), SendRequest{
				Options: Options{Now: now, Warn: awaitHello(t, hello)},
				Confirm: func(*Summary) error { confirmed = true; return nil },
			})
			var found Problems
			var rowErr *merge.RowError
			if !errors.As(err, &found) || !errors.As(err, &rowErr) || rowErr.Row != 4 {
				t.Fatalf("Deliver: %v, want the check's Problems, row 4 broken", err)
			}
			if confirmed || rep.Summary != nil || len(srv.Received()) != 0 {
				t.Errorf("confirmed %v, Summary %v, received %v; want nothing asked, nothing sent", confirmed, rep.Summary, srv.Received())
			}
			seen := srv.Conns()
			if len(seen) == 0 {
				t.Fatal("the server saw no connection: the check did not reach it")
			}
			for _, cn := range seen {
				cmds := cn.Commands()
				if len(cn.Mails) != 0 || len(cmds) == 0 || !strings.HasPrefix(cmds[0], "EHLO ") || cmds[len(cmds)-1] != "QUIT" {
					t.Errorf("connection %d: commands %q, MAIL %q; want EHLO, then QUIT, no MAIL", cn.ID, cmds, cn.Mails)
				}
				for _, cmd := range cmds {
					if verb, _, _ := strings.Cut(cmd, " "); verb == "MAIL" || verb == "RCPT" || verb == "DATA" || verb == "BDAT" {
						t.Errorf("connection %d: %q sent before the check passed", cn.ID, cmd)
					}
				}
			}
		})
	}
}

// TestDeliverCheckFailsStalledServer: a check that fails while the
// server it reaches stalls in the middle of the dial (no reply to EHLO, a
// timeout of ten minutes) gives its problems at once: the dial is called
// off, not waited for, and nothing is sent.
func TestDeliverCheckFailsStalledServer(t *testing.T) {
	hello := make(chan string, 1)
	hold := make(chan struct{})
	srv := smtptest.Start(t, smtptest.Fault{Stage: smtptest.AtHello, Notify: hello, Hold: hold})
	defer close(hold)
	smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nretries = 0\ntimeout = \"10m\"\n", srv.Host(), srv.Port())
	c := newCampaign(t, overlapList("carol@example.com,Carol,too many\n"), "# Hello {{.name}}!\n", smtp, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now, Warn: awaitHello(t, hello)}})
		done <- err
	}()
	select {
	case err := <-done:
		var found Problems
		if !errors.As(err, &found) {
			t.Fatalf("Deliver: %v, want the check's Problems", err)
		}
	case <-time.After(time.Minute): // a watchdog, far from the second it takes
		t.Fatal("the failed check waits for the stalled server's dial (timeout 10m)")
	}
	if len(srv.Received()) != 0 {
		t.Errorf("received %v, want nothing", srv.Received())
	}
}

// TestDeliverCheckFailsEveryConnection: with connections = 2, both
// connections open and log in while the list is checked; a check that
// then fails on a late row says QUIT on both, and no MAIL on either.
func TestDeliverCheckFailsEveryConnection(t *testing.T) {
	hello := make(chan string, 2)
	srv := smtptest.Start(t, smtptest.WithAuth(smtptest.Auth{Username: "news@example.org", Password: "secret", Mechanisms: []string{"PLAIN"}}),
		smtptest.Fault{Stage: smtptest.AtHello, Notify: hello})
	smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nretries = 0\nconnections = 2\nusername = \"news@example.org\"\n", srv.Host(), srv.Port())
	c := newCampaign(t, overlapList("carol@example.com,Carol,too many\n"), "# Hello {{.name}}!\n", smtp, nil)
	rep, err := c.Deliver(t.Context(), SendRequest{
		Options:  Options{Now: now, Warn: awaitHello(t, hello)},
		Password: "secret",
		Confirm:  func(*Summary) error { t.Error("Confirm asked after a failed check"); return nil },
	})
	var found Problems
	if !errors.As(err, &found) || rep.Summary != nil {
		t.Fatalf("Deliver: %v, Summary %v; want the check's Problems, no Summary", err, rep.Summary)
	}
	seen := srv.Conns()
	if len(seen) != 2 {
		t.Fatalf("the server saw %d connections, want 2: both open during the check", len(seen))
	}
	for _, cn := range seen {
		cmds := verbsOf(cn.Commands())
		if len(cn.Auths) != 1 || len(cn.Mails) != 0 || len(cmds) == 0 || cmds[len(cmds)-1] != "QUIT" {
			t.Errorf("connection %d: commands %q, logins %q, MAIL %q; want a login, QUIT last, no MAIL", cn.ID, cmds, cn.Auths, cn.Mails)
		}
	}
	if len(srv.Received()) != 0 {
		t.Errorf("received %v, want nothing", srv.Received())
	}
}

// TestDeliverStalledSecond: a check that fails, or a Confirm that says
// no, while the second connection stalls in the middle of its dial (no
// reply to EHLO, a timeout of ten minutes) gives its error once
// abandonGrace is over, not the timeout: that dial is called off, the
// first connection says QUIT, and nothing is sent.
func TestDeliverStalledSecond(t *testing.T) {
	no := errors.New("not now")
	for _, tc := range []struct {
		name, last string
		confirm    func(*Summary) error
		want       func(error) bool
	}{
		{"check fails", "carol@example.com,Carol,too many\n", nil, func(err error) bool { var found Problems; return errors.As(err, &found) }},
		{"declined", "carol@example.com,Carol\n", func(*Summary) error { return no }, func(err error) bool { return errors.Is(err, no) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hello := make(chan string, 2)
			hold := make(chan struct{})
			srv := smtptest.Start(t, smtptest.Fault{Stage: smtptest.AtHello, WhenOpen: 1, Notify: hello, Hold: hold})
			defer close(hold)
			smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nretries = 0\nconnections = 2\ntimeout = \"10m\"\n", srv.Host(), srv.Port())
			c := newCampaign(t, overlapList(tc.last), "# Hello {{.name}}!\n", smtp, nil)
			done := make(chan error, 1)
			go func() {
				_, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now, Warn: awaitHello(t, hello)}, Confirm: tc.confirm})
				done <- err
			}()
			select {
			case err := <-done:
				if !tc.want(err) {
					t.Fatalf("Deliver: %v, want the %s's error", err, tc.name)
				}
			case <-time.After(time.Minute): // a watchdog, far from the seconds it takes
				t.Fatal("Deliver waits for the stalled second connection (timeout 10m)")
			}
			seen := srv.Conns()
			if len(seen) != 2 {
				t.Fatalf("the server saw %d connections, want 2", len(seen))
			}
			if cmds := verbsOf(seen[0].Commands()); len(seen[0].Mails) != 0 || len(cmds) == 0 || cmds[len(cmds)-1] != "QUIT" {
				t.Errorf("first connection: commands %q, MAIL %q; want QUIT last, no MAIL", cmds, seen[0].Mails)
			}
			if len(srv.Received()) != 0 {
				t.Errorf("received %v, want nothing", srv.Received())
			}
		})
	}
}

// verbsOf returns the first word of each command.
func verbsOf(cmds []string) []string {
	var vs []string
	for _, c := range cmds {
		v, _, _ := strings.Cut(c, " ")
		vs = append(vs, v)
	}
	return vs
}

// TestDeliverCAFile: a server whose certificate only ca_file's CA issued
// is trusted, and without ca_file it is not (TestDeliverCAFileFirst: in
// what order the system's CAs and ca_file's are tried).
func TestDeliverCAFile(t *testing.T) {
	ca, err := smtptest.NewCA("batch test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtptest.Start(t, smtptest.StartTLS(cert))
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate().Raw})
	for _, trusted := range []bool{true, false} {
		smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"starttls\"\nretries = 0\n", srv.Host(), srv.Port())
		if trusted {
			smtp += "ca_file = \"ca.pem\"\n"
		}
		c := newCampaign(t, listOf(faultList[:2]), "# Hello {{.name}}!\n", smtp, map[string]string{"ca.pem": string(caPEM)})
		rep, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now}})
		var ce *deliver.ConnError
		switch {
		case trusted && (err != nil || rep.List[Sent] != 2):
			t.Errorf("with ca_file: %v, List %v; want both sent", err, rep.List)
		case !trusted && (!errors.As(err, &ce) || ce.Hint != deliver.HintUntrusted):
			t.Errorf("without ca_file: %v, want the certificate untrusted", err)
		}
	}
	if d := srv.Delivered(); len(d) != 2 {
		t.Errorf("delivered %v, want the 2 messages sent with ca_file", d)
	}
}
