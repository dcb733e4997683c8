package render

import (
	"encoding/base64"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/batch-mailer/batch/internal/merge"
)

// Header fields are written here, not by jordan-wright/email, which neither
// folds nor encodes them correctly (ARCHITECTURE.md says why it is not used). Every value written is
// printable ASCII: display names and unstructured text that need it become
// RFC 2047 "B" encoded-words of at most 75 characters, parameters become
// RFC 2231 extended values with continuations, and lines are folded at white
// space to 78 octets where the content allows (never over 998).

const (
	lineSoft = 78  // RFC 5322 §2.1.1: SHOULD
	lineHard = 998 // MUST
	wordMax  = 75  // RFC 2047 §2: an encoded-word is at most 75 characters
)

// field is one header field, its value already encoded (ASCII, unfolded).
type field struct{ name, value string }

// writeFields appends the fields, folded, each ending in CRLF.
func writeFields(dst []byte, fields []field) []byte {
	for _, f := range fields {
		dst = fold(dst, f.name, f.value)
	}
	return dst
}

// fold appends "name: value" CRLF, breaking lines before a space so that
// each line is at most 78 octets where a break is possible.
func fold(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':')
	col := len(name) + 1
	first := true
	for len(value) > 0 {
		// The next word with the space before it.
		sp := 0
		for sp < len(value) && value[sp] == ' ' {
			sp++
		}
		end := sp + strings.IndexByte(value[sp:], ' ')
		if end < sp {
			end = len(value)
		}
		word := value[sp:end]
		value = value[end:]
		if first {
			dst = append(dst, ' ')
			col++
			first = false
		} else if col+1+len(word) > lineSoft {
			dst = append(dst, "\r\n"...)
			col = 0
			dst = append(dst, ' ')
			col++
		} else {
			dst = append(dst, ' ')
			col++
		}
		dst = append(dst, word...)
		col += len(word)
	}
	return append(dst, "\r\n"...)
}

// needsWords reports whether s must be written as encoded-words: it is not
// printable ASCII, holds something a decoder would take for an encoded-word,
// or has a word too long to fold.
func needsWords(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' {
			return true
		}
		if c == ' ' {
			run = 0
			continue
		}
		if run++; run > lineSoft-10 {
			return true
		}
	}
	return strings.Contains(s, "=?")
}

// encodeWords returns s as RFC 2047 B encoded-words (UTF-8), split between
// whole characters and separated by spaces: the first at most first
// characters long (what is left of its line), the others at most 75.
func encodeWords(s string, first int) string {
	const prefix, suffix = "=?utf-8?b?", "?="
	var b strings.Builder
	for len(s) > 0 {
		room := wordMax
		if b.Len() == 0 {
			room = max(min(first, wordMax), len(prefix)+len(suffix)+8)
		}
		maxRaw := (room - len(prefix) - len(suffix)) / 4 * 3
		n := 0
		for n < len(s) {
			_, size := utf8.DecodeRuneInString(s[n:])
			if n+size > maxRaw {
				break
			}
			n += size
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(prefix)
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s[:n])))
		b.WriteString(suffix)
		s = s[n:]
	}
	return b.String()
}

// unstructured encodes the value of the unstructured field name, such as
// Subject, on one line whatever it holds.
func unstructured(name, s string) string {
	s = merge.OneLine(s)
	if needsWords(s) {
		return encodeWords(s, lineSoft-len(name)-2)
	}
	return s
}

// address formats a mailbox for the field name: the display name, on one
// line, quoted or encoded as needed, then the address in angle brackets.
// The address must be ASCII.
func address(name string, a mail.Address) string {
	a.Name = merge.OneLine(a.Name)
	if a.Name == "" {
		return "<" + a.Address + ">"
	}
	if needsWords(a.Name) {
		// One encoded-word for the whole name, even past the 75
		// characters of RFC 2047 §2 and onto a line longer than 78:
		// Python's email package (and clients built on it) puts a space
		// between adjacent encoded-words in a display name, where RFC 2047
		// says to drop the white space, so a name split in two never
		// decodes right everywhere. Past the 998-octet line limit there is
		// no choice left and the name is split.
		word := "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(a.Name)) + "?="
		if len(name)+2+len(word) > lineHard {
			word = encodeWords(a.Name, lineSoft-len(name)-2)
		}
		return word + " <" + a.Address + ">"
	}
	// net/mail quotes a name with specials and escapes quotes and
	// backslashes; for a printable ASCII name that is all that's needed.
	return a.String()
}

// param formats one MIME parameter: a quoted-string when the value is short
// printable ASCII, otherwise an RFC 2231 extended value, in UTF-8 and
// percent-encoded, split into numbered continuations that fit on a line.
// The result starts with "; " so that fold can break before each part.
func param(name, value string) string {
	plain := len(value) <= 60
	for i := 0; i < len(value) && plain; i++ {
		plain = value[i] >= ' ' && value[i] <= '~'
	}
	if plain {
		return "; " + name + `="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(value) + `"`
	}
	s := percentEncode(value)
	if len(s)+len(name)+len("*=utf-8''") <= paramRoom {
		return "; " + name + "*=utf-8''" + s
	}
	return continuations(name, s)
}

