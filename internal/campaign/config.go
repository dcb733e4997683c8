// Package campaign loads a campaign file and runs the campaign: it reads the
// recipient list, merges each row into the templates, renders the messages
// and hands them to a sender, recording what becomes of each in the
// campaign's journal (package journal): its tracker of a message follows
// the journal's protocol for the sender (a deliver.Tracker). Deliver and
// DryRun are the sends of the command, Check its check, and Report, Status
// and Counts what it tells of the recipients, in the campaign's terms. A Preview shows the same messages, kept in step
// with the files as they are edited, and sends nothing.
//
// A campaign file is TOML (https://toml.io/en/v1.0.0), decoded strictly: an
// unknown key is an error that names the key and its line. Paths in it are
// relative to the file. Every problem found is reported, not just the first.
//
// Check and Send each make a pass over the list (run.go): the rows are read
// in order and rendered on every core (pipeline.go), counted (summary.go),
// and their messages (message.go) handed to what the pass is for: Check's
// counts them, Send's delivers them (delivery.go) and records each outcome
// in the journal. render and deliver say their problems in their own terms;
// this package says them in the campaign file's, with the keys to change
// and their lines.
//
// The campaign's suppression list (its suppress key, package suppress) is
// read by each pass, whose addresses it skips and counts by reason, and
// added to by a send as its hard bounces come (suppress.go), which is
// also where batch suppress edits it. Bounces (bounces.go) reads a bounce
// mailbox, a Maildir, an mbox or the [bounces] table's IMAP folder
// (imap.go), matches each report (package bounce) to the campaign's
// recipients by their Message-IDs, and adds its hard bounces, complaints
// and unsubscribes to the list; its soft bounces go to the soft-bounce
// record beside the list (suppress.SoftList), and an address with soft
// bounces of [bounces] soft_limit campaigns to the list as bounced.
//
// The commands the file gives for secrets (smtp.password_cmd,
// smtp.token_cmd, smtp.oauth.client_secret_cmd, unsubscribe.secret_cmd,
// bounces.password_cmd) are run by [Commands], all the same way, each
// bounded in time and in output.
//
// An OAuth2 login without token_cmd takes the token SMTP.Login (batch
// login, login.go) stored under the user's config directory: the device
// authorization flow of [smtp.oauth]'s provider, the token refreshed as
// needed at each login and kept again when it changes.
//
// With [unsubscribe] token = true each unsubscribe link carries a token,
// the address and its HMAC under the campaign's secret (unsubscribe.go),
// and UnsubscribeHandler (unsubserver.go), behind batch
// unsubscribe-server, adds the address of a valid token's one-click POST
// to the suppression list.
//
// The [smtp] quota (quota.go) is a rolling window counted from the
// "sending" records of every journal of the campaign on this machine,
// read when a send starts; the delivery takes one of it before each
// message goes to the sender, and stops, or waits on Options.Clock, when
// it is spent.
package campaign

import (
	"errors"
	"fmt"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"golang.org/x/text/language"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/templates"
)

// file is the campaign file as written.
type file struct {
	Name        string            `toml:"name"`
	From        string            `toml:"from"`
	ReplyTo     string            `toml:"reply_to"`
	Subject     string            `toml:"subject"`
	Template    string            `toml:"template"`
	Layout      string            `toml:"layout"`
	Recipients  string            `toml:"recipients"`
	Attachments []string          `toml:"attachments"`
	Columns     columns           `toml:"columns"`
	Headers     map[string]string `toml:"headers"`
	SMTP        *smtpFile         `toml:"smtp"`
	Preheader   string            `toml:"preheader"`
	Lang        string            `toml:"lang"`
	Sender      string            `toml:"sender"` // the bounce address; also [smtp] sender
	Unsubscribe *unsubscribeFile  `toml:"unsubscribe"`
	Bounces     *bouncesFile      `toml:"bounces"`
	DKIM        *dkimFile         `toml:"dkim"`
	Limits      *limitsFile       `toml:"limits"`
	Suppress    string            `toml:"suppress"`
	// SuppressBounces is a pointer, as its default is true.
	SuppressBounces *bool `toml:"suppress_bounces"`
}

type columns struct {
	Email          string `toml:"email"`
	Name           string `toml:"name"`
	Attachments    string `toml:"attachments"`
	AttachmentsDir string `toml:"attachments_dir"`
}

