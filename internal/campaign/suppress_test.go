package campaign

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/smtptest"
	"github.com/batch-mailer/batch/internal/suppress"
)

// suppressedList is a suppression list for faultList: two unsubscribed
// (one written in another case), one bounced, and an address not in the
// list.
const suppressedList = "email,reason,at,campaign,detail\n" +
	"Bob@Example.NET,unsubscribed\n" +
	"dave@example.com,unsubscribed,2026-11-01T10:00:00Z\n" +
	"frank@example.org,bounced,,2026-10-news,550 5.1.1 user unknown\n" +
	"zed@example.org,manual\n"

// suppressCampaign is the fault tests' campaign with a suppression list
// beside it holding list ("" for none: the file does not exist yet).
func suppressCampaign(t *testing.T, list, more string) *Campaign {
	t.Helper()
	extra := map[string]string{}
	if list != "" {
		extra["suppressed.csv"] = list
	}
	return newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n", `suppress = "suppressed.csv"`+"\n"+more, extra)
}

func TestCheckSkipsSuppressed(t *testing.T) {
	c := suppressCampaign(t, suppressedList, "")
	sum, err := c.Check(context.Background(), Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Messages != 3 || sum.Suppressed != 3 || sum.Skipped() != 0 {
		t.Errorf("messages %d, suppressed %d, skipped %d; want 3, 3, 0", sum.Messages, sum.Suppressed, sum.Skipped())
	}
	if sum.SuppressedBy["unsubscribed"] != 2 || sum.SuppressedBy["bounced"] != 1 || len(sum.SuppressedBy) != 2 {
		t.Errorf("suppressed by %v, want 2 unsubscribed, 1 bounced", sum.SuppressedBy)
	}
}

func TestCheckWithoutSuppressionFile(t *testing.T) {
	c := suppressCampaign(t, "", "")
	sum, err := c.Check(context.Background(), Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Messages != len(faultList) || sum.Suppressed != 0 {
		t.Errorf("messages %d, suppressed %d; want %d, 0", sum.Messages, sum.Suppressed, len(faultList))
	}
	if _, err := os.Stat(c.Suppress); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("check created the list: %v", err)
	}
}

func TestCheckAllSuppressed(t *testing.T) {
	var list strings.Builder
	list.WriteString("email,reason,at,campaign,detail\n")
	for _, a := range faultList {
		list.WriteString(a + ",unsubscribed\n")
	}
	c := suppressCampaign(t, list.String(), "")
	sum, err := c.Check(context.Background(), Options{Now: now})
	if err != nil { // not "no valid rows": they are valid, and suppressed
		t.Fatal(err)
	}
	if sum.Messages != 0 || sum.Suppressed != len(faultList) {
		t.Errorf("messages %d, suppressed %d", sum.Messages, sum.Suppressed)
	}
}

func TestCheckBadSuppressionList(t *testing.T) {
	c := suppressCampaign(t, "email,reason,at,campaign,detail\nada@example.org,forgotten\n", "")
	_, err := c.Check(context.Background(), Options{Now: now})
	p := problemsOf(t, err)
	if findProblem(p, c.loc("suppress")+": suppress: ") == nil || !strings.Contains(err.Error(), "suppressed.csv:2") {
		t.Errorf("problems %v, want one naming the suppress key and the list's line 2", p)
	}
}

func TestSuppressKeys(t *testing.T) {
	_, _, err := load(t, minimal+"suppress_bounces = false\n", nil)
	if p := problemsOf(t, err); findProblem(p, "") == nil || !strings.Contains(p[0].Error(), "suppress_bounces: goes with suppress") {
		t.Errorf("got %v", p)
	}
	_, _, err = load(t, minimal+`suppress = "lists"`+"\n", map[string]string{"lists/a.csv": ""})
	if p := problemsOf(t, err); !strings.Contains(p[0].Error(), "c.toml:6: suppress: ") || !strings.Contains(p[0].Error(), "is a directory") {
		t.Errorf("got %v", p)
	}
	_, _, err = load(t, minimal+`suppress = "lists/s.csv"`+"\n", nil)
	if p := problemsOf(t, err); !strings.Contains(p[0].Error(), "c.toml:6: suppress: ") || !strings.Contains(p[0].Error(), "lists: no such directory") {
		t.Errorf("got %v", p)
	}
	c, _, err := load(t, minimal+`suppress = "../s.csv"`+"\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(c.Suppress) != "s.csv" || filepath.Dir(c.Suppress) != filepath.Dir(filepath.Dir(c.Path)) || !c.SuppressBounces {
		t.Errorf("suppress %q (campaign %q), bounces %v", c.Suppress, c.Path, c.SuppressBounces)
	}
	c, _, err = load(t, minimal+`suppress = "s.csv"`+"\nsuppress_bounces = false\n", nil)
	if err != nil || c.SuppressBounces {
		t.Errorf("suppress_bounces = false: %v, %v", c.SuppressBounces, err)
	}
}

// TestHardBounceSuppressed sends to a server that refuses one address as
// unknown (550 5.1.1) and another for policy (550 5.7.1): the first is
// added to the list, as bounced by this campaign with the reply, and the
// next campaign's check skips it; the second is this campaign's failure
// only.
func TestHardBounceSuppressed(t *testing.T) {
	gone, refused := faultList[2], faultList[4]
	c := suppressCampaign(t, "", "")
	srv := smtptest.Start(t,
		smtptest.Fault{Rcpt: gone, Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}},
		smtptest.Fault{Rcpt: refused, Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 7, 1}})
	r := sendVia(t, c, srv, quick, faultOptions())
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantOutcomes(t, r.sum, Outcomes{Sent: len(faultList) - 2, Failed: 2})
	if r.sum.Bounced != 1 {
		t.Errorf("bounced %d, want 1", r.sum.Bounced)
	}
	var entries []suppress.Entry
	f, err := os.Open(c.Suppress)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := suppress.Scan(c.Suppress, f, func(e suppress.Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("the list holds %v, want %s alone", entries, gone)
	}
	if e := entries[0]; e.Email != gone || e.Reason != suppress.Bounced || e.Campaign != c.Name || !strings.Contains(e.Detail, "550 5.1.1") || e.At.IsZero() {
		t.Errorf("entry %+v", e)
	}

	next := *c
	next.Name = "2026-12-next"
	sum, err := next.Check(context.Background(), Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Messages != len(faultList)-1 || sum.SuppressedBy["bounced"] != 1 {
		t.Errorf("the next check: %d messages, suppressed %v; want %d, 1 bounced", sum.Messages, sum.SuppressedBy, len(faultList)-1)
	}
}

func TestHardBounceOff(t *testing.T) {
	c := suppressCampaign(t, "", "suppress_bounces = false\n")
	srv := smtptest.Start(t, smtptest.Fault{Rcpt: faultList[1], Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}})
	r := sendVia(t, c, srv, quick, faultOptions())
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantOutcomes(t, r.sum, Outcomes{Sent: len(faultList) - 1, Failed: 1})
	if _, err := os.Stat(c.Suppress); !errors.Is(err, os.ErrNotExist) || r.sum.Bounced != 0 {
		t.Errorf("suppress_bounces = false, and the list was written (%v), %d bounced", err, r.sum.Bounced)
	}
}

