// Package render turns one recipient's merged Markdown into a complete
// Internet message.
//
// The Markdown is rendered by goldmark into an HTML body (wrapped in an
// html/template layout) and a plain-text alternative from the same tree.
// Local images become inline parts referenced by cid: URLs (RFC 2392) in a
// multipart/related (RFC 2387); campaign attachments follow in a
// multipart/mixed (RFC 2046). Header fields follow RFC 5322, with RFC 2047
// encoded-words for non-ASCII text and RFC 2231 for file names; bodies are
// quoted-printable or base64 (RFC 2045).
//
// No value may choose where a URL goes: a merge field in a link, an image,
// an autolink or a URL shown as text, in the Markdown or in the layout, may
// only be in the URL's path, query or fragment (merge.PlaceInURL). The
// Markdown's URLs are checked once per shape, the layout's once, by New.
//
// Every file a message carries is a regular file, looked at by stat before
// it is opened (a pipe or a device never is) and held to Options.FileLimit
// and MessageLimit, by its size before it is read and by a limited read.
// A recipient's own attachments come only from Options.Files, through an
// os.Root of its directory (see Files).
//
// The bytes are written with the standard library rather than by
// github.com/jordan-wright/email, whose Bytes() picks random boundaries and
// orders headers by map iteration: messages here must be byte-for-byte
// reproducible (SOURCE_DATE_EPOCH), and its header and filename encoding is
// unsafe (ARCHITECTURE.md, "Why not jordan-wright/email").
package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	htmlpkg "html"
	"html/template"
	"io"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yuin/goldmark"

	"github.com/batch-mailer/batch/internal/merge"
)

// Options are what a campaign's messages share.
type Options struct {
	Campaign       string        // the campaign's name: Message-IDs derive from it
	From           mail.Address  // ASCII address; the name may be any text
	ReplyTo        *mail.Address // optional
	TemplateName   string        // the Markdown template, as named in messages
	TemplateSource string        // its text, to find the line and column of a merge field in a URL
	Template       Lines         // finds a problem's line in it; nil: the merged Markdown's line
	ImageDir       string        // where the template's image paths start
	LayoutName     string        // the layout, as named in messages
	Layout         string        // html/template text
	Lang           string        // the text's language (BCP 47) for the layout, or ""
	Attachments    []string      // files attached to every message
	Files          Files         // where a recipient's own attachments come from
	Date           time.Time     // the Date of every message
	DKIM           *DKIM         // signs every message; nil for none
	// FileLimit bounds each image and attached file, in bytes;
	// MessageLimit a message's images and attachments together. 0 for
	// no limit. A file over it is found by its size, never read.
	FileLimit, MessageLimit int64
	// TextFooter ends the plain text as the built-in layout ends the
	// HTML: who the message was sent to, and how to unsubscribe unless
	// the text already links {{unsubscribe}}, so that the two
	// alternatives say the same thing.
	TextFooter bool
	// TestTo, for a test send, is the address that gets every message in
	// its recipient's stead: each message then has a Message-ID of its
	// own (TestSendMessageID), not its recipient's.
	TestTo string
}

// Lines tells the line of the template that wrote a place in the merged
// Markdown of a recipient's fields, when it can: *merge.Template does.
type Lines interface {
	SourceLine(fields map[string]string, offset int) (int, bool)
}

// Field is an extra header field.
type Field struct{ Name, Value string }

// Input is one recipient's message before rendering.
type Input struct {
	Seq      int          // the recipient's place in the list
	To       mail.Address // ASCII address
	Subject  string       // merged, one line
	Markdown []byte       // merged body
	Headers  []Field      // merged extra fields
	Fields   map[string]string

	Preheader   string   // merged, one line: the preview text after the subject
	Unsubscribe string   // the recipient's one-click unsubscribe URL (https), or ""
	UnsubMailto string   // an address for mail-based unsubscribe, or ""
	Attachments []string // files attached to this message only: names in Options.Files
}

// Message is a rendered message and its envelope.
type Message struct {
	Seq  int    // the recipient's place in the list
	ID   string // Message-ID without angle brackets
	From string // envelope sender
	To   string // envelope recipient
	Data []byte // RFC 5322 message, CRLF line ends
	// buf is where Data's bytes go back to (Release), with the
	// renderer's pool they came from; nil for none.
	buf  *dataBuf
	pool *sync.Pool
}

