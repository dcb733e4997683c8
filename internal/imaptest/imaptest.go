// Package imaptest provides an IMAP server for the tests of IMAP clients,
// as smtptest does for SMTP: a non-test package that only tests import.
//
// Start starts go-imap v2's in-memory server (imapmemserver) on 127.0.0.1
// for one user, with INBOX and the folders the test names, over TLS with a
// certificate of a CA made in the test (smtptest.NewCA), over plain text
// offering STARTTLS with that certificate, or over plain text without it
// (where the server takes a login in the clear, so that a test can tell
// that a client didn't send one). The test puts messages in its folders
// (Append) and reads back what a client left there: the counts
// (Status), each message's flags and text (Messages), and every byte the
// server read and wrote on the client's connections, decrypted
// (Transcript).
package imaptest

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// Security is how a client reaches the server.
type Security int

const (
	// ImplicitTLS speaks TLS from the first byte, as on port 993
	// (imaps://).
	ImplicitTLS Security = iota
	// StartTLS speaks plain text and offers STARTTLS, as on port 143
	// (imap://); the server refuses a login before it.
	StartTLS
	// Plain speaks plain text and offers no STARTTLS (a STARTTLS command
	// gets NO), and takes a login in the clear.
	Plain
)

// Options configure a server.
type Options struct {
	Username, Password string // the one user
	Security           Security
	// Caps are the capabilities offered (STARTTLS is added with
	// StartTLS); nil for IMAP4rev1 and MOVE.
	Caps imap.CapSet
	// Folders are made besides INBOX.
	Folders []string
	// Names are what the certificate is issued for, each a DNS name or an
	// IP address; nil for 127.0.0.1.
	Names []string
}

// Server is an IMAP server on 127.0.0.1 for tests. It stops at the test's
// Cleanup.
type Server struct {
	// User is the server's one user, for what the methods don't do.
	User *imapmemserver.User

	opts   Options
	addr   string
	peek   string // Messages' listener
	ca     *smtptest.CA
	caFile string
	tlsCfg *tls.Config
	log    transcript
}

// Start starts a server for o. Any failure is a fatal error of t, so Start
// must be called from the test's goroutine.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Username == "" || o.Password == "" {
		t.Fatal("imaptest: Options need a Username and a Password")
	}
	if o.Caps == nil {
		o.Caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}}
	}
	names := o.Names
	if len(names) == 0 {
		names = []string{"127.0.0.1"}
	}
	ca, err := smtptest.NewCA("imap test CA")
	if err != nil {
		t.Fatalf("imaptest: %v", err)
	}
	cert, err := ca.Issue(names...)
	if err != nil {
		t.Fatalf("imaptest: %v", err)
	}
	s := &Server{opts: o, ca: ca, tlsCfg: &tls.Config{Certificates: []tls.Certificate{cert}}}
	s.caFile = filepath.Join(t.TempDir(), "imap-ca.pem")
	if err := os.WriteFile(s.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate().Raw}), 0o600); err != nil {
		t.Fatalf("imaptest: %v", err)
	}

	mem := imapmemserver.New()
	s.User = imapmemserver.NewUser(o.Username, o.Password)
	for _, name := range append([]string{"INBOX"}, o.Folders...) {
		if err := s.User.Create(name, nil); err != nil {
			t.Fatalf("imaptest: creating %s: %v", name, err)
		}
	}
	mem.AddUser(s.User)
	so := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:        o.Caps,
		Logger:      quiet{},
		DebugWriter: &s.log,
	}
	var ln net.Listener
	switch o.Security {
	case ImplicitTLS:
		ln, err = tls.Listen("tcp", "127.0.0.1:0", s.tlsCfg)
	case StartTLS:
		so.TLSConfig = s.tlsCfg
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	case Plain:
		so.InsecureAuth = true
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	default:
		t.Fatalf("imaptest: unknown Security %d", o.Security)
	}
	if err != nil {
		t.Fatalf("imaptest: %v", err)
	}
	s.addr = ln.Addr().String()
	srv := imapserver.New(so)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// Messages' own server, on the same users and folders.
	peek, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("imaptest: %v", err)
	}
	s.peek = peek.Addr().String()
	psrv := imapserver.New(&imapserver.Options{NewSession: so.NewSession, Caps: o.Caps, Logger: quiet{}, InsecureAuth: true})
	go psrv.Serve(peek)
	t.Cleanup(func() { psrv.Close() })
	return s
}

// quiet is the server's logger: its errors are the client's, which the
// test sees.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// Addr is the address the server listens on, "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// CA is the CA that issued the server's certificate.
func (s *Server) CA() *smtptest.CA { return s.ca }

// CAFile is a PEM file of the CA's certificate, for a client's ca_file.
func (s *Server) CAFile() string { return s.caFile }

// Transcript is every byte the server read and wrote, of every connection,
// in the clear (after TLS), logins included.
func (s *Server) Transcript() string { return s.log.String() }

// literal is a message to append.
type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// Append puts text in folder, unflagged, and returns its UID.
func (s *Server) Append(t testing.TB, folder, text string) imap.UID {
	t.Helper()
	data, err := s.User.Append(folder, literal{bytes.NewReader([]byte(text))}, &imap.AppendOptions{})
	if err != nil {
		t.Fatalf("imaptest: appending to %s: %v", folder, err)
	}
	return data.UID
}

// Status is a folder's count of messages and of those without \Seen:
// "4 messages, 4 unseen".
func (s *Server) Status(t testing.TB, folder string) string {
	t.Helper()
	st, err := s.User.Status(folder, &imap.StatusOptions{NumMessages: true, NumUnseen: true})
	if err != nil {
		t.Fatalf("imaptest: %v", err)
	}
	return fmt.Sprintf("%d messages, %d unseen", *st.NumMessages, *st.NumUnseen)
}

// Message is a message of a folder, as Messages reads it.
type Message struct {
	UID   imap.UID
	Flags []imap.Flag
	Text  string // the whole message
}

// Messages reads every message of folder, in UID order, through a client
// of its own that logs in as the user and marks nothing seen, on a
// listener of the test's alone (plain text, not in the transcript).
func (s *Server) Messages(t testing.TB, folder string) []Message {
	t.Helper()
	c, err := imapclient.DialInsecure(s.peek, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatalf("imaptest: %v", err)
	}
	defer c.Close()
	if err := c.Login(s.opts.Username, s.opts.Password).Wait(); err != nil {
		t.Fatalf("imaptest: login: %v", err)
	}
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("imaptest: selecting %s: %v", folder, err)
	}
	var all imap.UIDSet
	all.AddRange(1, 0)
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("imaptest: fetching %s: %v", folder, err)
	}
	msgs := make([]Message, 0, len(bufs))
	for _, b := range bufs {
		msgs = append(msgs, Message{UID: b.UID, Flags: b.Flags, Text: string(b.FindBodySection(section))})
	}
	_ = c.Logout().Wait()
	return msgs
}

// transcript is the server's DebugWriter, which its connections share.
type transcript struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *transcript) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *transcript) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
