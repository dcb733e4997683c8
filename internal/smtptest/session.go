package smtptest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var (
	errHungUp   = errors.New("smtptest: hung up")
	errStopping = errors.New("smtptest: server stopping")
	errBDAT     = &smtp.SMTPError{
		Code:         502,
		EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message:      "smtptest: BDAT is not supported, use DATA",
	}
)

// newSession is go-smtp's Backend: it is called on the first EHLO of a
// connection, and on the first after STARTTLS.
func (s *Server) newSession(sc *smtp.Conn) (smtp.Session, error) {
	nc := sc.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, ok := nc.(*conn)
	if !ok {
		return nil, fmt.Errorf("smtptest: unexpected connection type %T", nc)
	}
	_, isTLS := sc.TLSConnectionState()
	ss := &session{s: s, c: c, hello: Hello{Name: sc.Hostname(), TLS: isTLS}}
	if f, struck := s.hello(c); struck {
		notify(f, "")
		if err := s.act(c, f); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	c.hellos = append(c.hellos, ss.hello)
	s.mu.Unlock()
	return ss, nil
}

// hello chooses the fault AtHello for c and, unless it turns c away,
// counts c as in session, in one step: WhenOpen counts what it sees.
func (s *Server) hello(c *conn) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, _, struck := s.strike(AtHello, c, []string{""})
	if !struck || !f.refuses() {
		c.admitted = true
	}
	return f, struck
}

// session is one go-smtp session: the commands after an EHLO.
type session struct {
	s     *Server
	c     *conn
	hello Hello
	user  string // logged in as; "" before AUTH
	inTx  bool   // between MAIL FROM and the message or RSET
	from  string
	rcpts []string // accepted for the current transaction, as given
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if a := ss.s.cfg.auth; a != nil {
		return a.Mechanisms
	}
	return nil
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	a := ss.s.cfg.auth
	if a == nil || !slices.ContainsFunc(a.Mechanisms, func(m string) bool { return strings.EqualFold(m, mech) }) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	check := func(username, password string) error {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		ss.c.auths = append(ss.c.auths, username)
		if username != a.Username || password != a.Password {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, username, password string) error {
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	if a.Token != nil {
		checkToken := func(username, token string) error {
			if token != a.Token() {
				username += " (token refused)"
			}
			return check(username, a.Password)
		}
		switch strings.ToUpper(mech) {
		case "XOAUTH2":
			return &xoauth2Server{check: checkToken}, nil
		case sasl.OAuthBearer:
			return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
				if checkToken(o.Username, o.Token) != nil {
					return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
				}
				return nil
			}), nil
		}
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	s := ss.s
	s.mu.Lock()
	ss.c.mails = append(ss.c.mails, from)
	if ss.inTx {
		ss.c.nested++
	}
	s.mu.Unlock()
	if a := s.cfg.auth; a != nil && !a.Optional && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.rcpts = nil
	if f, _, ok := s.strikes(AtMail, ss.c, []string{""}); ok {
		notify(f, "")
		if err := s.act(ss.c, f); err != nil {
			return err
		}
	}
	ss.inTx, ss.from = true, from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.s
	rcpt := strings.ToLower(to)
	s.count(s.attempts, []string{rcpt})
	if f, _, ok := s.strikes(AtRcpt, ss.c, []string{rcpt}); ok {
		notify(f, rcpt)
		if err := s.act(ss.c, f); err != nil {
			return err
		}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// Data takes the message, from DATA or from BDAT's chunks: go-smtp hands
// these over through an io.Pipe, which it reads from the connection as
// Data reads, chunk after chunk, up to BDAT LAST.
func (ss *session) Data(r io.Reader) error {
	s := ss.s
	if _, chunked := r.(*io.PipeReader); chunked && (s.cfg.refuseBDAT || !s.cfg.offers(Chunking)) {
		return errBDAT
	}
	rcpts := make([]string, len(ss.rcpts))
	for i, r := range ss.rcpts {
		rcpts[i] = strings.ToLower(r)
	}
	f, rcpt, struck := s.strikes(AtData, ss.c, rcpts)
	if struck && f.MidData {
		var first [1]byte
		io.ReadFull(r, first[:])
		notify(f, rcpt)
		s.wait(f)
		ss.c.Close()
		return errHungUp
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.count(s.received, rcpts)
	if struck {
		notify(f, rcpt)
		if f.Silent {
			ss.hold()
			return errHungUp
		}
		if err := s.act(ss.c, f); err != nil {
			return err
		}
	}
	s.deliver(ss, rcpts, data)
	return nil
}

// deliver records the message ss accepts.
func (s *Server) deliver(ss *session, rcpts []string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rcpts {
		s.delivered[r]++
	}
	ss.c.delivered++
	s.messages = append(s.messages, Message{
		Conn: ss.c.id, Helo: ss.hello.Name, TLS: ss.hello.TLS, User: ss.user,
		From: ss.from, To: slices.Clone(ss.rcpts), Data: data,
	})
}

// act does what f says on c in place of the usual reply; nil lets the
// usual reply go.
func (s *Server) act(c *conn, f Fault) error {
	if !s.wait(f) {
		c.Close()
		return errStopping
	}
	switch {
	case f.Flood:
		flood(c)
		return errHungUp
	case f.HangUp && f.Code == 0:
		c.Close()
		return errHungUp
	case f.HangUp:
		c.hangUpNext.Store(true)
	}
	if f.Code == 0 {
		return nil
	}
	return f.reply()
}

// flood writes "250-" lines until the client hangs up or the server stops
// (which closes the connection), then hangs up. go-smtp has flushed its
// replies so far: the lines go straight to the connection.
func flood(c *conn) {
	var b strings.Builder
	for b.Len() < 4<<10 {
		b.WriteString("250-smtptest: and there is more\r\n")
	}
	lines := []byte(b.String())
	for {
		if _, err := c.Conn.Write(lines); err != nil {
			break
		}
	}
	c.Close()
}

// hold keeps the connection open without a word until the client closes it
// or the server stops (which closes it), then hangs up.
func (ss *session) hold() {
	ss.c.SetReadDeadline(time.Time{})
	io.Copy(io.Discard, ss.c.Conn)
	ss.c.Close()
}

// Reset is called by go-smtp on RSET, on EHLO again, and after every
// message, so it can't tell an RSET apart: Conn.Commands has them.
func (ss *session) Reset() { ss.inTx, ss.from, ss.rcpts = false, "", nil }

func (ss *session) Logout() error { return nil }

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

// xoauth2Server is the server side of XOAUTH2, which go-sasl lacks: the
// initial response "user=U\x01auth=Bearer T\x01\x01"; a token refused
// gets an error challenge, and whatever the client answers, 535.
type xoauth2Server struct {
	check   func(username, token string) error
	started bool
	refused bool
}

func (a *xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	if a.refused {
		return nil, true, smtp.ErrAuthFailed
	}
	if response == nil && !a.started {
		a.started = true
		return []byte{}, false, nil
	}
	var user, token string
	for _, kv := range strings.Split(string(response), "\x01") {
		if v, ok := strings.CutPrefix(kv, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(kv, "auth=Bearer "); ok {
			token = v
		}
	}
	if err := a.check(user, token); err != nil {
		a.refused = true
		return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
	}
	return nil, true, nil
}
