package merge_test

import (
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/batch-mailer/batch/internal/merge"
)

// tok is the token a body template writes for a value (see package doc).
func tok(v string) string { return "\uE000" + hex.EncodeToString([]byte(v)) + "\uE001" }

var row = map[string]string{
	"email": "ada@example.org",
	"name":  "Ada",
	"plan":  "pro",
	"city":  "London",
	"empty": "",
}

func execute(t *testing.T, tp *merge.Template, fields map[string]string) string {
	t.Helper()
	var b strings.Builder
	if err := tp.Execute(&b, fields); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	// The messages are the product: they name the template and line.
	tests := []struct {
		name, text, want string
	}{
		{"unclosed action", "Hi\n{{.name", "t.md:2:"},
		{"unknown function", "Hi {{nosuch .name}}", "t.md:1:"},
		{"unterminated if", "{{if .plan}}\npro\n", "t.md:"},
		{"U+E000", "Hi\nthere \uE000 x", "t.md:2:"},
		{"U+E001", "\uE001", "t.md:1:"},
		{"both, as a fake token", "a\nb\nc \uE000616263\uE001", "t.md:3:"},
	}
	for _, tt := range tests {
		for _, parse := range []struct {
			kind string
			fn   func(string, string) (*merge.Template, error)
		}{{"body", merge.ParseBody}, {"line", merge.ParseLine}} {
			t.Run(tt.name+"/"+parse.kind, func(t *testing.T) {
				tp, err := parse.fn("t.md", tt.text)
				if err == nil {
					t.Fatalf("parsed %q; want an error", tt.text)
				}
				if tp != nil {
					t.Errorf("got a template with the error %v", err)
				}
				// A line template's name is its place in the campaign file,
				// and its errors start with that name alone.
				want := tt.want
				if parse.kind == "line" {
					want = "t.md"
				}
				if !strings.HasPrefix(err.Error(), want) {
					t.Errorf("error %q does not start with %q", err, want)
				}
			})
		}
	}
}

func TestExecuteMissingKey(t *testing.T) {
	texts := []string{
		"Hi {{.nmae}}",
		"{{if .nmae}}x{{end}}",
		"{{if eq .plna \"pro\"}}x{{end}}",
		"{{with .nmae}}{{.}}{{end}}",
		"{{$.nmae}}",
		"{{.name}} {{.nmae | printf \"%s\"}}",
	}
	for _, text := range texts {
		for _, parse := range []struct {
			kind string
			fn   func(string, string) (*merge.Template, error)
		}{{"body", merge.ParseBody}, {"line", merge.ParseLine}} {
			tp, err := parse.fn("t.md", text)
			if err != nil {
				t.Fatalf("%s %q: %v", parse.kind, text, err)
			}
			var b strings.Builder
			err = tp.Execute(&b, row)
			var exec template.ExecError
			if !errors.As(err, &exec) || strings.HasPrefix(err.Error(), "template: ") {
				t.Errorf("%s %q: Execute gave %q and %v; want text/template's ExecError, without its \"template: \"", parse.kind, text, b.String(), err)
			}
			if strings.Contains(b.String(), "<no value>") {
				t.Errorf("%s %q: output %q has <no value>", parse.kind, text, b.String())
			}
			if parse.kind == "line" {
				s, err := tp.Line(row)
				if err == nil || s != "" {
					t.Errorf("line %q: Line gave %q, %v; want an error", text, s, err)
				}
			}
		}
	}
}

