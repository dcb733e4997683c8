package campaign

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
)

// bouncesFile is the [bounces] table as written.
type bouncesFile struct {
	IMAP        string `toml:"imap"`
	PasswordEnv string `toml:"password_env"`
	PasswordCmd string `toml:"password_cmd"`
	CAFile      string `toml:"ca_file"`
	MoveTo      string `toml:"move_to"`
	Timeout     string `toml:"timeout"`
	SoftLimit   *int   `toml:"soft_limit"` // not the mailbox's: see loader.suppress
}

// mailbox says whether the table names an IMAP mailbox, or has a key of
// one: a table of soft_limit alone has none.
func (f *bouncesFile) mailbox() bool {
	return f.IMAP != "" || f.PasswordEnv != "" || f.PasswordCmd != "" || f.CAFile != "" || f.MoveTo != "" || f.Timeout != ""
}

// DefaultIMAPPasswordEnv is the variable that holds the bounce mailbox's
// password when [bounces] names none.
const DefaultIMAPPasswordEnv = "BATCH_IMAP_PASSWORD"

// BounceMailbox is the [bounces] table: the IMAP mailbox batch bounces
// --imap reads.
type BounceMailbox struct {
	URL         string // as written, without a password
	Host        string
	Port        int
	TLS         bool // imaps://: TLS from the start; imap:// needs STARTTLS, but to loopback
	Username    string
	Mailbox     string // the folder read, INBOX by default
	PasswordEnv string
	PasswordCmd string
	CAFile      string        // resolved path, "" for none
	MoveTo      string        // the folder handled messages go to; "" to flag them \Seen only
	Timeout     time.Duration // connecting, and each reply

	at func(string) string
	// dial connects to Addr; nil for a net.Dialer of Timeout. A test
	// reaches a server of its own under a name that isn't loopback's.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// systemRoots gives the system's CAs, trusted with ca_file's; nil
	// for x509.SystemCertPool. A test gives its own.
	systemRoots func() (*x509.CertPool, error)
}

// loadBounces checks the [bounces] table.
func loadBounces(f *bouncesFile, rel, at func(string) string, bad func(key, format string, args ...any)) *BounceMailbox {
	b := &BounceMailbox{URL: strings.TrimSpace(f.IMAP), PasswordEnv: strings.TrimSpace(f.PasswordEnv), PasswordCmd: strings.TrimSpace(f.PasswordCmd), MoveTo: f.MoveTo, at: at}
	b.loadURL(bad)
	if b.PasswordEnv != "" && b.PasswordCmd != "" {
		bad("bounces.password_cmd", "give password_env or password_cmd, not both")
	}
	if b.PasswordEnv == "" {
		b.PasswordEnv = DefaultIMAPPasswordEnv
	}
	if f.CAFile != "" {
		b.CAFile = rel(f.CAFile)
		if _, err := os.Stat(b.CAFile); err != nil {
			bad("bounces.ca_file", "%v", err)
		}
	}
	if strings.ContainsFunc(b.MoveTo, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		bad("bounces.move_to", "%q: a folder's name has no control characters", b.MoveTo)
	}
	b.Timeout = duration(bad, "bounces.timeout", f.Timeout, 30*time.Second)
	return b
}

// loadURL checks imap: imaps://user@host[:port]/mailbox, or imap://.
func (b *BounceMailbox) loadURL(bad func(key, format string, args ...any)) {
	const key = "bounces.imap"
	const want = `want imaps://user@imap.example.org/INBOX (TLS, port 993), or imap:// (STARTTLS, port 143)`
	if b.URL == "" {
		bad(key, "is required to read bounces over IMAP: %s", want)
		return
	}
	u, err := url.Parse(b.URL)
	if err != nil {
		bad(key, "%q: %s", b.URL, want)
		return
	}
	switch u.Scheme {
	case "imaps":
		b.TLS, b.Port = true, 993
	case "imap":
		b.Port = 143
	default:
		bad(key, "%q: %s", b.URL, want)
		return
	}
	if _, ok := u.User.Password(); ok {
		bad(key, "a password can't be kept in the campaign file, which lives in git: batch reads it from the environment variable named by password_env or the output of password_cmd")
		return
	}
	b.Host = u.Hostname()
	b.Username = u.User.Username()
	if b.Host == "" || b.Username == "" {
		bad(key, "%q: name the user and the server: %s", b.URL, want)
		return
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			bad(key, "%q: %s is not a port number", b.URL, p)
			return
		}
		b.Port = n
	}
	b.Mailbox = strings.TrimPrefix(u.Path, "/")
	if b.Mailbox == "" {
		b.Mailbox = "INBOX"
	}
	if u.RawQuery != "" || u.Fragment != "" {
		bad(key, "%q: a mailbox URL has no query or fragment: %s", b.URL, want)
	}
}

// Addr is "host:port".
func (b *BounceMailbox) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// Password returns the mailbox's password: the output of password_cmd, or
// the variable password_env names. A password_cmd that fails gives a
// *CommandError.
func (b *BounceMailbox) Password(ctx context.Context, sec Secrets) (string, error) {
	if b.PasswordCmd != "" {
		const key = "bounces.password_cmd"
		return sec.Commands.Output(ctx, Command{Key: key, At: b.loc(key), Line: b.PasswordCmd, What: "the IMAP password"})
	}
	if sec.Getenv != nil {
		if pw := sec.Getenv(b.PasswordEnv); pw != "" {
			return pw, nil
		}
	}
	return "", fmt.Errorf("no password for %s at %s: set the environment variable %s, or password_cmd in [bounces]", b.Username, b.Host, b.PasswordEnv)
}

// loc returns "file:line" of a key of the table, or "".
func (b *BounceMailbox) loc(key string) string {
	if b.at == nil {
		return ""
	}
	return b.at(key)
}

// plainAllowed says whether imap:// may go on without STARTTLS: only to
// this machine, as [smtp] security = "none".
func (b *BounceMailbox) plainAllowed() bool { return !b.TLS && deliver.IsLoopback(b.Host) }
