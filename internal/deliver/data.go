package deliver

import "bytes"

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
