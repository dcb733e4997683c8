package dnscheck

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxLookups is RFC 7208 §4.6.4's limit on the terms that cost a DNS
// query (include, a, mx, ptr, exists, redirect), included records
// counted: past it a receiver's check ends in permerror and SPF fails.
const maxLookups = 10

// SPF is a parsed SPF record (RFC 7208).
type SPF struct {
	Terms []SPFTerm
}

// SPFTerm is one directive or modifier of a record.
type SPFTerm struct {
	Qualifier byte   // '+', '-', '~' or '?' for a directive (+ when none was written); 0 for a modifier
	Name      string // the mechanism's or modifier's name, in lower case: "all", "include", "redirect"…
	Value     string // what follows ':' or '=' (the domain-spec, network…), "" for none
	Text      string // the term as written
}

// isSPF reports whether a TXT record is an SPF record: "v=spf1" alone or
// followed by a space (RFC 7208 §4.5), in any case.
func isSPF(txt string) bool {
	return len(txt) >= 6 && strings.EqualFold(txt[:6], "v=spf1") && (len(txt) == 6 || txt[6] == ' ')
}

// ParseSPF parses an SPF record by RFC 7208 §12's grammar: its version,
// each mechanism with its qualifier and arguments, and its modifiers
// (redirect and exp at most once).
func ParseSPF(txt string) (*SPF, error) {
	if !isSPF(txt) {
		return nil, fmt.Errorf("does not start with v=spf1")
	}
	rec := &SPF{}
	seen := map[string]bool{}
	for _, t := range strings.Split(txt[6:], " ") {
		if t == "" {
			continue // several spaces
		}
		term, err := parseTerm(t)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", t, err)
		}
		if term.Qualifier == 0 && (term.Name == "redirect" || term.Name == "exp") {
			if seen[term.Name] {
				return nil, fmt.Errorf("%s= more than once", term.Name)
			}
			seen[term.Name] = true
		}
		rec.Terms = append(rec.Terms, term)
	}
	return rec, nil
}

// parseTerm parses one directive or modifier.
func parseTerm(t string) (SPFTerm, error) {
	term := SPFTerm{Text: t}
	// A modifier is name=…, its name before any ':' or '/'.
	if i := strings.IndexAny(t, "=:/"); i > 0 && t[i] == '=' {
		return parseModifier(term, t[:i], t[i+1:])
	}
	term.Qualifier = '+'
	if strings.IndexByte("+-~?", t[0]) >= 0 {
		term.Qualifier = t[0]
		t = t[1:]
	}
	name, rest := t, ""
	if i := strings.IndexAny(t, ":/"); i >= 0 {
		name, rest = t[:i], t[i:]
	}
	term.Name = strings.ToLower(name)
	arg, hasArg := strings.CutPrefix(rest, ":")
	switch term.Name {
	case "all":
		if rest != "" {
			return term, fmt.Errorf("all takes no argument")
		}
	case "include", "exists":
		if !hasArg {
			return term, fmt.Errorf("%s needs a domain: %s:example.org", term.Name, term.Name)
		}
		term.Value = arg
		return term, checkDomainSpec(arg)
	case "ptr":
		if rest != "" && !hasArg {
			return term, fmt.Errorf("ptr takes no prefix length")
		}
		term.Value = arg
		if hasArg {
			return term, checkDomainSpec(arg)
		}
	case "a", "mx":
		return parseHostTerm(term, rest)
	case "ip4", "ip6":
		if !hasArg {
			return term, fmt.Errorf("%s needs a network: %s", term.Name, map[string]string{"ip4": "ip4:192.0.2.0/24", "ip6": "ip6:2001:db8::/32"}[term.Name])
		}
		term.Value = arg
		return term, checkNetwork(term.Name, arg)
	case "":
		return term, fmt.Errorf("no mechanism")
	default:
		return term, fmt.Errorf("%q is not a mechanism: all, include, a, mx, ptr, ip4, ip6 or exists", name)
	}
	return term, nil
}

