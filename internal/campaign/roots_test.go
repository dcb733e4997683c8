package campaign

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/imaptest"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// fakeSystem stands in for the system's CAs: the pool it gives (empty for
// nil), and how often it was asked.
type fakeSystem struct {
	ca    *smtptest.CA
	calls atomic.Int32
}

func (s *fakeSystem) roots() (*x509.CertPool, error) {
	s.calls.Add(1)
	if s.ca == nil {
		return x509.NewCertPool(), nil
	}
	return s.ca.Pool(), nil
}

// caPEM is ca's certificate as a ca_file holds it.
func caPEM(ca *smtptest.CA) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate().Raw}))
}

func newCA(t *testing.T, name string) *smtptest.CA {
	t.Helper()
	ca, err := smtptest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestDeliverCAFileFirst: with ca_file, a server that its CA signed is
// trusted without the system's CAs ever loaded; one signed by a CA of
// the system's only is trusted on a second connection, the system's CAs
// loaded once and trusted from the start by every later connection; one
// signed by neither is refused as before, saying to give its CA in
// ca_file, once the system's were tried too.
func TestDeliverCAFileFirst(t *testing.T) {
	serverCA, otherCA := newCA(t, "the server's CA"), newCA(t, "another CA")
	cert, err := serverCA.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		caFile  *smtptest.CA // ca_file's CA
		system  *smtptest.CA // the system's
		sent    bool
		loaded  int32 // the system's CAs
		refused int   // connections before one went on
	}{
		{"ca_file's CA", serverCA, otherCA, true, 0, 0},
		{"a CA of the system's", otherCA, serverCA, true, 1, 1},
		{"neither", otherCA, nil, false, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.StartTLS(cert))
			smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"starttls\"\nretries = 0\nmax_per_connection = 1\nca_file = \"ca.pem\"\n", srv.Host(), srv.Port())
			c := newCampaign(t, listOf(faultList[:3]), "# Hello {{.name}}!\n", smtp, map[string]string{"ca.pem": caPEM(tc.caFile)})
			sys := &fakeSystem{ca: tc.system}
			c.SMTP.systemRoots = sys.roots
			var debug strings.Builder
			rep, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now}, Debug: &debug})
			if n := sys.calls.Load(); n != tc.loaded {
				t.Errorf("the system's CAs loaded %d times, want %d", n, tc.loaded)
			}
			conns := srv.Conns()
			if !tc.sent {
				var ce *deliver.ConnError
				var unknown x509.UnknownAuthorityError
				hint := fmt.Sprintf("give its CA certificate in [smtp] ca_file (%s:", c.Path)
				if !errors.As(err, &ce) || ce.Hint != deliver.HintUntrusted || !errors.As(err, &unknown) || !strings.Contains(err.Error(), hint) {
					t.Errorf("Deliver: %v, want the certificate untrusted, saying %q", err, hint)
				}
				if len(conns) != tc.refused || len(srv.Delivered()) != 0 {
					t.Errorf("%d connections, %d delivered; want %d refused, nothing sent", len(conns), len(srv.Delivered()), tc.refused)
				}
				if strings.Contains(debug.String(), "certificate verified") {
					t.Errorf("the transcript says a certificate was verified:\n%s", debug.String())
				}
				return
			}
			if err != nil || rep.List[Sent] != 3 || len(srv.Delivered()) != 3 {
				t.Fatalf("Deliver: %v, List %v, delivered %v; want the 3 sent", err, rep.List, srv.Delivered())
			}
			if len(conns) != 3+tc.refused {
				t.Errorf("%d connections, want %d refused and 3, one a message", len(conns), tc.refused)
			}
			log := debug.String()
			if n := strings.Count(log, "certificate verified for 127.0.0.1"); n != 3 {
				t.Errorf("the transcript says %d certificates verified, want 3:\n%s", n, log)
			}
			if n := strings.Count(log, "against the system's too"); n != tc.refused {
				t.Errorf("the transcript says %d second tries, want %d:\n%s", n, tc.refused, log)
			}
		})
	}
}

// TestBouncesIMAPCAFileFirst: the bounce mailbox's ca_file is trusted as
// [smtp]'s, by the same code: its CA alone first, then with the system's.
// A certificate for another host is refused at once, as the system's CAs
// can't change that.
func TestBouncesIMAPCAFileFirst(t *testing.T) {
	otherCA := newCA(t, "another CA")
	for _, sec := range []imaptest.Security{imaptest.ImplicitTLS, imaptest.StartTLS} {
		for _, tc := range []struct {
			name   string
			host   string
			other  bool // ca_file holds another CA than the server's
			system bool // the system's CAs have the server's
			ok     bool
			loaded int32
			dials  int
		}{
			{"ca_file's CA", "imap.example.org", false, false, true, 0, 1},
			{"a CA of the system's", "imap.example.org", true, true, true, 1, 2},
			{"neither", "imap.example.org", true, false, false, 1, 2},
			{"another host", "other.example.org", false, true, false, 0, 1},
		} {
			scheme := map[imaptest.Security]string{imaptest.ImplicitTLS: "imaps", imaptest.StartTLS: "imap"}[sec]
			t.Run(scheme+"/"+tc.name, func(t *testing.T) {
				s := imaptest.Start(t, imaptest.Options{Username: "bounces", Password: "s3cret", Security: sec,
					Folders: []string{"Processed"}, Names: []string{"imap.example.org"}})
				url := scheme + "://bounces@" + tc.host + "/INBOX"
				c := imapCampaignAt(t, s, url, "Processed")
				var dials atomic.Int32
				c.Bounce.dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
					dials.Add(1)
					var d net.Dialer
					return d.DialContext(ctx, network, s.Addr())
				}
				if tc.other {
					c.Bounce.CAFile = filepath.Join(t.TempDir(), "other-ca.pem")
					if err := os.WriteFile(c.Bounce.CAFile, []byte(caPEM(otherCA)), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				sys := &fakeSystem{}
				if tc.system {
					sys.ca = s.CA()
				}
				c.Bounce.systemRoots = sys.roots
				rep, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()})
				if n := sys.calls.Load(); n != tc.loaded {
					t.Errorf("the system's CAs loaded %d times, want %d", n, tc.loaded)
				}
				if n := int(dials.Load()); n != tc.dials {
					t.Errorf("%d connections, want %d", n, tc.dials)
				}
				if tc.ok {
					if err != nil || rep.Added != 3 {
						t.Errorf("Bounces: %+v, %v; want 3 added", rep, err)
					}
					return
				}
				var unknown x509.UnknownAuthorityError
				var host x509.HostnameError
				if tc.host == "imap.example.org" && !errors.As(err, &unknown) || tc.host != "imap.example.org" && !errors.As(err, &host) || !strings.Contains(err.Error(), "[bounces] ca_file") {
					t.Errorf("Bounces: %v, want the certificate refused, saying [bounces] ca_file", err)
				}
				if got := s.Status(t, "Processed"); got != "0 messages, 0 unseen" {
					t.Errorf("Processed has %s, want nothing", got)
				}
			})
		}
	}
}
