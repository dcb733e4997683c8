package deliver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// This file holds what the SMTP tests share: certificates made on the fly,
// an smtptest server that logs in as testUser, and a collector of the
// outcomes a Sender reports.

const (
	testHELO = "batch.example"
	// "\x00" + testUser + "\x00" is not a multiple of 3 bytes long, so the
	// base64 of the password does not show inside AUTH PLAIN's argument.
	testUser = "mailer@example.org"
	testPass = "correct horse battery staple"
)

// testPKI is a CA that the tests trust, one they don't, and certificates
// for the server.
type testPKI struct {
	roots     *x509.CertPool // holds only the trusted CA
	rootsPEM  []byte         // the trusted CA, as a ca_file holds it
	other     *smtptest.CA   // the CA that is not trusted
	good      tls.Certificate
	untrusted tls.Certificate // localhost and 127.0.0.1, by the other CA
	otherHost tls.Certificate // mail.example.org, by the trusted CA
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

func certs(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = newTestPKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

func newTestPKI() (*testPKI, error) {
	trusted, err := smtptest.NewCA("batch test CA")
	if err != nil {
		return nil, err
	}
	other, err := smtptest.NewCA("someone else's CA")
	if err != nil {
		return nil, err
	}
	p := &testPKI{roots: trusted.Pool(), rootsPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: trusted.Certificate().Raw}), other: other}
	if p.good, err = trusted.Issue("localhost", "127.0.0.1", "::1"); err != nil {
		return nil, err
	}
	if p.untrusted, err = other.Issue("localhost", "127.0.0.1", "::1"); err != nil {
		return nil, err
	}
	if p.otherHost, err = trusted.Issue("mail.example.org"); err != nil {
		return nil, err
	}
	return p, nil
}

// serverOpts configures a test server.
type serverOpts struct {
	cert     *tls.Certificate // nil: no TLS at all (STARTTLS not offered)
	implicit bool             // TLS from the first byte instead of STARTTLS
	mechs    []string         // AUTH mechanisms offered ("PLAIN", "LOGIN"), required, as testUser; none: no AUTH
	password string           // testPass by default
	more     []smtptest.Option
}

// testServer is an smtptest server, with the login it takes.
type testServer struct {
	*smtptest.Server
	auth *smtptest.Auth
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	ts := &testServer{}
	var opts []smtptest.Option
	switch {
	case o.cert != nil && o.implicit:
		opts = append(opts, smtptest.ImplicitTLS(*o.cert))
	case o.cert != nil:
		opts = append(opts, smtptest.StartTLS(*o.cert))
	}
	if len(o.mechs) > 0 {
		ts.auth = &smtptest.Auth{Username: testUser, Password: cmp.Or(o.password, testPass), Mechanisms: o.mechs}
		opts = append(opts, smtptest.WithAuth(*ts.auth))
	}
	ts.Server = smtptest.Start(t, append(opts, o.more...)...)
	return ts
}

// snapshot returns what the server saw of each connection, and the
// messages it accepted.
func (ts *testServer) snapshot() ([]smtptest.Conn, []smtptest.Message) {
	return ts.Conns(), ts.Messages()
}

// verbs returns the first word of each command, upper-cased.
func verbs(cmds []string) []string {
	var vs []string
	for _, c := range cmds {
		v, _, _ := strings.Cut(c, " ")
		vs = append(vs, strings.ToUpper(v))
	}
	return vs
}

// outcomes collects what a Sender reports through done callbacks.
type outcomes struct {
	mu    sync.Mutex
	errs  map[string]error // by recipient
	calls map[string]int
	ch    chan string
}

func newOutcomes() *outcomes {
	return &outcomes{errs: map[string]error{}, calls: map[string]int{}, ch: make(chan string, 1024)}
}

// done returns the callback for m.
func (o *outcomes) done(m *render.Message) DoneFunc {
	return func(err error) {
		o.mu.Lock()
		o.errs[m.To] = err
		o.calls[m.To]++
		o.mu.Unlock()
		o.ch <- m.To
	}
}

// wait waits for m's outcome and returns it.
func (o *outcomes) wait(t testing.TB, m *render.Message) error {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		o.mu.Lock()
		err, ok := o.errs[m.To]
		o.mu.Unlock()
		if ok {
			return err
		}
		select {
		case <-o.ch:
		case <-timeout:
			t.Fatalf("no outcome for %s", m.To)
		}
	}
}

// allSent checks, as check does, that each of msgs was told once, and
// that none failed.
func (o *outcomes) allSent(t testing.TB, msgs []*render.Message) {
	t.Helper()
	for to, err := range o.check(t, msgs) {
		if err != nil {
			t.Errorf("%s: %v", to, err)
		}
	}
}

