// Package bounce classifies one message read from a bounce mailbox: what it
// says happened to which of batch's recipients, so that the caller can
// suppress an address (see package suppress) or leave the message to a
// person.
//
// It reads three kinds of report, by their standard formats only:
//
//   - delivery status notifications (RFC 3464, multipart/report with
//     report-type=delivery-status, and RFC 6533's global-delivery-status),
//     as Postfix, Exim, Gmail and Microsoft 365 send them: a recipient whose
//     Action is failed with a 5.x.x Status (RFC 3463) is a [Hard] bounce;
//     failed with 4.x.x, or delayed, is [Soft];
//   - complaints (RFC 5965 Abuse Reporting Format, report-type=
//     feedback-report) of Feedback-Type abuse, as feedback loops such as
//     Microsoft's JMRP send them: [Complaint];
//   - a mail to the unsubscribe mailbox (the campaign's List-Unsubscribe
//     mailto, RFC 2369), whatever its subject: [Unsubscribe] of its From.
//     From is not authenticated here: anyone can unsubscribe an address
//     this way, as anyone can follow its unsubscribe link.
//
// Anything else is [Leave], with a reason: an auto-reply (RFC 3834
// Auto-Submitted other than no, X-Autoreply, Precedence: auto_reply, a
// vacation subject), a read receipt, a bounce in free text, a message it
// can't parse, larger than Options.MaxSize or nested deeper than
// Options.MaxDepth. An address comes only from a recipient field of the
// report (Final-Recipient, Original-Recipient, Original-Rcpt-To) or, for an
// unsubscribe, from From: never from free text, and never from the returned
// message's To, which a report's sender may have rewritten.
//
// The report's subject, the message batch sent, is told by its Message-ID
// ([Verdict.MessageID]): from the returned message or its headers
// (message/rfc822, text/rfc822-headers), Gmail's X-Original-Message-ID, or
// the report's In-Reply-To and References. batch's Message-IDs are stable
// per campaign and recipient (render.MessageID), so the caller matches a
// verdict to a campaign's recipient by comparing it with
// render.MessageID(campaign, address, domain) for the recipient's address,
// or for every row of the list when the report names no address that is in
// it (a complaint with its recipient redacted, a bounce from where the mail
// was forwarded to).
package bounce

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// Kind is what a message says happened.
type Kind uint8

// The kinds of message.
const (
	Leave       Kind = iota // nothing batch acts on: Verdict.Reason says why
	Hard                    // the recipient's mailbox refused for good (5.x.x)
	Soft                    // a temporary failure or a delay (4.x.x)
	Complaint               // the recipient reported the message as spam
	Unsubscribe             // the sender asked to be unsubscribed
)

func (k Kind) String() string {
	switch k {
	case Hard:
		return "hard bounce"
	case Soft:
		return "soft bounce"
	case Complaint:
		return "complaint"
	case Unsubscribe:
		return "unsubscribe"
	}
	return "leave alone"
}

// Verdict is what one message says.
type Verdict struct {
	// Kind is the message's: for a delivery report, Hard when any
	// recipient bounced hard, else Soft.
	Kind Kind
	// Recipients are the addresses the report names, each with what
	// happened to it; for a complaint, the Original-Rcpt-To addresses,
	// which a feedback loop may leave out (then match by MessageID); for
	// an unsubscribe, its sender. Empty for Leave. A verdict other than
	// Leave has recipients, a MessageID, or both.
	Recipients []Recipient
	// MessageID is the Message-ID of the message the report is about,
	// without angle brackets; "" when it gives none.
	MessageID string
	// Reason says why the message is left alone, on one line of at most
	// maxReason bytes (it may quote the message); "" otherwise.
	Reason string
}

