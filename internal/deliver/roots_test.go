package deliver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// system is a stand-in for the system's CAs: the pool it gives, and how
// often Roots asked for it.
type system struct {
	pool  func() *x509.CertPool
	calls atomic.Int32
}

func (s *system) load() (*x509.CertPool, error) {
	s.calls.Add(1)
	return s.pool(), nil
}

// rootsConfig is ts.config trusting, instead of RootCAs, the test CA as a
// ca_file gives it and sys as the system's CAs; and its transcript, which
// the connections write under the sender's lock.
func rootsConfig(t *testing.T, ts *testServer, sec Security, sys *system) (SMTPConfig, *bytes.Buffer) {
	t.Helper()
	cfg := ts.config(t, sec)
	cfg.RootCAs = nil
	roots, ok := NewRoots(certs(t).rootsPEM, sys.load)
	if !ok {
		t.Fatal("NewRoots: no certificate in the test CA's PEM")
	}
	cfg.Roots = roots
	debug := &bytes.Buffer{}
	cfg.Debug = debug
	return cfg, debug
}

// secured counts the connections whose TLS handshake succeeded: those
// with a session in TLS.
func secured(conns []smtptest.Conn) int {
	n := 0
	for _, c := range conns {
		for _, h := range c.Hellos {
			if h.TLS {
				n++
				break
			}
		}
	}
	return n
}

const retryNote = "connecting again, to verify it against the system's too"

// TestRootsOwnCA: a server that ca_file's CA signed is verified against
// it alone, and the system's CAs are never loaded.
func TestRootsOwnCA(t *testing.T) {
	for _, sec := range []Security{StartTLS, ImplicitTLS} {
		t.Run(sec.String(), func(t *testing.T) {
			ts := startServer(t, serverOpts{cert: &certs(t).good, implicit: sec == ImplicitTLS, mechs: []string{"PLAIN"}})
			sys := &system{pool: x509.NewCertPool}
			cfg, debug := rootsConfig(t, ts, sec, sys)
			cfg.Host = "localhost"
			cfg.MaxPerConnection = 1
			msgs := testMessages(3)
			s, o := sendAll(t, cfg, msgs)
			o.allSent(t, msgs)
			if n := sys.calls.Load(); n != 0 {
				t.Errorf("the system's CAs loaded %d times, want never", n)
			}
			conns, got := ts.snapshot()
			if len(conns) != 3 || s.Dials() != 3 || secured(conns) != 3 {
				t.Errorf("%d connections (%d in TLS), %d dials; want 3, one a message, each verified at once", len(conns), secured(conns), s.Dials())
			}
			deliveredOnce(t, got, msgs)
			if n := strings.Count(debug.String(), "certificate verified for localhost"); n != 3 || strings.Contains(debug.String(), retryNote) {
				t.Errorf("transcript: %d connections verified, want 3 and no second try:\n%s", n, debug)
			}
		})
	}
}

// TestRootsNeither: a server signed by a CA in neither ca_file nor the
// system is refused as before, as untrusted, once the system's CAs were
// tried too, and nothing is said to it.
func TestRootsNeither(t *testing.T) {
	for _, tc := range []struct {
		sec  Security
		step string
	}{{StartTLS, "starttls"}, {ImplicitTLS, "tls"}} {
		t.Run(tc.sec.String(), func(t *testing.T) {
			ts := startServer(t, serverOpts{cert: &certs(t).untrusted, implicit: tc.sec == ImplicitTLS, mechs: []string{"PLAIN"}})
			sys := &system{pool: x509.NewCertPool}
			cfg, debug := rootsConfig(t, ts, tc.sec, sys)
			ce := dialFails(t, cfg, tc.step)
			var unknown x509.UnknownAuthorityError
			if !errors.As(ce, &unknown) {
				t.Errorf("error %v is not an x509.UnknownAuthorityError", ce.Err)
			}
			if ce.Hint != HintUntrusted {
				t.Errorf("hint %q, want HintUntrusted: the CA certificate to trust", ce.Hint)
			}
			if n := sys.calls.Load(); n != 1 {
				t.Errorf("the system's CAs loaded %d times, want once, for the second try", n)
			}
			conns := nothingSent(t, ts)
			if len(conns) != 2 || secured(conns) != 0 {
				t.Errorf("%d connections (%d in TLS), want 2 refused: ca_file's CA, then with the system's", len(conns), secured(conns))
			}
			if n := strings.Count(debug.String(), retryNote); n != 1 || strings.Contains(debug.String(), "certificate verified") {
				t.Errorf("transcript: %d second tries, want 1, and no certificate verified:\n%s", n, debug)
			}
		})
	}
}

