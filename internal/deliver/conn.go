package deliver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Security is how the connection to the server is protected.
type Security int

const (
	// StartTLS connects in plain text and upgrades with STARTTLS (RFC
	// 3207), which the server must offer: never a plaintext fallback.
	StartTLS Security = iota
	// ImplicitTLS speaks TLS from the first byte (RFC 8314, port 465).
	ImplicitTLS
	// NoTLS is plain text, for a relay on the loopback interface only.
	NoTLS
)

func (s Security) String() string {
	switch s {
	case ImplicitTLS:
		return "tls"
	case NoTLS:
		return "none"
	}
	return "starttls"
}

// ConnError is a failure to connect, secure the connection or log in, or
// a server that said more than batch takes (a *ReplyLimitError) at any
// step: nothing can be sent until what it names is fixed.
type ConnError struct {
	Addr string
	Step string // "connect", "tls", "starttls", "auth", "hello"; "send" after login
	Hint Hint   // what to check
	Err  error
}

func (e *ConnError) Error() string {
	msg := fmt.Sprintf("%s: %s: %v", e.Addr, e.Step, e.Err)
	if e.Hint != HintNone {
		msg += ": " + e.Hint.String()
	}
	return msg
}

// Hint is what a *ConnError advises to check. String says it in the
// connection's terms (SMTPConfig's host, port, security, certificates,
// HELO name and username); a caller that knows where those come from says
// it in its own.
type Hint int

const (
	// HintNone: the error says it all.
	HintNone Hint = iota
	// HintReachable: the host and port, and that the server is up and
	// reachable.
	HintReachable
	// HintHELO: the server refused the HELO name; this host's is wanted.
	HintHELO
	// HintNoSTARTTLS: a server that does not offer STARTTLS may speak
	// TLS from the start (ImplicitTLS).
	HintNoSTARTTLS
	// HintUntrusted: the server's certificate is not signed by a trusted
	// authority; a private relay's CA certificate goes in Roots (or RootCAs).
	HintUntrusted
	// HintCertHost: the certificate is not for the host.
	HintCertHost
	// HintCertInvalid: the certificate is expired, or not a server's.
	HintCertInvalid
	// HintNotTLS: the server did not answer in TLS.
	HintNotTLS
	// HintTakesSTARTTLS: the server did not answer ImplicitTLS in TLS: a
	// submission port (587) takes StartTLS.
	HintTakesSTARTTLS
	// HintClosed: the server closed the connection.
	HintClosed
	// HintReply: the server's reply says why.
	HintReply
	// HintTLS: the security, the port and the CA certificates.
	HintTLS
	// HintNotSMTP: the server did not greet as an SMTP server does: the
	// host, the port and the security.
	HintNotSMTP
	// HintTurnedAway: the server's greeting turned batch away, and says
	// why.
	HintTurnedAway
	// HintCredentials: the server refused the username or password.
	HintCredentials
	// HintNeedsTLS: a password goes over STARTTLS or TLS only (but to
	// loopback).
	HintNeedsTLS
	// HintNoAuth: the server offers no AUTH; a server that needs no login
	// takes no username.
	HintNoAuth
	// HintAuth: the username and the password.
	HintAuth
	// HintToken: the server refused the access token, fetched again: the
	// username and where the token comes from.
	HintToken
	// HintBasicAuthDisabled: the server takes no password login (535
	// 5.7.139, 550 5.7.30, Microsoft's): log in with XOAUTH2.
	HintBasicAuthDisabled
	// HintAppPassword: the server wants an app password or OAuth2 (534
	// 5.7.9, Gmail's).
	HintAppPassword
	// HintReplyLimit: the server said more than batch takes (a
	// *ReplyLimitError): the host and port may not be an SMTP server's, or
	// its operator should know.
	HintReplyLimit
)

