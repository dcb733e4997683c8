package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	texttemplate "text/template"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// recorder is a Sender that keeps what it is given.
type recorder struct {
	msgs    []*render.Message
	opened  int
	planned *Summary // what the Opener was told
	closed  int
	send    func(n int) error // called with the message's number from 1; may be nil
	fail    func(n int) error // the outcome of message n; may be nil
}

var _ deliver.Sender = (*recorder)(nil)

// open is the recorder's Opener.
func (r *recorder) open(sum *Summary) (deliver.Sender, error) {
	r.opened++
	r.planned = sum
	return r, nil
}

func (r *recorder) Send(ctx context.Context, m *render.Message, t deliver.Tracker) error {
	if r.closed > 0 {
		return errors.New("send after close")
	}
	if r.send != nil {
		if err := r.send(len(r.msgs) + 1); err != nil {
			return err
		}
	}
	// A copy, as a real sender's: the message's bytes go back to the
	// renderer once it is done (render.Message.Release).
	r.msgs = append(r.msgs, &render.Message{Seq: m.Seq, ID: m.ID, From: m.From, To: m.To, Data: slices.Clone(m.Data)})
	if err := t.Start(); err != nil {
		t.Done(err)
		return nil
	}
	if err := t.Ready(); err != nil {
		t.Done(err)
		return nil
	}
	var err error
	if r.fail != nil {
		err = r.fail(len(r.msgs))
	}
	t.Done(err)
	return nil
}

func (r *recorder) Close() error {
	r.closed++
	return nil
}

func (r *recorder) to() []string {
	var out []string
	for _, m := range r.msgs {
		out = append(out, m.To)
	}
	return out
}

