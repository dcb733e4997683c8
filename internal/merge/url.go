package merge

import (
	"fmt"
	"strings"
)

// URLPlace is where in a URL a merge field lands: only in the path, the
// query or the fragment is its value data; anywhere else it would choose
// where the URL goes.
type URLPlace int

const (
	InPath      URLPlace = iota // the path, query or fragment: allowed
	InScheme                    // the URL's start: the value could be the whole URL, or make its scheme (javascript:)
	InAuthority                 // the host, the port or the user name
	InMailto                    // a mailto: URL's addresses, or a header of it other than subject and body
	InOpaque                    // a URL with no host (tel:, sms:, data:, javascript:, cid:)
	InSrcset                    // a srcset attribute: a list of URLs, to which a value could add one
	InFile                      // a local image's path: the value would choose a file
	InUnknown                   // batch can't tell: the URL's start is written by another action
)

// PlaceInURL tells where a value lands that follows before, the text of a
// URL up to the value, as a browser reads it (the WHATWG URL standard):
// leading spaces and control characters trimmed, tabs and line ends
// dropped, a backslash a slash in http(s) URLs. What comes after the value
// can't move it: once a '/', '?' or '#' has ended the host, the rest of
// the URL is its path, query or fragment.
func PlaceInURL(before string) URLPlace {
	s := strings.TrimLeftFunc(before, func(r rune) bool { return r <= ' ' })
	if strings.ContainsAny(s, "\t\r\n") {
		s = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(s)
	}
	scheme, rest, ok := cutScheme(s)
	switch {
	case !ok && len(s) >= 2 && isSlash(s[0]) && isSlash(s[1]):
		// //host/…, relative to the scheme: a backslash may or may not
		// end the host, as the base is http(s) or not.
		return authority(strings.TrimLeft(s, `/\`), "/?#")
	case !ok && len(s) == 1 && isSlash(s[0]):
		return InAuthority // a value with a '/' of its own makes it //host
	case !ok && (s == "" || isSchemeText(s)):
		// The value would start the URL, or make its scheme with what
		// follows it.
		return InScheme
	case !ok: // a relative path, query or fragment
		return InPath
	}
	switch {
	case special[scheme]:
		return authority(strings.TrimLeft(rest, `/\`), `/\?#`)
	case strings.HasPrefix(rest, "//"):
		return authority(rest[2:], "/?#")
	case scheme == "mailto":
		return mailto(rest)
	}
	return InOpaque
}

// special are the schemes whose URLs always have a host, however many
// slashes (or backslashes) follow the colon.
var special = map[string]bool{"http": true, "https": true, "ws": true, "wss": true, "ftp": true, "file": true}

// authority tells whether the host, port and user name that rest starts
// with have ended, at one of ends.
func authority(rest, ends string) URLPlace {
	if strings.ContainsAny(rest, ends) {
		return InPath
	}
	return InAuthority
}

// mailto tells where a value lands after "mailto:"+rest: only in the value
// of a subject or body header is it text; in the addresses, or in to=,
// cc= or bcc=, it would choose a recipient (the addresses are
// percent-decoded, so encoding the value doesn't help).
func mailto(rest string) URLPlace {
	_, query, ok := strings.Cut(rest, "?")
	if !ok {
		return InMailto
	}
	if i := strings.LastIndexByte(query, '&'); i >= 0 {
		query = query[i+1:]
	}
	name, _, ok := strings.Cut(query, "=")
	if name = strings.ToLower(name); ok && (name == "subject" || name == "body") {
		return InPath
	}
	return InMailto
}

// cutScheme splits s after its scheme (RFC 3986: a letter, then letters,
// digits, '+', '-' and '.', then ':'), the scheme in lower case.
func cutScheme(s string) (scheme, rest string, ok bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || !isSchemeText(s[:i]) {
		return "", s, false
	}
	return strings.ToLower(s[:i]), s[i+1:], true
}

// isSchemeText reports whether s could be, or begin, a scheme.
func isSchemeText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

func isSlash(c byte) bool { return c == '/' || c == '\\' }

// URLError is a merge field where it would choose where a URL goes: in
// its scheme, host, port or user name, a mailto: address, a URL without a
// host, or a local file.
type URLError struct {
	Pos   string   // file:line:column of the field, or the file's name
	What  string   // what holds the URL: "link", "image", "href attribute"…
	URL   string   // the URL as the template writes it, values shown as {{…}}
	Place URLPlace // where the field is
}

func (e *URLError) Error() string {
	msg := fmt.Sprintf("%s: %s %q: ", e.Pos, e.What, e.URL)
	if e.What == "image" {
		return msg + "a merge field may only be in the path or query of an http(s) image URL, never choose a local file or a host"
	}
	switch e.Place {
	case InScheme:
		msg += "a merge field at the start of a URL could make it any link, javascript: too; write the scheme and the host in the template and the field after them (https://example.org/{{.x}})"
	case InAuthority:
		msg += "a merge field in a URL's host, port or user name would let a value choose where it goes; put it after the / that ends the host (https://example.org/{{.x}}) or in the query"
	case InMailto:
		msg += "a merge field in a mailto: address would let a value choose or add recipients; write the address in the template, the field only in subject= or body= (mailto:team@example.org?subject={{.x}})"
	case InOpaque:
		msg += "a merge field in a URL without a host (tel:, sms:, data:, javascript:) would let a value choose what it does; link to an https URL with the field in its path or query"
	case InSrcset:
		msg += "a merge field in srcset could add an image from any host; use src, with the field in its path"
	case InFile:
		msg += "a merge field in a local file's path would let a value choose the file; name the file in the template"
	default:
		msg += "batch can't tell where this URL's host ends, as another action writes its start; write the URL's scheme and host as text, the field after them"
	}
	return msg
}