var hints = [...]string{
	HintNone:              "",
	HintReachable:         "check the host and port, and that the server is up and reachable",
	HintHELO:              "the server did not accept the name batch gave in EHLO: give this host's name",
	HintNoSTARTTLS:        "batch never falls back to plain text; if the server speaks TLS from the start (port 465), connect with TLS",
	HintUntrusted:         "the server's certificate is not signed by a trusted authority; for a private relay, trust its CA certificate",
	HintCertHost:          "the certificate is not for the host batch connected to: check the host name",
	HintCertInvalid:       "the server's certificate is not valid (expired, or not for a server)",
	HintNotTLS:            "the server did not answer in TLS",
	HintTakesSTARTTLS:     "the server did not answer in TLS: implicit TLS is for port 465; a port that speaks plain text first takes STARTTLS",
	HintClosed:            "the server closed the connection",
	HintReply:             "the server's reply says why",
	HintTLS:               "check the security, the port and the CA certificates",
	HintNotSMTP:           "the server did not greet batch as an SMTP server does: check the host, port and security",
	HintTurnedAway:        "the server turned batch away: its reply says why",
	HintCredentials:       "the server refused the username or password: check them",
	HintNeedsTLS:          "connect with STARTTLS or TLS",
	HintNoAuth:            "give no username if the server needs no login",
	HintAuth:              "check the username and the password",
	HintToken:             "the server refused the access token, fetched again: check the username and the token's account and scope",
	HintBasicAuthDisabled: "the server takes no password login (basic authentication is disabled): log in with XOAUTH2",
	HintAppPassword:       "the server wants an app password or OAuth2: use an app password, or log in with XOAUTH2",
	HintReplyLimit:        "batch dropped the connection; check that the host and port are an SMTP server's, and tell its operator if they are",
}

func (h Hint) String() string {
	if h < 0 || int(h) >= len(hints) {
		return fmt.Sprintf("hint %d", int(h))
	}
	return hints[h]
}

func (e *ConnError) Unwrap() error { return e.Err }

var (
	errNoAuth      = errors.New("the server offers no AUTH")
	errUnencrypted = errors.New("batch won't send a password over an unencrypted connection")
)

// IsLoopback reports whether host names this machine's loopback interface:
// "localhost" or an address in 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Stages before login, as a *ReplyLimitError names them.
const (
	stageGreeting = "greeting"
	stageEHLO     = "EHLO"
	stageStartTLS = "STARTTLS"
	stageAuth     = "AUTH"
)

// conn is one open, authenticated connection.
type conn struct {
	c     *smtp.Client
	addr  string       // host:port
	raw   net.Conn     // bounded, under its greeting after STARTTLS
	bc    *boundedConn // under raw
	g     *gatherConn  // under TLS; nil without
	sent  int          // messages sent on it
	last  time.Time    // when it was last used
	dirty bool         // a transaction failed: RSET before the next
	log   *transcript

	// The session after login, which batch speaks itself (see txn.go).
	r          *textproto.Reader
	pipelining bool // RFC 2920
	chunking   bool // RFC 3030: BDAT
	timeout    time.Duration
	buf        []byte // what goes out next
	content    []byte // the message's content as DATA carries it, and its end
}

// dial opens, secures and logs in one connection. A server whose
// certificate cfg.Roots' own CAs don't verify is connected to again,
// verified against the system's as well (Roots.Retry).
func (s *SMTP) dial(ctx context.Context, id int) (*conn, error) {
	pool := s.cfg.RootCAs
	if s.cfg.Roots != nil {
		pool = s.cfg.Roots.Pool()
	}
	c, err := s.open(ctx, id, pool)
	if both, ok := s.cfg.Roots.Retry(pool, err); ok && ctx.Err() == nil {
		if s.cfg.Debug != nil {
			var cve *tls.CertificateVerificationError
			errors.As(err, &cve)
			newTranscript(s.cfg.Debug, &s.debugMu, id, "").note("the CAs given don't verify the certificate (%v): connecting again, to verify it against the system's too", cve.Err)
		}
		c, err = s.open(ctx, id, both)
	}
	return c, err
}

