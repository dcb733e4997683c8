package bounce

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// What a report part may hold: a per-message block of fields and one per
// recipient, so many bytes; a complaint, so many recipients (it is about one
// message to one, RFC 5965 §3.1).
const (
	maxBlocks         = 1000
	maxReportPart     = 1 << 20
	maxComplaintRcpts = 100
)

// readDSN reads a delivery-status part (RFC 3464 §2): a block of fields
// about the message, then one for each recipient.
func readDSN(status *part) Verdict {
	blocks, err := fieldBlocks(status.body)
	if err != nil {
		return leave("a delivery-status part batch can't read: %v", err)
	}
	var v Verdict
	failed := false
	for _, b := range blocks {
		if id := checkID(strings.Trim(strings.TrimSpace(b.Get("X-Original-Message-ID")), "<>")); id != "" && v.MessageID == "" {
			v.MessageID = id // Gmail's, in the per-message block
		}
		action := token(b.Get("Action"))
		code := statusCode(b.Get("Status"))
		var kind Kind
		switch {
		case action == "failed" && strings.HasPrefix(code, "5."):
			kind = Hard
		case action == "failed", action == "delayed":
			kind = Soft
		default:
			continue // delivered, relayed, expanded, or the per-message block
		}
		failed = true
		if kind == Hard {
			v.Kind = Hard
		} else if v.Kind == Leave {
			v.Kind = Soft
		}
		addr := fieldAddress(b.Get("Original-Recipient"), true)
		if addr == "" {
			addr = fieldAddress(b.Get("Final-Recipient"), true)
		}
		if addr == "" {
			continue // none batch sent to: the Message-ID may still tell
		}
		detail := b.Get("Diagnostic-Code")
		if kind, text, ok := strings.Cut(detail, ";"); ok && !strings.ContainsAny(kind, " <>") {
			detail = text // "smtp; 550 …": the reply without its type
		}
		v.Recipients = append(v.Recipients, Recipient{Address: addr, Kind: kind, Status: code, Detail: oneLine(detail, maxDetail)})
	}
	if !failed {
		return leave("a delivery report of no failure (delivered, relayed or expanded): nothing to do")
	}
	return v
}

// readARF reads a feedback-report part (RFC 5965 §3.1): one block of fields.
func readARF(feedback *part) Verdict {
	blocks, err := fieldBlocks(feedback.body)
	if err != nil || len(blocks) == 0 {
		return leave("a feedback-report part batch can't read: %v", err)
	}
	h := blocks[0]
	typ := token(h.Get("Feedback-Type"))
	if typ != "abuse" {
		if typ == "" {
			typ = "none"
		}
		return leave("a feedback report of type %s, not abuse: read it yourself", oneLine(typ, 60))
	}
	detail := "abuse report"
	if ua := h.Get("User-Agent"); ua != "" {
		detail += " by " + ua
	}
	detail = oneLine(detail, maxDetail)
	v := Verdict{Kind: Complaint}
	rcpts := h.Values("Original-Rcpt-To")
	if len(rcpts) > maxComplaintRcpts {
		return leave("a feedback report of %d recipients, more than %d: read it yourself", len(rcpts), maxComplaintRcpts)
	}
	for _, rcpt := range rcpts {
		addr := fieldAddress(rcpt, strings.Contains(rcpt, ";"))
		if addr != "" {
			v.Recipients = append(v.Recipients, Recipient{Address: addr, Kind: Complaint, Detail: detail})
		}
	}
	return v
}

// fieldBlocks reads blocks of header fields separated by blank lines.
func fieldBlocks(body []byte) ([]textproto.Header, error) {
	if len(body) > maxReportPart {
		return nil, fmt.Errorf("larger than %d bytes", maxReportPart)
	}
	br := bufio.NewReader(bytes.NewReader(body))
	var blocks []textproto.Header
	for len(blocks) < maxBlocks {
		for {
			b, err := br.Peek(1)
			if err != nil {
				return blocks, nil
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			br.ReadByte()
		}
		h, err := textproto.ReadHeader(br)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		if h.Len() > 0 {
			blocks = append(blocks, h)
		}
		if err != nil {
			return blocks, nil
		}
	}
	return nil, fmt.Errorf("more than %d blocks of fields", maxBlocks)
}

// token returns the first word of a field's value, lower case: "failed"
// of "failed (permanent)".
func token(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t;("); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(v)
}

// statusCode returns a Status field's code (RFC 3463: class.subject.detail,
// class 2, 4 or 5, each of the others 1 to 3 digits), or "".
func statusCode(v string) string {
	v = token(v)
	parts := strings.Split(v, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || strings.IndexByte("245", parts[0][0]) < 0 {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return ""
		}
	}
	return v
}

// automatic says whether a message that is no report was sent by a
// program, and by what it tells.
func automatic(h mail.Header) (string, bool) {
	if v := token(h.Get("Auto-Submitted")); v != "" && v != "no" {
		return fmt.Sprintf("an automatic message (Auto-Submitted: %s, RFC 3834)", oneLine(v, 40)), true
	}
	for _, k := range []string{"X-Autoreply", "X-Autorespond", "X-Autoresponder"} {
		if v := token(h.Get(k)); v != "" && v != "no" {
			return "an auto-reply (" + k + ")", true
		}
	}
	switch v := token(h.Get("Precedence")); v {
	case "auto_reply", "bulk", "junk", "list":
		return "an automatic message (Precedence: " + v + ")", true
	}
	if strings.TrimSpace(h.Get("Return-Path")) == "<>" {
		return "an automatic message (sent with an empty return path)", true
	}
	subject, _ := h.Subject()
	s := strings.ToLower(strings.TrimSpace(subject))
	for _, p := range vacation {
		if strings.HasPrefix(s, p) {
			return "an auto-reply (its subject begins " + p + ")", true
		}
	}
	return "", false
}

// vacation are how the subjects of vacation notices begin, lower case:
// Outlook's, Gmail's, Apple Mail's and the vacation programs'.
var vacation = []string{
	"auto:", "autoreply", "auto-reply", "auto reply", "automatic reply", "auto response", "autoresponse",
	"out of office", "out of the office", "ooo:", "away from", "on vacation", "vacation", "abwesenheit", "réponse automatique",
}

// addressedTo reports whether the message was sent to addr.
func addressedTo(h mail.Header, addr string) bool {
	want := merge.AddressKey(addr)
	for _, k := range []string{"To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"} {
		list, err := h.AddressList(k)
		if err != nil {
			continue
		}
		for _, a := range list {
			if merge.AddressKey(a.Address) == want {
				return true
			}
		}
	}
	return false
}

// unsubscribe reads a mail to the unsubscribe mailbox: its sender asks.
func unsubscribe(h mail.Header, mailbox string) Verdict {
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 {
		return leave("a mail to %s without one sender in From: read it yourself", mailbox)
	}
	addr := from[0].Address
	if merge.CheckAddress(addr) != nil {
		return leave("a mail to %s from an address batch can't send to: read it yourself", mailbox)
	}
	if merge.AddressKey(addr) == merge.AddressKey(mailbox) {
		return leave("a mail to %s from itself", mailbox)
	}
	return Verdict{Kind: Unsubscribe, MessageID: repliedTo(h),
		Recipients: []Recipient{{Address: addr, Kind: Unsubscribe, Detail: "a mail to " + mailbox}}}
}

// daemon reports whether a message comes from a mail system: a bounce.
func daemon(h mail.Header) bool {
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 {
		return false
	}
	local, _, _ := strings.Cut(strings.ToLower(from[0].Address), "@")
	return local == "mailer-daemon" || local == "postmaster"
}