// Recipient is one address a report names.
type Recipient struct {
	// Address is the one batch sent to as the report gives it: the
	// Original-Recipient of a DSN when there is one (the address of the
	// RCPT TO, before forwarding), else its Final-Recipient; a
	// complaint's Original-Rcpt-To; an unsubscribe's From. Always a
	// plain address that merge.CheckAddress accepts.
	Address string
	Kind    Kind   // Hard or Soft, Complaint, Unsubscribe
	Status  string // a DSN's status code (5.1.1); "" for the others
	// Detail is what the report says, one line of at most 300 bytes:
	// a DSN's Diagnostic-Code (the server's reply), a complaint's
	// feedback type and reporter. It comes from the report's sender and
	// is text, never to be run or followed.
	Detail string
}

// Options bound what Classify reads and name the unsubscribe mailbox.
type Options struct {
	// Unsubscribe is the unsubscribe mailbox (the campaign's [unsubscribe]
	// mailto): a mail addressed to it is an unsubscribe. "" for none.
	Unsubscribe string
	// MaxSize is the largest message read, in bytes; 0 for 10 MiB. A
	// larger one is left alone, read no further than the limit.
	MaxSize int64
	// MaxDepth is how deep multiparts may nest; 0 for 8.
	MaxDepth int
}

// The defaults of Options.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxDepth = 8
	maxParts        = 200 // MIME parts read in all
	maxDetail       = 300
	maxReason       = 500 // Verdict.Reason: a parser's error may quote a whole line of the message
)

// Classify reads one message from r and says what it is. Its error is
// only r's: a message it can't read is a Verdict of Leave that says why.
func Classify(r io.Reader, o Options) (Verdict, error) {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	data, err := io.ReadAll(io.LimitReader(r, o.MaxSize+1))
	if err != nil {
		return Verdict{}, fmt.Errorf("reading the message: %w", err)
	}
	if int64(len(data)) > o.MaxSize {
		return leave("larger than %d bytes: read it yourself", o.MaxSize), nil
	}
	return classify(data, o), nil
}

func leave(format string, args ...any) Verdict {
	return Verdict{Kind: Leave, Reason: oneLine(fmt.Sprintf(format, args...), maxReason)}
}

func classify(data []byte, o Options) Verdict {
	e, err := message.Read(bytes.NewReader(data))
	if e == nil {
		return leave("not a message batch can read: %v", err)
	}
	top, err := readTree(e, o.MaxDepth)
	if err != nil {
		return leave("%v", err)
	}
	h := mail.Header{Header: top.header}
	if report := top.find("multipart/report"); report != nil {
		v := readReport(report)
		if v.MessageID == "" {
			v.MessageID = repliedTo(h)
		}
		if v.Kind != Leave && len(v.Recipients) == 0 && v.MessageID == "" {
			return leave("a %s that names neither a recipient batch could have sent to nor the message: read it yourself", v.Kind)
		}
		return v
	}
	if daemon(h) {
		return leave("a bounce without a delivery-status part: batch reads no address from its text; read it yourself")
	}
	if why, ok := automatic(h); ok {
		return leave("%s", why)
	}
	if o.Unsubscribe != "" && addressedTo(h, o.Unsubscribe) {
		return unsubscribe(h, o.Unsubscribe)
	}
	return leave("not a delivery report, a complaint or an unsubscribe")
}

// part is a MIME part, read: a leaf has its decoded body.
type part struct {
	typ    string // media type, lower case
	params map[string]string
	header message.Header
	body   []byte
	parts  []*part
}

// readTree reads the whole of e, at most depth multiparts deep and
// maxParts parts in all.
func readTree(e *message.Entity, depth int) (*part, error) {
	n := 0
	return readPart(e, depth, &n)
}