// paramRoom is the most octets a parameter, or one of its continuations,
// takes on a line.
const paramRoom = 60

// percentEncode is value as an RFC 2231 extended value: its bytes, those
// that are not attribute characters as %XX.
func percentEncode(value string) string {
	var enc strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			enc.WriteByte(c)
		} else {
			fmt.Fprintf(&enc, "%%%02X", c)
		}
	}
	return enc.String()
}

// continuations splits the extended value s of parameter name into
// numbered continuations (name*0*, name*1*, …) of paramRoom octets
// at most, never inside a %XX triplet.
func continuations(name, s string) string {
	var b strings.Builder
	for i := 0; len(s) > 0; i++ {
		n := min(len(s), paramRoom-len(name))
		if j := strings.LastIndexByte(s[:n], '%'); j >= 0 && j > n-3 && n < len(s) {
			n = j
		}
		head := fmt.Sprintf("%s*%d*=", name, i)
		if i == 0 {
			head += "utf-8''"
		}
		b.WriteString("; " + head + s[:n])
		s = s[n:]
	}
	return b.String()
}

// FieldNameError is the name of an extra header field (Input.Headers)
// that a message can't have.
type FieldNameError struct {
	Name   string
	Reason FieldReason
}

// FieldReason is why a message can't have an extra header field.
type FieldReason int

const (
	// FieldSyntax is a name that is not 1 to 76 printable ASCII
	// characters without spaces or ':'.
	FieldSyntax FieldReason = iota
	// FieldRecipients is a field that would add recipients (To, Cc, Bcc,
	// Resent-*): a message goes to its Input.To only.
	FieldRecipients
	// FieldUnsubscribe is List-Unsubscribe or List-Unsubscribe-Post,
	// written from Input.Unsubscribe and Input.UnsubMailto.
	FieldUnsubscribe
	// FieldAddressed is From, Reply-To or Subject, written from Options
	// and Input.Subject.
	FieldAddressed
	// FieldWritten is a field render writes itself (Date, Message-ID,
	// MIME-Version, Content-*, DKIM-Signature…) or that a server adds
	// (Received, Return-Path).
	FieldWritten
)

func (e *FieldNameError) Error() string {
	switch e.Reason {
	case FieldSyntax:
		if e.Name == "" || len(e.Name) > maxFieldName {
			return fmt.Sprintf("a header field name must be 1 to %d characters", maxFieldName)
		}
		return fmt.Sprintf("header field name %q: only printable ASCII without spaces or ':' is allowed", e.Name)
	case FieldRecipients:
		return fmt.Sprintf("header field %s would add recipients: batch sends each message to its row's address only", e.Name)
	case FieldUnsubscribe:
		return fmt.Sprintf("header field %s is written from the message's unsubscribe URL and address", e.Name)
	case FieldAddressed:
		return fmt.Sprintf("header field %s is written from the message's own %s", e.Name, strings.ToLower(e.Name))
	}
	return fmt.Sprintf("header field %s is written by batch and can't be set", e.Name)
}

// maxFieldName is the longest name of a field whose "name: " leaves room
// on a 78-octet line.
const maxFieldName = 76

// reservedFields are the fields, by lower-case name, that a message has
// of its own; every Resent- and Content- field too (reservedPrefixes).
var (
	reservedFields = map[string]FieldReason{
		"to": FieldRecipients, "cc": FieldRecipients, "bcc": FieldRecipients,
		"list-unsubscribe": FieldUnsubscribe, "list-unsubscribe-post": FieldUnsubscribe,
		"from": FieldAddressed, "reply-to": FieldAddressed, "subject": FieldAddressed,
		"date": FieldWritten, "message-id": FieldWritten, "mime-version": FieldWritten, "sender": FieldWritten,
		"return-path": FieldWritten, "received": FieldWritten, "dkim-signature": FieldWritten,
	}
	reservedPrefixes = map[string]FieldReason{"resent-": FieldRecipients, "content-": FieldWritten}
)

// CheckFieldName checks the name of an extra header field: RFC 5322 ftext,
// and none that batch writes itself or that would add a recipient. The
// error is a *FieldNameError.
func CheckFieldName(name string) error {
	if name == "" || len(name) > maxFieldName || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' || r == ':' }) {
		return &FieldNameError{Name: name, Reason: FieldSyntax}
	}
	lower := strings.ToLower(name)
	if reason, ok := reservedFields[lower]; ok {
		return &FieldNameError{Name: name, Reason: reason}
	}
	for prefix, reason := range reservedPrefixes {
		if strings.HasPrefix(lower, prefix) {
			return &FieldNameError{Name: name, Reason: reason}
		}
	}
	return nil
}