// check verifies that every message had its done called exactly once and
// returns the outcome of each, by recipient.
func (o *outcomes) check(t testing.TB, msgs []*render.Message) map[string]error {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range msgs {
		if n := o.calls[m.To]; n != 1 {
			t.Errorf("done for %s called %d times, want once", m.To, n)
		}
	}
	if len(o.calls) != len(msgs) {
		t.Errorf("done called for %d recipients, sent %d", len(o.calls), len(msgs))
	}
	out := make(map[string]error, len(o.errs))
	for k, v := range o.errs {
		out[k] = v
	}
	return out
}

// testMessage returns a message for the n-th recipient, about size bytes
// long (at least a few hundred), with CRLF line ends.
func testMessage(n, size int) *render.Message {
	to := fmt.Sprintf("reader%03d@example.net", n)
	from := "news@example.org"
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Example News <%s>\r\nTo: <%s>\r\nSubject: Issue %d\r\n", from, to, n)
	fmt.Fprintf(&b, "Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <%d.test@example.org>\r\n", n)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	fmt.Fprintf(&b, "Hello reader %d,\r\n.a line that starts with a dot\r\n\r\n", n)
	b.WriteString("--b1\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	// Deterministic bytes that look like base64, 76 to a line.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	x := uint32(n*2654435761 + 1)
	line := make([]byte, 76)
	for b.Len() < size-100 {
		for i := range line {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			line[i] = alphabet[x%64]
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	b.WriteString("--b1--\r\n")
	return &render.Message{Seq: n, ID: fmt.Sprintf("%d.test@example.org", n), From: from, To: to, Data: b.Bytes()}
}

func testMessages(n int) []*render.Message {
	msgs := make([]*render.Message, n)
	for i := range msgs {
		msgs[i] = testMessage(i+1, 2000)
	}
	return msgs
}

// ways are the ways batch sends a message, after the server's offer: the
// test server offers PIPELINING and CHUNKING; Mailpit, in the end-to-end
// test, neither.
var ways = []struct {
	name    string
	without []string
}{
	{"chunked", nil},
	{"pipelined", []string{"CHUNKING"}},
	{"classic", []string{"PIPELINING", "CHUNKING"}},
}

// config returns an SMTPConfig for ts, trusting the test CA, that logs in
// when ts offers AUTH.
func (ts *testServer) config(t testing.TB, sec Security) SMTPConfig {
	cfg := SMTPConfig{
		Host:     ts.Host(),
		Port:     ts.Port(),
		Security: sec,
		RootCAs:  certs(t).roots,
		HELO:     testHELO,
		Timeout:  5 * time.Second,
	}
	if ts.auth != nil {
		cfg.Username, cfg.Password = ts.auth.Username, ts.auth.Password
	}
	return cfg
}

// sendEach sends msgs one at a time through a new SMTP sender, each
// waited for, then after(i), and closes it.
func sendEach(t testing.TB, cfg SMTPConfig, msgs []*render.Message, after func(i int)) (*SMTP, *outcomes) {
	t.Helper()
	ctx := context.Background()
	s, err := DialSMTP(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	for i, m := range msgs {
		if err := s.Send(ctx, m, o.done(m)); err != nil {
			t.Fatal(err)
		}
		if err := o.wait(t, m); err != nil {
			t.Errorf("%s: %v", m.To, err)
		}
		after(i)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return s, o
}

// sendAll sends msgs through a new SMTP sender and closes it.
func sendAll(t testing.TB, cfg SMTPConfig, msgs []*render.Message) (*SMTP, *outcomes) {
	t.Helper()
	ctx := context.Background()
	s, err := DialSMTP(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSMTP: %v", err)
	}
	o := newOutcomes()
	for _, m := range msgs {
		if err := s.Send(ctx, m, o.done(m)); err != nil {
			t.Fatalf("Send %s: %v", m.To, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return s, o
}

// deliveredOnce checks that the server accepted each of msgs exactly once,
// intact, and nothing else; it returns the server's records by recipient.
func deliveredOnce(t testing.TB, got []smtptest.Message, msgs []*render.Message) map[string]smtptest.Message {
	t.Helper()
	by := map[string]smtptest.Message{}
	count := map[string]int{}
	for _, r := range got {
		if len(r.To) != 1 {
			t.Errorf("a transaction had recipients %v, want one", r.To)
			continue
		}
		by[r.To[0]] = r
		count[r.To[0]]++
	}
	for _, m := range msgs {
		switch n := count[m.To]; {
		case n == 0:
			t.Errorf("%s: not delivered", m.To)
		case n > 1:
			t.Errorf("%s: delivered %d times", m.To, n)
		case !bytes.Equal(by[m.To].Data, m.Data):
			t.Errorf("%s: the server got %d bytes that differ from the %d sent", m.To, len(by[m.To].Data), len(m.Data))
		}
		delete(count, m.To)
	}
	for to := range count {
		t.Errorf("%s: delivered but never sent", to)
	}
	return by
}