// Campaign is a loaded, checked campaign, its paths resolved.
type Campaign struct {
	Path        string // the campaign file, as named by the user
	Name        string
	From        mail.Address
	ReplyTo     *mail.Address
	Subject     *merge.Template
	Body        *merge.Template
	BodyPath    string
	Layout      string // html/template text
	LayoutPath  string // "" for the built-in layout
	Recipients  string
	Attachments []string
	Columns     merge.Columns
	Headers     []header        // in file order
	SMTP        *SMTP           // nil without an [smtp] table
	Preheader   *merge.Template // nil for none
	Lang        string          // the text's language, a BCP 47 tag; "" for none
	Unsubscribe *Unsubscribe    // nil without an [unsubscribe] table
	Bounce      *BounceMailbox  // the IMAP bounce mailbox; nil without a [bounces] imap
	DKIM        *DKIM           // signs every message; nil without a [dkim] table
	Limits      Limits          // what a row and a message may hold
	// Suppress is the suppression list (package suppress), whose
	// addresses are not sent to; "" for none. The file may not exist
	// yet: the list is then empty.
	Suppress string
	// SuppressBounces adds to Suppress the recipients a server refuses
	// for good as unknown (a hard bounce, see hardBounce).
	SuppressBounces bool
	// SoftLimit is [bounces] soft_limit: batch bounces suppresses an
	// address as bounced once the soft-bounce record beside Suppress
	// (suppress.SoftPath) has soft bounces of it from this many
	// campaigns; 0 counts none.
	SoftLimit int

	// AttachmentsDir is the one directory whose files the attachments
	// column may name: its values are paths relative to the campaign
	// file, inside it.
	AttachmentsDir string

	lines      map[string]int // key → line in the campaign file
	incomplete bool           // Load found problems: check, never send
	keyFile    string         // the DKIM key, never attached; "" for none
	// absDir and absFiles are the campaign file's directory and
	// AttachmentsDir, absolute, to find where a row's path leads.
	absDir, absFiles string
}

// loc returns "file:line" of a key of the campaign file, or the file.
func (c *Campaign) loc(key string) string {
	if l, ok := c.lines[key]; ok {
		return fmt.Sprintf("%s:%d", c.Path, l)
	}
	return c.Path
}

type header struct {
	Name  string
	Value *merge.Template
	key   string // "headers.X-Name", as the file has it
}

// Load reads and checks the campaign file at path. The error, if any, is
// Problems: one entry per problem, each naming file and line. With problems
// other than a broken TOML file, Load also returns the campaign as far as
// it could be read, which Check can look at for more problems; it can't be
// sent.
func Load(path string) (*Campaign, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such campaign file", path)
		}
		return nil, err
	}
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, Problems{tomlError(path, err)}
	}
	c := &Campaign{Path: path, Name: f.Name, lines: keyLines(string(data)), Columns: merge.Columns{
		Email: f.Columns.Email, Name: f.Columns.Name, Attachments: f.Columns.Attachments,
	}}
	l := &loader{c: c, dir: filepath.Dir(path)}
	l.undecoded(md)
	l.message(&f)
	l.files(&f)
	l.sending(&f)
	l.extras(&f)
	l.headers(md, f.Headers)
	if len(l.errs) > 0 {
		// The campaign as far as it goes: check can still look at the
		// templates and the list for their own problems.
		c.incomplete = true
		return c, l.errs
	}
	return c, nil
}

// loader checks a campaign file's keys into its Campaign, collecting every
// problem.
type loader struct {
	c    *Campaign
	dir  string // the campaign file's, where its paths start
	errs Problems
}

// bad reports a problem with key, at its line.
func (l *loader) bad(key, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s: %s", l.c.loc(key), key, fmt.Sprintf(format, args...)))
}

// rel resolves a path of the campaign file.
func (l *loader) rel(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

// required reports a key that is missing, and says whether it is there.
func (l *loader) required(key, v, what string) bool {
	if strings.TrimSpace(v) == "" {
		l.errs = append(l.errs, fmt.Errorf("%s: %s is required: %s", l.c.Path, key, what))
		return false
	}
	return true
}

// exists reports a key's file that is missing or a directory, and says
// whether it is a file.
func (l *loader) exists(key, p string) bool {
	st, err := os.Stat(p)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		l.bad(key, "%s: no such file", p)
	case err != nil:
		l.bad(key, "%v", err)
	case st.IsDir():
		l.bad(key, "%s is a directory, not a file", p)
	default:
		return true
	}
	return false
}

// undecoded reports the keys batch doesn't know, and a password.
func (l *loader) undecoded(md toml.MetaData) {
	for _, k := range md.Undecoded() {
		key := k.String()
		if k[len(k)-1] == "secret" && len(k) == 2 && k[0] == "unsubscribe" {
			l.bad(key, "a secret can't be kept in the campaign file, which lives in git: batch reads it from the environment variable named by secret_env or the output of secret_cmd")
			continue
		}
		if key == "smtp.oauth.client_secret" {
			l.bad(key, "a client secret can't be kept in the campaign file, which lives in git: batch reads it from the environment variable named by client_secret_env or the output of client_secret_cmd")
			continue
		}
		if k[len(k)-1] == "password" {
			l.bad(key, "a password can't be kept in the campaign file, which lives in git: batch reads it from the environment variable named by password_env, the output of password_cmd, or a prompt")
			continue
		}
		l.bad(key, "unknown key: check its spelling and table (see the campaign file reference in README.md)")
	}
}