// Release gives the message's bytes back to the renderer that wrote
// them, for a later message: its user calls it once nothing reads m.Data
// any more (written, or delivered for good), or never, as it likes. A
// message's bytes are most of what rendering it allocates, and so most of
// the garbage collector's work, which Release spares. m.Data is nil after
// it.
func (m *Message) Release() {
	if m.buf != nil && cap(m.buf.b) <= maxData {
		m.pool.Put(m.buf)
	}
	m.Data, m.buf, m.pool = nil, nil, nil
}

// dataBuf holds a message's bytes between messages (Renderer.data).
type dataBuf struct{ b []byte }

// maxData is the most a kept message buffer may hold: the bytes of a rare
// large message (a large attachment) are let go, not kept.
const maxData = 4 << 20

func (r *Renderer) getData(size int) *dataBuf {
	db, ok := r.data.Get().(*dataBuf)
	if !ok {
		db = &dataBuf{}
	}
	db.b = slices.Grow(db.b[:0], size)
	return db
}

// LayoutData is what a layout sees.
type LayoutData struct {
	Subject     string
	Body        template.HTML // the rendered Markdown
	Email       string
	Name        string
	Fields      map[string]string // the recipient's columns
	Preheader   string            // the preview text, "" for none
	Unsubscribe string            // the unsubscribe URL, "" for none
	Lang        string            // the campaign's language (BCP 47), "" for none
}

// Renderer renders a campaign's messages. It is safe for concurrent use.
type Renderer struct {
	opts   Options
	md     goldmark.Markdown
	layout *template.Template
	styles styles // the layout's CSS, by element, inlined into the body
	// layoutUnsubscribe: the layout may print {{unsubscribe}}.
	layoutUnsubscribe bool
	domain            string
	parts             *partCache
	shapes            shapes
	attachments       []*part
	attachmentsSize   int64   // the files of attachments, together
	fixed             []field // From, Reply-To: the same in every message
	date              string
	// wrote: a message has been rendered in full, so Check needn't
	// write one to find what fails for every message alike.
	wrote atomic.Bool
	// skip: whether the layout can't fail for one message and not the
	// next (fixedLayout), decided once a message has been written in
	// full (the layout run, escaped, without error); until then, and if
	// it can, Check runs the layout for every message.
	skipOnce sync.Once
	skip     layoutSkip
	// scratch holds *scratch: a message's working buffers, for the next.
	scratch sync.Pool
	// data holds *dataBuf: the bytes of messages released, for others.
	data sync.Pool
	// layoutRuns counts the layout's runs, Render's and Check's, for
	// the tests to see which Check skipped.
	layoutRuns atomic.Int64
}

// New checks and loads what every message shares: the layout and the
// attachments, each read and encoded once. Every problem is reported.
func New(opts Options) (*Renderer, error) {
	domain := opts.From.Address[strings.LastIndexByte(opts.From.Address, '@')+1:]
	r := &Renderer{
		opts:   opts,
		md:     newMarkdown(),
		domain: strings.ToLower(domain),
		date:   opts.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"),
	}
	var errs []error
	named := fileRules{limit: opts.FileLimit}
	for _, path := range opts.Files.Private {
		if st, err := os.Stat(path); err == nil {
			named.private = append(named.private, privateFile{path: path, info: st})
		}
	}
	r.parts = newPartCache(r.domain, fileRules{limit: opts.FileLimit}, named, newRecipientFiles(opts.Files.Dir))
	r.shapes.m = map[string]*shape{}
	layout, err := parseLayout(opts.LayoutName, opts.Layout)
	if err != nil {
		errs = append(errs, layoutError{err})
	}
	r.layout = layout
	if layout != nil {
		errs = append(errs, layoutURLs(layout)...)
	}
	r.styles = parseStyles(opts.Layout)
	r.layoutUnsubscribe = strings.Contains(opts.Layout, "unsubscribe")
	for _, path := range opts.Attachments {
		p, err := r.parts.get(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("attachment %w", err))
			continue
		}
		r.attachments = append(r.attachments, p)
		r.attachmentsSize += p.size
	}
	if opts.MessageLimit > 0 && r.attachmentsSize > opts.MessageLimit {
		errs = append(errs, &SizeError{Size: r.attachmentsSize, Limit: opts.MessageLimit})
	}
	if len(errs) > 0 {
		return nil, joinErrs(errs)
	}
	r.fixed = []field{{"From", address("From", opts.From)}}
	if opts.ReplyTo != nil {
		r.fixed = append(r.fixed, field{"Reply-To", address("Reply-To", *opts.ReplyTo)})
	}
	return r, nil
}