var now = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// newCampaign loads a campaign of minimal with the list and template given
// (and extra files, and extra lines for the campaign file).
func newCampaign(t *testing.T, list, md, more string, extra map[string]string) *Campaign {
	t.Helper()
	files := map[string]string{"list.csv": list, "news.md": md}
	for k, v := range extra {
		files[k] = v
	}
	c, _, err := load(t, minimal+more, files)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

const goodList = "email,name,plan\n" +
	"ada@example.org,Ada,pro\n" + // row 1
	"not-an-address,Nobody,free\n" + // row 2: invalid
	"bob@example.net,\"Smith, Bob\",free\n" + // row 3
	"ADA@example.org,Ada again,free\n" + // row 4: duplicate
	"carol@example.com,Carol,pro\n" + // row 5
	"dave@,Dave,free\n" + // row 6: invalid
	"erin@example.com,Erin,free\n" // row 7

const goodBody = "# Hello {{.name}}!\n\n" +
	"{{if eq .plan \"pro\"}}You have a **reserved seat**.{{else}}[Upgrade](https://example.org/pro?who={{.email}}).{{end}}\n"

func TestCheck(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	var warned []error
	sum, err := c.Check(context.Background(), Options{Now: now, Warn: func(err error) { warned = append(warned, err) }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Messages != 4 || sum.Invalid != 2 || sum.Duplicates != 1 || sum.Skipped() != 3 {
		t.Errorf("Summary: %d messages, %d invalid, %d repeated; want 4, 2, 1", sum.Messages, sum.Invalid, sum.Duplicates)
	}
	wantRows := []struct {
		row  int
		kind error
	}{{2, merge.ErrInvalid}, {4, merge.ErrDuplicate}, {6, merge.ErrInvalid}}
	if len(warned) != len(wantRows) {
		t.Fatalf("Warn called %d times, want %d: %v", len(warned), len(wantRows), warned)
	}
	for i, w := range wantRows {
		var re *merge.RowError
		if !errors.As(warned[i], &re) || re.Row != w.row || !errors.Is(warned[i], merge.ErrSkipped) || !errors.Is(warned[i], w.kind) {
			t.Errorf("warning %d: %v, want row %d, %v", i, warned[i], w.row, w.kind)
		}
	}
}

func TestCheckNilWarn(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	if _, err := c.Check(context.Background(), Options{Now: now}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckMissingColumn(t *testing.T) {
	list := "email,name,plan\nada@example.org,Ada,pro\nbob@example.net,Bob,free\n"
	text := strings.Replace(minimal, "{{.name}}", "{{.Name}}", 1) + "[headers]\nX-Plan = \"{{.paln}}\"\n"
	c, _, err := load(t, text, map[string]string{"list.csv": list, "news.md": "# Hi\n\nDear {{.nmae}},\n"})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.Check(context.Background(), Options{Now: now})
	p := problemsOf(t, err)
	if len(p) != 3 {
		t.Fatalf("got %d problems, want 3:\n%v", len(p), err)
	}
	// The messages are the product: each names where the field is (the
	// column counted from 1, as editors do; for the subject and header
	// fields, their key in the campaign file).
	for _, prefix := range []string{
		c.BodyPath + ":3:8: ",
		c.Path + ":3: subject: ",
		c.Path + ":7: headers.X-Plan: ",
	} {
		e := findProblem(p, prefix)
		if e == nil {
			t.Errorf("no problem starting %q in:\n%v", prefix, err)
		} else if !strings.Contains(e.Error(), "did you mean") {
			t.Errorf("%q has no suggestion", e)
		}
	}
	// The rows are still rendered, the missing fields empty, to find any
	// problem behind them; the campaign can't be sent all the same.
	if sum == nil || sum.Messages != 2 {
		t.Errorf("Summary = %+v, want the 2 rows rendered", sum)
	}
}

func TestCheckListProblems(t *testing.T) {
	tests := []struct {
		name, list string
		want       []string // substrings of each problem, in order
	}{
		{"ragged row", "email,name\nada@example.org,Ada\nbob@example.net,Smith, Bob\n", []string{"list.csv:3: row 2: "}},
		{"not UTF-8", "email,name\nada@example.org,Ad\xe4\n", []string{"list.csv:2: row 1: "}},
		{"no email column", "mail,name\nada@example.org,Ada\n", []string{"list.csv:1: "}},
		{"empty list", "", []string{"list.csv: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCampaign(t, tt.list, "Hi {{.name}}\n", "", nil)
			_, err := c.Check(context.Background(), Options{Now: now})
			p := problemsOf(t, err)
			if len(p) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(p), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(p[i].Error(), w) {
					t.Errorf("problem %q does not contain %q", p[i], w)
				}
			}
		})
	}
}

func TestCheckNoValidRows(t *testing.T) {
	c := newCampaign(t, "email,name\nnobody,Nobody\n", "Hi {{.name}}\n", "", nil)
	sum, err := c.Check(context.Background(), Options{Now: now})
	if err == nil {
		t.Fatalf("Check of a list without valid rows: %+v, no error", sum)
	}
	if sum == nil || sum.Invalid != 1 || sum.Messages != 0 {
		t.Errorf("Summary = %+v", sum)
	}
}

func TestCheckMissingImage(t *testing.T) {
	list := "email,name\nada@example.org,Ada\nbob@example.net,Bob\ncarol@example.com,Carol\ndave@example.com,Dave\n"
	body := "![logo](images/logo.png)\n\nHi {{.name}}\n\n![ok](ok.png) ![gone](gone.png)\n"
	c := newCampaign(t, list, body, "", map[string]string{"ok.png": "\x89PNG\r\n\x1a\n"})
	_, err := c.Check(context.Background(), Options{Now: now})
	p := problemsOf(t, err)
	if len(p) != 2 {
		t.Fatalf("got %d problems, want 2 (one per missing image) for the whole list:\n%v", len(p), err)
	}
	// Each leads with the template's line and names the first message
	// that met it, and how many more did.
	for i, want := range [][]string{
		{c.BodyPath + ":1: ", "images/logo.png", "(in the messages to row 1, ", "list.csv:2, and 3 more)"},
		{c.BodyPath + ":5: ", "gone.png", "(in the messages to row 1, ", "list.csv:2, and 3 more)"},
	} {
		msg := p[i].Error()
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q does not contain %q", msg, w)
			}
		}
		var me *messageError
		if !errors.As(p[i], &me) || me.rec.Row != 1 {
			t.Errorf("%v is not the *messageError of row 1", p[i])
		}
	}
}

func TestCheckManyProblems(t *testing.T) {
	// Past maxProblems distinct problems, only a count. A ragged row's
	// problem names its count of fields: each row here has its own.
	var list strings.Builder
	list.WriteString("email,name\n")
	for i := range maxProblems + 10 {
		fmt.Fprintf(&list, "user%d@example.org,a%s\n", i, strings.Repeat(",x", i+1))
	}
	c := newCampaign(t, list.String(), "Hi {{.name}}\n", "", nil)
	_, err := c.Check(context.Background(), Options{Now: now})
	p := problemsOf(t, err)
	if len(p) != maxProblems+1 {
		t.Fatalf("got %d problems, want %d", len(p), maxProblems+1)
	}
	if got := p[maxProblems].Error(); got != "and 10 more problems" {
		t.Errorf("last problem %q, want the count of the rest", got)
	}
}

func TestCheckSameProblemEveryRow(t *testing.T) {
	var list strings.Builder
	list.WriteString("email,name\n")
	for i := range maxProblems + 10 {
		fmt.Fprintf(&list, "user%d@example.org,a,b\n", i)
	}
	c := newCampaign(t, list.String(), "Hi {{.name}}\n", "", nil)
	_, err := c.Check(context.Background(), Options{Now: now})
	p := problemsOf(t, err)
	want := fmt.Sprintf(" (and %d more rows)", maxProblems+9)
	if len(p) != 1 || !strings.Contains(p[0].Error(), "list.csv:2: row 1: ") || !strings.HasSuffix(p[0].Error(), want) {
		t.Errorf("got:\n%v\nwant one problem for row 1 ending %q", err, want)
	}
}

func TestSend(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	rec := &recorder{}
	var warned int
	sum, err := c.Send(context.Background(), rec.open, Options{Now: now, Warn: func(error) { warned++ }})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ada@example.org", "bob@example.net", "carol@example.com", "erin@example.com"}
	if got := rec.to(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("delivered to %q, want %q in list order", got, want)
	}
	for i, row := range []int{1, 3, 5, 7} {
		if m := rec.msgs[i]; m.Seq != row || m.From != "news@example.org" {
			t.Errorf("message %d: Seq %d From %q, want row %d from news@example.org", i, m.Seq, m.From, row)
		}
	}
	if o := sum.Outcomes(); sum.Messages != 4 || sum.Invalid != 2 || sum.Duplicates != 1 || o.Sent != 4 || o.Failed != 0 {
		t.Errorf("Summary: %d messages, %d invalid, %d repeated, %+v; want 4, 2, 1, 4 sent",
			sum.Messages, sum.Invalid, sum.Duplicates, o)
	}
	if rec.opened != 1 || rec.planned.Messages != 4 {
		t.Errorf("opened %d times for %+v, want once for 4 messages", rec.opened, rec.planned)
	}
	if warned != 3 {
		t.Errorf("Warn called %d times, want 3 (once per skipped row)", warned)
	}
	if rec.closed != 1 {
		t.Errorf("Close called %d times, want 1", rec.closed)
	}
	// The messages are the ones Check renders: merged and rendered.
	first := rec.msgs[0].Data
	for _, want := range []string{"Subject: News for Ada\r\n", "<ada@example.org>\r\n", "reserved seat"} {
		if !bytes.Contains(first, []byte(want)) {
			t.Errorf("the first message has no %q", want)
		}
	}
}

func TestSendNothingOnProblem(t *testing.T) {
	tests := []struct {
		name, list, body string
		extra            map[string]string
	}{
		{"ragged row at the end", goodList + "zoe@example.org,Zoe,free,extra\n", goodBody, nil},
		{"unbalanced quote at the end", goodList + "zoe@example.org,\"Zoe,free\n", goodBody, nil},
		{"not UTF-8 at the end", goodList + "zoe@example.org,Zo\xeb,free\n", goodBody, nil},
		{"missing column", goodList, goodBody + "{{.nmae}}\n", nil},
		{"missing image", goodList, goodBody + "![x](x.png)\n", nil},
		{"missing image in the last row only", goodList,
			goodBody + "{{if eq .name \"Erin\"}}![x](x.png){{end}}\n", nil},
		{"merge field in raw HTML", goodList, goodBody + "<a href=\"{{.email}}\">x</a>\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCampaign(t, tt.list, tt.body, "", tt.extra)
			rec := &recorder{}
			sum, err := c.Send(context.Background(), rec.open, Options{Now: now})
			if err == nil {
				t.Fatalf("Send succeeded: %+v", sum)
			}
			problemsOf(t, err)
			if len(rec.msgs) != 0 || rec.opened != 0 {
				t.Errorf("delivered %d messages (%q), opened the sender %d times despite: %v", len(rec.msgs), rec.to(), rec.opened, err)
			}
		})
	}
}

// TestSendLayoutFailsForOneRow: a layout that fails only for the last
// row (a value only its row has, shown under {{if}}: slice past the end
// of its address, a column the list doesn't have) is that row's problem,
// found by the check, and nothing is sent; though the check runs the
// layout once only when it can't fail for one row and not another.
func TestSendLayoutFailsForOneRow(t *testing.T) {
	for _, shown := range []string{"{{slice .Email 0 17}}", "{{.Fields.nope}}"} {
		t.Run(shown, func(t *testing.T) {
			layout := "<html><body>{{if .Preheader}}" + shown + "{{end}}{{.Body}}</body></html>\n"
			more := "layout = \"l.html\"\npreheader = \"{{if eq .name \\\"Erin\\\"}}For Erin{{end}}\"\n"
			c := newCampaign(t, goodList, goodBody, more, map[string]string{"l.html": layout})
			_, err := c.Check(context.Background(), Options{Now: now})
			p := problemsOf(t, err)
			var me *messageError
			if len(p) != 1 || !errors.As(p[0], &me) || me.rec.Row != 7 {
				t.Fatalf("Check gave %v, want the problem of row 7 (Erin's) only", err)
			}
			var ee texttemplate.ExecError
			if !errors.As(p[0], &ee) {
				t.Errorf("%v is not the layout's ExecError", p[0])
			}
			rec := &recorder{}
			if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err == nil || len(rec.msgs) != 0 || rec.opened != 0 {
				t.Errorf("Send: %v, delivered %q, opened the sender %d times; want row 7's problem, nothing sent", err, rec.to(), rec.opened)
			}
		})
	}
}

func TestSendCancelled(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		c := newCampaign(t, goodList, goodBody, "", nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rec := &recorder{}
		_, err := c.Send(ctx, rec.open, Options{Now: now})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Send gave %v, want context.Canceled", err)
		}
		if len(rec.msgs) != 0 || rec.opened != 0 {
			t.Errorf("delivered %d, opened %d times", len(rec.msgs), rec.opened)
		}
	})
	t.Run("during", func(t *testing.T) {
		c := newCampaign(t, goodList, goodBody, "", nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec := &recorder{send: func(n int) error {
			if n == 2 {
				cancel() // as a signal would, while the second message is out
			}
			return nil
		}}
		sum, err := c.Send(ctx, rec.open, Options{Now: now})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Send gave %v, want context.Canceled", err)
		}
		if got := rec.to(); len(got) != 2 {
			t.Errorf("delivered to %q, want the first two only", got)
		}
		if sum == nil || sum.Messages != 2 {
			t.Errorf("Summary = %+v, want 2 messages", sum)
		}
		if rec.closed != 1 {
			t.Errorf("Close called %d times, want 1", rec.closed)
		}
	})
	t.Run("check", func(t *testing.T) {
		c := newCampaign(t, goodList, goodBody, "", nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Check(ctx, Options{Now: now}); !errors.Is(err, context.Canceled) {
			t.Errorf("Check gave %v, want context.Canceled", err)
		}
	})
}

