package deliver

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Auth is how batch logs in when SMTPConfig has a username.
type Auth int

const (
	// AuthPassword is PLAIN or LOGIN with the password, whichever the
	// server offers.
	AuthPassword Auth = iota
	// AuthXOAUTH2 is Google's and Microsoft's XOAUTH2 with an OAuth2
	// access token.
	AuthXOAUTH2
	// AuthOAuthBearer is OAUTHBEARER (RFC 7628) with an OAuth2 access
	// token.
	AuthOAuthBearer
)

func (a Auth) String() string {
	switch a {
	case AuthXOAUTH2:
		return "XOAUTH2"
	case AuthOAuthBearer:
		return "OAUTHBEARER"
	}
	return "password"
}

// Token returns an OAuth2 access token for SMTPConfig's username. It is
// called at each login, and once more when the server refuses the token it
// gave, which may have expired since: it should then give a fresh one
// (RefusedToken tells it which).
type Token func(ctx context.Context) (string, error)

// refusedKey is the context key of the token a server refused.
type refusedKey struct{}

// RefusedToken returns, in the context of a Token asked again, the token
// the server just refused; "" at a login's first ask.
func RefusedToken(ctx context.Context) string {
	s, _ := ctx.Value(refusedKey{}).(string)
	return s
}

// errTokenRefused is a server's refusal of a token: XOAUTH2's error
// challenge, or OAUTHBEARER's.
var errTokenRefused = errors.New("the server refused the access token")

// xoauth2Client is XOAUTH2's client: the username and the token in the
// initial response; to the server's error challenge (JSON that says why)
// an empty response, after which the server refuses the login.
type xoauth2Client struct {
	username, token string
	refused         bool
}

func (a *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.username + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a *xoauth2Client) Next([]byte) ([]byte, error) {
	a.refused = true
	return []byte{}, nil
}

// oauth logs in with the token, fetched again and tried once more when the
// server refuses it. log, if not nil, learns each token, to hide it.
func (s *SMTP) oauth(ctx context.Context, c *smtp.Client, log *transcript) error {
	cfg := &s.cfg
	if !c.SupportsAuth(cfg.Auth.String()) {
		_, mechs := c.Extension("AUTH")
		return fmt.Errorf("the server offers AUTH %s, not %s", mechs, cfg.Auth)
	}
	var err error
	ask := ctx
	for try := 0; try < 2; try++ {
		var token string
		token, err = cfg.Token(ask)
		if err != nil {
			return &TokenError{Err: err}
		}
		if log != nil {
			log.hide(token)
		}
		if err = s.tokenLogin(c, token); err == nil || !tokenRefused(err) {
			return err
		}
		ask = context.WithValue(ctx, refusedKey{}, token)
	}
	if !errors.Is(err, errTokenRefused) {
		err = fmt.Errorf("%w: %w", errTokenRefused, err)
	}
	return err
}

// tokenLogin is one AUTH exchange with token.
func (s *SMTP) tokenLogin(c *smtp.Client, token string) error {
	cfg := &s.cfg
	if cfg.Auth == AuthOAuthBearer {
		err := c.Auth(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: cfg.Username, Token: token, Host: cfg.Host, Port: cfg.Port}))
		var be *sasl.OAuthBearerError
		if errors.As(err, &be) {
			return fmt.Errorf("%w: %s", errTokenRefused, be.Status)
		}
		return err
	}
	a := &xoauth2Client{username: cfg.Username, token: token}
	err := c.Auth(a)
	if a.refused && err != nil {
		return fmt.Errorf("%w: %w", errTokenRefused, err)
	}
	return err
}

// tokenRefused reports whether err is the server's refusal of the token,
// which a fresh one may pass: its error challenge or a 535.
func tokenRefused(err error) bool {
	var se *smtp.SMTPError
	return errors.Is(err, errTokenRefused) || errors.As(err, &se) && se.Code == 535
}

// TokenError is a Token that failed: batch could not get an access token.
type TokenError struct{ Err error }

func (e *TokenError) Error() string { return "getting the access token: " + e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }
