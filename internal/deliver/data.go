package deliver

import "bytes"

// dotStuff appends b to dst as DATA carries it (RFC 5321 §4.5.2): a dot
// that starts a line is doubled and a bare LF becomes CRLF; what
// net/textproto's DotWriter writes for b, byte for byte (tested against
// it), bare CRs and all. For DotWriter a line starts at the start of b and
// after each LF, and an LF is bare unless an odd number of CRs comes right
// before it: a CR after a CR is data, so "\r\r\n" becomes "\r\r\r\n". CRs
// themselves go as they are. Every change is then at b's first byte or
// next to an LF, so b is scanned for LFs alone, and what lies between two
// changes is appended in one copy: all of b at once for a message as
// batch renders it, CRLF throughout and no line starting with a dot.
func dotStuff(dst, b []byte) []byte {
	if len(b) > 0 && b[0] == '.' {
		dst = append(dst, '.')
	}
	from := 0 // b[:from] is in dst
	for k := 0; ; {
		i := bytes.IndexByte(b[k:], '\n')
		if i < 0 {
			break
		}
		i += k
		if !oddCRs(b[:i]) {
			dst = append(append(dst, b[from:i]...), '\r')
			from = i
		}
		k = i + 1
		if k < len(b) && b[k] == '.' {
			dst = append(append(dst, b[from:k]...), '.')
			from = k
		}
	}
	return append(dst, b[from:]...)
}

// oddCRs reports whether b ends with an odd number of CRs, after which
// DotWriter takes an LF for the end of a CRLF.
func oddCRs(b []byte) bool {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\r' {
		n++
	}
	return n%2 == 1
}
