package campaign

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
)

// smtpFile is the [smtp] table as written.
type smtpFile struct {
	Host             string `toml:"host"`
	Port             int    `toml:"port"`
	Security         string `toml:"security"`
	Username         string `toml:"username"`
	PasswordEnv      string `toml:"password_env"`
	PasswordCmd      string `toml:"password_cmd"`
	Auth             string `toml:"auth"`
	TokenCmd         string `toml:"token_cmd"`
	CAFile           string `toml:"ca_file"`
	HELO             string `toml:"helo"`
	Timeout          string `toml:"timeout"`
	Connections      int    `toml:"connections"`
	MaxPerConnection int    `toml:"max_per_connection"`
	Rate             string `toml:"rate"`
	Quota            string `toml:"quota"`
	Sender           string `toml:"sender"`
	Retries          *int   `toml:"retries"`
	RetryWait        string `toml:"retry_wait"`
	MaxErrors        *int   `toml:"max_errors"`

	OAuth *oauthFile `toml:"oauth"`
}

// SMTP is the checked [smtp] table: where and how to send.
type SMTP struct {
	Host             string
	Port             int
	Security         deliver.Security
	Username         string
	PasswordEnv      string       // the variable that holds the password
	PasswordCmd      string       // or a command that prints it
	Auth             deliver.Auth // the password (PLAIN or LOGIN), or XOAUTH2 or OAUTHBEARER with a token
	TokenCmd         string       // the command that prints the access token, for XOAUTH2 and OAUTHBEARER; "" for batch login's
	OAuth            *OAuth       // the provider batch login signs in with, for XOAUTH2 and OAUTHBEARER without token_cmd
	CAFile           string       // resolved path, "" for none
	HELO             string
	Timeout          time.Duration
	Connections      int
	MaxPerConnection int
	Rate             float64       // messages a second, 0 for no limit
	RateText         string        // as written
	Quota            *Quota        // nil for none
	Sender           string        // MAIL FROM
	Retries          int           // tries again after a temporary failure
	RetryWait        time.Duration // before the first retry; then doubling
	MaxErrors        int           // failures in a row that stop the campaign; 0 for no limit

	at func(key string) string // "file:line" of a key; nil for unknown
	// systemRoots gives the system's CAs, trusted with ca_file's; nil
	// for x509.SystemCertPool. A test gives its own.
	systemRoots func() (*x509.CertPool, error)
}

// DefaultPasswordEnv is the variable the password is read from by default.
const DefaultPasswordEnv = "BATCH_SMTP_PASSWORD"

// loadSMTP checks the [smtp] table; at says where a key is, bad reports a
// problem with one.
func loadSMTP(f *smtpFile, from string, rel, at func(string) string, bad func(key, format string, args ...any)) *SMTP {
	s := &SMTP{
		at:               at,
		Host:             strings.TrimSpace(f.Host),
		Port:             f.Port,
		Username:         f.Username,
		PasswordEnv:      f.PasswordEnv,
		PasswordCmd:      f.PasswordCmd,
		TokenCmd:         f.TokenCmd,
		HELO:             f.HELO,
		Connections:      f.Connections,
		MaxPerConnection: f.MaxPerConnection,
		RateText:         f.Rate,
		Sender:           f.Sender,
	}
	if s.Host == "" {
		bad("smtp.host", `is required to send: the submission server, e.g. host = "smtp.example.org"`)
	}
	s.loadSecurity(f.Security, bad)
	s.loadLogin(f, from, rel, bad)
	s.Timeout = duration(bad, "smtp.timeout", f.Timeout, 30*time.Second)
	s.loadConnections(bad)
	if f.Rate != "" {
		r, err := deliver.ParseRate(f.Rate)
		if err != nil {
			bad("smtp.rate", "%v", err)
		}
		s.Rate = r
	}
	if f.Quota != "" {
		q, err := ParseQuota(f.Quota)
		if err != nil {
			bad("smtp.quota", "%v", err)
		} else {
			s.Quota = &q
		}
	}
	if s.Sender != "" {
		if err := merge.CheckAddress(s.Sender); err != nil {
			bad("smtp.sender", "%q: %v", s.Sender, err)
		}
	}
	s.loadRetries(f, bad)
	return s
}

// loadSecurity checks security and port, the port by default the
// security's.
func (s *SMTP) loadSecurity(security string, bad func(key, format string, args ...any)) {
	switch security {
	case "", "starttls":
		s.Security = deliver.StartTLS
	case "tls":
		s.Security = deliver.ImplicitTLS
	case "none":
		s.Security = deliver.NoTLS
		if s.Host != "" && !deliver.IsLoopback(s.Host) {
			bad("smtp.security", `"none" sends in plain text, so it is only for a relay on this machine (localhost, 127.0.0.1, ::1); use "starttls" (port 587) or "tls" (port 465)`)
		}
	default:
		bad("smtp.security", `%q: want "starttls" (port 587), "tls" (port 465) or "none" (a relay on localhost)`, security)
	}
	if s.Port == 0 {
		s.Port = map[deliver.Security]int{deliver.StartTLS: 587, deliver.ImplicitTLS: 465, deliver.NoTLS: 25}[s.Security]
	} else if s.Port < 1 || s.Port > 65535 {
		bad("smtp.port", "%d is not a port number", s.Port)
	}
}