// open opens, secures and logs in one connection, its server verified
// against roots (nil for the system's).
func (s *SMTP) open(ctx context.Context, id int, roots *x509.CertPool) (*conn, error) {
	cfg := &s.cfg
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	fail := func(step string, hint Hint, err error) error {
		if isReplyLimit(err) {
			hint = HintReplyLimit
		}
		return &ConnError{Addr: addr, Step: step, Hint: hint, Err: err}
	}
	var log *transcript
	if cfg.Debug != nil {
		log = newTranscript(cfg.Debug, &s.debugMu, id, cfg.Password)
		log.note("connecting to %s (%s)", addr, cfg.Security)
	}
	d := &net.Dialer{Timeout: cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fail("connect", HintReachable, err)
	}
	// A dial that is called off (Ctrl-C, or a check that failed while the
	// connection was being opened) ends at once, at whatever step it is:
	// the greeting, TLS, EHLO and AUTH read under deadlines, not ctx.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	called := func(err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("%w: %w", cerr, err)
		}
		return err
	}
	tlsConfig := &tls.Config{ServerName: cfg.Host, RootCAs: roots, MinVersion: tls.VersionTLS12}
	// What the server says is bounded where it is read, above TLS.
	bc := newBoundedConn(raw)
	var nc net.Conn = bc
	var g *gatherConn // under TLS
	switch cfg.Security {
	case ImplicitTLS:
		g = &gatherConn{Conn: raw}
		tc := tls.Client(g, tlsConfig)
		hctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, fail("tls", tlsHint(err, cfg), called(err))
		}
		bc = newBoundedConn(tc)
		nc = bc
		if log != nil {
			log.note("%s established, certificate verified for %s", tls.VersionName(tc.ConnectionState().Version), cfg.Host)
		}
	case StartTLS:
		g = &gatherConn{Conn: raw}
		tc, err := startTLS(ctx, g, cfg, tlsConfig, log)
		if err != nil {
			raw.Close()
			var ce *ConnError
			if errors.As(err, &ce) {
				ce.Addr = addr
				return nil, ce
			}
			return nil, fail("starttls", tlsHint(err, cfg), called(err))
		}
		// The greeting came before STARTTLS; go-smtp reads one first.
		bc = newBoundedConn(tc)
		nc = &greeted{Conn: bc, pending: []byte(syntheticGreeting + "\r\n")}
		if log != nil {
			log.note("%s established, certificate verified for %s", tls.VersionName(tc.ConnectionState().Version), cfg.Host)
		}
	}
	c := smtp.NewClient(nc)
	c.CommandTimeout = cfg.Timeout
	c.SubmissionTimeout = cfg.Timeout
	if log != nil {
		c.DebugWriter = log
	}
	bc.expect(stageEHLO) // after the greeting, unless already given
	if err := c.Hello(cfg.HELO); err != nil {
		c.Close()
		hint := HintHELO
		if bc.reading() == stageGreeting {
			hint = greetingHint(err)
		}
		return nil, fail("hello", hint, called(at(bc.reading(), err)))
	}
	if cfg.Username != "" {
		// Not go-smtp's TLSConnectionState, which can't see through the
		// wrappers: TLS, implicit or by STARTTLS, is there or dial failed.
		secured := cfg.Security != NoTLS
		// The whole exchange within the timeout, however many challenges
		// the server makes: go-smtp gives each its own.
		bc.expect(stageAuth)
		bc.within(cfg.Timeout)
		err := s.auth(ctx, c, secured, log)
		bc.within(0)
		if err != nil {
			c.Close()
			return nil, fail("auth", authHint(err), called(err))
		}
	}
	cn := &conn{c: c, addr: addr, raw: nc, bc: bc, g: g, last: time.Now(), log: log, timeout: cfg.Timeout}
	cn.startSession(func(name string) bool {
		ok, _ := c.Extension(name)
		return ok && !slices.Contains(cfg.without, name)
	})
	return cn, nil
}

// auth logs in with PLAIN or LOGIN, whichever the server offers, or with
// the token of cfg.Auth; over a connection that is not secured only to
// loopback.
func (s *SMTP) auth(ctx context.Context, c *smtp.Client, secured bool, log *transcript) error {
	cfg := &s.cfg
	if ok, _ := c.Extension("AUTH"); !ok {
		return errNoAuth
	}
	if !secured && (cfg.remote || !IsLoopback(cfg.Host)) {
		return errUnencrypted
	}
	if cfg.Auth != AuthPassword {
		return s.oauth(ctx, c, log)
	}
	switch {
	case c.SupportsAuth("PLAIN"):
		return c.Auth(sasl.NewPlainClient("", cfg.Username, cfg.Password))
	case c.SupportsAuth("LOGIN"):
		return c.Auth(sasl.NewLoginClient(cfg.Username, cfg.Password))
	}
	_, mechs := c.Extension("AUTH")
	return fmt.Errorf("the server offers AUTH %s, and batch speaks PLAIN and LOGIN", mechs)
}

