package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"mime/quotedprintable"
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
	buf := bytes.NewBuffer(dst)
	w := quotedprintable.NewWriter(buf)
	_, _ = w.Write(text) // a bytes.Buffer never fails
	_ = w.Close()
	dst = buf.Bytes()
	if !bytes.HasSuffix(dst, []byte("\r\n")) {
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// filePart appends an image or attachment, its base64 body encoded once per
// campaign.
func filePart(dst []byte, p *part, disposition string) []byte {
	ctype := p.ctype
	if p.charset != "" {
		ctype += "; charset=" + p.charset
	}
	dst = fold(dst, "Content-Type", ctype+param("name", p.filename))
	dst = append(dst, "Content-Transfer-Encoding: base64\r\n"...)
	if disposition == "inline" {
		dst = append(dst, "Content-ID: <"...)
		dst = append(dst, p.cid...)
		dst = append(dst, ">\r\n"...)
	}
	dst = fold(dst, "Content-Disposition", disposition+param("filename", p.filename))
	dst = append(dst, "\r\n"...)
	return append(dst, p.body...)
}