// TestRootsWrongHost: ca_file's CA signed the certificate, but for
// another host: refused at once, without the system's CAs, which can't
// change that.
func TestRootsWrongHost(t *testing.T) {
	for _, tc := range []struct {
		sec  Security
		step string
	}{{StartTLS, "starttls"}, {ImplicitTLS, "tls"}} {
		t.Run(tc.sec.String(), func(t *testing.T) {
			ts := startServer(t, serverOpts{cert: &certs(t).otherHost, implicit: tc.sec == ImplicitTLS, mechs: []string{"PLAIN"}})
			sys := &system{pool: certs(t).other.Pool}
			cfg, _ := rootsConfig(t, ts, tc.sec, sys)
			cfg.Host = "localhost"
			ce := dialFails(t, cfg, tc.step)
			var host x509.HostnameError
			if !errors.As(ce, &host) {
				t.Errorf("error %v is not an x509.HostnameError", ce.Err)
			}
			if ce.Hint != HintCertHost {
				t.Errorf("hint %q, want HintCertHost: the host to check", ce.Hint)
			}
			if n := sys.calls.Load(); n != 0 {
				t.Errorf("the system's CAs loaded %d times, want never", n)
			}
			if conns := nothingSent(t, ts); len(conns) != 1 {
				t.Errorf("%d connections, want 1", len(conns))
			}
		})
	}
}

// TestRootsSystemCA: a server signed by a CA of the system's, not
// ca_file's, is trusted on a second try, and every later connection
// trusts the system's CAs from the start, loaded once.
func TestRootsSystemCA(t *testing.T) {
	for _, sec := range []Security{StartTLS, ImplicitTLS} {
		t.Run(sec.String(), func(t *testing.T) {
			ts := startServer(t, serverOpts{cert: &certs(t).untrusted, implicit: sec == ImplicitTLS, mechs: []string{"PLAIN"}})
			sys := &system{pool: certs(t).other.Pool}
			cfg, debug := rootsConfig(t, ts, sec, sys)
			cfg.Host = "localhost"
			cfg.MaxPerConnection = 1
			msgs := testMessages(3)
			s, o := sendAll(t, cfg, msgs)
			o.allSent(t, msgs)
			if n := sys.calls.Load(); n != 1 {
				t.Errorf("the system's CAs loaded %d times, want once", n)
			}
			conns, got := ts.snapshot()
			if len(conns) != 4 || secured(conns) != 3 || s.Dials() != 3 {
				t.Errorf("%d connections (%d in TLS), %d dials; want 4: one refused, then 3 verified at once", len(conns), secured(conns), s.Dials())
			}
			if len(conns) > 0 && secured(conns[:1]) != 0 {
				t.Errorf("the first connection went on in TLS, want it refused, ca_file's CA alone tried")
			}
			deliveredOnce(t, got, msgs)
			log := debug.String()
			if n := strings.Count(log, retryNote); n != 1 || !strings.Contains(log, "x509: certificate signed by unknown authority") {
				t.Errorf("transcript: %d second tries, want 1, saying why:\n%s", n, log)
			}
			if n := strings.Count(log, "certificate verified for localhost"); n != 3 {
				t.Errorf("transcript: %d connections verified, want 3:\n%s", n, log)
			}
		})
	}
}

