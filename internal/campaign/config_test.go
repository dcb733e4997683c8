package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/language"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/templates"
)

// writeFiles writes files (name → content, names with slashes) under a new
// temporary directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	return dir
}

// writeTree writes files, by their slash-separated paths, under dir,
// making the folders they need.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// baseFiles are the files a minimal campaign needs besides its own file.
func baseFiles() map[string]string {
	return map[string]string{
		"news.md":  "Hi {{.name}}!\n",
		"list.csv": "email,name,plan\nada@example.org,Ada,pro\n",
	}
}

// minimal is a campaign file with every required key, on lines 1 to 5.
const minimal = `name = "2026-11-test"
from = "Example News <news@example.org>"
subject = "News for {{.name}}"
template = "news.md"
recipients = "list.csv"
`

// load writes a campaign file c.toml with text next to baseFiles (and
// extra files) and loads it. It returns the campaign file's path.
func load(t *testing.T, text string, extra map[string]string) (*Campaign, string, error) {
	t.Helper()
	files := baseFiles()
	maps.Copy(files, extra)
	files["c.toml"] = text
	path := filepath.Join(writeFiles(t, files), "c.toml")
	c, err := Load(path)
	return c, path, err
}

// problems returns the Problems of err, failing the test if err is not one.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want Problems")
	}
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("error %v (%T) is not Problems", err, err)
	}
	return p
}

// findProblem returns the problem whose message starts with prefix.
func findProblem(p Problems, prefix string) error {
	for _, e := range p {
		if strings.HasPrefix(e.Error(), prefix) {
			return e
		}
	}
	return nil
}

