package merge

import (
	"errors"
	"strings"
)

// CheckAddress reports whether s is a plain addr-spec that batch can send to:
// local@domain in ASCII, a dot-atom local part of at most 64 octets, a domain
// name of dotted labels, 254 octets in all (RFC 5321 §4.5.3.1). Quoted local
// parts, address literals and internationalised addresses are refused: they
// are valid but rare, and most relays and clients mishandle them.
func CheckAddress(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 254 {
		return errors.New("longer than 254 characters")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return errors.New("no @")
	}
	local, domain := s[:at], s[at+1:]
	if local == "" || len(local) > 64 {
		return errors.New("the part before @ must be 1 to 64 characters")
	}
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return errors.New("empty part or stray dot before @")
		}
		for i := 0; i < len(atom); i++ {
			if !isAtext(atom[i]) {
				return errors.New("character " + quoteByte(atom[i]) + " is not allowed before @")
			}
		}
	}
	return checkDomain(domain)
}

func checkDomain(domain string) error {
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return errors.New("the domain needs a dot (example.org)")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return errors.New("the domain has an empty or over-long label")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("a domain label can't start or end with -")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return errors.New("character " + quoteByte(c) + " is not allowed in the domain")
			}
		}
	}
	return nil
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func quoteByte(c byte) string {
	if c < ' ' || c > '~' {
		return "non-ASCII or control byte"
	}
	return "'" + string(c) + "'"
}

// AddressKey returns the form in which batch compares addresses: the whole
// address in lower case, as the list's repeated rows are found (a local
// part is case-sensitive by RFC 5321, but no mailbox provider treats it so,
// and a list that gives one person twice in two cases means one person).
func AddressKey(addr string) string { return strings.ToLower(addr) }