// message checks the keys that name the campaign and address its
// messages: name, from, reply_to, subject.
func (l *loader) message(f *file) {
	c := l.c
	if l.required("name", f.Name, `it names the campaign in Message-IDs and run state, e.g. name = "2026-11-newsletter"`) {
		if strings.ContainsFunc(f.Name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			l.bad("name", "control characters are not allowed")
		}
	}
	if l.required("from", f.From, `e.g. from = "Example News <news@example.org>"`) {
		if a, err := parseMailbox(f.From); err != nil {
			l.bad("from", "%v", err)
		} else {
			c.From = *a
		}
	}
	if f.ReplyTo != "" {
		if a, err := parseMailbox(f.ReplyTo); err != nil {
			l.bad("reply_to", "%v", err)
		} else {
			c.ReplyTo = a
		}
	}
	if l.required("subject", f.Subject, `e.g. subject = "News for {{.name}}"`) {
		if t, err := merge.ParseLine(c.loc("subject")+": subject", f.Subject); err != nil {
			l.errs = append(l.errs, err)
		} else {
			c.Subject = t
		}
	}
}

// files checks the files the campaign file names: the template, the
// layout, the list, the attachments and the rows' attachments directory.
func (l *loader) files(f *file) {
	c := l.c
	if l.required("template", f.Template, `the Markdown file of the message, e.g. template = "templates/news.md"`) {
		c.BodyPath = l.rel(f.Template)
		if text, ok := l.read("template", c.BodyPath); ok {
			if t, err := merge.ParseBody(c.BodyPath, text); err != nil {
				l.errs = append(l.errs, err)
			} else {
				c.Body = t
			}
		}
	}
	c.Layout = templates.DefaultLayout
	if f.Layout != "" {
		c.LayoutPath = l.rel(f.Layout)
		if text, ok := l.read("layout", c.LayoutPath); ok {
			c.Layout = text
		}
	}
	if l.required("recipients", f.Recipients, `the CSV list, e.g. recipients = "recipients.csv"`) {
		c.Recipients = l.rel(f.Recipients)
		l.exists("recipients", c.Recipients)
	}
	for _, a := range f.Attachments {
		p := l.rel(a)
		if l.exists("attachments", p) {
			c.Attachments = append(c.Attachments, p)
		}
	}
	c.loadAttachmentsDir(f.Columns, l.rel, l.bad)
}

// read reads the file of key, reporting why it can't.
func (l *loader) read(key, p string) (string, bool) {
	if !l.exists(key, p) {
		return "", false
	}
	text, err := os.ReadFile(p)
	if err != nil {
		l.bad(key, "%v", err)
		return "", false
	}
	return string(text), true
}

// sending checks how the messages go out: sender, [smtp], [dkim], [limits].
func (l *loader) sending(f *file) {
	c := l.c
	if f.Sender != "" {
		// The envelope's sender (MAIL FROM) may be given beside from, as
		// people write it, or in [smtp], where it belongs.
		switch {
		case f.SMTP != nil && f.SMTP.Sender != "" && f.SMTP.Sender != f.Sender:
			l.bad("sender", "%q and [smtp] sender %q: give one", f.Sender, f.SMTP.Sender)
		case f.SMTP != nil:
			f.SMTP.Sender = f.Sender
		case merge.CheckAddress(f.Sender) != nil:
			l.bad("sender", "%q: %v", f.Sender, merge.CheckAddress(f.Sender))
		}
	}
	if f.SMTP != nil {
		c.SMTP = loadSMTP(f.SMTP, c.From.Address, l.rel, c.loc, l.bad)
	}
	if f.DKIM != nil {
		c.DKIM = loadDKIM(f.DKIM, c.From.Address, l.rel, l.bad)
		if strings.TrimSpace(f.DKIM.KeyFile) != "" {
			c.keyFile = l.rel(f.DKIM.KeyFile)
		}
	}
	c.Limits = loadLimits(f.Limits, l.bad)
	l.suppress(f)
}