func TestLoadGood(t *testing.T) {
	text := `# A campaign with every key.
name = "2026-11-test"
from = "Example News <news@example.org>"
reply_to = "The Team <team@example.org>"
subject = "News for {{.who}}"
template = "md/news.md"
layout = "layout.html"
recipients = "list.csv"
attachments = ["files/plan.txt", "files/map.pdf"]

[columns]
email = "mail"
name = "who"

[headers]
X-Campaign = "test"
X-Plan = "{{.plan}}"
A-First = "sorted first, written last"
`
	extra := map[string]string{
		"md/news.md":     "Hi {{.who}}!\n",
		"layout.html":    "<html>{{.Body}}</html>",
		"list.csv":       "mail,who,plan\nada@example.org,Ada,pro\n",
		"files/plan.txt": "plan",
		"files/map.pdf":  "%PDF-1.4",
	}
	c, path, err := load(t, text, extra)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	if c.Path != path || c.Name != "2026-11-test" {
		t.Errorf("Path %q Name %q", c.Path, c.Name)
	}
	if c.From.Name != "Example News" || c.From.Address != "news@example.org" {
		t.Errorf("From = %+v", c.From)
	}
	if c.ReplyTo == nil || c.ReplyTo.Name != "The Team" || c.ReplyTo.Address != "team@example.org" {
		t.Errorf("ReplyTo = %+v", c.ReplyTo)
	}
	if c.BodyPath != filepath.Join(dir, "md", "news.md") || c.Body == nil {
		t.Errorf("BodyPath %q, Body %v", c.BodyPath, c.Body)
	}
	if c.LayoutPath != filepath.Join(dir, "layout.html") || c.Layout != "<html>{{.Body}}</html>" {
		t.Errorf("LayoutPath %q, Layout %q", c.LayoutPath, c.Layout)
	}
	if c.Recipients != filepath.Join(dir, "list.csv") {
		t.Errorf("Recipients %q", c.Recipients)
	}
	wantAtt := []string{filepath.Join(dir, "files", "plan.txt"), filepath.Join(dir, "files", "map.pdf")}
	if strings.Join(c.Attachments, "|") != strings.Join(wantAtt, "|") {
		t.Errorf("Attachments %q, want %q", c.Attachments, wantAtt)
	}
	if c.Columns != (merge.Columns{Email: "mail", Name: "who"}) {
		t.Errorf("Columns %+v", c.Columns)
	}
	var names []string
	for _, h := range c.Headers {
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "X-Campaign,X-Plan,A-First" {
		t.Errorf("headers %s, want them in file order X-Campaign,X-Plan,A-First", got)
	}
	fields := map[string]string{"mail": "ada@example.org", "who": "Ada", "plan": "pro"}
	if s, err := c.Subject.Line(fields); err != nil || s != "News for Ada" {
		t.Errorf("Subject.Line = %q, %v", s, err)
	}
	if s, err := c.Headers[1].Value.Line(fields); err != nil || s != "pro" {
		t.Errorf("X-Plan = %q, %v", s, err)
	}
}

func TestLoadDefaults(t *testing.T) {
	c, _, err := load(t, minimal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ReplyTo != nil || c.LayoutPath != "" || c.Layout != templates.DefaultLayout ||
		len(c.Attachments) != 0 || len(c.Headers) != 0 || c.Columns != (merge.Columns{}) {
		t.Errorf("defaults: %+v", c)
	}
	if c.From.Name != "Example News" || c.From.Address != "news@example.org" {
		t.Errorf("From = %+v", c.From)
	}
}

func TestLoadBareFrom(t *testing.T) {
	c, _, err := load(t, strings.Replace(minimal, "Example News <news@example.org>", "news@example.org", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.From.Name != "" || c.From.Address != "news@example.org" {
		t.Errorf("From = %+v", c.From)
	}
}

func TestLoadRelativePaths(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"campaigns/c.toml":        strings.Replace(minimal, `"news.md"`, `"../templates/news.md"`, 1),
		"campaigns/list.csv":      "email,name\nada@example.org,Ada\n",
		"templates/news.md":       "Hi {{.name}}\n",
		"elsewhere/not-used.toml": "",
	})
	t.Chdir(dir)
	c, err := Load(filepath.Join("campaigns", "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("templates", "news.md"); c.BodyPath != want {
		t.Errorf("BodyPath %q, want %q", c.BodyPath, want)
	}
	if want := filepath.Join("campaigns", "list.csv"); c.Recipients != want {
		t.Errorf("Recipients %q, want %q", c.Recipients, want)
	}
}

func TestLoadNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("got %v, want an error naming %s", err, path)
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	tests := []struct {
		name  string
		extra string // appended to minimal, from line 6
		want  map[string]int
	}{
		{"top level", "subjet = \"x\"\n", map[string]int{"subjet": 6}},
		{"in a table", "[columns]\nemail = \"email\"\n\nemial = \"x\"\n", map[string]int{"columns.emial": 9}},
		{"dotted", "\ncolumns.emial = \"x\"\n", map[string]int{"columns.emial": 7}},
		{"quoted", "\"reply to\" = \"x\"\n", map[string]int{`"reply to"`: 6}},
		{"unknown table", "# imap\n[imap]\nhost = \"imap.example.org\"\n", map[string]int{"imap": 7, "imap.host": 8}},
		{"after a multi-line string", "layout_note = \"\"\"\nsubjet = 1\n\"\"\"\nreplyto = \"x\"\n",
			map[string]int{"layout_note": 6, "replyto": 9}},
		{"several", "a = 1\n[columns]\nb = 2\n[headers]\nX-Ok = \"y\"\n[more]\nc = 3\n",
			map[string]int{"a": 6, "columns.b": 8, "more": 11, "more.c": 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, minimal+tt.extra, nil)
			p := problemsOf(t, err)
			if len(p) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(p), len(tt.want), err)
			}
			for key, line := range tt.want {
				prefix := fmt.Sprintf("%s:%d: %s: ", path, line, key)
				e := findProblem(p, prefix)
				if e == nil {
					t.Errorf("no problem starting %q in:\n%v", prefix, err)
				} else if !strings.Contains(e.Error(), "unknown key") {
					t.Errorf("%q does not say unknown key", e)
				}
			}
		})
	}
}