// parseHostTerm parses the rest of an a or mx term, after its name: a
// domain, prefix lengths, both or nothing.
func parseHostTerm(term SPFTerm, rest string) (SPFTerm, error) {
	arg, hasArg := strings.CutPrefix(rest, ":")
	if !hasArg {
		arg = rest // only prefix lengths, or nothing
	}
	spec, err := cutDualCIDR(arg)
	if err != nil {
		return term, err
	}
	term.Value = arg
	if hasArg {
		return term, checkDomainSpec(spec)
	}
	if spec != "" {
		return term, fmt.Errorf("%s/ needs a prefix length", term.Name)
	}
	return term, nil
}

// parseModifier parses the modifier name=value into term.
func parseModifier(term SPFTerm, name, value string) (SPFTerm, error) {
	lower := strings.ToLower(name)
	if !isModifierName(lower) {
		return term, fmt.Errorf("%q is not a modifier's name", name)
	}
	term.Name, term.Value = lower, value
	switch lower {
	case "redirect", "exp":
		return term, checkDomainSpec(value)
	}
	return term, checkMacroString(value)
}

// isModifierName: ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
func isModifierName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
		case i > 0 && ('0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// cutDualCIDR cuts a dual-cidr-length ("/24", "//64", "/24//64") off the
// end of an a or mx mechanism's argument and checks its ranges.
func cutDualCIDR(s string) (string, error) {
	if i := strings.LastIndex(s, "//"); i >= 0 && isDigits(s[i+2:]) {
		if err := checkPrefix(s[i+2:], 128); err != nil {
			return "", err
		}
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '/'); i >= 0 && isDigits(s[i+1:]) {
		if err := checkPrefix(s[i+1:], 32); err != nil {
			return "", err
		}
		s = s[:i]
	}
	return s, nil
}

// checkPrefix checks a prefix length: no leading zero, at most max.
func checkPrefix(s string, max int) error {
	n, err := strconv.Atoi(s)
	if err != nil || (len(s) > 1 && s[0] == '0') || n > max {
		return fmt.Errorf("/%s is not a prefix length (0 to %d)", s, max)
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkNetwork checks an ip4 or ip6 mechanism's network and prefix.
func checkNetwork(kind, s string) error {
	addr, prefix, hasPrefix := strings.Cut(s, "/")
	ip, err := netip.ParseAddr(addr)
	switch {
	case err != nil || ip.Zone() != "":
		return fmt.Errorf("%s is not an %s address", addr, map[string]string{"ip4": "IPv4", "ip6": "IPv6"}[kind])
	case kind == "ip4" && !ip.Is4(), kind == "ip6" && !ip.Is6():
		return fmt.Errorf("%s is not an %s address", addr, map[string]string{"ip4": "IPv4", "ip6": "IPv6"}[kind])
	}
	if hasPrefix {
		return checkPrefix(prefix, map[string]int{"ip4": 32, "ip6": 128}[kind])
	}
	return nil
}

// checkDomainSpec checks a domain-spec: a macro-string whose end is a
// macro or a top label (RFC 7208 §7.1, §12).
func checkDomainSpec(s string) error {
	if s == "" {
		return fmt.Errorf("no domain")
	}
	if err := checkMacroString(s); err != nil {
		return err
	}
	if strings.HasSuffix(s, "}") || strings.HasSuffix(s, "%%") || strings.HasSuffix(s, "%_") || strings.HasSuffix(s, "%-") {
		return nil // ends in a macro
	}
	end := strings.TrimSuffix(s, ".")
	i := strings.LastIndexByte(end, '.')
	if i < 0 {
		return fmt.Errorf("%s is not a domain: it has no dot", s)
	}
	if !isTopLabel(end[i+1:]) {
		return fmt.Errorf("%s does not end in a domain's top label", s)
	}
	return nil
}

// isTopLabel: ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ).
func isTopLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	letter, hyphen := false, false
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		switch {
		case 'a' <= c && c <= 'z':
			letter = true
		case '0' <= s[i] && s[i] <= '9':
		case s[i] == '-':
			hyphen = true
		default:
			return false
		}
	}
	return letter || hyphen
}

// checkMacroString checks a macro-string: literals %x21-24 / %x26-7E, and
// macros %{letter digits [r] delimiters}, %%, %_ and %-.
func checkMacroString(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("a character SPF doesn't allow: %q", c)
		}
		if c != '%' {
			continue
		}
		if i+1 >= len(s) {
			return fmt.Errorf("a %% at the end: write %%%% for a percent sign")
		}
		switch s[i+1] {
		case '%', '_', '-':
			i++
			continue
		case '{':
		default:
			return fmt.Errorf("%%%c is not a macro: %%{…}, %%%%, %%_ or %%-", s[i+1])
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return fmt.Errorf("a macro without its }")
		}
		body := s[i+2 : i+end]
		if body == "" || strings.IndexByte("slodiphcrtv", body[0]|0x20) < 0 {
			return fmt.Errorf("%%{%s}: not a macro letter (s, l, o, d, i, p, h, c, r, t or v)", body)
		}
		j := 1
		for j < len(body) && '0' <= body[j] && body[j] <= '9' {
			j++
		}
		if j < len(body) && body[j]|0x20 == 'r' {
			j++
		}
		for ; j < len(body); j++ {
			if strings.IndexByte(".-+,/_=", body[j]) < 0 {
				return fmt.Errorf("%%{%s}: %q is not a delimiter", body, body[j])
			}
		}
		i += end
	}
	return nil
}