func TestBodyExecute(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"plain field", "Hi {{.name}}!", "Hi " + tok("Ada") + "!"},
		{"text only", "# Hello *world*\n", "# Hello *world*\n"},
		{"if eq true", `{{if eq .plan "pro"}}**pro**{{else}}free{{end}}`, "**pro**"},
		{"if eq false", `{{if eq .plan "free"}}free{{else}}[upgrade](https://x.example/?who={{.email}}){{end}}`,
			"[upgrade](https://x.example/?who=" + tok("ada@example.org") + ")"},
		{"if on an empty value", `{{if .empty}}yes{{else}}no{{end}}`, "no"},
		{"if and print", `{{if .name}}Dear {{.name}}{{end}}`, "Dear " + tok("Ada")},
		{"ne and and", `{{if and (ne .plan "free") (eq .city "London")}}y{{end}}`, "y"},
		{"len in a condition", `{{if gt (len .name) 2}}long{{end}}`, "long"},
		{"with", `{{with .city}}in {{.}}{{end}}`, "in " + tok("London")},
		{"with else", `{{with .empty}}x{{else}}none{{end}}`, "none"},
		{"pipeline result is one token", `{{.name | printf "%s <b>!"}}`, tok("Ada <b>!")},
		{"printf of two fields", `{{printf "%s, %s" .name .city}}`, tok("Ada, London")},
		{"index", `{{index . "city"}}`, tok("London")},
		{"dollar", `{{with .city}}{{$.name}}{{end}}`, tok("Ada")},
		{"declaration prints nothing", `{{$n := .name}}[{{$n}}]`, "[" + tok("Ada") + "]"},
		{"assignment prints nothing", `{{$n := .name}}{{$n = .city}}{{$n}}`, tok("London")},
		{"empty value", `a{{.empty}}b`, "a" + tok("") + "b"},
		{"literal", `{{"*x*"}}`, tok("*x*")},
		{"defined template", `{{define "sig"}}-- {{.name}}{{end}}Hi{{template "sig" .}}`, "Hi-- " + tok("Ada")},
		{"range over an int", `{{range $i := 2}}{{$i}}{{end}}`, tok("0") + tok("1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := merge.ParseBody("t.md", tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := execute(t, tp, row); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestLineExecute(t *testing.T) {
	tests := []struct {
		name, text, want string
		fields           map[string]string
	}{
		{"plain", "News for {{.name}}", "News for Ada", row},
		{"condition", `{{if eq .plan "pro"}}Pro{{else}}Free{{end}} news, {{.city}}`, "Pro news, London", row},
		{"no tokens, no escaping", "{{.name}}", "*Bob* <b>", map[string]string{"name": "*Bob* <b>"}},
		{"header injection", "Hi {{.name}}", "Hi Bob Bcc: evil@example.org",
			map[string]string{"name": "Bob\r\nBcc: evil@example.org"}},
		{"line ends in the template", "Hi\n  {{.name}}\r\n", "Hi Ada", row},
		{"control characters", "{{.name}}", "a b c d", map[string]string{"name": "\ta\x00b\u2028c\u0085d\x7f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := merge.ParseLine("subject", tt.text)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tp.Line(tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if strings.ContainsAny(got, "\r\n") {
				t.Errorf("%q is not one line", got)
			}
		})
	}
}