// TestLoadUnknownKeyInlineTable: an unknown key inside an inline table is
// reported, if without a line (keyLines reads only key = value lines).
func TestLoadUnknownKeyInlineTable(t *testing.T) {
	_, path, err := load(t, minimal+"columns = { email = \"email\", emial = \"x\" }\n", nil)
	p := problemsOf(t, err)
	if len(p) != 1 || !strings.HasPrefix(p[0].Error(), path) || !strings.Contains(p[0].Error(), "columns.emial: unknown key") {
		t.Errorf("got %v", err)
	}
}

func TestLoadPassword(t *testing.T) {
	tests := []struct {
		name, extra, key string
		line             int
	}{
		{"top level", "password = \"hunter2\"\n", "password", 6},
		{"in [smtp]", "[smtp]\nhost = \"smtp.example.org\"\npassword = \"hunter2\"\n", "smtp.password", 8},
		{"dotted", "smtp.password = \"hunter2\"\n", "smtp.password", 6},
		{"in a known table", "[columns]\npassword = \"hunter2\"\n", "columns.password", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, minimal+tt.extra, nil)
			p := problemsOf(t, err)
			prefix := fmt.Sprintf("%s:%d: %s: ", path, tt.line, tt.key)
			e := findProblem(p, prefix)
			if e == nil {
				t.Fatalf("no problem starting %q in:\n%v", prefix, err)
			}
			// The reason is the product: it must say where the password goes.
			if msg := e.Error(); !strings.Contains(msg, "environment") || strings.Contains(msg, "unknown key") {
				t.Errorf("%q: want the reason (the environment), not unknown key", msg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the password is in the message: %v", err)
			}
		})
	}
}

func TestLoadRequired(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		missing []string
	}{
		{"empty file", "", []string{"name", "from", "subject", "template", "recipients"}},
		{"comments only", "# nothing here\n\n", []string{"name", "from", "subject", "template", "recipients"}},
		{"blank values", "name = \"  \"\nfrom = \"\"\nsubject = \"x\"\ntemplate = \"news.md\"\nrecipients = \" \"\n",
			[]string{"name", "from", "recipients"}},
		{"only a table", "[columns]\nemail = \"mail\"\n", []string{"name", "from", "subject", "template", "recipients"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, tt.text, nil)
			p := problemsOf(t, err)
			if len(p) != len(tt.missing) {
				t.Errorf("got %d problems, want %d:\n%v", len(p), len(tt.missing), err)
			}
			for _, key := range tt.missing {
				if findProblem(p, fmt.Sprintf("%s: %s is required", path, key)) == nil {
					t.Errorf("%s is not reported as required in:\n%v", key, err)
				}
			}
		})
	}
}

func TestLoadMissingFiles(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		files map[string]string
		want  []string // "line: key" of each problem
	}{
		{"template", strings.Replace(minimal, "news.md", "nope.md", 1), nil, []string{"4: template"}},
		{"template is a directory", strings.Replace(minimal, "news.md", "dir", 1),
			map[string]string{"dir/x": ""}, []string{"4: template"}},
		{"recipients", strings.Replace(minimal, "list.csv", "nope.csv", 1), nil, []string{"5: recipients"}},
		{"layout", minimal + "layout = \"nope.html\"\n", nil, []string{"6: layout"}},
		{"attachments", minimal + "attachments = [\"ok.pdf\", \"nope.pdf\", \"gone.txt\"]\n",
			map[string]string{"ok.pdf": "%PDF"}, []string{"6: attachments", "6: attachments"}},
		{"all at once", strings.Replace(strings.Replace(minimal, "news.md", "a.md", 1), "list.csv", "b.csv", 1) +
			"layout = \"c.html\"\nattachments = [\"d.pdf\"]\n", nil,
			[]string{"4: template", "5: recipients", "6: layout", "7: attachments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, tt.text, tt.files)
			p := problemsOf(t, err)
			if len(p) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(p), len(tt.want), err)
			}
			for _, w := range tt.want {
				prefix := path + ":" + w + ": "
				e := findProblem(p, prefix)
				if e == nil {
					t.Errorf("no problem starting %q in:\n%v", prefix, err)
				} else if !strings.Contains(e.Error(), "no such file") && !strings.Contains(e.Error(), "directory") {
					t.Errorf("%q does not say what is wrong with the file", e)
				}
			}
		})
	}
}