// loadLogin checks how batch logs in and says who it is: the password's
// source, ca_file, helo (by default the From domain).
func (s *SMTP) loadLogin(f *smtpFile, from string, rel func(string) string, bad func(key, format string, args ...any)) {
	if s.PasswordEnv != "" && s.PasswordCmd != "" {
		bad("smtp.password_cmd", "give password_env or password_cmd, not both")
	}
	if s.PasswordEnv == "" {
		s.PasswordEnv = DefaultPasswordEnv
	}
	s.loadAuth(f, bad)
	if f.CAFile != "" {
		s.CAFile = rel(f.CAFile)
		if _, err := os.Stat(s.CAFile); err != nil {
			bad("smtp.ca_file", "%v", err)
		}
	}
	if s.HELO == "" {
		s.HELO = from[strings.LastIndexByte(from, '@')+1:]
	}
	if strings.ContainsAny(s.HELO, " \t\r\n") {
		bad("smtp.helo", "%q: a host name has no spaces", s.HELO)
	}
}

// loadAuth checks auth, token_cmd and [smtp.oauth]: an OAuth2 login takes
// the token that token_cmd prints, or else the one batch login stored, for
// the username's account, and no password.
func (s *SMTP) loadAuth(f *smtpFile, bad func(key, format string, args ...any)) {
	switch f.Auth {
	case "":
		s.Auth = deliver.AuthPassword
	case "xoauth2":
		s.Auth = deliver.AuthXOAUTH2
	case "oauthbearer":
		s.Auth = deliver.AuthOAuthBearer
	default:
		bad("smtp.auth", `%q: want "xoauth2" or "oauthbearer" (an OAuth2 token from token_cmd or batch login), or leave it out for the password`, f.Auth)
		return
	}
	switch {
	case s.Auth == deliver.AuthPassword && s.TokenCmd != "":
		bad("smtp.token_cmd", `is for an OAuth2 login: set auth = "xoauth2" or "oauthbearer", or remove token_cmd`)
	case s.Auth == deliver.AuthPassword && f.OAuth != nil:
		bad("smtp.oauth", `is for an OAuth2 login: set auth = "xoauth2" or "oauthbearer", or remove [smtp.oauth]`)
	case s.Auth == deliver.AuthPassword:
	case s.TokenCmd != "" && strings.TrimSpace(s.TokenCmd) == "":
		bad("smtp.token_cmd", `is empty: give a command that prints the access token, e.g. token_cmd = "gcloud auth print-access-token", or remove it to use batch login's`)
	case s.TokenCmd != "" && f.OAuth != nil:
		bad("smtp.oauth", `is for batch login, and token_cmd gives the token: remove one`)
	case s.Username == "":
		bad("smtp.username", `auth = %q needs the account the token is for, e.g. username = "news@example.org"`, f.Auth)
	case s.PasswordCmd != "" || f.PasswordEnv != "":
		bad("smtp.auth", `%q logs in with an OAuth2 token, not a password: remove password_env and password_cmd`, f.Auth)
	}
	if s.Auth != deliver.AuthPassword && s.TokenCmd == "" {
		s.loadOAuth(f.OAuth, bad)
	}
}

// loadConnections checks connections and max_per_connection, each its
// default when it is not given.
func (s *SMTP) loadConnections(bad func(key, format string, args ...any)) {
	switch {
	case s.Connections == 0:
		s.Connections = 1
	case s.Connections < 0 || s.Connections > 64:
		bad("smtp.connections", "%d: want 1 to 64", s.Connections)
	}
	switch {
	case s.MaxPerConnection == 0:
		s.MaxPerConnection = 100
	case s.MaxPerConnection < 0:
		bad("smtp.max_per_connection", "%d: want a positive number", s.MaxPerConnection)
	}
}

// loadRetries checks retries, retry_wait and max_errors, each its default
// when it is not given.
func (s *SMTP) loadRetries(f *smtpFile, bad func(key, format string, args ...any)) {
	s.Retries = 5
	if f.Retries != nil {
		if s.Retries = *f.Retries; s.Retries < 0 || s.Retries > 100 {
			bad("smtp.retries", "%d: want 0 to 100", s.Retries)
		}
	}
	s.RetryWait = duration(bad, "smtp.retry_wait", f.RetryWait, 30*time.Second)
	s.MaxErrors = 50
	if f.MaxErrors != nil {
		if s.MaxErrors = *f.MaxErrors; s.MaxErrors < 0 {
			bad("smtp.max_errors", "%d: want 0 (no limit) or more", s.MaxErrors)
		}
	}
}

// duration reads a duration key, def when it is not given.
func duration(bad func(key, format string, args ...any), key, text string, def time.Duration) time.Duration {
	if text == "" {
		return def
	}
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		bad(key, "%q: want a duration such as \"30s\" or \"2m\"", text)
		return def
	}
	return d
}

// Secrets are the ways to get the password, given by the command line.
type Secrets struct {
	Getenv func(string) string
	// Commands runs password_cmd.
	Commands Commands
	// Prompt asks on the terminal; nil when there is none.
	Prompt func(question string) (string, error)
}

// Token returns how deliver gets the access token of an OAuth2 login: by
// running token_cmd at each login (a token command keeps the token while
// it is valid, and prints a fresh one after), so that a campaign outlives
// its tokens; without token_cmd, from the login batch login stored
// (TokenFile), refreshed when it has expired. Nil for a password login. A
// token_cmd that fails gives a *CommandError; no stored login, ErrNoLogin.
func (s *SMTP) Token(sec Secrets) deliver.Token {
	if s.Auth == deliver.AuthPassword {
		return nil
	}
	if s.TokenCmd == "" {
		return (&storedSource{s: s, sec: sec}).token
	}
	const key = "smtp.token_cmd"
	cmd := Command{Key: key, At: s.loc(key), Line: s.TokenCmd, What: "the access token"}
	return func(ctx context.Context) (string, error) {
		return sec.Commands.Output(ctx, cmd)
	}
}

// Password returns the SMTP password: the output of password_cmd, or the
// variable password_env names, or an answer at the terminal. Without a
// username, or with an OAuth2 login, there is none. A password_cmd that fails gives a *CommandError.
func (s *SMTP) Password(ctx context.Context, sec Secrets) (string, error) {
	if s.Username == "" || s.Auth != deliver.AuthPassword {
		return "", nil
	}
	if s.PasswordCmd != "" {
		const key = "smtp.password_cmd"
		return sec.Commands.Output(ctx, Command{Key: key, At: s.loc(key), Line: s.PasswordCmd, What: "the password"})
	}
	if pw := sec.Getenv(s.PasswordEnv); pw != "" {
		return pw, nil
	}
	if sec.Prompt != nil {
		return sec.Prompt(fmt.Sprintf("Password for %s at %s: ", s.Username, s.Host))
	}
	return "", fmt.Errorf("no password for %s at %s: set the environment variable %s, or password_cmd in [smtp], or run batch on a terminal to be asked", s.Username, s.Host, s.PasswordEnv)
}

// loc returns "file:line" of a key of the table, or "".
func (s *SMTP) loc(key string) string {
	if s.at == nil {
		return ""
	}
	return s.at(key)
}

// Config returns what deliver needs to send, the password given. With
// ca_file, the server is verified against its CAs and, only when they
// don't verify it, the system's too (deliver.Roots): loading the system's
// takes tens of milliseconds, before the first connection.
func (s *SMTP) Config(password string, debug io.Writer) (deliver.SMTPConfig, error) {
	cfg := deliver.SMTPConfig{
		Host:             s.Host,
		Port:             s.Port,
		Security:         s.Security,
		Username:         s.Username,
		Password:         password,
		Auth:             s.Auth,
		HELO:             s.HELO,
		Timeout:          s.Timeout,
		Connections:      s.Connections,
		Queue:            s.leaseQueue(),
		MaxPerConnection: s.MaxPerConnection,
		Sender:           s.Sender,
		Debug:            debug,
	}
	if s.Rate > 0 {
		cfg.Limiter = deliver.NewLimiter(s.Rate, deliver.RealClock{})
	}
	roots, err := loadRoots("smtp.ca_file", s.CAFile, s.systemRoots)
	cfg.Roots = roots
	return cfg, err
}

// leaseQueue is how many messages the sender queues beyond one for each
// connection, for a lease to find them (see lease): lease-1, or with a
// rate under lease a second, that rate's messages of about a second, so
// that a lease's records are no more than about a second older than
// their messages' handover (the quota counts from them), and a send that
// slow, whose syncs cost nothing beside its rate, has a record a sync.
func (s *SMTP) leaseQueue() int {
	if s.Rate > 0 && s.Rate < lease {
		return max(int(s.Rate), 1) - 1
	}
	return lease - 1
}

// loadRoots reads the CA certificates of a ca_file, key, at path ("" for
// none, which leaves nil: the system's CAs alone), to trust with the
// system's, which system gives (nil for x509.SystemCertPool).
func loadRoots(key, path string, system func() (*x509.CertPool, error)) (*deliver.Roots, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	roots, ok := deliver.NewRoots(pem, system)
	if !ok {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", key, path)
	}
	return roots, nil
}

// Addr is "host:port".
func (s *SMTP) Addr() string { return fmt.Sprintf("%s:%d", s.Host, s.Port) }
