package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/campaign"
)

// TestProgressOutcomes: the progress lines print each outcome but sent as
// what it is, and count unknown apart from failed, as the summary does.
func TestProgressOutcomes(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, false, 4)
	p.outcome(campaign.Result{To: "a@example.org", Row: 1, Status: campaign.Sent})
	p.outcome(campaign.Result{To: "b@example.org", Row: 2, Status: campaign.Unknown, Err: errors.New("end of DATA: i/o timeout")})
	p.outcome(campaign.Result{To: "c@example.org", Row: 3, Status: campaign.Failed, Err: errors.New("RCPT TO: 550 no such user")})
	p.outcome(campaign.Result{To: "d@example.org", Row: 4, Status: campaign.Unknown, Err: errors.New("end of DATA: EOF")})
	p.draw()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"batch: unknown: b@example.org (row 2): end of DATA: i/o timeout",
		"batch: failed: c@example.org (row 3): RCPT TO: 550 no such user",
		"batch: unknown: d@example.org (row 4): end of DATA: EOF",
		"batch: 1/4 sent, 1 failed, 2 unknown, ",
	}
	if len(lines) != len(want) {
		t.Fatalf("progress printed\n%s\nwant %d lines", out.String(), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want %q…", i+1, lines[i], w)
		}
	}
}

// TestProgressWaiting: --wait's line says the quota, until when (local
// time and UTC) and that Ctrl-C stops; on a terminal it clears the bar
// first.
func TestProgressWaiting(t *testing.T) {
	q, err := campaign.ParseQuota("5/day")
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)
	var out bytes.Buffer
	p := newProgress(&out, true, 12)
	p.drawn = true
	p.waiting(&q, until)
	want := "\r\x1b[Kbatch: quota of 5/day reached: waiting until " + until.Local().Format("2006-01-02 15:04:05 MST") +
		" (2026-12-02 09:30:00 UTC), then going on; Ctrl-C stops\n"
	if out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
}