func TestLoadSyntaxAndTypeErrors(t *testing.T) {
	// The message is the product: it must name the file and line.
	tests := []struct {
		name, text string
		line       int
	}{
		{"unterminated string", "name = \"x\nfrom = \"y\"\n", 1},
		{"no value", minimal + "\nx = = 1\n", 7},
		{"bad table", minimal + "[col umns]\n", 6},
		{"duplicate key", minimal + "name = \"again\"\n", 6},
		{"string for a list", minimal + "attachments = \"x.pdf\"\n", 6},
		{"number for a string", "name = 2026\n" + minimal[strings.Index(minimal, "\n")+1:], 1},
		{"number in headers", minimal + "[headers]\nX-N = 1\n", 7},
		{"table for a string", minimal + "[subject]\nx = 1\n", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, path, err := load(t, tt.text, nil)
			if err == nil {
				t.Fatalf("loaded %+v, want an error", c)
			}
			if prefix := fmt.Sprintf("%s:%d: ", path, tt.line); !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

func TestLoadAddresses(t *testing.T) {
	tests := []struct {
		name, key, value string
		line             int
	}{
		{"no @", "from", "Example News", 2},
		{"not a mailbox", "from", "<news@example.org", 2},
		{"a list", "from", "a@example.org, b@example.org", 2},
		{"domain without a dot", "from", "News <news@localhost>", 2},
		{"non-ASCII address", "from", "News <nëws@example.org>", 2},
		{"reply_to", "reply_to", "team at example.org", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := minimal
			if tt.key == "from" {
				text = strings.Replace(text, "Example News <news@example.org>", tt.value, 1)
			} else {
				text += fmt.Sprintf("%s = %q\n", tt.key, tt.value)
			}
			_, path, err := load(t, text, nil)
			p := problemsOf(t, err)
			if len(p) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(p), err)
			}
			if prefix := fmt.Sprintf("%s:%d: %s: ", path, tt.line, tt.key); findProblem(p, prefix) == nil {
				t.Errorf("no problem starting %q in:\n%v", prefix, err)
			}
		})
	}
}

func TestLoadFromNameOnOneLine(t *testing.T) {
	c, _, err := load(t, strings.Replace(minimal, "Example News <", "=?utf-8?b?RXhhbXBsZQ0KQmNjOiB4QGV4YW1wbGUub3Jn?= <", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.From.Name != "Example Bcc: x@example.org" {
		t.Errorf("From name %q is not one line", c.From.Name)
	}
}

func TestLoadHeaders(t *testing.T) {
	tests := []struct {
		name   string
		header string
		ok     bool
	}{
		{"custom", `X-Campaign = "x"`, true},
		{"template", `X-Plan = "{{.plan}}"`, true},
		{"To", `To = "x@example.org"`, false},
		{"cc", `cc = "x@example.org"`, false},
		{"Bcc", `Bcc = "x@example.org"`, false},
		{"Resent-To", `Resent-To = "x@example.org"`, false},
		{"Content-Type", `Content-Type = "text/html"`, false},
		{"content-transfer-encoding", `content-transfer-encoding = "8bit"`, false},
		{"From", `From = "x@example.org"`, false},
		{"Subject", `Subject = "x"`, false},
		{"Message-ID", `Message-ID = "<x@example.org>"`, false},
		{"space in the name", `"X Tag" = "x"`, false},
		{"colon in the name", `"X:Tag" = "x"`, false},
		{"template error", `X-Plan = "{{.plan"`, false},
		{"reserved character", "X-Tag = \"\uE000\"", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, minimal+"[headers]\n"+tt.header+"\n", nil)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			p := problemsOf(t, err)
			if len(p) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(p), err)
			}
			if prefix := fmt.Sprintf("%s:7: headers.", path); findProblem(p, prefix) == nil {
				t.Errorf("no problem starting %q in:\n%v", prefix, err)
			}
		})
	}
}

