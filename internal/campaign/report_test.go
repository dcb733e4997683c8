package campaign

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"

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
