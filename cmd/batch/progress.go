package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/batch-mailer/batch/internal/campaign"
)

// progress reports a send as it goes: on a terminal a bar redrawn in place
// a few times a second; elsewhere a log line every few seconds, so that a
// log file stays readable. Every outcome but sent is printed as it comes,
// with why.
type progress struct {
	w        io.Writer // the run's stderr; the bar's redraw goes past its cleaning (control)
	tty      bool
	total    int
	interval time.Duration

	mu      sync.Mutex
	start   time.Time
	sent    int
	failed  int
	unknown int
	drawn   bool // a bar is on the screen
	stop    chan struct{}
	done    chan struct{}
}

func newProgress(w io.Writer, tty bool, total int) *progress {
	interval := 5 * time.Second
	if tty {
		interval = 200 * time.Millisecond
	}
	return &progress{w: w, tty: tty, total: total, interval: interval}
}

// begin starts the clock and the ticker.
func (p *progress) begin() {
	p.start = time.Now()
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			case <-p.stop:
				return
			}
		}
	}()
}

// outcome counts one message's outcome, the one the summary counts, and
// prints it with why unless it was sent: "batch: failed: …" or
// "batch: unknown: …".
func (p *progress) outcome(r campaign.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch r.Status {
	case campaign.Sent:
		p.sent++
		return
	case campaign.Unknown:
		p.unknown++
	default:
		p.failed++
	}
	p.clear()
	fmt.Fprintf(p.w, "batch: %s: %s (row %d): %v\n", r.Status, r.To, r.Row, r.Err)
}

// end stops the ticker and clears the bar.
func (p *progress) end() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

func (p *progress) clear() {
	if p.drawn {
		control(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

func (p *progress) draw() {
	done := p.sent + p.failed + p.unknown
	elapsed := time.Since(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	left := "?"
	if rate > 0 && p.total >= done {
		left = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	status := fmt.Sprintf("%d/%d sent, %d failed, %d unknown, %.1f/s, %s left", p.sent, p.total, p.failed, p.unknown, rate, left)
	if !p.tty {
		fmt.Fprintf(p.w, "batch: %s\n", status)
		return
	}
	const width = 24
	filled := 0
	if p.total > 0 {
		filled = min(width, width*done/p.total)
	}
	control(p.w, "\r\x1b[K")
	fmt.Fprintf(p.w, "[%s%s] %s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), status)
	p.drawn = true
}

// waiting says that the send waits for the quota's window to reopen
// (--wait), until then.
func (p *progress) waiting(q *campaign.Quota, until time.Time) {
	if p == nil || q == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, "batch: quota of %s reached: waiting until %s (%s UTC), then going on; Ctrl-C stops\n",
		q.Text, until.Local().Format("2006-01-02 15:04:05 MST"), until.UTC().Format("2006-01-02 15:04:05"))
}