func TestLoadSubjectAndName(t *testing.T) {
	tests := []struct {
		name, from, to string
		line           int
	}{
		{"subject template error", `"News for {{.name}}"`, `"News for {{.name"`, 3},
		{"subject reserved character", `"News for {{.name}}"`, "\"News \uE001\"", 3},
		{"name with a control character", `"2026-11-test"`, `"2026\u0007"`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, strings.Replace(minimal, tt.from, tt.to, 1), nil)
			p := problemsOf(t, err)
			if len(p) != 1 || !strings.HasPrefix(p[0].Error(), fmt.Sprintf("%s:%d: ", path, tt.line)) {
				t.Errorf("got:\n%v\nwant one problem at line %d", err, tt.line)
			}
		})
	}
}

func TestLoadBodyTemplateErrors(t *testing.T) {
	// A template that does not parse is named with its own file and line.
	_, path, err := load(t, minimal, map[string]string{"news.md": "# Hi\n\n{{if .name}}\nno end\n"})
	p := problemsOf(t, err)
	body := filepath.Join(filepath.Dir(path), "news.md")
	if len(p) != 1 || !strings.HasPrefix(p[0].Error(), body+":") {
		t.Errorf("got:\n%v\nwant one problem naming %s", err, body)
	}
	_, path, err = load(t, minimal, map[string]string{"news.md": "# Hi\n\nx \uE000\n"})
	p = problemsOf(t, err)
	body = filepath.Join(filepath.Dir(path), "news.md")
	if len(p) != 1 || !strings.HasPrefix(p[0].Error(), body+":3:") {
		t.Errorf("got:\n%v\nwant one problem at %s:3", err, body)
	}
}

func TestLoadEveryProblemAtOnce(t *testing.T) {
	text := `name = "x"
from = "nobody"
subject = "{{.name"
template = "nope.md"
subjet = "typo"
password = "secret"

[headers]
Bcc = "x@example.org"
`
	_, _, err := load(t, text, nil)
	p := problemsOf(t, err)
	// subjet, password, from, subject, template, recipients (missing),
	// headers.Bcc.
	if len(p) != 7 {
		t.Errorf("got %d problems, want 7:\n%v", len(p), err)
	}
}

func TestKeyLines(t *testing.T) {
	doc := `# comment = not a key
name = "x" # trailing = comment
  indented = 1
"quoted key" = 1
'literal.key' = 2
"a=b" = 3
"esc\"aped" = 4
a.b.c = 5
x . "y z" . w = 6
site."example.org" = 7

[columns]
email = "m"
name="n"

[ "odd table" . sub ]
k = 1

[[arr]]
k = 1
[[arr]]
k2 = 2

[long]
basic = """
fake1 = 1
[fake.table]
"""
literal = '''one
fake2 = 2
'''
oneline = """x = y"""
after = 1
array = [
  "q = r",
  'also = not',
]
after_array = "s = t"
empty_string = ""
last = 1`
	want := map[string]int{
		"name":               2,
		"indented":           3,
		`"quoted key"`:       4,
		`"literal.key"`:      5,
		`"a=b"`:              6,
		`"esc\"aped"`:        7,
		"a.b.c":              8,
		`x."y z".w`:          9,
		`site."example.org"`: 10,
		"columns":            12,
		"columns.email":      13,
		"columns.name":       14,
		`"odd table".sub`:    16,
		`"odd table".sub.k`:  17,
		"arr":                19,
		"arr.k":              20,
		"arr.k2":             22,
		"long":               24,
		"long.basic":         25,
		"long.literal":       29,
		"long.oneline":       32,
		"long.after":         33,
		"long.array":         34,
		"long.after_array":   38,
		"long.empty_string":  39,
		"long.last":          40,
	}
	for _, nl := range []string{"\n", "\r\n"} {
		got := keyLines(strings.ReplaceAll(doc, "\n", nl))
		for k, l := range want {
			if got[k] != l {
				t.Errorf("%q: key %s at line %d, want %d", nl, k, got[k], l)
			}
		}
		for k, l := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%q: unexpected key %s at line %d", nl, k, l)
			}
		}
	}
}