func TestCheckFields(t *testing.T) {
	columns := []string{"email", "name", "city"}
	// The messages are the product: each names file:line:column (columns
	// counted from 1, as editors do), the field, and a likely column when
	// there is one. A line template (a subject) is named by its place in
	// the campaign file, so its problems carry just that name.
	type problem struct {
		loc, field, suggest string // suggest "" for no "did you mean"
	}
	tests := []struct {
		name string
		text string
		want []problem
	}{
		{"all known", "Hi {{.name}} from {{.city}}, {{.email}}", nil},
		{"typo", "Hi {{.nme}}!", []problem{{"t.md:1:6", "nme", "name"}}},
		{"case", "Hi {{.Name}}", []problem{{"t.md:1:6", "Name", "name"}}},
		{"far from any column", "{{.plan}}", []problem{{"t.md:1:3", "plan", ""}}},
		{"later line", "# Hi\n\nfrom {{.cty}}", []problem{{"t.md:3:8", "cty", "city"}}},
		{"dollar", "{{$.nmae}}", []problem{{"t.md:1:4", "nmae", "name"}}},
		{"index", `{{index . "emial"}}`, []problem{{"t.md:1:3", "emial", "email"}}},
		{"field of a field", "{{.city.x}}", nil},
		{"condition", `{{if eq .plan "pro"}}x{{end}}`, []problem{{"t.md:1:9", "plan", ""}}},
		{"else branch", `{{if .name}}{{else}}{{.cty}}{{end}}`, []problem{{"t.md:1:23", "cty", "city"}}},
		{"inside range is left alone", "{{range .city}}{{.x}}{{end}}", nil},
		{"inside with is left alone", "{{with .name}}{{.x}} {{index . \"y\"}}{{end}}", nil},
		{"with pipeline is checked", "{{with .nmae}}{{.x}}{{end}}", []problem{{"t.md:1:8", "nmae", "name"}}},
		{"dollar inside with is checked", "{{with .name}}{{$.cty}}{{end}}", []problem{{"t.md:1:18", "cty", "city"}}},
		{"dollar inside range is checked", "{{range .city}}{{$.emial}}{{end}}", []problem{{"t.md:1:19", "emial", "email"}}},
		{"range else has the row", "{{range .city}}{{.x}}{{else}}{{.nam}}{{end}}", []problem{{"t.md:1:32", "nam", "name"}}},
		{"with else has the row", "{{with .name}}{{.x}}{{else}}{{.nam}}{{end}}", []problem{{"t.md:1:31", "nam", "name"}}},
		{"pipeline argument", `{{printf "%s" .cty}}`, []problem{{"t.md:1:15", "cty", "city"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, parse := range []struct {
				kind string
				fn   func(string, string) (*merge.Template, error)
			}{{"body", merge.ParseBody}, {"line", merge.ParseLine}} {
				tp, err := parse.fn("t.md", tt.text)
				if err != nil {
					t.Fatal(err)
				}
				errs := tp.CheckFields(columns)
				if len(errs) != len(tt.want) {
					t.Fatalf("%s: got %d problems, want %d: %v", parse.kind, len(errs), len(tt.want), errs)
				}
				for i, w := range tt.want {
					msg := errs[i].Error()
					loc := w.loc
					if parse.kind == "line" {
						loc = "t.md"
					}
					if !strings.HasPrefix(msg, loc+": ") {
						t.Errorf("%s: %q does not start with %q", parse.kind, msg, loc+": ")
					}
					if !strings.Contains(msg, `"`+w.field+`"`) {
						t.Errorf("%s: %q does not name %q", parse.kind, msg, w.field)
					}
					if !strings.Contains(msg, "email, name, city") {
						t.Errorf("%s: %q does not list the columns", parse.kind, msg)
					}
					hint := "did you mean {{." + w.suggest + "}}?"
					if w.suggest == "" && strings.Contains(msg, "did you mean") {
						t.Errorf("%s: %q suggests a column; none is close", parse.kind, msg)
					}
					if w.suggest != "" && !strings.Contains(msg, hint) {
						t.Errorf("%s: %q does not say %q", parse.kind, msg, hint)
					}
				}
			}
		})
	}
}

func TestCheckFieldsEveryProblem(t *testing.T) {
	tp, err := merge.ParseBody("t.md", "{{.a}}\n{{.b}} {{$.c}}\n{{index . \"d\"}}")
	if err != nil {
		t.Fatal(err)
	}
	errs := tp.CheckFields([]string{"email"})
	var fields []string
	re := regexp.MustCompile(`no column "(\w+)"`)
	for _, e := range errs {
		m := re.FindStringSubmatch(e.Error())
		if m == nil {
			t.Fatalf("unexpected problem %v", e)
		}
		fields = append(fields, m[1])
	}
	slices.Sort(fields) // the order of the problems is not part of the contract
	if strings.Join(fields, ",") != "a,b,c,d" {
		t.Errorf("got problems for %v, want a, b, c and d", fields)
	}
}

func TestCheckFieldsThenExecute(t *testing.T) {
	// What CheckFields passes, Execute runs without a missing key.
	tp, err := merge.ParseBody("t.md", "{{.name}} {{$.city}} {{index . \"email\"}} {{with .name}}{{.}}{{end}}")
	if err != nil {
		t.Fatal(err)
	}
	if errs := tp.CheckFields([]string{"email", "name", "city"}); len(errs) != 0 {
		t.Fatalf("CheckFields: %v", errs)
	}
	var b strings.Builder
	if err := tp.Execute(&b, row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Ada") {
		t.Errorf("a value is in clear in %q", b.String())
	}
}

// TestSourceLine: a place in the merged text is traced back to the line of
// the template that wrote it, however the actions moved the lines: a
// condition that leaves lines out, a trim marker that joins two, a
// template defined further down.
func TestSourceLine(t *testing.T) {
	const src = "Hello {{.name}}!\n" + // 1
		"\n" + // 2
		"{{if eq .plan \"pro\"}}\n" + // 3
		"Pro text\n" + // 4
		"{{else}}\n" + // 5
		"Basic text\n" + // 6
		"{{end}}\n" + // 7
		"![chart](chart.png)\n" + // 8
		"{{- if .city}} ![city](city.png){{end}}\n" + // 9
		"{{template \"sig\" .}}\n" + // 10
		"{{define \"sig\"}}-- \n" + // 11
		"![sig](sig.png) {{.email}}{{end}}" // 12
	tp, err := merge.ParseBody("t.md", src)
	if err != nil {
		t.Fatal(err)
	}
	basic := map[string]string{"name": "Bob", "plan": "basic", "city": "", "email": "bob@example.org"}
	for _, tt := range []struct {
		fields map[string]string
		at     string // the first place of this in the merged text
		want   int
	}{
		{row, "Hello", 1},
		{row, tok("Ada"), 1},
		{row, "!", 1},
		{row, "Pro text", 4},
		{row, "![chart]", 8},
		{row, "![city]", 9}, // on the merged text's line of the chart
		{row, "-- ", 11},
		{row, "![sig]", 12},
		{row, tok("ada@example.org"), 12},
		{basic, "Basic text", 6},
		{basic, "![chart]", 8},
		{basic, "![sig]", 12},
	} {
		out := execute(t, tp, tt.fields)
		i := strings.Index(out, tt.at)
		if i < 0 {
			t.Fatalf("%q is not in the merged text %q", tt.at, out)
		}
		if got, ok := tp.SourceLine(tt.fields, i); !ok || got != tt.want {
			t.Errorf("%q (merged line %d): template line %d, %v; want %d", tt.at, 1+strings.Count(out[:i], "\n"), got, ok, tt.want)
		}
	}
	out := execute(t, tp, row)
	if _, ok := tp.SourceLine(row, len(out)+1); ok {
		t.Error("a place past the merged text has a line")
	}
}