// lookups counts the record's terms that cost a DNS query.
func (s *SPF) lookups() int {
	n := 0
	for _, t := range s.Terms {
		switch t.Name {
		case "include", "a", "mx", "ptr", "exists":
			if t.Qualifier != 0 {
				n++
			}
		case "redirect":
			if t.Qualifier == 0 {
				n++
			}
		}
	}
	return n
}

// all returns the record's all mechanism, the first if there are more
// (RFC 7208 §5.1: terms after it are never looked at), or nil.
func (s *SPF) all() *SPFTerm {
	for i, t := range s.Terms {
		if t.Qualifier != 0 && t.Name == "all" {
			return &s.Terms[i]
		}
	}
	return nil
}

// modifier returns the value of the modifier name, or "".
func (s *SPF) modifier(name string) string {
	for _, t := range s.Terms {
		if t.Qualifier == 0 && t.Name == name {
			return t.Value
		}
	}
	return ""
}

// hasMacro reports whether a domain-spec has a macro, whose domain is
// known only for a given message.
func hasMacro(s string) bool { return strings.Contains(s, "%") }

// spfRecord looks up domain's SPF record: its text, or "" when it has
// none, and how many SPF records it has.
func spfRecord(ctx context.Context, r *Resolver, domain string) (string, int, error) {
	txts, err := r.TXT(ctx, domain)
	if err != nil {
		return "", 0, err
	}
	var found []string
	for _, t := range txts {
		if isSPF(t) {
			found = append(found, t)
		}
	}
	if len(found) == 0 {
		return "", 0, nil
	}
	return found[0], len(found), nil
}

// checkSPF judges the SPF record of domain, the MAIL FROM domain.
func checkSPF(ctx context.Context, r *Resolver, domain string) (Result, error) {
	res := Result{Check: CheckSPF, Domain: domain}
	generic := zoneTXT(domain, "v=spf1 mx ~all")
	txt, n, err := spfRecord(ctx, r, domain)
	if err != nil {
		return res, err
	}
	switch {
	case n == 0:
		res.Verdict = Missing
		res.Message = "no SPF record: receivers can't tell your servers from a forger's; publish one with your provider's include (e.g. include:_spf.provider.example) before ~all"
		res.Publish = generic
		return res, nil
	case n > 1:
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%d SPF records: receivers fail SPF (permerror) unless there is exactly one; merge them into one", n)
		res.Publish = generic
		return res, nil
	}
	rec, err := ParseSPF(txt)
	if err != nil {
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%s: %v: receivers fail SPF (permerror); fix the record, or start again from the one below with your provider's include", quote(txt), err)
		res.Publish = generic
		return res, nil
	}
	w := spfWalk{ctx: ctx, r: r}
	end, err := w.walk(rec)
	if err != nil {
		return res, err
	}
	judgeSPF(&res, txt, rec, end, &w)
	return res, nil
}

