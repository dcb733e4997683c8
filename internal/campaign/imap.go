package campaign

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// ErrNoBounceMailbox is batch bounces --imap for a campaign without a
// [bounces] imap.
var ErrNoBounceMailbox = errors.New("the campaign file names no IMAP mailbox: add imap = \"imaps://user@imap.example.org/INBOX\" to its [bounces] table")

// ErrIMAPNoStartTLS is an imap:// server, not on this machine, that
// refused STARTTLS: batch doesn't log in over plain text.
var ErrIMAPNoStartTLS = errors.New("the IMAP server doesn't offer STARTTLS")

// ErrIMAPNoFolder is a [bounces] move_to that names no folder of the
// server.
var ErrIMAPNoFolder = errors.New("no such folder on the IMAP server")

// imapBatch is how many messages one UID FETCH asks for.
const imapBatch = 50

// deadlineConn gives every read and write its own deadline, so that a
// server that stops answering is given up on after the timeout, and
// bounds what the server may send for a command: budget bytes, set
// before each, after which a read fails with ErrIMAPReplyTooLarge.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	budget  atomic.Int64
}

// ErrIMAPReplyTooLarge is a server that sent more for a command than
// batch asked for.
var ErrIMAPReplyTooLarge = errors.New("the IMAP server's reply is larger than batch allows")

// The bytes a server may send for a command: for a FETCH of n messages
// at most max+1 bytes each, n*(max+1) and fetchSlack; for anything else,
// replySize (a UID SEARCH of a million messages fits).
const (
	fetchSlack = 1 << 20
	replySize  = 32 << 20
)

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.budget.Load() <= 0 {
		return 0, ErrIMAPReplyTooLarge
	}
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	c.budget.Add(-int64(n))
	return n, err
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// imapMailbox is a logged-in connection to the bounce mailbox, its folder
// selected.
type imapMailbox struct {
	b       *BounceMailbox
	c       *imapclient.Client
	conn    *deadlineConn
	handled int // messages each said it handled
}

// allow lets the server send n bytes for the next command.
func (m *imapMailbox) allow(n int64) { m.conn.budget.Store(n) }

// openIMAP connects to b (TLS verified, or STARTTLS; plain text only to
// this machine), logs in with password, selects b.Mailbox, read-only with
// readOnly, and makes sure b.MoveTo exists.
func openIMAP(ctx context.Context, b *BounceMailbox, password string, readOnly bool) (*imapMailbox, error) {
	roots, err := loadRoots("bounces.ca_file", b.CAFile, b.systemRoots)
	if err != nil {
		return nil, err
	}
	pool := roots.Pool()
	c, conn, err := b.connect(ctx, pool)
	if both, ok := roots.Retry(pool, err); ok && ctx.Err() == nil {
		c, conn, err = b.connect(ctx, both)
	}
	if err != nil {
		return nil, err
	}
	m := &imapMailbox{b: b, c: c, conn: conn}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", b.URL, err)
	}
	if err := c.Login(b.Username, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: logging in as %s: %w", b.URL, b.Username, err)
	}
	if _, err := c.Select(b.Mailbox, &imap.SelectOptions{ReadOnly: readOnly}).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: selecting %s: %w", b.URL, b.Mailbox, err)
	}
	if err := m.checkMoveTo(); err != nil {
		c.Close()
		return nil, err
	}
	return m, nil
}

// connect opens a connection to b, its server verified against roots (nil
// for the system's): in TLS, or STARTTLS, or plain text to this machine.
func (b *BounceMailbox) connect(ctx context.Context, roots *x509.CertPool) (*imapclient.Client, *deadlineConn, error) {
	cfg := &tls.Config{ServerName: b.Host, RootCAs: roots, MinVersion: tls.VersionTLS12}
	dial := b.dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: b.Timeout}).DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, b.Timeout)
	raw, err := dial(dctx, "tcp", b.Addr())
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", b.URL, err)
	}
	conn := &deadlineConn{Conn: raw, timeout: b.Timeout}
	conn.budget.Store(replySize)
	opts := &imapclient.Options{TLSConfig: cfg}
	switch {
	case b.TLS:
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, b.Timeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, nil, fmt.Errorf("%s: TLS: %w (for a private server's certificate, give its CA in [bounces] ca_file)", b.URL, err)
		}
		return imapclient.New(tc, opts), conn, nil
	case b.plainAllowed():
		return imapclient.New(conn, opts), conn, nil
	}
	c, err := imapclient.NewStartTLS(conn, opts)
	var refused *imap.Error
	var cert *tls.CertificateVerificationError
	switch {
	case errors.As(err, &refused):
		return nil, nil, fmt.Errorf("%s: %w (%w): batch never logs in over plain text to another machine: use imaps:// (port 993), or have the server offer STARTTLS", b.URL, ErrIMAPNoStartTLS, err)
	case errors.As(err, &cert):
		return nil, nil, fmt.Errorf("%s: STARTTLS: %w (for a private server's certificate, give its CA in [bounces] ca_file)", b.URL, err)
	case err != nil:
		return nil, nil, fmt.Errorf("%s: STARTTLS: %w", b.URL, err)
	}
	return c, conn, nil
}

