package bounce

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// FuzzClassify reads any message as a bounce, without a panic, and holds
// every address of a verdict to the report: each must be named in a
// recipient field of a delivery-status or feedback-report part
// (Final-Recipient, Original-Recipient, Original-Rcpt-To), or, for an
// unsubscribe, be the From of a mail to the unsubscribe mailbox. The
// fields are found in the raw text and by go-message's own walk of the
// parts, not batch's tree.
//
//	go test -fuzz=FuzzClassify -fuzztime=30s ./internal/bounce/
func FuzzClassify(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Classify(bytes.NewReader(data), Options{Unsubscribe: unsubMailbox, MaxSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if v.Kind == Leave && (len(v.Recipients) > 0 || v.Reason == "") {
			t.Fatalf("left alone with recipients or no reason: %+v", v)
		}
		if v.Kind != Leave && (v.Reason != "" || len(v.Recipients) == 0 && v.MessageID == "") {
			t.Fatalf("a %s with a reason, or neither recipients nor a Message-ID: %+v", v.Kind, v)
		}
		if len(v.Recipients) == 0 {
			return
		}
		fields := recipientFields(data)
		for _, r := range v.Recipients {
			if r.Kind == Leave || r.Address == "" {
				t.Fatalf("a recipient without a kind or an address: %+v", r)
			}
			if strings.ContainsAny(r.Detail, "\r\n") {
				t.Fatalf("detail of more than a line: %q", r.Detail)
			}
			if r.Kind == Unsubscribe {
				if v.Kind != Unsubscribe || !fromOf(data, r.Address) {
					t.Fatalf("unsubscribe of %s, not the From of a mail: %+v", r.Address, v)
				}
				continue
			}
			if !named(fields, r.Address) {
				t.Fatalf("%s is in no recipient field of the report: %+v\nfields: %q", r.Address, v, fields)
			}
		}
	})
}

// recipientFields returns, unfolded, the lines that name a recipient: of
// the message as it is, and of the delivery-status and feedback-report
// parts as go-message's walk decodes them (base64, quoted-printable), as
// far as it goes.
func recipientFields(data []byte) []string {
	lines := fieldLines(string(data))
	e, _ := message.Read(bytes.NewReader(data))
	if e == nil {
		return lines
	}
	e.Walk(func(_ []int, part *message.Entity, err error) error {
		if part == nil {
			return nil
		}
		typ, _, _ := part.Header.ContentType()
		typ = strings.ToLower(typ)
		if !strings.HasSuffix(typ, "delivery-status") && !strings.HasSuffix(typ, "feedback-report") {
			return nil
		}
		body, _ := io.ReadAll(part.Body)
		lines = append(lines, fieldLines(string(body))...)
		return nil
	})
	return lines
}

func fieldLines(text string) []string {
	var lines []string
	unfolded := strings.NewReplacer("\r\n ", " ", "\r\n\t", " ", "\n ", " ", "\n\t", " ").Replace(text)
	for _, line := range strings.Split(unfolded, "\n") {
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "final-recipient", "original-recipient", "original-rcpt-to":
			lines = append(lines, line)
		}
	}
	return lines
}

func named(fields []string, addr string) bool {
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), strings.ToLower(addr)) {
			return true
		}
	}
	return false
}

// fromOf reports whether addr is in the From of a message to the
// unsubscribe mailbox.
func fromOf(data []byte, addr string) bool {
	e, _ := message.Read(bytes.NewReader(data))
	if e == nil {
		return false
	}
	h := mail.Header{Header: e.Header}
	from, _ := h.AddressList("From")
	return len(from) == 1 && from[0].Address == addr
}