// spfWalk follows include and redirect, counting every lookup, to find
// the record that ends the check and whether the limit holds.
type spfWalk struct {
	ctx   context.Context
	r     *Resolver
	count int    // DNS lookups
	bad   string // an include or redirect that fails
}

// walk follows the include and redirect terms of rec and returns the
// record that ends the check.
func (w *spfWalk) walk(rec *SPF) (*SPF, error) {
	w.count += rec.lookups()
	last := rec
	for _, t := range rec.Terms {
		follow := t.Qualifier != 0 && t.Name == "include" ||
			t.Qualifier == 0 && t.Name == "redirect" && rec.all() == nil
		if !follow || hasMacro(t.Value) || w.count > maxLookups || w.bad != "" {
			continue
		}
		sub, err := w.record(t)
		if err != nil {
			return nil, err
		}
		if sub == nil {
			continue // w.bad says why
		}
		end, err := w.walk(sub)
		if err != nil {
			return nil, err
		}
		if t.Name == "redirect" {
			last = end
		}
	}
	return last, nil
}

// record looks up and parses the record that t includes or redirects to;
// it is nil, with w.bad saying why, where that domain has none, more than
// one, or one that is wrong.
func (w *spfWalk) record(t SPFTerm) (*SPF, error) {
	txt, n, err := spfRecord(w.ctx, w.r, t.Value)
	if err != nil {
		return nil, err
	}
	switch {
	case n == 0:
		w.bad = fmt.Sprintf("%s: %s has no SPF record", t.Text, t.Value)
		return nil, nil
	case n > 1:
		w.bad = fmt.Sprintf("%s: %s has %d SPF records", t.Text, t.Value, n)
		return nil, nil
	}
	sub, err := ParseSPF(txt)
	if err != nil {
		w.bad = fmt.Sprintf("%s: %s's record %s: %v", t.Text, t.Value, quote(txt), err)
		return nil, nil
	}
	return sub, nil
}

// judgeSPF gives res its verdict on the record txt, parsed as rec, whose
// check ends in end, after the walk w.
func judgeSPF(res *Result, txt string, rec, end *SPF, w *spfWalk) {
	domain := res.Domain
	res.Verdict = OK
	res.Message = quote(txt)
	switch all := end.all(); {
	case w.bad != "":
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%s: %s: receivers fail SPF (permerror); fix or remove it", quote(txt), w.bad)
	case w.count > maxLookups:
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%s: more than %d DNS lookups (include, a, mx, ptr, exists, redirect, included records counted): receivers fail SPF (permerror); replace includes with the ip4:/ip6: networks they name, or drop the ones you don't send through", quote(txt), maxLookups)
	case all != nil && all.Qualifier == '+':
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%s: %s lets any server on the internet send as %s; end it in ~all or -all", quote(txt), all.Text, domain)
		if end == rec {
			res.Publish = zoneTXT(domain, replaceTerm(txt, all.Text, "~all"))
		}
	case all == nil && end.modifier("redirect") == "":
		res.Verdict = Note
		res.Message = fmt.Sprintf("%s: ends in no all: mail from other servers is neutral, as if there were no SPF; end it in ~all or -all", quote(txt))
		if end == rec {
			res.Publish = zoneTXT(domain, strings.TrimRight(txt, " ")+" ~all")
		}
	case all != nil && all.Qualifier == '?':
		res.Verdict = Note
		res.Message = fmt.Sprintf("%s: ?all: mail from other servers is neutral, as if there were no SPF; end it in ~all or -all", quote(txt))
		if end == rec {
			res.Publish = zoneTXT(domain, replaceTerm(txt, all.Text, "~all"))
		}
	}
	if res.Verdict == OK && slices.ContainsFunc(rec.Terms, func(t SPFTerm) bool { return t.Qualifier != 0 && t.Name == "ptr" }) {
		res.Verdict = Note
		res.Message += ": ptr is slow and receivers may skip it (RFC 7208 §5.5); use ip4:, ip6: or a"
	}
}

// replaceTerm replaces the term old of an SPF record with new.
func replaceTerm(txt, old, new string) string {
	terms := strings.Fields(txt)
	for i, t := range terms {
		if t == old {
			terms[i] = new
			break
		}
	}
	return strings.Join(terms, " ")
}
