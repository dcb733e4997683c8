package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
)

// writeBody appends the Content-Type of the message and its body:
//
//	mixed[ alternative[ text/plain, related[ text/html, images… ] ], attachments… ]
//
// with mixed only when there are attachments and related only when there are
// images. Boundaries derive from the Message-ID, so that a message is the
// same bytes every time; they start with "=_", which can occur neither in
// quoted-printable nor in base64 text, so no body can contain one.
func (r *Renderer) writeBody(dst []byte, id string, doc *document, html []byte, attachments []*part) []byte {
	sum := sha256.Sum256([]byte(id))
	base := "=_" + hex.EncodeToString(sum[:12])

	alternative := func(dst []byte) []byte {
		b := base + "_alt"
		dst = multipartHeader(dst, "multipart/alternative", b)
		dst = boundary(dst, b)
		dst = textPart(dst, "text/plain", doc.text)
		dst = boundary(dst, b)
		if len(doc.images) == 0 {
			dst = textPart(dst, "text/html", html)
		} else {
			rb := base + "_rel"
			dst = fold(dst, "Content-Type", `multipart/related; type="text/html"; boundary="`+rb+`"`)
			dst = append(dst, "\r\n"...)
			dst = boundary(dst, rb)
			dst = textPart(dst, "text/html", html)
			for _, p := range doc.images {
				dst = boundary(dst, rb)
				dst = filePart(dst, p, "inline")
			}
			dst = closeBoundary(dst, rb)
		}
		return closeBoundary(dst, b)
	}

	if len(attachments) == 0 {
		return alternative(dst)
	}
	mb := base + "_mix"
	dst = multipartHeader(dst, "multipart/mixed", mb)
	dst = boundary(dst, mb)
	dst = alternative(dst)
	for _, p := range attachments {
		dst = boundary(dst, mb)
		dst = filePart(dst, p, "attachment")
	}
	return closeBoundary(dst, mb)
}

func multipartHeader(dst []byte, ctype, b string) []byte {
	dst = fold(dst, "Content-Type", ctype+`; boundary="`+b+`"`)
	return append(dst, "\r\n"...)
}

func boundary(dst []byte, b string) []byte {
	dst = append(dst, "--"...)
	dst = append(dst, b...)
	return append(dst, "\r\n"...)
}

func closeBoundary(dst []byte, b string) []byte {
	dst = append(dst, "--"...)
	dst = append(dst, b...)
	return append(dst, "--\r\n"...)
}

// textPart appends a UTF-8 text part in quoted-printable (lines of at most
// 76 characters, CRLF line ends, whatever the text's line lengths).
func textPart(dst []byte, ctype string, text []byte) []byte {
	dst = append(dst, "Content-Type: "...)
	dst = append(dst, ctype...)
	dst = append(dst, "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"...)
	dst = appendQP(dst, text)
	if !bytes.HasSuffix(dst, []byte("\r\n")) {
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// filePart appends an image or attachment: its header and base64 body,
// made once per campaign.
func filePart(dst []byte, p *part, disposition string) []byte {
	if disposition == "inline" {
		dst = append(dst, p.inlineHead...)
	} else {
		dst = append(dst, p.attachedHead...)
	}
	return append(dst, p.body...)
}

// partHead makes the header of p as an inline image or as an attachment,
// with the blank line that ends it.
func partHead(p *part, disposition string) []byte {
	ctype := p.ctype
	if p.charset != "" {
		ctype += "; charset=" + p.charset
	}
	dst := fold(nil, "Content-Type", ctype+param("name", p.filename))
	dst = append(dst, "Content-Transfer-Encoding: base64\r\n"...)
	if disposition == "inline" {
		dst = append(dst, "Content-ID: <"...)
		dst = append(dst, p.cid...)
		dst = append(dst, ">\r\n"...)
	}
	dst = fold(dst, "Content-Disposition", disposition+param("filename", p.filename))
	return append(dst, "\r\n"...)
}

// appendQP appends text to dst in quoted-printable, the bytes that
// mime/quotedprintable's Writer gives (tested against it), without its
// buffering through io.Writer: the text parts are encoded for every
// message, and the Writer was a large part of a dry run's CPU time (see
// ARCHITECTURE.md, "What batch writes by hand"). Line ends,
// LF or CRLF, become CRLF; lines are cut at 76 characters with soft breaks;
// white space before a line end is encoded.
func appendQP(dst, text []byte) []byte {
	const max = 76 - 1 // room for the "=" of a soft break
	n := 0             // the length of the line being written
	cr := false        // the last literal byte was a CR
	for k := 0; k < len(text); {
		b := text[k]
		switch {
		case qpLiteral[b]:
			if n == max {
				dst = append(dst, "=\r\n"...)
				n = 0
			}
			// The run of literal bytes that fits on the line, at once.
			j, end := k+1, min(len(text), k+max-n)
			for j < end && qpLiteral[text[j]] {
				j++
			}
			dst = append(dst, text[k:j]...)
			n += j - k
			k = j
			cr = false
			continue
		case b == '\n' || b == '\r':
			if !cr || b != '\n' {
				dst, n = qpEndLine(dst, n)
			}
			cr = b == '\r'
		default:
			dst, n = qpEncode(dst, n, b)
		}
		k++
	}
	dst, _ = qpEndLine(dst, n)
	return dst[:len(dst)-2] // Close doesn't end the line
}

// qpEndLine encodes white space at the end of the line and appends CRLF.
func qpEndLine(dst []byte, n int) ([]byte, int) {
	if n > 0 {
		if last := dst[len(dst)-1]; last == ' ' || last == '\t' {
			dst, _ = qpEncode(dst[:len(dst)-1], n-1, last)
		}
	}
	return append(dst, "\r\n"...), 0
}

// qpEncode appends b as =XX, after a soft break if it doesn't fit.
func qpEncode(dst []byte, n int, b byte) ([]byte, int) {
	const hex = "0123456789ABCDEF"
	if 76-1-n < 3 {
		dst = append(dst, "=\r\n"...)
		n = 0
	}
	return append(dst, '=', hex[b>>4], hex[b&0x0f]), n + 3
}

// qpLiteral tells the bytes that quoted-printable writes as they are:
// printable ASCII but "=", space and tab.
var qpLiteral = func() (t [256]bool) {
	for b := '!'; b <= '~'; b++ {
		t[b] = b != '='
	}
	t[' '], t['\t'] = true, true
	return t
}()