func TestSendDeliveryError(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	errRefused := errors.New("550 mailbox unavailable")
	rec := &recorder{send: func(n int) error {
		if n == 2 {
			return errRefused
		}
		return nil
	}}
	sum, err := c.Send(context.Background(), rec.open, Options{Now: now})
	if !errors.Is(err, errRefused) {
		t.Fatalf("Send gave %v, want the sender's error", err)
	}
	// The message is the product: it names the recipient and row.
	if !strings.Contains(err.Error(), "bob@example.net (row 3)") {
		t.Errorf("%q does not name bob@example.net, row 3", err)
	}
	if len(rec.msgs) != 1 || sum.Messages != 1 || rec.closed != 1 {
		t.Errorf("delivered %d, Summary %+v, closed %d times; want 1, 1, 1", len(rec.msgs), sum, rec.closed)
	}
}

// closeErr is a Sender whose Close fails.
type closeErr struct{ recorder }

var errClose = errors.New("disk full")

func (c *closeErr) Close() error { c.closed++; return errClose }

func TestSendCloseError(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	s := &closeErr{}
	_, err := c.Send(context.Background(), func(*Summary) (deliver.Sender, error) { return s, nil }, Options{Now: now})
	if !errors.Is(err, errClose) {
		t.Errorf("Send gave %v, want the error of Close", err)
	}
	if len(s.msgs) != 4 || s.closed != 1 {
		t.Errorf("delivered %d, closed %d times", len(s.msgs), s.closed)
	}
}