// parseLayout parses a layout, text, named name: a missing key is an
// error, and the layout has one function of its own, unsubscribe (which
// fixedLayout knows).
func parseLayout(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").
		Funcs(template.FuncMap{"unsubscribe": func() string { return merge.UnsubscribeMarker }}).
		Parse(text)
}

// Errors is a list of problems, one per line.
type Errors []error

func (e Errors) Error() string {
	var b strings.Builder
	for i, err := range e {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As every problem.
func (e Errors) Unwrap() []error { return e }

func joinErrs(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return Errors(errs)
}

// MessageID returns the Message-ID (without brackets) of a campaign's
// message to address: stable for the pair, on the sender's domain, so that
// a resend is recognisable and a dry run reproducible.
func MessageID(campaign, address, domain string) string {
	sum := sha256.Sum256([]byte(campaign + "\x00" + strings.ToLower(address)))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	return strings.ToLower(enc.EncodeToString(sum[:15])) + "@" + domain
}

// TestSendMessageID returns the Message-ID of a test send of a campaign's
// message to address, sent to test instead. It is never the message's own
// (MessageID): a receiver that drops a Message-ID it has seen (Gmail does,
// per mailbox) would otherwise drop the real message to a recipient who
// was the test address too. It is stable, so that a repeated test send is
// recognisable, and says "test" before its hash.
func TestSendMessageID(campaign, address, test, domain string) string {
	sum := sha256.Sum256([]byte(campaign + "\x00" + strings.ToLower(address) + "\x00test\x00" + strings.ToLower(test)))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	return "test-" + strings.ToLower(enc.EncodeToString(sum[:15])) + "@" + domain
}

// Render renders one message.
func (r *Renderer) Render(in *Input) (*Message, error) {
	s := r.getScratch()
	defer r.putScratch(s)
	doc, htmlBytes, attachments, err := r.body(in, true, s)
	if err != nil {
		return nil, err
	}
	text := doc.text
	// The text links {{unsubscribe}} itself: the footer needn't again.
	textUnsubscribe := bytes.Contains(text, []byte(merge.UnsubscribeMarker))
	if r.unsubscribes(in) {
		htmlBytes = replaceUnsubscribe(htmlBytes, in.Unsubscribe, true)
		text = replaceUnsubscribe(text, in.Unsubscribe, false)
	}
	if r.opts.TextFooter {
		text = append(text, "\n-- \nThis message was sent to "...)
		text = append(text, in.To.Address...)
		text = append(text, ".\n"...)
		if in.Unsubscribe != "" && !textUnsubscribe {
			text = append(text, "Unsubscribe: "...)
			text = append(text, in.Unsubscribe...)
			text = append(text, '\n')
		}
	}
	doc.text = text
	id := MessageID(r.opts.Campaign, in.To.Address, r.domain)
	if r.opts.TestTo != "" {
		id = TestSendMessageID(r.opts.Campaign, in.To.Address, r.opts.TestTo, r.domain)
	}
	fields := make([]field, 0, 8+len(in.Headers))
	fields = append(fields, r.fixed[0], field{"To", address("To", in.To)})
	fields = append(fields, r.fixed[1:]...)
	fields = append(fields,
		field{"Subject", unstructured("Subject", in.Subject)},
		field{"Date", r.date},
		field{"Message-ID", "<" + id + ">"},
		field{"MIME-Version", "1.0"},
	)
	if v := listUnsubscribe(in); v != "" {
		fields = append(fields, field{"List-Unsubscribe", v})
		if in.Unsubscribe != "" {
			// RFC 8058: one click, an HTTPS POST, no page to fill in.
			fields = append(fields, field{"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"})
		}
	}
	for _, h := range in.Headers {
		fields = append(fields, field{h.Name, unstructured(h.Name, h.Value)})
	}
	db := r.getData(2048 + qpSize(doc.text) + qpSize(htmlBytes) + partsSize(doc.images) + partsSize(attachments))
	data := writeFields(db.b, fields)
	data = r.writeBody(data, id, doc, htmlBytes, attachments)
	db.b = data
	if r.opts.DKIM != nil {
		signed := r.getData(len(data) + 1024)
		signed.b, err = r.opts.DKIM.sign(signed.b, data)
		r.data.Put(db)
		if err != nil {
			r.data.Put(signed)
			return nil, fmt.Errorf("DKIM: %w", err)
		}
		db = signed
	}
	r.wrote.Store(true)
	return &Message{Seq: in.Seq, ID: id, From: r.opts.From.Address, To: in.To.Address, Data: db.b, buf: db, pool: &r.data}, nil
}

// Check reports the problem Render would meet with in, if any, without
// writing the message, as a check of the list needs. What may differ from
// one message to the next is looked at for each, by Render's own first
// step (body): the body's shape, the layout run with the recipient's data,
// the unsubscribe URL, the files. What can fail only for every message
// alike (writing the header fields and the MIME body, the DKIM signature)
// is done in full until a message has been rendered, and not again: the
// bytes are the costly part of a message, and a check throws them away.
// So is the layout, when it can't fail for one recipient's data and not
// another's (fixedLayout: it prints only the data's strings, through
// functions that can't fail for them); else it runs for every message.
func (r *Renderer) Check(in *Input) error {
	if !r.wrote.Load() {
		_, err := r.Render(in)
		return err
	}
	r.skipOnce.Do(func() { r.skip = fixedLayout(r.layout) })
	s := r.getScratch()
	defer r.putScratch(s)
	_, _, _, err := r.body(in, false, s)
	return err
}

// scratch is the working buffers of one message: the Markdown with its
// values taken out, the body's HTML and text, the layout's output. They
// are kept for the next message (Renderer.scratch), so that a message's
// intermediate bytes cost it no allocation, nor the garbage collector the
// work of them: they were most of what a message allocated besides its
// own bytes.
type scratch struct {
	src, html, text []byte
	layout          bytes.Buffer
}

// maxScratch is the most a kept buffer may hold: one grown by a rare
// large message is let go rather than kept for every message after it.
const maxScratch = 1 << 20

func (r *Renderer) getScratch() *scratch {
	if s, ok := r.scratch.Get().(*scratch); ok {
		return s
	}
	return &scratch{}
}

// putScratch keeps s for another message, once nothing of the message
// refers to its buffers any more.
func (r *Renderer) putScratch(s *scratch) {
	if cap(s.src) > maxScratch || cap(s.html) > maxScratch || cap(s.text) > maxScratch || s.layout.Cap() > maxScratch {
		return
	}
	r.scratch.Put(s)
}

// body is what of in's message can fail for one recipient and not the
// next, Render's and Check's alike: the Markdown rendered, the layout run
// with the recipient's data, the unsubscribe URL there to print, and the
// message's attachments. In full, it returns the plain text (doc.text)
// and the layout's HTML, {{unsubscribe}} still in them; not in full, as a
// check needs, it writes neither, and runs the layout only if it may fail
// for in when it did not for the message Render wrote (r.skip, which
// Check decides before it calls body).
func (r *Renderer) body(in *Input, full bool, s *scratch) (doc *document, html []byte, attachments []*part, err error) {
	layout := full || !r.skip.ok || !r.skip.has(in.Fields)
	// A check that skips the layout reads nothing of the body's HTML.
	if doc, err = r.render(in, full, layout, s); err != nil {
		return nil, nil, nil, err
	}
	var w io.Writer = io.Discard
	buf := &s.layout
	buf.Reset()
	if full {
		// The layout may show the subject, the preheader and the
		// unsubscribe URL too: room for them, so that a message of large
		// values doesn't grow the buffer, copying it, again and again.
		buf.Grow(len(doc.html) + len(r.opts.Layout) + 256 + len(in.Subject) + len(in.Preheader) + len(in.Unsubscribe))
		w = buf
	}
	if layout {
		if err := r.executeLayout(w, in, doc); err != nil {
			return nil, nil, nil, err
		}
	}
	if r.unsubscribes(in) && in.Unsubscribe == "" {
		return nil, nil, nil, ErrNoUnsubscribe
	}
	if attachments, err = r.recipientParts(doc.images, in.Attachments); err != nil {
		return nil, nil, nil, err
	}
	return doc, buf.Bytes(), attachments, nil
}

// executeLayout runs the layout with in's data and doc's body into w.
func (r *Renderer) executeLayout(w io.Writer, in *Input, doc *document) error {
	r.layoutRuns.Add(1)
	err := r.layout.Execute(w, LayoutData{
		Subject:     in.Subject,
		Body:        template.HTML(doc.html),
		Email:       in.To.Address,
		Name:        in.To.Name,
		Fields:      in.Fields,
		Preheader:   in.Preheader,
		Unsubscribe: in.Unsubscribe,
		Lang:        r.opts.Lang,
	})
	if err != nil {
		return layoutError{err}
	}
	return nil
}

// layoutError is an error of the layout's template, said as batch says
// it: the layout's name and line first, without the package's
// "html/template:" or "template:" in front. It wraps the template's own
// error (*template.Error, text/template's ExecError).
type layoutError struct{ err error }

func (e layoutError) Error() string {
	msg := e.err.Error()
	for _, prefix := range []string{"html/template:", "template:"} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
	return msg
}

func (e layoutError) Unwrap() error { return e.err }

// unsubscribes reports whether in's message prints {{unsubscribe}}. The
// marker comes from the layout, known once, or from the body's Markdown,
// short: no need to search the whole message for it.
func (r *Renderer) unsubscribes(in *Input) bool {
	return r.layoutUnsubscribe || bytes.Contains(in.Markdown, []byte(merge.UnsubscribeMarker))
}

// ErrNoUnsubscribe is a message whose template or layout prints
// {{unsubscribe}} without an unsubscribe URL (Input.Unsubscribe) to print.
var ErrNoUnsubscribe = errors.New("{{unsubscribe}} is used, but the message has no unsubscribe URL")

// qpSize is a guess at the length of text in quoted-printable: the text
// and an eighth. Large messages are allocated zeroed, so a buffer three
// times the text was a tenth of the rendering time; a text of many
// encoded bytes (CJK) grows the buffer once instead.
func qpSize(text []byte) int { return len(text) + len(text)/8 }

func partsSize(parts []*part) int {
	n := 0
	for _, p := range parts {
		n += len(p.body) + 256
	}
	return n
}

// recipientParts returns a message's attachments: the campaign's, then
// the recipient's own files (names). The message's files together, images
// too, are held to the message limit by their sizes before the
// recipient's are read, and again once read, should one have grown.
func (r *Renderer) recipientParts(images []*part, names []string) ([]*part, error) {
	limit := r.opts.MessageLimit
	total := r.attachmentsSize
	for _, p := range images {
		total += p.size
	}
	if len(names) == 0 {
		if limit > 0 && total > limit {
			return nil, &SizeError{Size: total, Limit: limit}
		}
		return r.attachments, nil
	}
	fixed := total
	for _, name := range names {
		n, err := r.parts.size(name)
		if err != nil {
			return nil, fmt.Errorf("attachment %w", err)
		}
		total += n
	}
	if limit > 0 && total > limit {
		return nil, &SizeError{Size: total, Limit: limit}
	}
	attachments := append(make([]*part, 0, len(r.attachments)+len(names)), r.attachments...)
	total = fixed
	for _, name := range names {
		p, err := r.parts.getNamed(name)
		if err != nil {
			return nil, fmt.Errorf("attachment %w", err)
		}
		attachments = append(attachments, p)
		total += p.size
	}
	if limit > 0 && total > limit {
		return nil, &SizeError{Size: total, Limit: limit}
	}
	return attachments, nil
}

// unsubscribePct and unsubscribePCT are UnsubscribeMarker percent-encoded,
// as URL escapers write it: html/template in lower case, goldmark in upper.
const (
	unsubscribePct = "%ee%80%82"
	unsubscribePCT = "%EE%80%82"
)

// replaceUnsubscribe puts url where {{unsubscribe}} printed its marker:
// HTML-escaped in HTML, as it is in text.
func replaceUnsubscribe(b []byte, url string, inHTML bool) []byte {
	with := []byte(url)
	if inHTML {
		with = []byte(htmlpkg.EscapeString(url))
	}
	markers := []string{merge.UnsubscribeMarker}
	if inHTML {
		markers = append(markers, unsubscribePct, unsubscribePCT)
	}
	for _, m := range markers {
		// ReplaceAll copies b even when there is nothing to replace,
		// and b holds every value of the message.
		if bytes.Contains(b, []byte(m)) {
			b = bytes.ReplaceAll(b, []byte(m), with)
		}
	}
	return b
}

// listUnsubscribe is the List-Unsubscribe field (RFC 2369) of a message:
// the https URL first, then the mailto address.
func listUnsubscribe(in *Input) string {
	var parts []string
	if in.Unsubscribe != "" {
		parts = append(parts, "<"+in.Unsubscribe+">")
	}
	if in.UnsubMailto != "" {
		parts = append(parts, "<mailto:"+in.UnsubMailto+">")
	}
	return strings.Join(parts, ", ")
}
