package campaign

import (
	"errors"
	"fmt"
	"strings"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// Problems is every problem found in a campaign, one per line.
type Problems []error

func (p Problems) Error() string {
	var b strings.Builder
	for i, err := range p {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As every problem.
func (p Problems) Unwrap() []error { return p }

// problemList is err as a list of problems: render's (render.Errors) become
// the campaign's.
func problemList(err error) Problems {
	switch list := err.(type) {
	case nil:
		return nil
	case Problems:
		return list
	case render.Errors:
		return Problems(list)
	}
	return Problems{err}
}

// maxProblems bounds the list a run reports: past it, only a count.
const maxProblems = 50

// problems collects a run's problems. The same problem in many rows (a
// missing image in every message) is reported once, with a count.
type problems struct {
	list  []*aggregate
	seen  map[string]*aggregate
	extra int // distinct problems past maxProblems
}

func newProblems() *problems { return &problems{seen: map[string]*aggregate{}} }

type aggregate struct {
	first error
	more  int // further rows with the same problem
}

// add records err; a list of problems (Problems) is added one by one.
func (p *problems) add(err error) {
	switch err.(type) {
	case Problems, render.Errors:
		for _, e := range problemList(err) {
			p.add(e)
		}
	default:
		p.addKey(err.Error(), err)
	}
}

// addRow records a row's problem, counted with the same problem in other rows.
func (p *problems) addRow(err *merge.RowError) {
	p.addKey(err.Err.Error(), err)
}

// addMessage records a problem of a message, counted with the same problem
// in other messages.
func (p *problems) addMessage(err *messageError) {
	p.addKey(err.err.Error(), err)
}

func (p *problems) addKey(key string, err error) {
	if a, ok := p.seen[key]; ok {
		a.more++
		return
	}
	if len(p.list) >= maxProblems {
		p.extra++
		return
	}
	a := &aggregate{first: err}
	p.seen[key] = a
	p.list = append(p.list, a)
}

// err returns the problems as Problems, or nil.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	out := make(Problems, 0, len(p.list)+1)
	for _, a := range p.list {
		var merr *messageError
		switch {
		case a.more == 0:
			out = append(out, a.first)
		case errors.As(a.first, &merr):
			withCount := *merr
			withCount.more = a.more
			out = append(out, &withCount)
		default:
			out = append(out, fmt.Errorf("%w (and %d more rows)", a.first, a.more))
		}
	}
	if p.extra > 0 {
		out = append(out, fmt.Errorf("and %d more problems", p.extra))
	}
	return out
}