// checkMoveTo makes sure move_to is a folder of the server before anything
// is read, suppressed or moved (a dry run too, which then says what the
// run would meet). batch doesn't create it: a typo would file the handled
// messages in a folder nobody looks at.
func (m *imapMailbox) checkMoveTo() error {
	b := m.b
	if b.MoveTo == "" {
		return nil
	}
	_, err := m.c.Status(b.MoveTo, &imap.StatusOptions{NumMessages: true}).Wait()
	var no *imap.Error
	switch {
	case errors.As(err, &no):
		where := "bounces.move_to"
		if at := b.loc(where); at != "" {
			where = at + ": " + where
		}
		return fmt.Errorf("%s: %q: %w (%s: %w): create it on the server, or name a folder that exists; nothing was read, suppressed or moved", where, b.MoveTo, ErrIMAPNoFolder, b.URL, err)
	case err != nil:
		return fmt.Errorf("%s: looking for move_to %s: %w", b.URL, b.MoveTo, err)
	}
	return nil
}

// close logs out and closes the connection.
func (m *imapMailbox) close() {
	_ = m.c.Logout().Wait()
	m.c.Close()
}

// name is how a report names the message of uid: the mailbox's URL and
// the UID, as RFC 5092 writes it.
func (m *imapMailbox) name(uid imap.UID) string {
	return fmt.Sprintf("%s;UID=%d", m.b.URL, uid)
}

// read calls each with every message of the mailbox, fetched imapBatch at
// a time and at most max+1 bytes of each (BODY.PEEK[]<0.max+1>, which
// neither marks it \Seen nor holds more than one message): a larger one
// reaches Classify cut, and is left alone as too large. It returns the
// UIDs each said it handled.
func (m *imapMailbox) read(max int64, each func(name string, r io.Reader) (bool, error)) (imap.UIDSet, error) {
	m.allow(replySize)
	search, err := m.c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("%s: listing messages: %w", m.b.URL, err)
	}
	uids := search.AllUIDs()
	var handled imap.UIDSet
	section := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: max + 1}}
	for len(uids) > 0 {
		n := min(len(uids), imapBatch)
		var set imap.UIDSet
		set.AddNum(uids[:n]...)
		uids = uids[n:]
		m.allow(int64(n)*(max+1) + fetchSlack)
		cmd := m.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
		if err := m.fetched(cmd, max, each, &handled); err != nil {
			cmd.Close()
			return nil, err
		}
		if err := cmd.Close(); err != nil {
			return nil, fmt.Errorf("%s: fetching messages: %w", m.b.URL, err)
		}
	}
	return handled, nil
}

// fetched passes on the messages of one FETCH as they arrive, streamed
// when the UID comes before the body (as servers send it) and otherwise
// held, at most max+1 bytes, until it does.
func (m *imapMailbox) fetched(cmd *imapclient.FetchCommand, max int64, each func(name string, r io.Reader) (bool, error), handled *imap.UIDSet) error {
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		var held []byte
		done := false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = item.UID
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil || done || held != nil {
					continue
				}
				body := io.LimitReader(item.Literal, max+1)
				if uid == 0 {
					b, err := io.ReadAll(body)
					if err != nil {
						return fmt.Errorf("%s: fetching a message: %w", m.b.URL, err)
					}
					held = b
					continue
				}
				if err := m.one(uid, body, each, handled); err != nil {
					return err
				}
				done = true
			}
		}
		switch {
		case uid == 0:
			return fmt.Errorf("%s: the server sent a message without its UID", m.b.URL)
		case held != nil:
			if err := m.one(uid, bytes.NewReader(held), each, handled); err != nil {
				return err
			}
		}
	}
	return nil
}

// one classifies the message uid.
func (m *imapMailbox) one(uid imap.UID, body io.Reader, each func(name string, r io.Reader) (bool, error), handled *imap.UIDSet) error {
	ok, err := each(m.name(uid), body)
	if err != nil {
		return err
	}
	if ok {
		handled.AddNum(uid)
		m.handled++
	}
	return nil
}

// finish files the handled messages: moved to b.MoveTo (MOVE, or COPY,
// STORE \Deleted and UID EXPUNGE of those UIDs only), or without it
// flagged \Seen. No other message is touched.
func (m *imapMailbox) finish(handled imap.UIDSet) error {
	if len(handled) == 0 {
		return nil
	}
	m.allow(replySize)
	if m.b.MoveTo == "" {
		err := m.c.Store(handled, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
		if err != nil {
			return fmt.Errorf("%s: flagging handled messages \\Seen: %w", m.b.URL, err)
		}
		return nil
	}
	caps := m.c.Caps()
	switch {
	case caps.Has(imap.CapMove) || caps.Has(imap.CapIMAP4rev2):
		if _, err := m.c.Move(handled, m.b.MoveTo).Wait(); err != nil {
			return fmt.Errorf("%s: moving handled messages to %s: %w (does the folder exist?)", m.b.URL, m.b.MoveTo, err)
		}
	case caps.Has(imap.CapUIDPlus):
		if _, err := m.c.Copy(handled, m.b.MoveTo).Wait(); err != nil {
			return fmt.Errorf("%s: copying handled messages to %s: %w (does the folder exist?)", m.b.URL, m.b.MoveTo, err)
		}
		if err := m.c.Store(handled, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return fmt.Errorf("%s: flagging handled messages \\Deleted: %w", m.b.URL, err)
		}
		if err := m.c.UIDExpunge(handled).Close(); err != nil {
			return fmt.Errorf("%s: expunging handled messages: %w", m.b.URL, err)
		}
	default:
		return fmt.Errorf("%s: the server offers neither MOVE nor UIDPLUS, so batch can't move only the handled messages to %s: leave move_to out to flag them \\Seen", m.b.URL, m.b.MoveTo)
	}
	return nil
}
