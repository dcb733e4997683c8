package deliver

import (
	"bytes"
	"io"
	"time"
)

// writeContent sends data as the content of DATA, dot-stuffed. go-smtp's
// writer (net/textproto's DotWriter) stuffs a byte at a time through a
// bufio.Writer, which was a quarter of batch's CPU time while sending, as
// much as rendering; dotStuff does the same in runs of whole lines and the
// result goes to the connection in one write. Only the final line end goes
// through go-smtp's writer, so that its Close, which ends DATA with the
// dot and reads the reply, finds it at the start of a line.
//
// This relies on go-smtp's Data: a DATA command answered (its buffer
// flushed, nothing pending) and a fresh DotWriter; go-smtp is pinned in
// go.mod, and the tests compare every byte a server receives. A message
// that doesn't end with CRLF after something else than CR, and a
// connection with a --debug transcript (which sums the content up from
// what go-smtp writes), take go-smtp's own way.
func (c *conn) writeContent(wc io.Writer, data []byte) error {
	n := len(data)
	if c.log != nil || n < 3 || data[n-2] != '\r' || data[n-1] != '\n' || data[n-3] == '\r' {
		_, err := wc.Write(data)
		return err
	}
	c.buf = dotStuff(c.buf[:0], data[:n-2])
	if c.timeout > 0 {
		c.raw.SetWriteDeadline(time.Now().Add(c.timeout))
		defer c.raw.SetWriteDeadline(time.Time{})
	}
	if _, err := c.raw.Write(c.buf); err != nil {
		return err
	}
	_, err := wc.Write(data[n-2:])
	return err
}

// dotStuff appends b to dst as DATA carries it (RFC 5321 §4.5.2): a dot
// that starts a line is doubled and a bare LF becomes CRLF; what
// net/textproto's DotWriter writes for b, byte for byte (tested against
// it), bare CRs and all.
func dotStuff(dst, b []byte) []byte {
	const (
		lineStart = iota
		inLine
		afterCR
	)
	state := lineStart
	for k := 0; k < len(b); {
		switch state {
		case afterCR:
			c := b[k]
			k++
			dst = append(dst, c)
			state = inLine
			if c == '\n' {
				state = lineStart
			}
			continue
		case lineStart:
			if b[k] == '.' {
				dst = append(dst, '.')
			}
			state = inLine
		}
		// In a line: up to its first CR or LF at once.
		rest := b[k:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			i = len(rest)
		}
		if j := bytes.IndexByte(rest[:i], '\r'); j >= 0 {
			i = j
		}
		dst = append(dst, rest[:i]...)
		k += i
		if k == len(b) {
			break
		}
		if b[k] == '\r' {
			dst = append(dst, '\r')
			state = afterCR
		} else {
			dst = append(dst, '\r', '\n')
			state = lineStart
		}
		k++
	}
	return dst
}
