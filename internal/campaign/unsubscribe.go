package campaign

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/batch-mailer/batch/internal/merge"
)

// unsubscribeFile is the [unsubscribe] table as written.
type unsubscribeFile struct {
	URL       string `toml:"url"`
	Mailto    string `toml:"mailto"`
	Token     bool   `toml:"token"`
	SecretEnv string `toml:"secret_env"`
	SecretCmd string `toml:"secret_cmd"`
}

// Unsubscribe is how a recipient leaves the list: one click on an https
// URL (RFC 8058), and or a mail to an address (RFC 2369).
type Unsubscribe struct {
	URL    *merge.Template // values percent-encoded; nil for none
	Mailto string
	// Token appends t=, the recipient's token (see Token), to URL's
	// query: the address and a MAC of it, made with the secret that
	// SecretEnv or SecretCmd gives, so that only batch can write a link
	// that unsubscribes an address.
	Token     bool
	SecretEnv string // the variable that holds the secret
	SecretCmd string // or a command that prints it

	campaign string // the campaign's name, in every MAC
	at       func(string) string
	key      []byte // the secret, once ReadSecret read it; nil before
}

// ErrBadToken is an unsubscribe token that is missing, malformed or not
// made by this campaign's secret.
var ErrBadToken = errors.New("not a valid unsubscribe token")

// minSecret is the fewest bytes a secret may have: HMAC-SHA256's key
// should be as long as its output to be as hard to guess.
const minSecret = 32

// loadUnsubscribe checks the [unsubscribe] table.
func loadUnsubscribe(f *unsubscribeFile, at func(string) string, bad func(key, format string, args ...any), errs *Problems) *Unsubscribe {
	u := &Unsubscribe{Mailto: strings.TrimSpace(f.Mailto), Token: f.Token, SecretEnv: strings.TrimSpace(f.SecretEnv), SecretCmd: strings.TrimSpace(f.SecretCmd), at: at}
	loadToken(u, f, bad)
	if f.URL == "" && u.Mailto == "" {
		bad("unsubscribe", `give url = "https://…" (one-click unsubscribe, which Gmail and Yahoo require of bulk senders), mailto, or both`)
	}
	if f.URL != "" {
		text := strings.TrimSpace(f.URL)
		lit, _, field := strings.Cut(text, "{{")
		switch {
		case !strings.HasPrefix(strings.ToLower(text), "https://"):
			bad("unsubscribe.url", "%q: one-click unsubscribe (RFC 8058) needs an https URL: mail clients POST to it without asking, so it must be encrypted", f.URL)
		case field && merge.PlaceInURL(lit) != merge.InPath:
			bad("unsubscribe.url", "%q: a merge field can't be part of the host: put it in the path or the query", f.URL)
		default:
			t, err := merge.ParseURL(at("unsubscribe.url")+": unsubscribe.url", text)
			if err != nil {
				*errs = append(*errs, err)
			} else {
				u.URL = t
			}
		}
	}
	if u.Mailto != "" {
		if err := merge.CheckAddress(u.Mailto); err != nil {
			bad("unsubscribe.mailto", "%q: %v", u.Mailto, err)
		}
	}
	return u
}

// loadToken checks the token, secret_env and secret_cmd keys.
func loadToken(u *Unsubscribe, f *unsubscribeFile, bad func(key, format string, args ...any)) {
	switch {
	case u.SecretEnv != "" && u.SecretCmd != "":
		bad("unsubscribe.secret_cmd", "give secret_env or secret_cmd, not both")
	case u.Token && f.URL == "":
		bad("unsubscribe.token", `goes with url, the link the token is appended to: add url = "https://…", or remove token`)
	case u.Token && u.SecretEnv == "" && u.SecretCmd == "":
		bad("unsubscribe.token", `needs a secret, never written in the campaign file: add secret_env = "BATCH_UNSUBSCRIBE_SECRET" (a variable holding at least 32 random bytes, such as the output of openssl rand -base64 32) or secret_cmd = "pass show news/unsubscribe"`)
	case !u.Token && (u.SecretEnv != "" || u.SecretCmd != ""):
		bad("unsubscribe.token", "secret_env and secret_cmd go with token = true: add it, or remove them")
	}
}

