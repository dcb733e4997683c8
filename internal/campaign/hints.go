package campaign

import (
	"fmt"

	"github.com/batch-mailer/batch/internal/deliver"
)

// explainConn says the hint of a connection's failure, deliver's
// *ConnError bare or a message's (in a *deliver.SendError), in the
// campaign file's terms: the [smtp] keys to check, at their lines. Other
// errors, and a campaign without [smtp] (its sender is not the campaign
// file's), are left as they are.
func (c *Campaign) explainConn(err error) error {
	if c.SMTP == nil {
		return err
	}
	switch e := err.(type) {
	case *deliver.ConnError:
		return &connError{conn: e, hint: c.connHint(e.Hint)}
	case *deliver.SendError:
		if ce, ok := e.Err.(*deliver.ConnError); ok {
			return &deliver.SendError{To: e.To, Stage: e.Stage, Err: &connError{conn: ce, hint: c.connHint(ce.Hint)}}
		}
	}
	return err
}

// connError is a *deliver.ConnError whose hint the campaign says.
type connError struct {
	conn *deliver.ConnError
	hint string
}

func (e *connError) Error() string {
	msg := fmt.Sprintf("%s: %s: %v", e.conn.Addr, e.conn.Step, e.conn.Err)
	if e.hint != "" {
		msg += ": " + e.hint
	}
	return msg
}

func (e *connError) Unwrap() error { return e.conn }

// connHint is what a hint of deliver's asks of the campaign file, with
// the line of each key it names ([smtp]'s, for a key not written).
func (c *Campaign) connHint(h deliver.Hint) string {
	at := func(key string) string {
		if _, ok := c.lines["smtp."+key]; ok {
			return " (" + c.loc("smtp."+key) + ")"
		}
		return " (" + c.loc("smtp") + ")"
	}
	switch h {
	case deliver.HintReachable:
		return "check [smtp] host and port" + at("host") + ", and that the server is up and reachable"
	case deliver.HintHELO:
		return "the server did not accept EHLO " + c.SMTP.HELO + ": set [smtp] helo" + at("helo") + " to this host's name"
	case deliver.HintNoSTARTTLS:
		return `batch never falls back to plain text; if the server speaks TLS from the start (port 465), set security = "tls"` + at("security")
	case deliver.HintUntrusted:
		return "the server's certificate is not signed by a trusted authority; for a private relay, give its CA certificate in [smtp] ca_file" + at("ca_file")
	case deliver.HintCertHost:
		return "the certificate is not for " + c.SMTP.Host + ": check [smtp] host" + at("host")
	case deliver.HintTakesSTARTTLS:
		return `the server did not answer in TLS: security = "tls" expects TLS from the first byte, as port 465 speaks it; a port that speaks plain text first (587, 25) takes security = "starttls"` + at("security")
	case deliver.HintTLS:
		return "check [smtp] security, port and ca_file" + at("security")
	case deliver.HintNotSMTP:
		return "the server did not greet batch as an SMTP server does: check [smtp] host, port and security" + at("host")
	case deliver.HintCredentials:
		return "the server refused the username or password: check [smtp] username" + at("username") + " and the password"
	case deliver.HintNeedsTLS:
		return `use security = "starttls" or "tls"` + at("security")
	case deliver.HintNoAuth:
		return "remove [smtp] username" + at("username") + " if the server needs no login"
	case deliver.HintAuth:
		return "check [smtp] username" + at("username") + " and the password"
	case deliver.HintToken:
		if c.SMTP.Auth != deliver.AuthPassword && c.SMTP.TokenCmd == "" {
			return "the server refused the access token, refreshed: check [smtp] username" + at("username") + " and that batch login signed in as that account (run it again), with the scope for mail: [smtp.oauth] scopes" + at("oauth.scopes")
		}
		return "the server refused the access token, fetched again: check [smtp] username" + at("username") + " and that token_cmd" + at("token_cmd") + " prints a token for that account, with the scope for mail"
	case deliver.HintBasicAuthDisabled:
		return `the server takes no password login (basic authentication is disabled): set auth = "xoauth2"` + at("auth") + ` and token_cmd in [smtp], or run batch login`
	case deliver.HintAppPassword:
		return `the server wants an app password or OAuth2: give an app password, or set auth = "xoauth2"` + at("auth") + ` and token_cmd in [smtp], or run batch login`
	case deliver.HintReplyLimit:
		return "batch dropped the connection; check that [smtp] host and port" + at("host") + " are an SMTP server's, and tell its operator if they are"
	}
	return h.String() // the server's word, or the certificate's: no key to name
}
