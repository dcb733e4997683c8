package imaptest

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// dial connects a client to s as its Security says, trusting its CA.
func dial(t *testing.T, s *Server, sec Security) (*imapclient.Client, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(time.Minute)) // a guard against a hung test, not a measure
	opts := &imapclient.Options{TLSConfig: &tls.Config{RootCAs: s.CA().Pool(), ServerName: "127.0.0.1"}}
	switch sec {
	case ImplicitTLS:
		return imapclient.New(tls.Client(conn, opts.TLSConfig), opts), nil
	case StartTLS:
		return imapclient.NewStartTLS(conn, opts)
	}
	return imapclient.New(conn, opts), nil
}

// Each Security takes a client of its kind, which reads what Append put
// there; the flags it sets are what Messages and Status see, and the
// transcript has the session in the clear.
func TestSecurity(t *testing.T) {
	for name, sec := range map[string]Security{"implicit TLS": ImplicitTLS, "STARTTLS": StartTLS, "plain": Plain} {
		t.Run(name, func(t *testing.T) {
			s := Start(t, Options{Username: "u", Password: "pw", Security: sec, Folders: []string{"Done"}})
			uid := s.Append(t, "INBOX", "Subject: one\r\n\r\nhello\r\n")
			s.Append(t, "INBOX", "Subject: two\r\n\r\nagain\r\n")
			c, err := dial(t, s, sec)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Login("u", "pw").Wait(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
				t.Fatal(err)
			}
			if got := s.Status(t, "INBOX"); got != "2 messages, 1 unseen" {
				t.Errorf("INBOX: %s", got)
			}
			msgs := s.Messages(t, "INBOX")
			if len(msgs) != 2 || msgs[0].UID != uid || !slices.Contains(msgs[0].Flags, imap.FlagSeen) || len(msgs[1].Flags) != 0 ||
				msgs[1].Text != "Subject: two\r\n\r\nagain\r\n" {
				t.Errorf("messages: %+v", msgs)
			}
			if got := s.Status(t, "Done"); got != "0 messages, 0 unseen" {
				t.Errorf("Done: %s", got)
			}
			if tr := s.Transcript(); !strings.Contains(tr, `LOGIN "u" "pw"`) && !strings.Contains(tr, "LOGIN u pw") {
				t.Errorf("the transcript has no login in the clear:\n%s", tr)
			}
		})
	}
}

// Plain offers no STARTTLS and refuses it; StartTLS refuses a login
// before it.
func TestNoStartTLS(t *testing.T) {
	s := Start(t, Options{Username: "u", Password: "pw", Security: Plain})
	if _, err := dial(t, s, StartTLS); err == nil {
		t.Error("Plain took STARTTLS")
	}
	s = Start(t, Options{Username: "u", Password: "pw", Security: StartTLS})
	c, err := dial(t, s, Plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ie *imap.Error
	if err := c.Login("u", "pw").Wait(); !errors.As(err, &ie) {
		t.Errorf("a login before STARTTLS: %v", err)
	}
}
