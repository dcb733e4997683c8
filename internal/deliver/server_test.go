package deliver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/batch-mailer/batch/internal/render"
)

// This file holds what the SMTP tests share: certificates made on the fly,
// an in-process go-smtp server that records everything it is told, and a
// collector of the outcomes a Sender reports.

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

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(name string) (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key}, nil
}

func (ca *testCA) issue(serial int64, dnsNames []string, ips []net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func newTestPKI() (*testPKI, error) {
	trusted, err := newCA("batch test CA")
	if err != nil {
		return nil, err
	}
	other, err := newCA("someone else's CA")
	if err != nil {
		return nil, err
	}
	p := &testPKI{roots: x509.NewCertPool()}
	p.roots.AddCert(trusted.cert)
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if p.good, err = trusted.issue(2, []string{"localhost"}, ips); err != nil {
		return nil, err
	}
	if p.untrusted, err = other.issue(3, []string{"localhost"}, ips); err != nil {
		return nil, err
	}
	if p.otherHost, err = trusted.issue(4, []string{"mail.example.org"}, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// serverOpts configures a test server.
type serverOpts struct {
	listen   string           // host to listen on; "127.0.0.1" by default
	cert     *tls.Certificate // nil: no TLS at all (STARTTLS not offered)
	implicit bool             // TLS from the first byte instead of STARTTLS
	mechs    []string         // AUTH mechanisms offered ("PLAIN", "LOGIN"); none: no AUTH
	password string           // testPass by default
	maxConns int              // more connections at once get 451 at EHLO; 0 for no limit
	busy     int              // the first busy EHLOs get 421 "too busy"
	noBDAT   bool             // offers CHUNKING, and refuses BDAT (502)

	// Hooks; a non-nil error is the server's reply. They run on the
	// connection's goroutine, after the transaction so far is recorded.
	mail func(c *connRecord, from string) error
	rcpt func(c *connRecord, to string) error
	data func(c *connRecord, to []string) error
}

// testServer is a go-smtp server on a random port that records what each
// connection carried.
type testServer struct {
	Host string
	Port int
	opts serverOpts
	srv  *smtp.Server

	mu        sync.Mutex
	conns     []*connRecord
	active    int
	maxActive int
	msgs      []received // every message the server accepted, in order
	errs      []string   // what go-smtp logged
}

// connRecord is one TCP connection, as the server saw it.
type connRecord struct {
	id       int
	raw      net.Conn
	in       bytes.Buffer // bytes read from the client; plain text until TLS starts
	hellos   []hello      // every go-smtp session: one per EHLO after connect or STARTTLS
	auths    []string     // usernames tried
	authed   bool
	mails    []string // MAIL FROM arguments the backend saw
	nested   int      // MAIL while a transaction was open (no RSET)
	accepted int      // messages accepted
	closed   bool
}

type hello struct {
	name string
	tls  bool
}

type received struct {
	conn int
	helo string
	tls  bool
	user string
	from string
	to   []string
	data []byte
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	if o.listen == "" {
		o.listen = "127.0.0.1"
	}
	if o.password == "" {
		o.password = testPass
	}
	ts := &testServer{Host: o.listen, opts: o}
	ts.srv = smtp.NewServer(ts)
	ts.srv.Domain = "mx.test"
	ts.srv.AllowInsecureAuth = o.cert == nil
	ts.srv.ErrorLog = log.New(logWriter{ts}, "", 0)
	ts.srv.ReadTimeout = 10 * time.Second
	ts.srv.WriteTimeout = 10 * time.Second
	var tlsConfig *tls.Config
	if o.cert != nil {
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{*o.cert}}
		ts.srv.TLSConfig = tlsConfig
	}
	l, err := net.Listen("tcp", net.JoinHostPort(o.listen, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Port = l.Addr().(*net.TCPAddr).Port
	var sl net.Listener = &countingListener{Listener: l, ts: ts}
	if o.implicit {
		sl = tls.NewListener(sl, tlsConfig)
	}
	go ts.srv.Serve(sl)
	t.Cleanup(func() { ts.srv.Close() })
	return ts
}

type logWriter struct{ ts *testServer }

func (w logWriter) Write(b []byte) (int, error) {
	w.ts.mu.Lock()
	defer w.ts.mu.Unlock()
	w.ts.errs = append(w.ts.errs, string(b))
	return len(b), nil
}

type countingListener struct {
	net.Listener
	ts *testServer
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ts := l.ts
	ts.mu.Lock()
	defer ts.mu.Unlock()
	rec := &connRecord{id: len(ts.conns) + 1}
	cc := &countedConn{Conn: c, ts: ts, rec: rec}
	rec.raw = cc
	ts.conns = append(ts.conns, rec)
	ts.active++
	ts.maxActive = max(ts.maxActive, ts.active)
	return cc, nil
}

// countedConn keeps a copy of what the client sent and counts the
// connection as open until either side closes it.
type countedConn struct {
	net.Conn
	ts   *testServer
	rec  *connRecord
	once sync.Once
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.ts.mu.Lock()
		c.rec.in.Write(b[:n])
		c.ts.mu.Unlock()
	}
	if err != nil {
		c.gone()
	}
	return n, err
}

func (c *countedConn) Close() error {
	c.gone()
	return c.Conn.Close()
}

func (c *countedConn) gone() {
	c.once.Do(func() {
		c.ts.mu.Lock()
		defer c.ts.mu.Unlock()
		c.ts.active--
		c.rec.closed = true
	})
}

// NewSession is called by go-smtp on the first EHLO of a connection, and
// again on the first EHLO after STARTTLS.
func (ts *testServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	rec := nc.(*countedConn).rec
	_, isTLS := c.TLSConnectionState()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.opts.busy > 0 {
		ts.opts.busy--
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too busy, try later"}
	}
	if ts.opts.maxConns > 0 {
		open := 0
		for _, other := range ts.conns {
			if !other.closed {
				open++
			}
		}
		if open > ts.opts.maxConns {
			return nil, errors.New("too many connections from your address")
		}
	}
	rec.hellos = append(rec.hellos, hello{name: c.Hostname(), tls: isTLS})
	rec.authed = false // a new session after STARTTLS must log in again
	return &testSession{ts: ts, rec: rec, helo: c.Hostname(), tls: isTLS}, nil
}

type testSession struct {
	ts   *testServer
	rec  *connRecord
	helo string
	tls  bool
	user string
	inTx bool
	from string
	to   []string
}

var _ smtp.AuthSession = (*testSession)(nil)

func (s *testSession) AuthMechanisms() []string { return s.ts.opts.mechs }

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	check := func(username, password string) error {
		s.ts.mu.Lock()
		defer s.ts.mu.Unlock()
		s.rec.auths = append(s.rec.auths, username)
		if username != testUser || password != s.ts.opts.password {
			return smtp.ErrAuthFailed
		}
		s.rec.authed = true
		s.user = username
		return nil
	}
	for _, m := range s.ts.opts.mechs {
		if !strings.EqualFold(m, mech) {
			continue
		}
		switch strings.ToUpper(mech) {
		case sasl.Plain:
			return sasl.NewPlainServer(func(_, username, password string) error {
				return check(username, password)
			}), nil
		case sasl.Login:
			return &loginServer{check: check}, nil
		}
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	ts := s.ts
	ts.mu.Lock()
	s.rec.mails = append(s.rec.mails, from)
	if s.inTx {
		s.rec.nested++
	}
	authed := s.rec.authed
	ts.mu.Unlock()
	if len(ts.opts.mechs) > 0 && !authed {
		return smtp.ErrAuthRequired
	}
	if ts.opts.mail != nil {
		if err := ts.opts.mail(s.rec, from); err != nil {
			return err
		}
	}
	s.inTx, s.from, s.to = true, from, nil
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.ts.opts.rcpt != nil {
		if err := s.ts.opts.rcpt(s.rec, to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	if _, chunked := r.(*io.PipeReader); chunked && s.ts.opts.noBDAT {
		return &smtp.SMTPError{Code: 502, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "BDAT not implemented"}
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.ts.opts.data != nil {
		if err := s.ts.opts.data(s.rec, s.to); err != nil {
			return err
		}
	}
	ts := s.ts
	ts.mu.Lock()
	defer ts.mu.Unlock()
	s.rec.accepted++
	ts.msgs = append(ts.msgs, received{
		conn: s.rec.id, helo: s.helo, tls: s.tls, user: s.user,
		from: s.from, to: append([]string(nil), s.to...), data: data,
	})
	return nil
}

// Reset is called by go-smtp on RSET, on EHLO again, and after every DATA,
// so it can't tell an RSET apart: the tests read the commands instead.
func (s *testSession) Reset() {
	s.inTx, s.from, s.to = false, "", nil
}

func (s *testSession) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks: the
// username (maybe given with the command), then the password.
type loginServer struct {
	check    func(username, password string) error
	username []byte
	step     int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username = response
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(string(l.username), string(response))
	}
	return nil, false, errors.New("unexpected response")
}

// snapshot returns copies of what the server recorded.
func (ts *testServer) snapshot() ([]connRecord, []received) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	conns := make([]connRecord, len(ts.conns))
	for i, c := range ts.conns {
		conns[i] = connRecord{
			id: c.id, hellos: append([]hello(nil), c.hellos...), auths: append([]string(nil), c.auths...),
			authed: c.authed, mails: append([]string(nil), c.mails...), nested: c.nested,
			accepted: c.accepted, closed: c.closed,
		}
		conns[i].in.Write(c.in.Bytes())
	}
	return conns, append([]received(nil), ts.msgs...)
}

func (ts *testServer) maxConcurrent() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.maxActive
}

// dropAll closes every open connection from the server's side, as a
// server that times out idle clients does, without a word.
func (ts *testServer) dropAll() {
	ts.mu.Lock()
	var raws []net.Conn
	for _, c := range ts.conns {
		if !c.closed {
			raws = append(raws, c.raw)
		}
	}
	ts.mu.Unlock()
	for _, c := range raws {
		c.Close()
	}
}

// commands returns the client's commands on a connection, in order,
// without the message content and, when TLS started, only those before
// STARTTLS (the rest is ciphertext). A BDAT chunk is skipped by its size;
// DATA content up to its dot, unless the next line is a command: the
// server refused that DATA (pipelined after a refused RCPT), and test
// messages start with a header field, never with a verb.
func (c *connRecord) commands() []string {
	var cmds []string
	in := c.in.Bytes()
	line := func() (string, bool) {
		i := bytes.Index(in, []byte("\r\n"))
		if i < 0 {
			return "", false
		}
		l := string(in[:i])
		in = in[i+2:]
		return l, true
	}
	for {
		l, ok := line()
		if !ok {
			return cmds
		}
		if l == "" {
			continue
		}
		cmds = append(cmds, l)
		verb, arg, _ := strings.Cut(strings.ToUpper(l), " ")
		switch verb {
		case "STARTTLS":
			return cmds
		case "BDAT":
			size, _, _ := strings.Cut(arg, " ")
			if n, err := strconv.Atoi(size); err == nil && n <= len(in) {
				in = in[n:]
			}
		case "DATA":
			next, _, _ := strings.Cut(strings.ToUpper(string(in[:min(len(in), 5)])), " ")
			if slices.Contains([]string{"RSET", "MAIL", "RCPT", "DATA", "BDAT", "QUIT", "NOOP"}, strings.TrimSpace(next)) {
				continue
			}
			for {
				if l, ok := line(); !ok || l == "." {
					break
				}
			}
		}
	}
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
		Host:     ts.Host,
		Port:     ts.Port,
		Security: sec,
		RootCAs:  certs(t).roots,
		HELO:     testHELO,
		Timeout:  5 * time.Second,
	}
	if len(ts.opts.mechs) > 0 {
		cfg.Username, cfg.Password = testUser, ts.opts.password
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
func deliveredOnce(t testing.TB, got []received, msgs []*render.Message) map[string]received {
	t.Helper()
	by := map[string]received{}
	count := map[string]int{}
	for _, r := range got {
		if len(r.to) != 1 {
			t.Errorf("a transaction had recipients %v, want one", r.to)
			continue
		}
		by[r.to[0]] = r
		count[r.to[0]]++
	}
	for _, m := range msgs {
		switch n := count[m.To]; {
		case n == 0:
			t.Errorf("%s: not delivered", m.To)
		case n > 1:
			t.Errorf("%s: delivered %d times", m.To, n)
		case !bytes.Equal(by[m.To].data, m.Data):
			t.Errorf("%s: the server got %d bytes that differ from the %d sent", m.To, len(by[m.To].data), len(m.Data))
		}
		delete(count, m.To)
	}
	for to := range count {
		t.Errorf("%s: delivered but never sent", to)
	}
	return by
}