func TestSendOpenError(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	errRefused := errors.New("535 authentication failed")
	_, err := c.Send(context.Background(), func(*Summary) (deliver.Sender, error) { return nil, errRefused }, Options{Now: now})
	if !errors.Is(err, errRefused) {
		t.Errorf("Send gave %v, want the Opener's error", err)
	}
}

func TestSendFailuresGoOn(t *testing.T) {
	// A recipient the server refuses is counted and reported; the others
	// are still sent.
	c := newCampaign(t, goodList, goodBody, "", nil)
	errUnknown := errors.New("550 5.1.1 no such user")
	rec := &recorder{fail: func(n int) error {
		if n == 2 {
			return errUnknown
		}
		return nil
	}}
	var failed []string
	sum, err := c.Send(context.Background(), rec.open, Options{Now: now, Outcome: func(m *render.Message, st journal.Status, err error) {
		if st != journal.Sent {
			failed = append(failed, m.To)
			if st != journal.Failed || !errors.Is(err, errUnknown) {
				t.Errorf("%s: told %v, %v; want failed, with the server's reply", m.To, st, err)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	o := sum.Outcomes()
	if len(rec.msgs) != 4 || o.Sent != 3 || o.Failed != 1 {
		t.Errorf("handed over %d, %+v; want 4, 3 sent, 1 failed", len(rec.msgs), o)
	}
	if strings.Join(failed, " ") != "bob@example.net" {
		t.Errorf("failures reported: %q", failed)
	}
}

func TestSendLimitAndTestAddress(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	rec := &recorder{}
	sum, err := c.Send(context.Background(), rec.open, Options{Now: now, Limit: 2, To: "me@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.msgs) != 2 || sum.Messages != 2 || rec.planned.Messages != 2 {
		t.Fatalf("handed over %d (summary %d, planned %d), want the first 2", len(rec.msgs), sum.Messages, rec.planned.Messages)
	}
	for i, want := range []string{"ada@example.org", "bob@example.net"} {
		m := rec.msgs[i]
		if m.To != "me@example.com" {
			t.Errorf("message %d goes to %s, want the test address", i, m.To)
		}
		// The headers stay as the recipient would see them, but for the
		// Message-ID, the test's own.
		if !bytes.Contains(m.Data, []byte("<"+want+">\r\n")) {
			t.Errorf("message %d is not the one for %s", i, want)
		}
		id := render.TestSendMessageID(c.Name, want, "me@example.com", "example.org")
		if m.ID != id || !bytes.Contains(m.Data, []byte("\r\nMessage-ID: <"+id+">\r\n")) {
			t.Errorf("message %d has Message-ID %s, want the test's own, %s", i, m.ID, id)
		}
	}
}

// TestSendLimitCounts: with a limit, the check before a send counts the
// rows that the send goes through, no further, so that the plan and the
// summary say the same.
func TestSendLimitCounts(t *testing.T) {
	list := "email,name,plan\nada@example.org,Ada,pro\nbad,Bad,pro\nbob@example.net,Bob,pro\nada@example.org,Again,pro\ncarol@example.com,Carol,pro\nworse,W,pro\n"
	c := newCampaign(t, list, goodBody, "", nil)
	var warned []string
	for _, limit := range []int{2, 3} {
		rec := &recorder{}
		warned = nil
		sum, err := c.Send(context.Background(), rec.open, Options{Now: now, Limit: limit, Warn: func(err error) { warned = append(warned, err.Error()) }})
		if err != nil {
			t.Fatal(err)
		}
		// Two rows: one skipped for its address before the second message;
		// three: one more, a repeat, before the third.
		wantSkipped := limit - 1
		p := rec.planned
		if p.Messages != limit || p.Skipped() != wantSkipped || sum.Messages != limit || sum.Skipped() != wantSkipped ||
			p.Invalid != sum.Invalid || p.Duplicates != sum.Duplicates || len(warned) != wantSkipped {
			t.Errorf("limit %d: planned %d messages, %d skipped (%d, %d); sent %d, %d skipped (%d, %d); %d warnings; want %d, %d, the same, %d warnings",
				limit, p.Messages, p.Skipped(), p.Invalid, p.Duplicates, sum.Messages, sum.Skipped(), sum.Invalid, sum.Duplicates, len(warned), limit, wantSkipped, wantSkipped)
		}
	}
}

func TestCheckReadError(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	c.Recipients = filepath.Join(t.TempDir(), "gone.csv")
	_, err := c.Check(context.Background(), Options{Now: now})
	p := problemsOf(t, err)
	if len(p) != 1 || !strings.HasPrefix(p[0].Error(), c.Recipients+": ") {
		t.Errorf("got %v", err)
	}
}

const bidiList = "email,name\n" +
	"ada@example.org,Ada\n" +
	"bob@example.net,\"\u202eboB\"\n" + // row 2, line 3
	"not-an-address,\u202eydoboN\n" + // row 3: skipped, so no warning of its name
	"carol@example.com,Carol\n"

func TestCheckBidiWarning(t *testing.T) {
	c := newCampaign(t, bidiList, "Hi {{.name}}\n", "", nil)
	var warned []error
	sum, err := c.Check(context.Background(), Options{Now: now, Warn: func(err error) { warned = append(warned, err) }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Messages != 3 || sum.Warned != 1 || sum.Invalid != 1 {
		t.Errorf("Summary: %d messages, %d warned, %d invalid; want 3, 1, 1", sum.Messages, sum.Warned, sum.Invalid)
	}
	if len(warned) != 2 {
		t.Fatalf("warned %d times, want twice (the name, the invalid address): %v", len(warned), warned)
	}
	var re *merge.RowError
	if !errors.Is(warned[0], merge.ErrBidi) || !errors.As(warned[0], &re) || re.Row != 2 || re.Line != 3 {
		t.Errorf("first warning %v, want ErrBidi at row 2, line 3", warned[0])
	}
}

func TestSendBidiWarning(t *testing.T) {
	c := newCampaign(t, bidiList, "Hi {{.name}}\n", "", nil)
	rec := &recorder{}
	var warned []error
	sum, err := c.Send(context.Background(), rec.open, Options{Now: now, Warn: func(err error) { warned = append(warned, err) }})
	if err != nil {
		t.Fatal(err)
	}
	// Warned of once, in the check before sending, and sent.
	if n := len(warned); n != 2 || !errors.Is(warned[0], merge.ErrBidi) {
		t.Errorf("warnings %v, want the name's once and the invalid address's", warned)
	}
	if got := strings.Join(rec.to(), " "); got != "ada@example.org bob@example.net carol@example.com" {
		t.Errorf("sent to %s, want every valid row", got)
	}
	if rec.planned.Warned != 1 || sum.Warned != 1 {
		t.Errorf("Warned: %d planned, %d sent; want 1 and 1", rec.planned.Warned, sum.Warned)
	}
}

func TestBudget(t *testing.T) {
	b := &budget{freed: make(chan struct{}, 1)}
	done, cancel := context.WithCancel(context.Background())
	cancel() // take returns false only if it has to wait
	if !b.take(done, 2*inFlight) {
		t.Fatal("a row larger than the bound waited with nothing in flight: it must go alone")
	}
	if b.take(done, 1) {
		t.Fatal("took a byte past the bound")
	}
	b.give(2 * inFlight)
	for range 2 {
		if !b.take(done, inFlight/2) {
			t.Fatal("waited for room under the bound")
		}
	}
	if b.take(done, 1) {
		t.Fatal("took a byte past the bound")
	}
	// A taker waiting for room goes on once enough is given back.
	took := make(chan bool)
	go func() { took <- b.take(context.Background(), inFlight/2) }()
	b.give(inFlight / 4) // not enough: still full with the next
	b.give(inFlight / 4)
	if !<-took {
		t.Fatal("take gave up")
	}
	if got := b.used.Load(); got != inFlight {
		t.Errorf("used %d, want %d", got, inFlight)
	}
}

// TestSendIncomplete: a campaign file with problems (Load's) is never
// sent, in a dry run either: nothing is opened.
func TestSendIncomplete(t *testing.T) {
	c, _, err := load(t, minimal+"colour = \"blue\"\n", nil)
	problemsOf(t, err)
	for _, single := range []bool{false, true} {
		rec := &recorder{}
		_, err := c.Send(context.Background(), rec.open, Options{Now: now, SinglePass: single})
		if !errors.Is(err, errIncomplete) {
			t.Errorf("SinglePass %v: Send gave %v, want errIncomplete", single, err)
		}
		if rec.opened != 0 || len(rec.msgs) != 0 {
			t.Errorf("SinglePass %v: opened %d times, delivered %d", single, rec.opened, len(rec.msgs))
		}
	}
}

// TestSendListChanged: a send checks the whole list, then reads it again
// to send. A list changed in between (here by the Opener, after the check)
// stops the send where it changed, nothing sent from there: a row whose
// message can't be rendered at once, with that row's problem; a broken row
// with the Problems found by the end of the list.
func TestSendListChanged(t *testing.T) {
	const more = "[columns]\nattachments = \"files\"\n"
	list := "email,name,files\nada@example.org,Ada,files/a.txt\nbob@example.net,Bob,\ncarol@example.com,Carol,\n"
	t.Run("a message that fails", func(t *testing.T) {
		c := newCampaign(t, list, "Hi {{.name}}\n", more, map[string]string{"files/a.txt": "a"})
		rec := &recorder{}
		open := func(sum *Summary) (deliver.Sender, error) {
			changed := strings.Replace(list, "Bob,", "Bob,files/gone.txt", 1)
			if err := os.WriteFile(c.Recipients, []byte(changed), 0o644); err != nil {
				t.Fatal(err)
			}
			return rec.open(sum)
		}
		_, err := c.Send(context.Background(), open, Options{Now: now})
		var me *messageError
		if !errors.As(err, &me) || me.rec.Row != 2 || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Send gave %v, want the *messageError of row 2, its file missing", err)
		}
		if got := rec.to(); !slices.Equal(got, []string{"ada@example.org"}) {
			t.Errorf("delivered to %q, want ada only", got)
		}
	})
	t.Run("a broken row", func(t *testing.T) {
		c := newCampaign(t, list, "Hi {{.name}}\n", more, map[string]string{"files/a.txt": "a"})
		rec := &recorder{}
		open := func(sum *Summary) (deliver.Sender, error) {
			changed := strings.Replace(list, "Bob,", "Bob,,ragged", 1)
			if err := os.WriteFile(c.Recipients, []byte(changed), 0o644); err != nil {
				t.Fatal(err)
			}
			return rec.open(sum)
		}
		_, err := c.Send(context.Background(), open, Options{Now: now})
		var re *merge.RowError
		if p := problemsOf(t, err); len(p) != 1 || !errors.As(p[0], &re) || re.Row != 2 {
			t.Fatalf("Send gave %v, want the problem of row 2", err)
		}
		if got := rec.to(); !slices.Equal(got, []string{"ada@example.org"}) {
			t.Errorf("delivered to %q, want ada only", got)
		}
	})
}

// discarder is a recorder that can take back what it was given, as a dry
// run's directory does.
type discarder struct {
	recorder
	discarded int
}

func (d *discarder) Discard() error {
	d.discarded++
	return nil
}

// TestSendSinglePass: a dry run renders each message once, handing it
// over as it goes; every problem is collected as a check does (a message
// that fails mid-list does not stop it), nothing more is handed over once
// one is found, and what was handed over is discarded.
func TestSendSinglePass(t *testing.T) {
	const more = "[columns]\nattachments = \"files\"\n"
	list := "email,name,files\nada@example.org,Ada,\nbob@example.net,Bob,files/gone.txt\ncarol@example.com,Carol,\ndave@example.com,Dave,,ragged\n"
	c := newCampaign(t, list, "Hi {{.name}}\n", more, map[string]string{"files/a.txt": "a"})
	d := &discarder{}
	_, err := c.Send(context.Background(), func(*Summary) (deliver.Sender, error) { return d, nil }, Options{Now: now, SinglePass: true})
	p := problemsOf(t, err)
	var me *messageError
	var re *merge.RowError
	if len(p) != 2 || !errors.As(p[0], &me) || me.rec.Row != 2 || !errors.As(p[1], &re) || re.Row != 4 {
		t.Fatalf("Send gave %v, want the problems of rows 2 and 4", err)
	}
	if got := d.to(); !slices.Equal(got, []string{"ada@example.org"}) {
		t.Errorf("handed over to %q, want ada only: none after the first problem", got)
	}
	if d.discarded != 1 || d.closed != 1 {
		t.Errorf("discarded %d times, closed %d; want once each", d.discarded, d.closed)
	}
}

// TestCheckProblemsFlat: render's lists of problems (here the layout's
// two, found once by render.New, and a message's two) are the campaign's
// Problems, one entry for each problem, none a list of its own.
func TestCheckProblemsFlat(t *testing.T) {
	layout := "<html><body><a href=\"{{.Fields.url}}\">x</a><img src=\"https://{{.Fields.host}}/logo.png\">{{.Body}}</body></html>\n"
	c := newCampaign(t, "email,name,url,host\nada@example.org,Ada,x,y\n", "Hi\n", "layout = \"l.html\"\n", map[string]string{"l.html": layout})
	_, err := c.Check(context.Background(), Options{Now: now})
	p := problemsOf(t, err)
	var ue *merge.URLError
	if len(p) != 2 || !errors.As(p[0], &ue) || !errors.As(p[1], &ue) {
		t.Fatalf("%d problems: %v; want the layout's two URLs", len(p), err)
	}
	c = newCampaign(t, "email,name\nada@example.org,Ada\n", "Hi\n\n![a](a.png) ![b](b.png)\n", "", nil)
	_, err = c.Check(context.Background(), Options{Now: now})
	p = problemsOf(t, err)
	var me *messageError
	if len(p) != 2 || !errors.As(p[0], &me) || !errors.As(p[1], &me) || !errors.Is(p[0], fs.ErrNotExist) || !errors.Is(p[1], fs.ErrNotExist) {
		t.Fatalf("%d problems: %v; want the message's two missing images", len(p), err)
	}
	for _, e := range p {
		if _, ok := errors.Unwrap(e).(render.Errors); ok {
			t.Errorf("%v is a list of render's", e)
		}
	}
}