// ReadSecret reads the secret of the unsubscribe tokens, from secret_cmd
// (run by sec.Commands) or the variable secret_env names, for the links a
// send writes and the tokens an unsubscribe server checks. It does
// nothing for a campaign without token = true. A secret_cmd that fails
// gives a *CommandError.
func (c *Campaign) ReadSecret(ctx context.Context, sec Secrets) error {
	u := c.Unsubscribe
	if u == nil || !u.Token {
		return nil
	}
	var secret string
	if u.SecretCmd != "" {
		const key = "unsubscribe.secret_cmd"
		s, err := sec.Commands.Output(ctx, Command{Key: key, At: u.at(key), Line: u.SecretCmd, What: "the unsubscribe secret"})
		if err != nil {
			return err
		}
		secret = s
	} else if secret = sec.Getenv(u.SecretEnv); secret == "" {
		return fmt.Errorf("%s: unsubscribe.secret_env: the environment variable %s is not set: set it to the campaign's secret (at least %d random bytes, such as the output of openssl rand -base64 32), the same for every send and for batch unsubscribe-server", u.at("unsubscribe.secret_env"), u.SecretEnv, minSecret)
	}
	if len(secret) < minSecret {
		return fmt.Errorf("%s: the unsubscribe secret is %d bytes: give at least %d random bytes, such as the output of openssl rand -base64 32", u.at("unsubscribe.token"), len(secret), minSecret)
	}
	u.key = []byte(secret)
	u.campaign = c.Name
	return nil
}

// mac is HMAC-SHA256(secret, campaign name + "\n" + address lower-cased).
func (u *Unsubscribe) mac(addr string) []byte {
	m := hmac.New(sha256.New, u.key)
	m.Write([]byte(u.campaign + "\n" + strings.ToLower(addr)))
	return m.Sum(nil)
}

// noSecret stands for the MAC in the links of a check or a preview, which
// don't read the secret.
const noSecret = "SECRET-NOT-READ"

// token returns addr's token: the address and its MAC, each base64url
// without padding, joined by a dot.
func (u *Unsubscribe) token(addr string) string {
	mac := noSecret
	if u.key != nil {
		mac = base64.RawURLEncoding.EncodeToString(u.mac(addr))
	}
	return base64.RawURLEncoding.EncodeToString([]byte(addr)) + "." + mac
}

// Verify checks a token against the secret, in constant time, and returns
// the address it names. A token that is not this campaign's (another
// secret, another campaign, another address) is ErrBadToken.
func (u *Unsubscribe) Verify(token string) (string, error) {
	if u == nil || u.key == nil {
		return "", ErrBadToken
	}
	a, m, ok := strings.Cut(token, ".")
	if !ok || len(token) > 1024 {
		return "", ErrBadToken
	}
	addr, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil {
		return "", ErrBadToken
	}
	mac, err := base64.RawURLEncoding.DecodeString(m)
	if err != nil || !hmac.Equal(mac, u.mac(string(addr))) {
		return "", ErrBadToken
	}
	return string(addr), nil
}

// link returns the recipient's unsubscribe URL, checked.
func (u *Unsubscribe) link(email string, fields map[string]string) (string, error) {
	if u == nil || u.URL == nil {
		return "", nil
	}
	s, err := u.URL.URL(fields)
	if err != nil {
		return "", err
	}
	if u.Token {
		s = withToken(s, u.token(email))
	}
	p, err := url.Parse(s)
	if err != nil || p.Scheme != "https" || p.Host == "" || strings.ContainsAny(s, " <>\"") {
		return "", fmt.Errorf("unsubscribe.url: %q is not a valid https URL", s)
	}
	return s, nil
}

// withToken appends t=token to the query of link, before any fragment.
func withToken(link, token string) string {
	base, frag, hasFrag := strings.Cut(link, "#")
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
		if strings.HasSuffix(base, "?") || strings.HasSuffix(base, "&") {
			sep = ""
		}
	}
	base += sep + "t=" + token
	if hasFrag {
		base += "#" + frag
	}
	return base
}