// TestLoadLang: lang is a BCP 47 tag, given to the layout in its canonical
// form; one that isn't, or that reads as another tag, is a problem naming
// the file and line.
func TestLoadLang(t *testing.T) {
	c, _, err := load(t, minimal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Lang != "" {
		t.Errorf("Lang %q without the key, want none", c.Lang)
	}
	for in, want := range map[string]string{"zh-CN": "zh-CN", "zh-cn": "zh-CN", "zh_CN": "zh-CN", "en": "en", "zh-Hant-TW": "zh-Hant-TW", "ja": "ja"} {
		c, _, err := load(t, minimal+fmt.Sprintf("lang = %q\n", in), nil)
		if err != nil {
			t.Errorf("lang = %q: %v", in, err)
			continue
		}
		if c.Lang != want {
			t.Errorf("lang = %q: Lang %q, want %q", in, c.Lang, want)
		}
	}
	for _, tt := range []struct {
		lang, says string
		unknown    bool // a subtag of the right form that BCP 47 doesn't have
	}{
		{"cn", `"cn" is not a BCP 47 language tag`, true},
		{"english", `"english" is not a BCP 47 language tag`, false},
		{"en US", `"en US" is not a BCP 47 language tag`, false},
		{"zh-", `"zh-" is not a BCP 47 language tag`, false},
		{`en" onload="x`, `"en\" onload=\"x" is not a BCP 47 language tag`, false},
		{"zh-CHN", `"zh-CHN" reads as "chn" in BCP 47: write "chn" if that is meant`, false},
		{"iw", `"iw" reads as "he" in BCP 47`, false},
	} {
		_, path, err := load(t, minimal+"# the language of the text\n"+fmt.Sprintf("lang = %q\n", tt.lang), nil)
		p := problemsOf(t, err)
		prefix := fmt.Sprintf("%s:7: lang: %s", path, tt.says)
		e := findProblem(p, prefix)
		if len(p) != 1 || e == nil {
			t.Errorf("lang = %q: problems\n%v\nwant one starting %q", tt.lang, err, prefix)
			continue
		}
		var unknown language.ValueError
		if errors.As(e, &unknown) != tt.unknown {
			t.Errorf("lang = %q: errors.As(%v, language.ValueError) = %v, want %v", tt.lang, e, !tt.unknown, tt.unknown)
		}
	}
}

// TestLangInMessage: the campaign's lang reaches the layout.
func TestLangInMessage(t *testing.T) {
	for lang, want := range map[string]string{`lang = "zh-cn"` + "\n": `<html lang=3D"zh-CN">`, "": "<html>"} {
		c := newCampaign(t, goodList, goodBody, lang, nil)
		rec := &recorder{}
		if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
			t.Fatal(err)
		}
		if data := rec.msgs[0].Data; !bytes.Contains(data, []byte(want+"\r\n")) {
			t.Errorf("with %q, the message has no %s", lang, want)
		}
	}
}