// startTLS greets the server, says EHLO with batch's own name (go-smtp
// would say "localhost" before TLS), asks for STARTTLS and completes the
// TLS handshake. A server that doesn't offer STARTTLS is an error: batch
// never falls back to plain text.
func startTLS(ctx context.Context, raw net.Conn, cfg *SMTPConfig, tlsConfig *tls.Config, log *transcript) (*tls.Conn, error) {
	raw.SetDeadline(time.Now().Add(cfg.Timeout))
	defer raw.SetDeadline(time.Time{})
	// Bounded in plain text; TLS, which reads raw, bounds its own records.
	bc := newBoundedConn(raw)
	var r io.Reader = bc
	var w io.Writer = bc
	if log != nil {
		r = io.TeeReader(bc, log)
		w = io.MultiWriter(bc, log)
	}
	tp := textproto.NewConn(struct {
		io.Reader
		io.Writer
		io.Closer
	}{r, w, raw})
	if _, _, err := tp.ReadResponse(220); err != nil {
		if isReplyLimit(err) {
			return nil, err
		}
		return nil, &ConnError{Step: "starttls", Hint: greetingHint(err), Err: at(stageGreeting, err)}
	}
	bc.expect(stageEHLO)
	id, err := tp.Cmd("EHLO %s", cfg.HELO)
	if err != nil {
		return nil, err
	}
	tp.StartResponse(id)
	_, msg, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		return nil, at(stageEHLO, err)
	}
	offered := false
	for _, ext := range strings.Split(msg, "\n")[1:] {
		if strings.EqualFold(strings.TrimSpace(ext), "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		return nil, &ConnError{Step: "starttls", Err: errors.New("the server does not offer STARTTLS"), Hint: HintNoSTARTTLS}
	}
	bc.expect(stageStartTLS)
	id, err = tp.Cmd("STARTTLS")
	if err != nil {
		return nil, err
	}
	tp.StartResponse(id)
	_, _, err = tp.ReadResponse(220)
	tp.EndResponse(id)
	if err != nil {
		return nil, at(stageStartTLS, err)
	}
	tc := tls.Client(raw, tlsConfig)
	hctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, err
	}
	return tc, nil
}

// at names the stage err happened at, unless err, a *ReplyLimitError,
// names it itself.
func at(stage string, err error) error {
	if isReplyLimit(err) {
		return err
	}
	return fmt.Errorf("%s: %w", stage, err)
}

// syntheticGreeting is what greeted gives go-smtp's client; the transcript
// leaves it out, since the server never said it.
const syntheticGreeting = "220 batch: greeting already given before STARTTLS"

// greeted is a connection upgraded by STARTTLS, on which go-smtp's client
// reads the greeting the server already gave before TLS.
type greeted struct {
	net.Conn
	pending []byte
}

func (g *greeted) Read(b []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(b, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(b)
}

func tlsHint(err error, cfg *SMTPConfig) Hint {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return HintUntrusted
	case errors.As(err, &host):
		return HintCertHost
	case errors.As(err, &invalid):
		return HintCertInvalid
	case errors.As(err, &rec):
		if cfg.Security == ImplicitTLS {
			return HintTakesSTARTTLS
		}
		return HintNotTLS
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return HintClosed
	case errors.As(err, new(*textproto.Error)):
		return HintReply
	}
	return HintTLS
}

// greetingHint is what to check when the server's greeting failed.
func greetingHint(err error) Hint {
	var te *textproto.Error
	var se *smtp.SMTPError
	if errors.As(err, &te) || errors.As(err, &se) {
		return HintTurnedAway
	}
	return HintNotSMTP
}

func authHint(err error) Hint {
	var se *smtp.SMTPError
	isSE := errors.As(err, &se)
	switch {
	case isSE && (se.Code == 535 && se.EnhancedCode == smtp.EnhancedCode{5, 7, 139} || se.Code == 550 && se.EnhancedCode == smtp.EnhancedCode{5, 7, 30}):
		return HintBasicAuthDisabled
	case isSE && se.Code == 534 && se.EnhancedCode == smtp.EnhancedCode{5, 7, 9}:
		return HintAppPassword
	case errors.Is(err, errTokenRefused):
		return HintToken
	case errors.As(err, new(*TokenError)):
		return HintNone
	}
	if errors.As(err, &se) && (se.Code == 535 || se.Code == 534 || se.Code == 454 && se.EnhancedCode == smtp.EnhancedCode{4, 7, 0}) {
		return HintCredentials
	}
	if errors.Is(err, errUnencrypted) {
		return HintNeedsTLS
	}
	if errors.Is(err, errNoAuth) {
		return HintNoAuth
	}
	return HintAuth
}