// TestSendSkipsSuppressed: the suppressed are not sent to, nor recorded,
// and the send counts them apart from its outcomes.
func TestSendSkipsSuppressed(t *testing.T) {
	c := suppressCampaign(t, suppressedList, "")
	srv := smtptest.Start(t)
	r := sendVia(t, c, srv, quick, faultOptions())
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantOutcomes(t, r.sum, Outcomes{Sent: 3})
	if r.planned.Suppressed != 3 || r.sum.Suppressed != 3 {
		t.Errorf("planned %d suppressed, the send %d; want 3", r.planned.Suppressed, r.sum.Suppressed)
	}
	for _, a := range []string{"bob@example.net", "dave@example.com", "frank@example.org"} {
		if n := srv.Attempts()[a]; n != 0 {
			t.Errorf("%s, suppressed, was tried %d times", a, n)
		}
		if st := readState(t, c).Get(a).Status; st != Pending {
			t.Errorf("%s is %v in the journal", a, st)
		}
	}
}

func TestHardBounceReplies(t *testing.T) {
	reply := func(stage string, code int, enh smtp.EnhancedCode) error {
		return &deliver.SendError{To: "a@example.org", Stage: stage, Err: &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: "no"}}
	}
	for _, tc := range []struct {
		err  error
		hard bool
	}{
		{reply("RCPT TO", 550, smtp.EnhancedCode{5, 1, 1}), true},
		{reply("end of DATA", 550, smtp.EnhancedCode{5, 1, 1}), true},
		{reply("RCPT TO", 550, smtp.EnhancedCode{5, 1, 2}), true},
		{reply("RCPT TO", 550, smtp.EnhancedCode{5, 1, 10}), true},
		{reply("RCPT TO", 552, smtp.EnhancedCode{5, 2, 1}), true},
		{reply("RCPT TO", 550, smtp.NoEnhancedCode), true},
		{reply("RCPT TO", 550, smtp.EnhancedCode{}), true},
		{reply("RCPT TO", 550, smtp.EnhancedCode{5, 0, 0}), true},
		{reply("end of DATA", 550, smtp.NoEnhancedCode), false},
		{reply("RCPT TO", 554, smtp.NoEnhancedCode), false},
		{reply("RCPT TO", 550, smtp.EnhancedCode{5, 7, 1}), false},
		{reply("RCPT TO", 550, smtp.EnhancedCode{5, 1, 3}), false},
		{reply("RCPT TO", 450, smtp.EnhancedCode{4, 1, 1}), false},
		{errors.New("550 5.1.1 as text"), false},
	} {
		detail, hard := hardBounce(tc.err)
		if hard != tc.hard {
			t.Errorf("%v: hard %v, want %v", tc.err, hard, tc.hard)
		}
		if hard && detail != tc.err.Error() {
			t.Errorf("%v: detail %q", tc.err, detail)
		}
	}
}