// extras checks what a message may have besides its body: preheader,
// lang, [unsubscribe], and [bounces], the mailbox its bounces come back to.
func (l *loader) extras(f *file) {
	c := l.c
	if f.Preheader != "" {
		if t, err := merge.ParseLine(c.loc("preheader")+": preheader", f.Preheader); err != nil {
			l.errs = append(l.errs, err)
		} else {
			c.Preheader = t
		}
	}
	if f.Lang != "" {
		var err error
		if c.Lang, err = checkLang(f.Lang); err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s: lang: %w", c.loc("lang"), err))
		}
	}
	if f.Unsubscribe != nil {
		c.Unsubscribe = loadUnsubscribe(f.Unsubscribe, c.loc, l.bad, &l.errs)
	}
	if f.Bounces != nil && f.Bounces.mailbox() {
		c.Bounce = loadBounces(f.Bounces, l.rel, c.loc, l.bad)
	}
	if c.Unsubscribe == nil || c.Unsubscribe.URL == nil {
		if c.Body != nil && c.Body.UsesUnsubscribe() {
			l.errs = append(l.errs, fmt.Errorf("%s: the template uses {{unsubscribe}}, but the campaign has no [unsubscribe] url", c.BodyPath))
		}
	}
}

// headers checks [headers], in file order: names a message may have, once
// each, and their values.
func (l *loader) headers(md toml.MetaData, values map[string]string) {
	seen := map[string]string{}
	for _, k := range md.Keys() {
		if len(k) != 2 || k[0] != "headers" {
			continue
		}
		name, key := k[1], k.String()
		if err := render.CheckFieldName(name); err != nil {
			l.bad(key, "%v", reservedField(err))
			continue
		}
		if other, dup := seen[strings.ToLower(name)]; dup {
			l.bad(key, "the same field as %s (field names ignore case): keep one", other)
			continue
		}
		seen[strings.ToLower(name)] = name
		t, err := merge.ParseLine(l.c.loc(key)+": "+key, values[name])
		if err != nil {
			l.errs = append(l.errs, err)
			continue
		}
		l.c.Headers = append(l.c.Headers, header{Name: name, Value: t, key: key})
	}
}

// reservedField says in the campaign file's terms why [headers] can't set
// a field render refused: which table or key sets it.
func reservedField(err error) error {
	var fe *render.FieldNameError
	if errors.As(err, &fe) {
		switch fe.Reason {
		case render.FieldUnsubscribe:
			return fmt.Errorf("header field %s is set by the [unsubscribe] table", fe.Name)
		case render.FieldAddressed:
			return fmt.Errorf("header field %s is set by the campaign key %s", fe.Name, strings.ReplaceAll(strings.ToLower(fe.Name), "-", "_"))
		}
	}
	return err
}

// checkLang checks a lang key: a BCP 47 language tag (RFC 5646) of
// registered subtags, written as it reads, and returns it in its
// canonical form ("zh-cn" and "zh_CN" are "zh-CN"). A tag that reads as another one
// ("iw" is "he", "zh-CHN" is Chinook jargon, "chn") is refused with the
// one it reads as, so that the HTML's lang attribute is what the file says.
func checkLang(s string) (string, error) {
	const examples = `"en", "en-GB", "zh-CN" or "zh-Hant"`
	tag, err := language.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a BCP 47 language tag (%w): write a language and, where it matters, a region or script, such as %s", s, err, examples)
	}
	if canon := tag.String(); !strings.EqualFold(canon, strings.ReplaceAll(s, "_", "-")) {
		return "", fmt.Errorf("%q reads as %q in BCP 47: write %q if that is meant, or a tag such as %s", s, canon, canon, examples)
	}
	return tag.String(), nil
}

// parseMailbox parses "Name <addr>" or a bare address that batch can send from.
func parseMailbox(s string) (*mail.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an address like \"Example News <news@example.org>\": %v", s, err)
	}
	if err := merge.CheckAddress(a.Address); err != nil {
		return nil, fmt.Errorf("%q: invalid address: %v", a.Address, err)
	}
	a.Name = merge.OneLine(a.Name)
	return a, nil
}

var tomlLine = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "([^"]*)"\))?: (.*)$`)

// tomlError names the file and line of a TOML error.
func tomlError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %s", path, pe.Position.Line, ourStyle(pe.Message))
	}
	if m := tomlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		if m[2] != "" {
			return fmt.Errorf("%s:%d: %s: %s", path, n, m[2], ourStyle(m[3]))
		}
		return fmt.Errorf("%s:%d: %s", path, n, ourStyle(m[3]))
	}
	return fmt.Errorf("%s: %w", path, err)
}

// ourStyle writes a library's message the way batch's read: lower-case
// first letter, no final period.
func ourStyle(msg string) string {
	msg = strings.TrimSuffix(strings.TrimSpace(msg), ".")
	if r, size := utf8.DecodeRuneInString(msg); unicode.IsUpper(r) && !unicode.IsUpper(rune(msg[min(size, len(msg)-1)])) {
		msg = string(unicode.ToLower(r)) + msg[size:]
	}
	return msg
}