func readPart(e *message.Entity, depth int, n *int) (*part, error) {
	*n++
	if *n > maxParts {
		return nil, fmt.Errorf("more than %d MIME parts: read it yourself", maxParts)
	}
	typ, params, err := e.Header.ContentType()
	if err != nil {
		typ = "text/plain" // RFC 2045's default, for a broken field
	}
	p := &part{typ: strings.ToLower(typ), params: params, header: e.Header}
	if mr := e.MultipartReader(); mr != nil {
		if depth == 0 {
			return nil, errors.New("multiparts nested too deep: read it yourself")
		}
		for {
			child, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if child == nil {
				if len(p.parts) > 0 {
					break // a message cut short: its parts so far
				}
				return nil, fmt.Errorf("a broken MIME part: %v", err)
			}
			c, err := readPart(child, depth-1, n)
			if err != nil {
				return nil, err
			}
			p.parts = append(p.parts, c)
		}
		return p, nil
	}
	// An unknown charset or transfer encoding leaves the body as it is; a
	// message cut short (a truncated bounce) keeps what it has.
	p.body, err = io.ReadAll(e.Body)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("a part that can't be decoded: %v", err)
	}
	return p, nil
}

// find returns the first part of media type typ, in document order.
func (p *part) find(typ string) *part {
	if p.typ == typ {
		return p
	}
	for _, c := range p.parts {
		if f := c.find(typ); f != nil {
			return f
		}
	}
	return nil
}

// child returns p's first direct part of one of the types.
func (p *part) child(types ...string) *part {
	for _, c := range p.parts {
		for _, t := range types {
			if c.typ == t {
				return c
			}
		}
	}
	return nil
}

// readReport reads a multipart/report by the part that says what it
// reports.
func readReport(report *part) Verdict {
	var v Verdict
	if status := report.child("message/delivery-status", "message/global-delivery-status"); status != nil {
		v = readDSN(status)
	} else if feedback := report.child("message/feedback-report"); feedback != nil {
		v = readARF(feedback)
	} else {
		kind := report.params["report-type"]
		if kind == "" {
			kind = "unknown"
		}
		return leave("a report of type %s (not a delivery or feedback report): read it yourself", oneLine(kind, 60))
	}
	// The returned message's own Message-ID first; then what the report
	// says of it.
	if orig := report.child("message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global", "message/global-headers"); orig != nil {
		if id := originalID(orig.body); id != "" {
			v.MessageID = id
		}
	}
	return v
}

// originalID returns the Message-ID of the returned message or headers.
func originalID(body []byte) string {
	e, _ := message.Read(bytes.NewReader(body))
	if e == nil {
		return ""
	}
	h := mail.Header{Header: e.Header}
	id, _ := h.MessageID()
	return checkID(id)
}

// repliedTo returns the Message-ID a message says it answers: its
// In-Reply-To, else the last of its References.
func repliedTo(h mail.Header) string {
	if ids, _ := h.MsgIDList("In-Reply-To"); len(ids) > 0 {
		return checkID(ids[0])
	}
	if ids, _ := h.MsgIDList("References"); len(ids) > 0 {
		return checkID(ids[len(ids)-1])
	}
	return ""
}

// checkID returns id when it is a plausible Message-ID: visible ASCII,
// with an @, at most 250 bytes.
func checkID(id string) string {
	if id == "" || len(id) > 250 || !strings.Contains(id, "@") {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' || id[i] == '<' || id[i] == '>' {
			return ""
		}
	}
	return id
}

// fieldAddress returns the address of a DSN or ARF recipient field,
// "rfc822; ada@example.org" (typed is true) or "<ada@example.org>", when
// it is one batch could have sent to.
func fieldAddress(v string, typed bool) string {
	v = strings.TrimSpace(v)
	if typed {
		kind, addr, ok := strings.Cut(v, ";")
		if !ok || !strings.EqualFold(strings.TrimSpace(kind), "rfc822") {
			return ""
		}
		v = strings.TrimSpace(addr)
	}
	if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") {
		v = strings.TrimSpace(v[1 : len(v)-1])
	}
	if merge.CheckAddress(v) != nil {
		return ""
	}
	return v
}

// oneLine makes s one line ([merge.OneLine]: control characters and runs
// of space become one space, bytes that are not UTF-8 a replacement
// character) of at most max bytes, cut at a character.
func oneLine(s string, max int) string {
	s = merge.OneLine(s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut]
}
