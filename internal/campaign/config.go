// Package campaign loads a campaign file and runs the campaign: it reads the
// recipient list, merges each row into the templates, renders the messages
// and hands them to a sender.
//
// A campaign file is TOML (https://toml.io/en/v1.0.0), decoded strictly: an
// unknown key is an error that names the key and its line. Paths in it are
// relative to the file. Every problem found is reported, not just the first.
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
	DKIM        *dkimFile         `toml:"dkim"`
	Limits      *limitsFile       `toml:"limits"`
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
	DKIM        *DKIM           // signs every message; nil without a [dkim] table
	Limits      Limits          // what a row and a message may hold

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
	lines := keyLines(string(data))
	at := (&Campaign{Path: path, lines: lines}).loc
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, Problems{tomlError(path, err)}
	}
	var errs Problems
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", at(key), key, fmt.Sprintf(format, args...)))
	}
	for _, k := range md.Undecoded() {
		key := k.String()
		if k[len(k)-1] == "password" {
			bad(key, "a password can't be kept in the campaign file, which lives in git: batch reads it from the environment variable named by password_env, the output of password_cmd, or a prompt")
			continue
		}
		bad(key, "unknown key: check its spelling and table (see the campaign file reference in README.md)")
	}

	dir := filepath.Dir(path)
	c := &Campaign{Path: path, Name: f.Name, lines: lines, Columns: merge.Columns{
		Email: f.Columns.Email, Name: f.Columns.Name, Attachments: f.Columns.Attachments,
	}}
	rel := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	required := func(key, v, what string) bool {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s: %s is required: %s", path, key, what))
			return false
		}
		return true
	}
	exists := func(key, p string) bool {
		st, err := os.Stat(p)
		switch {
		case err != nil && errors.Is(err, fs.ErrNotExist):
			bad(key, "%s: no such file", p)
		case err != nil:
			bad(key, "%v", err)
		case st.IsDir():
			bad(key, "%s is a directory, not a file", p)
		default:
			return true
		}
		return false
	}

	if required("name", f.Name, `it names the campaign in Message-IDs and run state, e.g. name = "2026-11-newsletter"`) {
		if strings.ContainsFunc(f.Name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			bad("name", "control characters are not allowed")
		}
	}
	if required("from", f.From, `e.g. from = "Example News <news@example.org>"`) {
		if a, err := parseMailbox(f.From); err != nil {
			bad("from", "%v", err)
		} else {
			c.From = *a
		}
	}
	if f.ReplyTo != "" {
		if a, err := parseMailbox(f.ReplyTo); err != nil {
			bad("reply_to", "%v", err)
		} else {
			c.ReplyTo = a
		}
	}
	if required("subject", f.Subject, `e.g. subject = "News for {{.name}}"`) {
		if t, err := merge.ParseLine(at("subject")+": subject", f.Subject); err != nil {
			errs = append(errs, err)
		} else {
			c.Subject = t
		}
	}
	if required("template", f.Template, `the Markdown file of the message, e.g. template = "templates/news.md"`) {
		c.BodyPath = rel(f.Template)
		if exists("template", c.BodyPath) {
			if text, err := os.ReadFile(c.BodyPath); err != nil {
				bad("template", "%v", err)
			} else if t, err := merge.ParseBody(c.BodyPath, string(text)); err != nil {
				errs = append(errs, err)
			} else {
				c.Body = t
			}
		}
	}
	c.Layout = templates.DefaultLayout
	if f.Layout != "" {
		c.LayoutPath = rel(f.Layout)
		if exists("layout", c.LayoutPath) {
			if text, err := os.ReadFile(c.LayoutPath); err != nil {
				bad("layout", "%v", err)
			} else {
				c.Layout = string(text)
			}
		}
	}
	if required("recipients", f.Recipients, `the CSV list, e.g. recipients = "recipients.csv"`) {
		c.Recipients = rel(f.Recipients)
		exists("recipients", c.Recipients)
	}
	for _, a := range f.Attachments {
		p := rel(a)
		if exists("attachments", p) {
			c.Attachments = append(c.Attachments, p)
		}
	}
	c.loadAttachmentsDir(f.Columns, rel, bad)
	if f.Sender != "" {
		// The envelope's sender (MAIL FROM) may be given beside from, as
		// people write it, or in [smtp], where it belongs.
		switch {
		case f.SMTP != nil && f.SMTP.Sender != "" && f.SMTP.Sender != f.Sender:
			bad("sender", "%q and [smtp] sender %q: give one", f.Sender, f.SMTP.Sender)
		case f.SMTP != nil:
			f.SMTP.Sender = f.Sender
		case merge.CheckAddress(f.Sender) != nil:
			bad("sender", "%q: %v", f.Sender, merge.CheckAddress(f.Sender))
		}
	}
	if f.SMTP != nil {
		c.SMTP = loadSMTP(f.SMTP, c.From.Address, rel, bad)
	}
	if f.DKIM != nil {
		c.DKIM = loadDKIM(f.DKIM, c.From.Address, rel, bad)
		if strings.TrimSpace(f.DKIM.KeyFile) != "" {
			c.keyFile = rel(f.DKIM.KeyFile)
		}
	}
	c.Limits = loadLimits(f.Limits, bad)
	if f.Preheader != "" {
		if t, err := merge.ParseLine(at("preheader")+": preheader", f.Preheader); err != nil {
			errs = append(errs, err)
		} else {
			c.Preheader = t
		}
	}
	if f.Lang != "" {
		if c.Lang, err = checkLang(f.Lang); err != nil {
			errs = append(errs, fmt.Errorf("%s: lang: %w", at("lang"), err))
		}
	}
	if f.Unsubscribe != nil {
		c.Unsubscribe = loadUnsubscribe(f.Unsubscribe, at, bad, &errs)
	}
	if c.Unsubscribe == nil || c.Unsubscribe.URL == nil {
		if c.Body != nil && c.Body.UsesUnsubscribe() {
			errs = append(errs, fmt.Errorf("%s: the template uses {{unsubscribe}}, but the campaign has no [unsubscribe] url", c.BodyPath))
		}
	}
	seen := map[string]string{}
	for _, k := range md.Keys() {
		if len(k) != 2 || k[0] != "headers" {
			continue
		}
		name, key := k[1], k.String()
		if err := render.CheckFieldName(name); err != nil {
			bad(key, "%v", reservedField(err))
			continue
		}
		if other, dup := seen[strings.ToLower(name)]; dup {
			bad(key, "the same field as %s (field names ignore case): keep one", other)
			continue
		}
		seen[strings.ToLower(name)] = name
		t, err := merge.ParseLine(at(key)+": "+key, f.Headers[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Headers = append(c.Headers, header{Name: name, Value: t, key: key})
	}
	if len(errs) > 0 {
		// The campaign as far as it goes: check can still look at the
		// templates and the list for their own problems.
		c.incomplete = true
		return c, errs
	}
	return c, nil
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
