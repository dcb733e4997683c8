package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// Options are the choices of one run.
type Options struct {
	Now  time.Time   // the Date of every message
	Warn func(error) // told of each skipped row; may be nil
}

// Summary counts a run's recipients.
type Summary struct {
	Messages   int // rendered (check) or delivered (send)
	Invalid    int // rows skipped for an invalid address
	Duplicates int // rows skipped for a repeated address
}

// Skipped is the number of rows left out.
func (s *Summary) Skipped() int { return s.Invalid + s.Duplicates }

// Check renders every recipient's message in memory and reports every
// problem that would stop the campaign, as Problems.
func (c *Campaign) Check(ctx context.Context, opts Options) (*Summary, error) {
	return c.run(ctx, opts, nil)
}

// Send checks the whole campaign first, so that a problem in row 9,000 stops
// it before the first message, then renders each message again and hands it
// to s. It closes s.
func (c *Campaign) Send(ctx context.Context, s deliver.Sender, opts Options) (*Summary, error) {
	if _, err := c.run(ctx, opts, nil); err != nil {
		s.Close()
		return nil, err
	}
	opts.Warn = nil // told already
	sum, err := c.run(ctx, opts, func(m *render.Message) error { return s.Send(ctx, m) })
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return sum, err
}

// run streams the list, renders each message and passes it to deliver
// (when not nil). It stops at the first delivery error; other problems are
// collected and returned together.
func (c *Campaign) run(ctx context.Context, opts Options, deliverFn func(*render.Message) error) (*Summary, error) {
	if c.incomplete && deliverFn != nil {
		return nil, errors.New("the campaign file has problems: run batch check")
	}
	probs := &problems{seen: map[string]*aggregate{}}
	var r *render.Renderer
	if !c.incomplete {
		var err error
		r, err = c.renderer(opts)
		if err != nil {
			probs.add(err)
		}
	}
	sum := &Summary{}
	if c.Recipients == "" {
		return sum, probs.err()
	}
	f, err := os.Open(c.Recipients)
	if err != nil {
		if !c.incomplete { // else Load has said so
			probs.add(fmt.Errorf("%s: %w", c.Recipients, err))
		}
		return sum, probs.err()
	}
	defer f.Close()
	rd, err := merge.NewReader(c.Recipients, f, c.Columns)
	var herr *merge.HeaderError
	switch {
	case errors.As(err, &herr):
		for _, p := range herr.Problems {
			probs.add(p)
		}
		c.checkFields(herr.Columns, probs)
		return sum, probs.err()
	case err != nil:
		probs.add(err)
		return sum, probs.err()
	}
	// A field that is not a column is reported once; the rows are then
	// rendered with it empty, to find the problems that lie behind it.
	blank := c.checkFields(rd.Header(), probs)
	ready := r != nil && c.Body != nil && c.Subject != nil && len(probs.list) == len(blank)
	var body bytes.Buffer
	for {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *merge.RowError
		switch {
		case errors.Is(err, merge.ErrSkipped):
			if errors.Is(err, merge.ErrDuplicate) {
				sum.Duplicates++
			} else {
				sum.Invalid++
			}
			if opts.Warn != nil {
				opts.Warn(err)
			}
			continue
		case errors.As(err, &rowErr):
			probs.addRow(rowErr)
			continue
		case err != nil:
			probs.add(err)
			return sum, probs.err()
		}
		if !ready {
			continue
		}
		for _, name := range blank {
			rec.Fields[name] = ""
		}
		m, err := c.message(r, rec, &body)
		if err != nil {
			if deliverFn != nil { // the list changed since it was checked
				return sum, &messageError{rec: rec, list: c.Recipients, err: err}
			}
			list, ok := err.(render.Errors)
			if !ok {
				list = render.Errors{err}
			}
			for _, err := range list {
				probs.addMessage(&messageError{rec: rec, list: c.Recipients, err: err})
			}
			continue
		}
		if deliverFn != nil {
			if err := deliverFn(m); err != nil {
				return sum, fmt.Errorf("%s (row %d): %w", rec.Email, rec.Row, err)
			}
		}
		sum.Messages++
	}
	if err := probs.err(); err != nil {
		return sum, err
	}
	if sum.Messages == 0 && ready {
		return sum, fmt.Errorf("%s: no recipients to send to: the list has no valid rows", c.Recipients)
	}
	return sum, nil
}

// checkFields reports every field the templates name that is not one of
// columns, and returns their names.
func (c *Campaign) checkFields(columns []string, probs *problems) []string {
	var all []*merge.FieldError
	if c.Body != nil {
		all = append(all, c.Body.CheckFields(columns)...)
	}
	if c.Subject != nil {
		all = append(all, c.Subject.CheckFields(columns)...)
	}
	for _, h := range c.Headers {
		all = append(all, h.Value.CheckFields(columns)...)
	}
	var names []string
	for _, e := range all {
		probs.add(e)
		if !slices.Contains(names, e.Field) {
			names = append(names, e.Field)
		}
	}
	return names
}

func (c *Campaign) renderer(opts Options) (*render.Renderer, error) {
	template := ""
	if c.Body != nil {
		template = c.Body.Source()
	}
	return render.New(render.Options{
		Campaign:       c.Name,
		From:           c.From,
		ReplyTo:        c.ReplyTo,
		TemplateName:   c.BodyPath,
		TemplateSource: template,
		ImageDir:       filepath.Dir(c.BodyPath),
		LayoutName:     c.layoutName(),
		Layout:         c.Layout,
		Attachments:    c.Attachments,
		Date:           opts.Now,
	})
}

// messageError is a problem met rendering one recipient's message: most
// often the template's, so it leads, and the row follows.
type messageError struct {
	rec  *merge.Recipient
	list string
	err  error
	more int // further messages with the same problem
}

func (e *messageError) Error() string {
	if e.more > 0 {
		return fmt.Sprintf("%v (in the messages to row %d, %s:%d, and %d more)", e.err, e.rec.Row, e.list, e.rec.Line, e.more)
	}
	return fmt.Sprintf("%v (in the message to row %d, %s:%d)", e.err, e.rec.Row, e.list, e.rec.Line)
}

func (e *messageError) Unwrap() error { return e.err }

// message merges one recipient's row and renders the message.
func (c *Campaign) message(r *render.Renderer, rec *merge.Recipient, body *bytes.Buffer) (*render.Message, error) {
	subject, err := c.Subject.Line(rec.Fields)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	body.Reset()
	if err := c.Body.Execute(body, rec.Fields); err != nil {
		return nil, err
	}
	in := &render.Input{
		Seq:      rec.Row,
		To:       mail.Address{Name: merge.OneLine(rec.Name), Address: rec.Email},
		Subject:  subject,
		Markdown: body.Bytes(),
		Fields:   rec.Fields,
	}
	for _, h := range c.Headers {
		v, err := h.Value.Line(rec.Fields)
		if err != nil {
			return nil, err
		}
		in.Headers = append(in.Headers, render.Field{Name: h.Name, Value: v})
	}
	return r.Render(in)
}

func (c *Campaign) layoutName() string {
	if c.LayoutPath == "" {
		return "built-in layout"
	}
	return c.LayoutPath
}
