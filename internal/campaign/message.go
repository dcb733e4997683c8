package campaign

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"path/filepath"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// newRenderer returns the campaign's renderer, or nil when it can't
// render: a campaign file with problems (Load says why), or problems of
// its own, added to probs.
func (c *Campaign) newRenderer(opts Options, probs *problems) *render.Renderer {
	if c.incomplete {
		return nil
	}
	r, err := c.renderer(opts)
	if err != nil {
		probs.add(err)
		return nil
	}
	return r
}

func (c *Campaign) renderer(opts Options) (*render.Renderer, error) {
	var template render.Lines
	source := ""
	if c.Body != nil {
		template, source = c.Body, c.Body.Source()
	}
	r, err := render.New(render.Options{
		Campaign:       c.Name,
		From:           c.From,
		ReplyTo:        c.ReplyTo,
		TemplateName:   c.BodyPath,
		TemplateSource: source,
		Template:       template,
		ImageDir:       filepath.Dir(c.BodyPath),
		LayoutName:     c.layoutName(),
		Layout:         c.Layout,
		Lang:           c.Lang,
		Attachments:    c.Attachments,
		Files:          c.files(),
		FileLimit:      c.Limits.Attachment,
		MessageLimit:   c.Limits.Message,
		Date:           opts.Now,
		TextFooter:     c.LayoutPath == "", // the built-in layout's footer
		DKIM:           c.DKIM.signer(),
		TestTo:         opts.To,
	})
	if err != nil {
		// The files New reads are the campaign-wide attachments: their
		// problems point at that key.
		list := problemList(err)
		out := make(Problems, len(list))
		for i, e := range list {
			var size *render.SizeError
			var file *render.FileError
			if errors.As(e, &size) || errors.As(e, &file) {
				e = fmt.Errorf("%s: %w", c.loc("attachments"), c.explain(e))
			}
			out[i] = e
		}
		return nil, out
	}
	return r, nil
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
	var in render.Input // on the stack: the message is what stays
	if err := c.input(&in, rec, body); err != nil {
		return nil, err
	}
	m, err := r.Render(&in)
	if err != nil {
		return nil, c.explain(err)
	}
	return m, nil
}

// check merges one recipient's row and finds the problems rendering the
// message would meet, without writing it (render.Renderer.Check).
func (c *Campaign) check(r *render.Renderer, rec *merge.Recipient, body *bytes.Buffer) error {
	var in render.Input
	if err := c.input(&in, rec, body); err != nil {
		return err
	}
	if err := r.Check(&in); err != nil {
		return c.explain(err)
	}
	return nil
}

// input merges one recipient's row into in, what render takes; body
// holds the merged Markdown.
func (c *Campaign) input(in *render.Input, rec *merge.Recipient, body *bytes.Buffer) error {
	subject, err := c.Subject.Line(rec.Fields)
	if err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	body.Reset()
	if err := c.Body.Execute(body, rec.Fields); err != nil {
		return err
	}
	*in = render.Input{
		Seq:      rec.Row,
		To:       mail.Address{Name: merge.OneLine(rec.Name), Address: rec.Email},
		Subject:  subject,
		Markdown: body.Bytes(),
		Fields:   rec.Fields,
	}
	for _, h := range c.Headers {
		v, err := h.Value.Line(rec.Fields)
		if err != nil {
			return err
		}
		in.Headers = append(in.Headers, render.Field{Name: h.Name, Value: v})
	}
	if c.Preheader != nil {
		if in.Preheader, err = c.Preheader.Line(rec.Fields); err != nil {
			return err
		}
	}
	if c.Unsubscribe != nil {
		if in.Unsubscribe, err = c.Unsubscribe.link(rec.Email, rec.Fields); err != nil {
			return err
		}
		in.UnsubMailto = c.Unsubscribe.Mailto
	}
	if in.Attachments, err = c.recipientFiles(rec); err != nil {
		return err
	}
	return nil
}

func (c *Campaign) layoutName() string {
	if c.LayoutPath == "" {
		return "built-in layout"
	}
	return c.LayoutPath
}