func TestSuppressEdits(t *testing.T) {
	c := suppressCampaign(t, "", "")
	if n, err := c.AddSuppressed("", "", "ada@example.org", "bob@example.net"); err != nil || n != 2 {
		t.Fatalf("add: %d, %v", n, err)
	}
	if n, err := c.AddSuppressed("unsubscribed", "by phone", "ADA@example.org", "carol@example.com"); err != nil || n != 1 {
		t.Fatalf("add again: %d, %v", n, err)
	}
	if _, err := c.AddSuppressed("", "", "carol@example.com", "not-an-address"); !errors.Is(err, suppress.ErrInvalid) {
		t.Errorf("an invalid address: %v", err)
	}
	if _, err := c.AddSuppressed("forgotten", "", "dave@example.com"); !errors.Is(err, suppress.ErrInvalid) {
		t.Errorf("an unknown reason: %v", err)
	}
	if n, err := c.RemoveSuppressed("bob@example.net", "nobody@example.org"); err != nil || n != 1 {
		t.Fatalf("remove: %d, %v", n, err)
	}
	var out bytes.Buffer
	if err := c.ListSuppressed(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[0] != "email,reason,at,campaign,detail" ||
		!strings.HasPrefix(lines[1], "ada@example.org,manual,20") || !strings.HasPrefix(lines[2], "carol@example.com,unsubscribed,20") || !strings.HasSuffix(lines[2], ",,by phone") {
		t.Errorf("list:\n%s", out.String())
	}

	bare := newCampaign(t, listOf(faultList), "# Hi\n", "", nil)
	if _, err := bare.AddSuppressed("", "", "ada@example.org"); !errors.Is(err, ErrNoSuppressionList) {
		t.Errorf("a campaign without a list: %v", err)
	}
}

func TestCountSuppressed(t *testing.T) {
	c := suppressCampaign(t, suppressedList, "")
	n, err := c.CountSuppressed(readState(t, c), Shard{})
	if err != nil {
		t.Fatal(err)
	}
	if n["unsubscribed"] != 2 || n["bounced"] != 1 || len(n) != 2 {
		t.Errorf("counted %v", n)
	}
}

// TestHardBounceUnwritten: a list that can't be written is warned of,
// naming it, and the journal still holds the recipient as failed.
func TestHardBounceUnwritten(t *testing.T) {
	c := newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n", `suppress = "lists/suppressed.csv"`+"\n", map[string]string{"lists/keep": ""})
	if err := os.RemoveAll(filepath.Dir(c.Suppress)); err != nil { // gone after Load
		t.Fatal(err)
	}
	gone := faultList[1]
	srv := smtptest.Start(t, smtptest.Fault{Rcpt: gone, Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}})
	var warned []error
	opts := faultOptions()
	opts.Warn = func(err error) { warned = append(warned, err) }
	r := sendVia(t, c, srv, quick, opts)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0].Error(), c.Suppress) || !strings.Contains(warned[0].Error(), "a hard bounce ("+gone+") not added") {
		t.Errorf("warned %v, want one naming %s", warned, c.Suppress)
	}
	if r.sum.Bounced != 0 || readState(t, c).Get(gone).Status != Failed {
		t.Errorf("bounced %d, %s is %v", r.sum.Bounced, gone, readState(t, c).Get(gone).Status)
	}
}
