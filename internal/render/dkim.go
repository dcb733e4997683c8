package render

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/mail"
	"slices"
	"strconv"
	"strings"
)

// DKIM signs messages (RFC 6376): relaxed/relaxed canonicalization, SHA-256,
// with an RSA key (rsa-sha256) or an Ed25519 key (ed25519-sha256, RFC 8463).
//
// The signature is written here rather than by emersion/go-msgauth's Signer,
// which stamps t= with the clock (a dry run would no longer be reproducible)
// and writes h= on one line however long. Here t= is the message's Date, the
// field folds at 78 octets like every other field batch writes, and v= comes
// first. go-msgauth and Python's dkimpy verify the result in the tests.
type DKIM struct {
	Domain   string        // d=
	Selector string        // s=
	Signer   crypto.Signer // an RSA (2048 bits or more) or Ed25519 private key
}

// signedFields are the fields every signature names once more than the
// message has them (RFC 6376 §5.4.2, "oversigning"): with the names of the
// fields present, this keeps anyone on the way from adding one of these,
// such as a second Subject or a List-Unsubscribe the message didn't have,
// without breaking the signature.
var signedFields = []string{
	"From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
	"MIME-Version", "Content-Type", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// algorithm returns the a= of the key.
func (d *DKIM) algorithm() (string, error) {
	if d.Signer == nil {
		return "", errors.New("no signing key")
	}
	switch pub := d.Signer.Public().(type) {
	case *rsa.PublicKey:
		return "rsa-sha256", nil
	case ed25519.PublicKey:
		return "ed25519-sha256", nil
	default:
		return "", fmt.Errorf("a %T key can't sign: DKIM keys are RSA or Ed25519", pub)
	}
}

// sign returns data with a DKIM-Signature field in front.
func (d *DKIM) sign(dst, data []byte) ([]byte, error) {
	algo, err := d.algorithm()
	if err != nil {
		return nil, err
	}
	if d.Domain == "" || d.Selector == "" {
		return nil, errors.New("no domain or selector")
	}
	head, body := data, []byte(nil)
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		head, body = data[:i+2], data[i+4:]
	}
	fields := splitFields(head)

	h := sha256.New()
	relaxedBody(h, body)
	bh := base64.StdEncoding.EncodeToString(h.Sum(nil))

	names, date := signedNames(fields)

	w := &sigWriter{}
	w.b = append(w.b, "DKIM-Signature:"...)
	w.col = len(w.b)
	w.word(" ", "v=1;", 0)
	w.word(" ", "a="+algo+";", 0)
	w.word(" ", "c=relaxed/relaxed;", 0)
	w.word(" ", "d="+d.Domain+";", 0)
	w.word(" ", "s="+d.Selector+";", 0)
	if t, err := mail.ParseDate(strings.TrimSpace(date)); err == nil && t.Unix() >= 0 {
		// The Date, not the clock: a dry run stays reproducible.
		w.word(" ", "t="+strconv.FormatInt(t.Unix(), 10)+";", 0)
	}
	w.word(" ", "bh="+bh+";", 0)
	for i, name := range names {
		switch {
		case i == 0:
			w.word(" ", "h="+name+":", 0)
		case i == len(names)-1:
			w.word("", name+";", 0) // a fold before a name is FWS after ':'
		default:
			w.word("", name+":", 0)
		}
	}
	w.word(" ", "b=", 8) // with the start of the value on its line

	h.Reset()
	hashFields(h, fields, names, w.b)
	digest := h.Sum(nil)

	var sig []byte
	if algo == "ed25519-sha256" {
		// RFC 8463 §3: PureEdDSA over the SHA-256 hash.
		sig, err = d.Signer.Sign(rand.Reader, digest, crypto.Hash(0))
	} else {
		sig, err = d.Signer.Sign(rand.Reader, digest, crypto.SHA256)
	}
	if err != nil {
		return nil, err
	}
	w.base64(base64.StdEncoding.EncodeToString(sig))
	w.b = append(w.b, "\r\n"...)

	dst = slices.Grow(dst, len(w.b)+len(data))
	dst = append(dst, w.b...)
	return append(dst, data...), nil
}

// signedNames are the names of the fields h= lists: every field of the
// message but a DKIM-Signature, in order, then signedFields once more
// (oversigning). date is the Date field's value.
func signedNames(fields [][]byte) (names []string, date string) {
	names = make([]string, 0, len(fields)+len(signedFields))
	for _, f := range fields {
		name := fieldName(f)
		if strings.EqualFold(name, "DKIM-Signature") {
			continue
		}
		if strings.EqualFold(name, "Date") {
			date = string(f[bytes.IndexByte(f, ':')+1:])
		}
		names = append(names, name)
	}
	return append(names, signedFields...), date
}

// hashFields writes to h what RFC 6376 §3.7 signs of the header: the fields
// named by h=, each the last of its name not yet taken (a name without one
// left adds nothing), then the signature field sig itself, b= empty, without
// its final CRLF; all in the relaxed form.
func hashFields(h hash.Hash, fields [][]byte, names []string, sig []byte) {
	var buf []byte
	taken := map[string]int{}
	for _, name := range names {
		lower := strings.ToLower(name)
		n := taken[lower]
		taken[lower]++
		seen := 0
		for i := len(fields) - 1; i >= 0; i-- {
			if !strings.EqualFold(fieldName(fields[i]), name) {
				continue
			}
			if seen == n {
				buf = relaxedHeader(buf[:0], fields[i])
				h.Write(buf)
				break
			}
			seen++
		}
	}
	buf = relaxedHeader(buf[:0], sig)
	h.Write(buf[:len(buf)-2])
}

