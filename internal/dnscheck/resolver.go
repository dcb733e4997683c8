package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout is how long a query waits for its answer when a
// Resolver's Timeout is zero.
const DefaultTimeout = 5 * time.Second

// udpSize is the largest UDP answer batch reads (advertised with EDNS0,
// RFC 6891); a larger one comes truncated and is asked again over TCP,
// where DNS's own framing holds a message to 65,535 octets. No answer
// holds more in memory than that.
const udpSize = 4096

// maxServers is how many of resolv.conf's servers are tried, as the C
// library does (MAXNS).
const maxServers = 3

// ErrNoSuchDomain is an NXDOMAIN answer: the name does not exist. It
// comes wrapped in a *QueryError.
var ErrNoSuchDomain = errors.New("no such domain")

// Resolver asks DNS servers for records, each query bounded in time and
// size.
type Resolver struct {
	servers []string      // host:port, tried in turn
	Timeout time.Duration // for each server a query asks (its UDP and TCP tries together); 0: DefaultTimeout
}

// NewResolver returns a resolver that asks addr (host:port, or an IP
// address for port 53), or, when addr is empty, the servers of
// /etc/resolv.conf.
func NewResolver(addr string) (*Resolver, error) {
	if addr == "" {
		return systemResolver("/etc/resolv.conf")
	}
	server, err := serverAddr(addr)
	if err != nil {
		return nil, err
	}
	return &Resolver{servers: []string{server}}, nil
}

// serverAddr checks a resolver's address: host:port, or an IP address
// alone for port 53.
func serverAddr(addr string) (string, error) {
	if ip, err := netip.ParseAddr(addr); err == nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("resolver %q: want host:port, e.g. 127.0.0.1:53 or [::1]:53", addr)
	}
	return addr, nil
}

// systemResolver reads the servers of a resolv.conf file.
func systemResolver(path string) (*Resolver, error) {
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: name a resolver with host:port", path, err)
	}
	if len(conf.Servers) == 0 {
		return nil, fmt.Errorf("%s names no nameserver: name a resolver with host:port", path)
	}
	r := &Resolver{}
	for _, s := range conf.Servers[:min(len(conf.Servers), maxServers)] {
		r.servers = append(r.servers, net.JoinHostPort(s, conf.Port))
	}
	return r, nil
}

// Servers returns the addresses the resolver asks, in order.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// QueryError is a query that got no usable answer: no answer in time,
// a server that failed (SERVFAIL, REFUSED…), an answer that doesn't
// parse, or NXDOMAIN (Err is ErrNoSuchDomain).
type QueryError struct {
	Name   string // the name asked, with its final dot
	Type   string // "TXT", "MX"
	Server string // host:port of the last server asked
	Err    error
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("dns: %s %s (asked %s): %v", e.Type, e.Name, e.Server, e.Err)
}

func (e *QueryError) Unwrap() error { return e.Err }

// query asks for name's records of type qtype and returns the answer's
// records. Each server is asked in turn, until one answers, each for at
// most the resolver's timeout.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	name = dns.Fqdn(name)
	qerr := &QueryError{Name: name, Type: dns.TypeToString[qtype]}
	if _, ok := dns.IsDomainName(name); !ok {
		qerr.Err = errors.New("not a domain name")
		return nil, qerr
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(udpSize, false)

	for _, server := range r.servers {
		qerr.Server = server
		in, err := exchange(ctx, m, server, timeout)
		if err != nil {
			if ctx.Err() != nil {
				qerr.Err = ctx.Err()
				return nil, qerr
			}
			qerr.Err = err
			continue
		}
		switch in.Rcode {
		case dns.RcodeSuccess:
			return in.Answer, nil
		case dns.RcodeNameError:
			qerr.Err = ErrNoSuchDomain
			return nil, qerr
		default:
			qerr.Err = fmt.Errorf("the server answered %s", dns.RcodeToString[in.Rcode])
		}
	}
	return nil, qerr
}

// exchange asks server over UDP, and again over TCP if the answer came
// truncated (RFC 1035 §4.2.1, RFC 7766), both within timeout.
func exchange(ctx context.Context, m *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// miekg/dns's own timeouts, 2 s each for dialing, writing and
	// reading, give way to the context's.
	c := &dns.Client{Net: "udp", UDPSize: udpSize, Timeout: timeout}
	in, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && !in.Truncated {
		return in, nil
	}
	if err != nil && (in == nil || !in.Truncated) {
		// A truncated answer may not unpack whole: it is asked again.
		return nil, timedOut(err, timeout)
	}
	c = &dns.Client{Net: "tcp", Timeout: timeout}
	in, _, err = c.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, fmt.Errorf("over tcp, after a truncated answer: %w", timedOut(err, timeout))
	}
	return in, nil
}

// timedOut says so of an I/O timeout, recognisable with errors.Is as
// context.DeadlineExceeded.
func timedOut(err error, timeout time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v: %w", timeout, context.DeadlineExceeded)
	}
	return err
}

// TXT returns name's TXT records, each one's strings joined with
// nothing between them (RFC 7208 §3.3, RFC 6376 §3.6.2.2). A name that
// does not exist has none.
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeTXT)
	if errors.Is(err, ErrNoSuchDomain) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			var b strings.Builder
			for _, s := range t.Txt {
				b.WriteString(unescape(s))
			}
			out = append(out, b.String())
		}
	}
	return out, nil
}

// MX is one mail exchanger.
type MX struct {
	Host string // with its final dot; "." for a null MX (RFC 7505)
	Pref uint16
}

// MX returns name's MX records; a name that does not exist is a
// *QueryError wrapping ErrNoSuchDomain.
func (r *Resolver) MX(ctx context.Context, name string) ([]MX, error) {
	rrs, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []MX
	for _, rr := range rrs {
		if mx, ok := rr.(*dns.MX); ok {
			out = append(out, MX{Host: mx.Mx, Pref: mx.Preference})
		}
	}
	return out, nil
}

// unescape returns the octets of a character-string as miekg/dns holds
// it, in a zone file's form: \DDD for an octet outside printable ASCII,
// \" and \\ for a quote and a backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		if i+3 < len(s) && isDigits(s[i+1:i+4]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n <= 255 {
				b = append(b, byte(n))
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}
