package deliver

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Clock is the time a Limiter paces by: the real one, or a fake in tests.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the system's clock.
type RealClock struct{}

// Now returns the current time.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Limiter paces messages at a steady rate shared by every connection: one
// message every 1/rate, never a burst above it (a token bucket of one).
type Limiter struct {
	lim   *rate.Limiter
	clock Clock
	every time.Duration
}

// NewLimiter returns a Limiter for perSecond messages a second.
func NewLimiter(perSecond float64, clock Clock) *Limiter {
	return &Limiter{
		lim:   rate.NewLimiter(rate.Limit(perSecond), 1),
		clock: clock,
		every: time.Duration(float64(time.Second) / perSecond),
	}
}

// Wait blocks until the next message may go. A nil Limiter never waits.
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil {
		return ctx.Err()
	}
	now := l.clock.Now()
	r := l.lim.ReserveN(now, 1)
	if err := l.clock.Sleep(ctx, r.DelayFrom(now)); err != nil {
		r.CancelAt(l.clock.Now())
		return err
	}
	return nil
}

// String gives the pace, e.g. "20/s" or "1 every 3.6s".
func (l *Limiter) String() string {
	if l == nil {
		return "no limit"
	}
	perSecond := float64(l.lim.Limit())
	if perSecond >= 1 {
		return strconv.FormatFloat(perSecond, 'f', -1, 64) + "/s"
	}
	return "1 every " + l.every.String()
}

// ParseRate parses a rate: "N/s", "N/min", "N/h" or "N/day", N a positive
// number, and returns it in messages a second.
func ParseRate(s string) (float64, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("rate %q: want N/s, N/min, N/h or N/day, e.g. \"20/s\"", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if err != nil || !(v > 0 && v <= 1e6) { // NaN too
		return 0, fmt.Errorf("rate %q: %q is not a positive number of messages", s, n)
	}
	per := map[string]float64{"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "day": 86400, "d": 86400}
	sec, ok := per[strings.TrimSpace(unit)]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit %q: use s, min, h or day", s, unit)
	}
	return v / sec, nil
}
