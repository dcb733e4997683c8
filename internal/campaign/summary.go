package campaign

import (
	"sync"

	"github.com/batch-mailer/batch/internal/journal"
)

// Summary counts a run's recipients.
type Summary struct {
	Messages    int // rendered (check), or handed over for delivery (send)
	Invalid     int // rows skipped for an invalid address
	Duplicates  int // rows skipped for a repeated address
	AlreadySent int // recipients the journal says were sent
	Held        int // failed or unknown before, not tried again this run
	OtherShards int // recipients of the other shards
	Warned      int // rows rendered, and sent, with a warning (told to Options.Warn)
	// Suppressed are the recipients on the suppression list, not sent to
	// and not failures; SuppressedBy counts them by reason (see
	// SuppressReasons), nil for none.
	Suppressed   int
	SuppressedBy map[string]int
	// Bounced is how many hard bounces of a send were added to the
	// suppression list.
	Bounced int

	mu       sync.Mutex
	outcomes Outcomes
}

// Outcomes counts what became of the messages handed over: each as the
// journal holds it.
type Outcomes struct {
	Sent     int
	Failed   int // refused for good, or out of retries
	Unknown  int // handed over, and the server's word on it never came or was not recorded
	Deferred int // temporary failures, each tried again later
}

// Skipped is the number of rows left out for their address.
func (s *Summary) Skipped() int { return s.Invalid + s.Duplicates }

// Outcomes returns what became of the messages so far.
func (s *Summary) Outcomes() Outcomes {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outcomes
}

// outcome counts a message's final outcome.
func (s *Summary) outcome(st journal.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case journal.Sent:
		s.outcomes.Sent++
	case journal.Failed:
		s.outcomes.Failed++
	case journal.Unknown:
		s.outcomes.Unknown++
	}
}

// deferred counts a temporary failure.
func (s *Summary) deferred() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes.Deferred++
}

// skipKind is why a row is not sent this run.
type skipKind int

const (
	skipNone       skipKind = iota
	skipInvalid             // an address batch can't send to
	skipDuplicate           // an address seen before in the list
	skipSent                // the journal says sent
	skipHeld                // failed or unknown before, not tried again
	skipShard               // another shard's
	skipSuppressed          // on the suppression list (counted with its reason)
)

func (s *Summary) count(k skipKind) {
	switch k {
	case skipInvalid:
		s.Invalid++
	case skipDuplicate:
		s.Duplicates++
	case skipSent:
		s.AlreadySent++
	case skipHeld:
		s.Held++
	case skipShard:
		s.OtherShards++
	}
}
