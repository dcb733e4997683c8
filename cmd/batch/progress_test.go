package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/render"
)

// TestProgressOutcomes: the progress lines print each outcome but sent as
// what it is, and count unknown apart from failed, as the summary does.
func TestProgressOutcomes(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, false, 4)
	p.outcome(&render.Message{To: "a@example.org", Seq: 1}, journal.Sent, nil)
	p.outcome(&render.Message{To: "b@example.org", Seq: 2}, journal.Unknown, errors.New("end of DATA: i/o timeout"))
	p.outcome(&render.Message{To: "c@example.org", Seq: 3}, journal.Failed, errors.New("RCPT TO: 550 no such user"))
	p.outcome(&render.Message{To: "d@example.org", Seq: 4}, journal.Unknown, errors.New("end of DATA: EOF"))
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
