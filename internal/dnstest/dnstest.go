// Package dnstest provides a DNS server for the tests of batch's DNS
// checks, as smtptest does for SMTP: a non-test package that only tests
// import.
//
// A Zone answers as an authoritative server would, from records written
// as in a zone file: the records of the name and type asked, no answer
// (NOERROR) for a name that has records of other types only, and
// NXDOMAIN for a name that has none. Start serves a handler on a
// loopback port over UDP and TCP both.
package dnstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Zone is a DNS server's records.
type Zone struct {
	rrs []dns.RR
}

// ParseZone reads records written as in a zone file (RFC 1035 §5):
// names fully qualified or relative to a $ORIGIN, with or without a TTL.
// name is the file's, for errors.
func ParseZone(name string, r io.Reader) (*Zone, error) {
	z := &Zone{}
	zp := dns.NewZoneParser(r, "", name)
	zp.SetDefaultTTL(300)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		z.rrs = append(z.rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	return z, nil
}

// ServeDNS answers a query from the zone's records.
func (z *Zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	exists := false
	for _, rr := range z.rrs {
		h := rr.Header()
		if !strings.EqualFold(h.Name, q.Name) {
			continue
		}
		exists = true
		if h.Rrtype == q.Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// Start serves h on a loopback port, over UDP and TCP, until stop is
// called, and returns its address (host:port).
func Start(h dns.Handler) (addr string, stop func(), err error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close() // the TCP port is taken: another
			continue
		}
		started := make(chan struct{}, 2)
		notify := func() { started <- struct{}{} }
		udp := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
		tcp := &dns.Server{Listener: l, Handler: h, NotifyStartedFunc: notify}
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		<-started
		<-started
		stop := func() {
			udp.Shutdown()
			tcp.Shutdown()
		}
		return pc.LocalAddr().String(), stop, nil
	}
	return "", nil, errors.New("dnstest: no loopback port free for UDP and TCP both")
}

// Serve is Start for a test: the server stops when the test ends.
func Serve(t testing.TB, h dns.Handler) string {
	t.Helper()
	addr, stop, err := Start(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

// MustParseZone is ParseZone of records, a line each, for a test.
func MustParseZone(t testing.TB, lines ...string) *Zone {
	t.Helper()
	z, err := ParseZone(t.Name(), strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		t.Fatal(fmt.Errorf("zone: %w", err))
	}
	return z
}
