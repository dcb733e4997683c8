package journal

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// decodeRecord reads a record's JSON as batch writes it (encodeRecord:
// encoding/json's Marshal of a Record, no spaces, no unknown fields) into
// r, and reports whether it could; for anything else (a string with an
// escape, a byte encoding/json would change or refuse, a key it doesn't
// know, a number that is not a plain integer) it reports false and leaves
// the record to encoding/json, which then decides. When it reports true, r
// is what json.Unmarshal would make of body (FuzzDecodeRecord). A journal
// of a million records reads in a fraction of the time: encoding/json's
// reflection was most of a read.
func decodeRecord(body []byte, r *Record) bool {
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return false
	}
	b := body[1 : len(body)-1]
	for len(b) > 0 {
		key, rest, ok := decodeString(b)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return false
		}
		if b, ok = r.decodeField(string(key), rest[1:]); !ok {
			return false
		}
		switch {
		case len(b) == 0:
		case b[0] == ',' && len(b) > 1:
			b = b[1:]
		default:
			return false
		}
	}
	return true
}

// decodeField reads the value of r's field key at the start of b, and
// returns what follows it.
func (r *Record) decodeField(key string, b []byte) ([]byte, bool) {
	var s *string
	switch key {
	case "t":
		s = &r.Kind
	case "to":
		s = &r.To
	case "id":
		s = &r.ID
	case "error":
		s = &r.Error
	case "campaign":
		s = &r.Campaign
	}
	if s != nil {
		v, rest, ok := decodeString(b)
		if ok {
			*s = string(v)
		}
		return rest, ok
	}
	n, rest, ok := decodeInt(b)
	if !ok {
		return nil, false
	}
	switch key {
	case "at":
		r.At = n
	case "row", "code":
		if int64(int(n)) != n {
			return nil, false
		}
		if key == "row" {
			r.Row = int(n)
		} else {
			r.Code = int(n)
		}
	default:
		return nil, false
	}
	return rest, true
}

// decodeString reads a JSON string at the start of b that needs no
// decoding: no escape, no control character, valid UTF-8 (which
// encoding/json would keep as it is).
func decodeString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 {
		return nil, nil, false
	}
	s = b[1 : 1+end]
	for _, c := range s {
		if c < ' ' || c == '\\' {
			return nil, nil, false
		}
	}
	if !utf8.Valid(s) {
		return nil, nil, false
	}
	return s, b[2+end:], true
}

// decodeInt reads a JSON integer at the start of b: an optional minus and
// digits, no leading zero, within 64 bits.
func decodeInt(b []byte) (int64, []byte, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	digits := i - start
	if digits == 0 || digits > 1 && b[start] == '0' {
		return 0, nil, false
	}
	if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, nil, false
	}
	if digits > 18 { // might not fit: as strconv says
		n, err := strconv.ParseInt(string(b[:i]), 10, 64)
		return n, b[i:], err == nil
	}
	var n int64
	for _, c := range b[start:i] {
		n = n*10 + int64(c-'0')
	}
	if start > 0 {
		n = -n
	}
	return n, b[i:], true
}
