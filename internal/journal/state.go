package journal

import (
	"container/heap"
	"hash/maphash"
	"slices"
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
	window *Window            // KeepWindow's; nil if not asked
	// boot is this machine's boot (see Record.Boot); "" for none known.
	boot string
	// sameBoot: the run whose records are being read began on this boot
	// (its "open" record says so), so its records are all in the file,
	// synced or not.
	sameBoot bool
}

type stateKey [2]uint64

func newState() *State {
	return &State{
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		status: map[stateKey]Status{},
		detail: map[stateKey]Entry{},
		boot:   thisBoot(),
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

// Window returns the quota's window that the reading kept (KeepWindow);
// nil if it was not asked to.
func (s *State) Window() *Window {
	if s == nil {
		return nil
	}
	return s.window
}

// Len returns how many recipients the journal knows.
func (s *State) Len() int { return len(s.status) }

// KindStatus is where a record of kind leaves its recipient; false for a
// kind that is not about a recipient.
func KindStatus(kind string) (Status, bool) {
	switch kind {
	case KindSending, KindHandover, KindUnknown:
		// A "sending" or "handover" with nothing after it is a run that
		// died with the message in flight: the server may or may not
		// have it (but see State for a "sending" read on its boot).
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
	if s.window != nil {
		s.window.add(r)
	}
	if r.Kind == KindOpen {
		s.sameBoot = r.Boot != "" && r.Boot == s.boot
	}
	st, ok := KindStatus(r.Kind)
	if r.To == "" || !ok {
		return
	}
	if r.Kind == KindSending && s.sameBoot {
		// Read on the boot that wrote it, the journal has every record
		// its run wrote: with no "handover" after it, its message's end
		// never went, and the server can't have it.
		st = Pending
	}
	k := s.key(r.To)
	s.status[k] = st
	if st == Sent || r.Code == 0 && r.Error == "" {
		delete(s.detail, k)
		return
	}
	s.detail[k] = Entry{Row: r.Row, Code: r.Code, Error: r.Error}
}

// Window is what a quota needs of a journal: the times (Unix seconds) of
// its "sending" records at or after Since, the messages handed over, or
// about to be, in the quota's window. It keeps the latest Keep of them,
// so that its memory is bounded by the quota, not the list.
//
// A "sending" record counts unless the recipient's next record is
// "released", which a run that stops writes for a message whose end
// never went: one of those a lease wrote the records of, waiting behind
// the one on the wire, that it never started, or one that failed for now
// before its end (a 4xx reply, a lost connection) as it stopped. Until that next record comes, a "sending"
// is held by its recipient, up to maxOpen of them (a lease's few per
// connection); beyond that, and at the journal's end, it counts, as a
// message that may have gone.
type Window struct {
	Since int64
	Keep  int
	// At are the times kept, oldest first once the journal is read (while
	// it is, a heap of them, the oldest at the top).
	At []int64
	// open is the time of each recipient's "sending" record that no
	// record of theirs has followed yet, by address (in lower case, as
	// the journal has it).
	open map[string]int64
}

// maxOpen bounds the "sending" records a Window holds until it knows
// whether they count; far more than the leases of any number of
// connections leave open at once.
const maxOpen = 4096

// latest is a heap of times, the oldest at the top.
type latest []int64

func (h latest) Len() int           { return len(h) }
func (h latest) Less(i, j int) bool { return h[i] < h[j] }
func (h latest) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *latest) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *latest) Pop() any {
	old := *h
	at := old[len(old)-1]
	*h = old[:len(old)-1]
	return at
}

// add takes r: a "sending" record in the window is held until its
// recipient's next record, then counted unless that one is "released".
func (w *Window) add(r *Record) {
	if w.Keep <= 0 || r.To == "" {
		return
	}
	if at, held := w.open[r.To]; held {
		delete(w.open, r.To)
		if r.Kind != KindReleased {
			w.keep(at) // handed over, or may have been: a second "sending" is another run's
		}
	}
	switch {
	case r.Kind != KindSending || r.At < w.Since:
	case len(w.open) >= maxOpen:
		w.keep(r.At)
	default:
		if w.open == nil {
			w.open = map[string]int64{}
		}
		w.open[r.To] = r.At
	}
}

// keep keeps at if it is among the latest Keep.
func (w *Window) keep(at int64) {
	switch {
	case len(w.At) < w.Keep:
		w.At = append(w.At, at) // and up to its place: heap.Push, unboxed
		heap.Fix((*latest)(&w.At), len(w.At)-1)
	case at > w.At[0]:
		w.At[0] = at
		heap.Fix((*latest)(&w.At), 0)
	}
}

// done puts the times kept in order once the journal is read; a sorted
// heap is still one.
func (w *Window) done() {
	if w == nil {
		return
	}
	for _, at := range w.open {
		w.keep(at) // the journal ends with its message in flight, or gone
	}
	w.open = nil
	slices.Sort(w.At)
}
