package deliver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync"
	"sync/atomic"
)

// Roots are the certificate authorities a server's certificate may be
// signed by: the system's and some of one's own (a campaign's ca_file).
// The system's are the dear part: x509.SystemCertPool parses every root
// the system has, tens of milliseconds before the first connection. So a
// server is verified against one's own CAs first and, only when that
// fails, on a connection opened anew, against the system's and one's own
// together, a pool made once. crypto/tls verifies in full every time
// (chain, host name, expiry, the server's key usage); one's own CAs alone
// trust less than both, never more, so what they accept both would have.
// Once one's own failed, every later connection is verified against both
// from the start: a relay whose certificate is a public CA's costs one
// connection more, once.
//
// A nil *Roots trusts the system's CAs alone. Its methods are safe for use
// by several goroutines.
type Roots struct {
	own  *x509.CertPool
	both func() *x509.CertPool // the system's and one's own, made once
	wide atomic.Bool           // one's own failed once: both from then on
}

// NewRoots trusts the system's CAs, which system returns (nil for
// x509.SystemCertPool; a pool of its own, which Roots adds to), and the
// certificates of pem; ok is false when pem holds none. A system that
// can't give its CAs leaves pem's alone.
func NewRoots(pem []byte, system func() (*x509.CertPool, error)) (r *Roots, ok bool) {
	own := x509.NewCertPool()
	if !own.AppendCertsFromPEM(pem) {
		return nil, false
	}
	if system == nil {
		system = x509.SystemCertPool
	}
	return &Roots{own: own, both: sync.OnceValue(func() *x509.CertPool {
		pool, err := system()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(pem)
		return pool
	})}, true
}

// Pool is the pool to verify the next connection's server against (a
// tls.Config's RootCAs): one's own CAs, or both once one's own failed; nil
// (the system's) for a nil *Roots.
func (r *Roots) Pool() *x509.CertPool {
	switch {
	case r == nil:
		return nil
	case r.wide.Load():
		return r.both()
	}
	return r.own
}

// Retry says whether a connection that failed with err, its server
// verified against pool, is to be opened again, verified against the
// system's CAs and one's own, and returns that pool. It is so when pool
// was one's own and the certificate failed for a reason that more CAs
// could change: no chain to a trusted CA, or one through a CA that is
// expired, constrained or not for servers; not the certificate's host
// name or its own expiry, which x509 checks before it looks for a chain.
// From then on, Pool gives both.
func (r *Roots) Retry(pool *x509.CertPool, err error) (*x509.CertPool, bool) {
	var cve *tls.CertificateVerificationError
	if r == nil || pool != r.own || !errors.As(err, &cve) || leafOnly(cve) {
		return nil, false
	}
	r.wide.Store(true)
	return r.both(), true
}

// leafOnly says whether a certificate failed for what it says of itself,
// whatever the CAs: a host name it isn't for, or its expiry.
func leafOnly(cve *tls.CertificateVerificationError) bool {
	var host x509.HostnameError
	if errors.As(cve.Err, &host) {
		return true
	}
	var invalid x509.CertificateInvalidError
	return errors.As(cve.Err, &invalid) && invalid.Reason == x509.Expired &&
		len(cve.UnverifiedCertificates) > 0 && invalid.Cert == cve.UnverifiedCertificates[0]
}
