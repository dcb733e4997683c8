package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// queueSender is a Sender that keeps what it is given, for a test to play
// the connections.
type queueSender struct{ trackers []*tracker }

func (q *queueSender) Send(_ context.Context, _ *render.Message, t deliver.Tracker) error {
	q.trackers = append(q.trackers, t.(*tracker))
	return nil
}

func (q *queueSender) Close() error { return nil }

// TestLeaseRecords: the first message begun writes the "sending" records
// of the messages waiting behind it too, lease in all, which one sync takes
// to disk; the messages it took begin without a record of their own, and
// those no connection began when the run stopped are released (pending).
// A message given to the sender after the lease is not in it.
func TestLeaseRecords(t *testing.T) {
	list := quotaList(lease + 2)
	c := faultCampaign(t, list)
	opts := faultOptions()
	if err := c.openJournal(&opts); err != nil {
		t.Fatal(err)
	}
	q := &queueSender{}
	d := c.newDelivery(t.Context(), q, opts, &Summary{})
	for i, a := range list[:lease+1] {
		if err := d.send(&render.Message{To: a, Seq: i + 2, ID: fmt.Sprintf("%d@example.org", i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	tr := q.trackers
	begin := func(t *testing.T, tr *tracker) {
		t.Helper()
		if err := tr.Start(); err != nil {
			t.Fatal(err)
		}
		tr.Begun()
	}
	begin(t, tr[0])
	if err := tr[0].Ready(); err != nil {
		t.Fatal(err)
	}
	for _, x := range tr[1:lease] {
		if !x.started() || !x.ReadyNow() {
			t.Errorf("%s: in the lease %v, on disk %v; want both, with the first's sync", x.m.To, x.started(), x.ReadyNow())
		}
	}
	if tr[lease].started() {
		t.Errorf("%s, the %dth message, was in the lease", tr[lease].m.To, lease+1)
	}
	// A message given now, after the lease, waits for a lease of its own.
	if err := d.send(&render.Message{To: list[lease+1], Seq: lease + 3, ID: "late@example.org"}, 0); err != nil {
		t.Fatal(err)
	}
	begin(t, tr[1]) // no record of its own
	tr[0].Done(nil)
	tr[1].Done(nil)
	begin(t, tr[lease]) // its own lease: the late message too
	if !q.trackers[lease+1].started() {
		t.Errorf("%s, given after the first lease, was not in the second", list[lease+1])
	}
	tr[lease].Done(nil)

	d.halt(errors.New("stopped"))
	for _, x := range q.trackers[2:] {
		if x == tr[lease] {
			continue
		}
		err := x.Start()
		if !errors.Is(err, errHeldBack) {
			t.Fatalf("Start once stopped: %v, want errHeldBack", err)
		}
		x.Done(err)
	}
	if err := opts.Journal.Close(); err != nil {
		t.Fatal(err)
	}

	var got []string
	for _, r := range journalRecords(t, c) {
		got = append(got, r.Kind+" "+r.To)
	}
	var want []string
	for _, a := range list[:lease] {
		want = append(want, "sending "+a)
	}
	want = append(want, "handover "+list[0], "sent "+list[0], "sent "+list[1], "sending "+list[lease], "sending "+list[lease+1], "sent "+list[lease])
	for _, a := range list[2:lease] {
		want = append(want, "released "+a)
	}
	want = append(want, "released "+list[lease+1])
	if !slices.Equal(got, want) {
		t.Errorf("the journal has\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st := readState(t, c)
	for i, a := range list {
		want := journal.Pending
		if i < 2 || i == lease {
			want = journal.Sent
		}
		if got := st.Get(a).Status; got != want {
			t.Errorf("%s is %v, want %v", a, got, want)
		}
	}
	// The released went nowhere: a quota counts the three sent, not the
	// lease's records of the messages never started.
	quota := Quota{N: 100, Window: 24 * time.Hour, Text: "100/day"}
	use, err := c.QuotaUsed(quota, time.Now(), Shard{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if use.Used != 3 {
		t.Errorf("QuotaUsed = %d, want 3: the messages released were counted as handed over", use.Used)
	}
}

// TestLeaseSend: over one connection, a run's "sending" records go in
// leases, several at once, up to lease; every message is handed over once,
// after its record, and sent.
func TestLeaseSend(t *testing.T) {
	t.Parallel()
	eachWay(t, func(t *testing.T, w way) {
		list := quotaList(3 * lease)
		srv := smtptest.Start(t, w.opt)
		c := faultCampaign(t, list)
		r := sendVia(t, c, srv, quick, faultOptions())
		if r.err != nil {
			t.Fatalf("Send: %v", r.err)
		}
		wantOthersSent(t, c, srv, list)
		recs := journalRecords(t, c)
		runs, n := 0, 0 // runs of "sending" records, and the longest
		for i, rec := range recs {
			if rec.Kind != journal.KindSending {
				continue
			}
			if i == 0 || recs[i-1].Kind != journal.KindSending {
				runs++
			}
			k := i
			for k < len(recs) && recs[k].Kind == journal.KindSending {
				k++
			}
			n = max(n, k-i)
		}
		// The first lease may find few messages waiting; the others find
		// the queue full.
		t.Logf("%d messages' records in %d runs, the longest %d", len(list), runs, n)
		if runs > len(list)/2 || n > lease || n < 2 {
			t.Errorf("%d messages' records in %d runs, the longest %d; want leases of up to %d", len(list), runs, n, lease)
		}
	})
}

// TestLeaseQueue: the sender queues lease-1 messages for a lease to find,
// but with a rate under lease a second only that rate's messages of about
// a second, so that a lease's records are about a second older than their
// messages' handover at most.
func TestLeaseQueue(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want int
	}{
		{0, lease - 1}, {0.5, 0}, {1, 0}, {2.5, 1}, {5, 4}, {lease, lease - 1}, {1000, lease - 1},
	} {
		s := &SMTP{Host: "smtp.example.org", Port: 587, Rate: tc.rate}
		cfg, err := s.Config("", nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Queue != tc.want {
			t.Errorf("rate %v a second: a queue of %d, want %d", tc.rate, cfg.Queue, tc.want)
		}
	}
}
