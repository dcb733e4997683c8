package journal

import (
	"hash/maphash"
	"strings"
)

// Status is where a recipient stands.
type Status int

const (
	Pending Status = iota
	Sent
	Failed
	Unknown
)

func (s Status) String() string {
	return [...]string{"pending", "sent", "failed", "unknown"}[s]
}

// Entry is the last word of the journal on one recipient.
type Entry struct {
	Status Status
	Row    int
	Code   int
	Error  string
}

// State is what a journal says of each recipient. It is kept small, as a
// resumed campaign or batch status holds it for the whole list: a
// recipient costs a 128-bit key and a status (about 30 bytes, a quarter of
// a map by address), and only those with a server's reply to show keep
// an Entry. Keys are maphash sums of the address under two random seeds,
// so that no list can be made to collide.
type State struct {
	seeds  [2]maphash.Seed
	status map[stateKey]Status
	detail map[stateKey]Entry // a code or an error to show
}

type stateKey [2]uint64

func newState() *State {
	return &State{
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		status: map[stateKey]Status{},
		detail: map[stateKey]Entry{},
	}
}

// key is the key of an address in lower case.
func (s *State) key(lower string) stateKey {
	return stateKey{maphash.String(s.seeds[0], lower), maphash.String(s.seeds[1], lower)}
}

// Get returns the entry of address; Pending when the journal has none.
func (s *State) Get(address string) Entry {
	if s == nil {
		return Entry{}
	}
	k := s.key(strings.ToLower(address))
	st, ok := s.status[k]
	if !ok {
		return Entry{}
	}
	e := s.detail[k]
	e.Status = st
	return e
}

// Len returns how many recipients the journal knows.
func (s *State) Len() int { return len(s.status) }

// KindStatus is where a record of kind leaves its recipient; false for a
// kind that is not about a recipient.
func KindStatus(kind string) (Status, bool) {
	switch kind {
	case KindSending, KindUnknown:
		// A "sending" with nothing after it is a run that died with the
		// message in flight: the server may or may not have it.
		return Unknown, true
	case KindSent:
		return Sent, true
	case KindFailed:
		return Failed, true
	case KindDeferred, KindReleased:
		return Pending, true
	}
	return Pending, false
}

func (s *State) apply(r *Record) {
	st, ok := KindStatus(r.Kind)
	if r.To == "" || !ok {
		return
	}
	k := s.key(r.To)
	s.status[k] = st
	if st == Sent || r.Code == 0 && r.Error == "" {
		delete(s.detail, k)
		return
	}
	s.detail[k] = Entry{Row: r.Row, Code: r.Code, Error: r.Error}
}