// TestRootsSystemCAConnections: connections that open at once share what
// one learnt: each is verified, the system's CAs loaded once.
func TestRootsSystemCAConnections(t *testing.T) {
	ts := startServer(t, serverOpts{cert: &certs(t).untrusted, mechs: []string{"PLAIN"}})
	sys := &system{pool: certs(t).other.Pool}
	cfg, _ := rootsConfig(t, ts, StartTLS, sys)
	cfg.Connections = 4
	cfg.MaxPerConnection = 2
	msgs := testMessages(16)
	s, o := sendAll(t, cfg, msgs)
	o.allSent(t, msgs)
	if n := sys.calls.Load(); n != 1 {
		t.Errorf("the system's CAs loaded %d times, want once", n)
	}
	conns, got := ts.snapshot()
	if secured(conns) != s.Dials() || len(conns) != s.Dials()+1 {
		t.Errorf("%d connections, %d in TLS, %d dials; want one refused, the first, and the others verified at once", len(conns), secured(conns), s.Dials())
	}
	deliveredOnce(t, got, msgs)
}

// TestRootsRetry: which failures a second try with the system's CAs could
// change.
func TestRootsRetry(t *testing.T) {
	roots, ok := NewRoots(certs(t).rootsPEM, func() (*x509.CertPool, error) { return x509.NewCertPool(), nil })
	if !ok {
		t.Fatal("NewRoots: no certificate in the test CA's PEM")
	}
	leaf, ca := certs(t).untrusted.Leaf, certs(t).other.Certificate()
	verify := func(err error) error {
		return &tls.CertificateVerificationError{UnverifiedCertificates: []*x509.Certificate{leaf, ca}, Err: err}
	}
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
	}{
		{"unknown authority", verify(x509.UnknownAuthorityError{Cert: leaf}), true},
		{"as a ConnError", &ConnError{Step: "tls", Err: fmt.Errorf("starttls: %w", verify(x509.UnknownAuthorityError{Cert: leaf}))}, true},
		{"an expired CA", verify(x509.CertificateInvalidError{Cert: ca, Reason: x509.Expired}), true},
		{"a CA not for this name", verify(x509.CertificateInvalidError{Cert: leaf, Reason: x509.CANotAuthorizedForThisName}), true},
		{"not for servers", verify(x509.CertificateInvalidError{Cert: leaf, Reason: x509.IncompatibleUsage}), true},
		{"another host", verify(x509.HostnameError{Certificate: leaf, Host: "localhost"}), false},
		{"expired", verify(x509.CertificateInvalidError{Cert: leaf, Reason: x509.Expired}), false},
		{"not a certificate's", &ConnError{Step: "connect", Err: errors.New("connection refused")}, false},
		{"no error", nil, false},
	} {
		if _, got := roots.Retry(roots.own, tc.err); got != tc.retry {
			t.Errorf("%s: Retry %v, want %v", tc.name, got, tc.retry)
		}
	}
	// Tried again already, with both: no third try.
	both := roots.Pool()
	if both == roots.own {
		t.Fatal("Pool after a retry is ca_file's alone, want the system's too")
	}
	if _, again := roots.Retry(both, verify(x509.UnknownAuthorityError{Cert: leaf})); again {
		t.Error("Retry with the system's CAs already: true, want false")
	}
	var none *Roots
	if pool, again := none.Retry(nil, verify(x509.UnknownAuthorityError{Cert: leaf})); none.Pool() != nil || pool != nil || again {
		t.Error("a nil *Roots: want the system's pool (nil) and no retry")
	}
	if _, ok := NewRoots([]byte("not PEM"), nil); ok {
		t.Error("NewRoots of no certificate: ok, want not")
	}
}
