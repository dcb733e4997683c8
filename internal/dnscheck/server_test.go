package dnscheck

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// zone is a DNS server's records, answered as an authoritative server
// would: the records of the name and type asked, NXDOMAIN for a name
// that has none of any type.
type zone struct {
	rrs  []dns.RR
	tcp  atomic.Int32 // queries over TCP
	asks atomic.Int32 // queries in all
}

// newZone parses records written as in a zone file.
func newZone(t testing.TB, lines ...string) *zone {
	t.Helper()
	z := &zone{}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		z.rrs = append(z.rrs, rr)
	}
	return z
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	z.asks.Add(1)
	if w.RemoteAddr().Network() == "tcp" {
		z.tcp.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(req)
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

// serve runs h on a loopback port, UDP and TCP, until the test ends,
// and returns its address.
func serve(t testing.TB, h dns.Handler) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
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
		t.Cleanup(func() {
			udp.Shutdown()
			tcp.Shutdown()
		})
		return pc.LocalAddr().String()
	}
	t.Fatal("no loopback port free for UDP and TCP both")
	return ""
}

// resolverFor returns a resolver that asks only h.
func resolverFor(t testing.TB, h dns.Handler) *Resolver {
	t.Helper()
	r, err := NewResolver(serve(t, h))
	if err != nil {
		t.Fatal(err)
	}
	r.Timeout = 5 * time.Second
	return r
}