// sigWriter writes the DKIM-Signature field, folding it at 78 octets.
type sigWriter struct {
	b   []byte
	col int
}

// word appends sep and s, or a fold and s when the line, with follow more
// octets, would grow past 78.
func (w *sigWriter) word(sep, s string, follow int) {
	if w.col+len(sep)+len(s)+follow > lineSoft && w.col > 1 {
		w.b = append(w.b, "\r\n "...)
		w.col = 1
	} else {
		w.b = append(w.b, sep...)
		w.col += len(sep)
	}
	w.b = append(w.b, s...)
	w.col += len(s)
}

// base64 appends s, folded wherever a line is full (RFC 6376 §2.10 allows
// FWS anywhere in a base64 value).
func (w *sigWriter) base64(s string) {
	for len(s) > 0 {
		if w.col >= lineSoft {
			w.b = append(w.b, "\r\n "...)
			w.col = 1
		}
		n := min(lineSoft-w.col, len(s))
		w.b = append(w.b, s[:n]...)
		w.col += n
		s = s[n:]
	}
}

// splitFields splits a header section (each line ending in CRLF) into its
// fields, continuation lines included.
func splitFields(head []byte) [][]byte {
	var fields [][]byte
	start := 0
	for i := 0; i < len(head); {
		j := bytes.Index(head[i:], []byte("\r\n"))
		if j < 0 {
			j = len(head) - i
		} else {
			j += 2
		}
		next := i + j
		if next >= len(head) || (head[next] != ' ' && head[next] != '\t') {
			fields = append(fields, head[start:next])
			start = next
		}
		i = next
	}
	return fields
}

// fieldName returns the name of a field: what comes before the colon.
func fieldName(f []byte) string {
	if i := bytes.IndexByte(f, ':'); i >= 0 {
		return strings.TrimRight(string(f[:i]), " \t")
	}
	return strings.TrimRight(string(f), "\r\n")
}

// relaxedHeader appends the relaxed canonical form of a field (RFC 6376
// §3.4.2): the name in lower case, unfolded, each run of white space one
// space, none around the colon or at the end, then CRLF.
func relaxedHeader(dst, f []byte) []byte {
	colon := bytes.IndexByte(f, ':')
	if colon < 0 {
		colon = len(f)
	}
	for _, c := range bytes.TrimRight(f[:colon], " \t") {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	dst = append(dst, ':')
	space := false
	wrote := false
	if colon < len(f) {
		for _, c := range f[colon+1:] {
			switch c {
			case '\r', '\n':
				// unfold
			case ' ', '\t':
				space = true
			default:
				if space && wrote {
					dst = append(dst, ' ')
				}
				space = false
				wrote = true
				dst = append(dst, c)
			}
		}
	}
	return append(dst, "\r\n"...)
}

// relaxedBody writes the relaxed canonical form of a body (RFC 6376 §3.4.4)
// to h: each run of white space in a line one space, none at the end of a
// line, no empty lines at the end, and a non-empty body ending in CRLF.
func relaxedBody(h hash.Hash, body []byte) {
	crlf := []byte("\r\n")
	empty := 0 // empty lines not written yet: they may end the body
	var buf []byte
	for len(body) > 0 {
		line := body
		if i := bytes.Index(body, crlf); i >= 0 {
			line, body = body[:i], body[i+2:]
		} else {
			body = nil
		}
		buf = buf[:0]
		space := false
		for _, c := range line {
			if c == ' ' || c == '\t' {
				space = true
				continue
			}
			if space {
				buf = append(buf, ' ')
				space = false
			}
			buf = append(buf, c)
		}
		if len(buf) == 0 {
			empty++
			continue
		}
		for ; empty > 0; empty-- {
			h.Write(crlf)
		}
		buf = append(buf, crlf...)
		h.Write(buf)
	}
}

// Record returns the DNS TXT record that publishes the public key (RFC
// 6376 §3.6.1): for RSA the DER SubjectPublicKeyInfo, for Ed25519 the bare
// 32 octets (RFC 8463 §4), in base64.
func (d *DKIM) Record() (string, error) {
	if _, err := d.algorithm(); err != nil {
		return "", err
	}
	switch pub := d.Signer.Public().(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	default:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	}
}

// RecordName is where the record is published: selector._domainkey.domain.
func (d *DKIM) RecordName() string {
	return d.Selector + "._domainkey." + strings.TrimSuffix(d.Domain, ".") + "."
}

// ZoneRecord returns the record as a line of a zone file, its value split
// into quoted strings of at most 255 octets as DNS requires (RFC 1035
// §3.3.14; a verifier joins them, RFC 6376 §3.6.2.2).
func (d *DKIM) ZoneRecord() (string, error) {
	rec, err := d.Record()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(d.RecordName())
	b.WriteString(" IN TXT")
	for len(rec) > 0 {
		n := min(len(rec), 255)
		b.WriteString(` "`)
		b.WriteString(rec[:n])
		b.WriteString(`"`)
		rec = rec[n:]
	}
	return b.String(), nil
}
