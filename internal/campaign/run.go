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
	probs := &problems{seen: map[string]*aggregate{}}
	r, err := render.New(render.Options{
		Campaign:     c.Name,
		From:         c.From,
		ReplyTo:      c.ReplyTo,
		TemplateName: c.BodyPath,
		ImageDir:     filepath.Dir(c.BodyPath),
		LayoutName:   c.layoutName(),
		Layout:       c.Layout,
		Attachments:  c.Attachments,
		Date:         opts.Now,
	})
	if err != nil {
		probs.add(err)
	}
	f, err := os.Open(c.Recipients)
	if err != nil {
		probs.add(fmt.Errorf("%s: %w", c.Recipients, err))
		return nil, probs.err()
	}
	defer f.Close()
	rd, err := merge.NewReader(c.Recipients, f, c.Columns)
	if err != nil {
		probs.add(err)
		return nil, probs.err()
	}
	columns := rd.Header()
	for _, err := range c.Body.CheckFields(columns) {
		probs.add(err)
	}
	for _, err := range c.Subject.CheckFields(columns) {
		probs.add(fmt.Errorf("%s: subject: %w", c.loc("subject"), err))
	}
	for _, h := range c.Headers {
		for _, err := range h.Value.CheckFields(columns) {
			probs.add(fmt.Errorf("%s: headers.%s: %w", c.loc("headers."+h.Name), h.Name, err))
		}
	}
	// With a broken template or layout, go on reading the list for its
	// own problems, but render nothing.
	ready := r != nil && len(probs.list) == 0
	sum := &Summary{}
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
			return nil, probs.err()
		}
		if !ready {
			continue
		}
		m, err := c.message(r, rec, &body)
		if err != nil {
			rowErr := &merge.RowError{Path: c.Recipients, Line: rec.Line, Row: rec.Row, Err: err}
			if deliverFn != nil {
				return sum, rowErr // the list changed since it was checked
			}
			probs.addRow(rowErr)
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
			return nil, fmt.Errorf("headers.%s: %w", h.Name, err)
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
