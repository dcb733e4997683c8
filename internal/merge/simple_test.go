package merge

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// kinds are the three kinds of template, as batch parses them.
var kinds = []struct {
	name  string
	parse func(name, text string) (*Template, error)
}{{"body", ParseBody}, {"line", ParseLine}, {"url", ParseURL}}

// simpleRow is the row of the tests of simple templates.
var simpleRow = map[string]string{"name": "Ada <b>", "email": "a+b@example.org", "empty": "", "é": "x\r\ny", "名": "张伟"}

// sameAsText fails t unless tp, whichever way it executes, gives what
// text/template gives for fields: the same bytes written, the same
// error or none, and the same Line or URL.
func sameAsText(t *testing.T, kind string, tp *Template, fields map[string]string) {
	t.Helper()
	var want bytes.Buffer
	wantErr := tp.execute(&want, fields)
	var got bytes.Buffer
	got.WriteString("before ") // what the buffer held stays
	err := tp.Execute(&got, fields)
	if got.String() != "before "+want.String() || (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%s %q (simple %v): Execute wrote %q, %v; text/template %q, %v", kind, tp.Source(), tp.simple, got.Bytes()[len("before "):], err, want.String(), wantErr)
	}
	var b strings.Builder // not a bytes.Buffer: written at once
	if err := tp.Execute(&b, fields); b.String() != want.String() || (err == nil) != (wantErr == nil) {
		t.Fatalf("%s %q (simple %v): Execute into a strings.Builder wrote %q, %v; text/template %q, %v", kind, tp.Source(), tp.simple, b.String(), err, want.String(), wantErr)
	}
	var line, wantLine string
	switch kind {
	case "line":
		line, err = tp.Line(fields)
		wantLine = OneLine(want.String())
	case "url":
		line, err = tp.URL(fields)
		wantLine = ExpandString(want.String(), EscapeURL)
	default:
		return
	}
	if wantErr != nil {
		wantLine = "" // Line and URL give nothing with their error
	}
	if line != wantLine || (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%s %q (simple %v): gave %q, %v; text/template %q, %v", kind, tp.Source(), tp.simple, line, err, wantLine, wantErr)
	}
}

func TestSimpleTemplate(t *testing.T) {
	tests := []struct {
		text   string
		simple bool
	}{
		{"", true},
		{"plain *Markdown*\n", true},
		{"Hi {{.name}}!", true},
		{"{{.name}}{{.email}}{{.name}}", true},
		{"a {{- .name -}} b {{- .email}} c {{.empty -}} d", true},
		{"{{ .name }}", true},
		{"{{.é}} {{.名}}", true},
		{"x {{/* a comment */}} y {{- /* trimmed */ -}} z", true},
		{"[stop]({{unsubscribe}}) {{- unsubscribe -}}", true},
		{"https://example.org/u/{{.email}}?n={{.name}}", true},
		{"Hi {{.nmae}}", true}, // simple, and its error text/template's
		{"{{if .name}}x{{end}}", false},
		{"{{if .name}}{{.name}}{{else}}y{{end}}", false},
		{"{{range .name}}{{end}}", false},
		{"{{with .name}}{{.}}{{end}}", false},
		{"{{.name.first}}", false},
		{"{{$x := .name}}", false},
		{"{{$x := .name}}{{$x = .email}}", false},
		{"{{$x := unsubscribe}}", false},
		{"{{.}}", false},
		{"{{$.name}}", false},
		{"{{(.name)}}", false},
		{`{{"literal"}}`, false},
		{`{{index . "name"}}`, false},
		{`{{printf "%s" .name}}`, false},
		{`{{.name | printf "%s"}}`, false},
		{`{{unsubscribe | printf "%s"}}`, false},
		{`{{define "sig"}}-- {{.name}}{{end}}Hi`, false},
		{`{{define "sig"}}-- {{.name}}{{end}}Hi {{template "sig" .}}`, false},
		{`{{block "sig" .}}-- {{.name}}{{end}}`, false},
	}
	for _, tt := range tests {
		for _, kind := range kinds {
			tp, err := kind.parse("t.md", tt.text)
			if err != nil {
				t.Fatalf("%s %q: %v", kind.name, tt.text, err)
			}
			if tp.simple != tt.simple {
				t.Errorf("%s %q: simple is %v, want %v", kind.name, tt.text, tp.simple, tt.simple)
			}
			sameAsText(t, kind.name, tp, simpleRow)
			sameAsText(t, kind.name, tp, nil)
		}
	}
}

// TestSimpleTemplateOutput: what a simple template writes, said outright
// (sameAsText holds it to text/template).
func TestSimpleTemplateOutput(t *testing.T) {
	body, err := ParseBody("t.md", "Hi {{.name}} [x]({{unsubscribe}})")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := body.Execute(&b, simpleRow); err != nil {
		t.Fatal(err)
	}
	if want := "Hi " + inert("Ada <b>") + " [x](" + UnsubscribeMarker + ")"; b.String() != want || !body.simple {
		t.Errorf("body: %q (simple %v), want %q", b.String(), body.simple, want)
	}
	line, err := ParseLine("subject", "News for {{.é}}")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := line.Line(simpleRow); s != "News for x y" || err != nil || !line.simple {
		t.Errorf("line: %q, %v (simple %v), want %q", s, err, line.simple, "News for x y")
	}
	for _, v := range []string{"", "a", "张伟", "\x00\xff", strings.Repeat("é", 300)} {
		if got := string(appendToken([]byte("x"), v)); got != "x"+inert(v) {
			t.Errorf("appendToken(%q) = %q, want %q", v, got, "x"+inert(v))
		}
	}
}

// failWriter fails every write.
type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// TestSimpleTemplateWriteError: a writer's error comes back, wrapped, on
// either path.
func TestSimpleTemplateWriteError(t *testing.T) {
	errWrite := errors.New("disk full")
	for _, text := range []string{"Hi {{.name}}", "{{if .name}}Hi{{end}}"} {
		tp, err := ParseBody("t.md", text)
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.Execute(failWriter{errWrite}, simpleRow); !errors.Is(err, errWrite) {
			t.Errorf("%q (simple %v): Execute gave %v, want the writer's error", text, tp.simple, err)
		}
	}
}

// fuzzFields are the fields FuzzSimpleTemplate's actions name: the
// second value is the fuzzed one, the last no column.
var fuzzFields = []string{"name", "v", "é", "名", "_x9", "missing"}

// FuzzSimpleTemplate: a template made of fuzzed text and actions, simple
// ones ({{.field}} with and without trims, {{unsubscribe}}, comments) and
// a few that are not, executes as text/template executes it, of each kind,
// whatever the value: the same bytes, the same error.
func FuzzSimpleTemplate(f *testing.F) {
	f.Add("Hi | and |!", []byte{0, 9}, "Ada", uint8(0))
	f.Add("# Hello |\n\nSee you in | on the | plan.\n\n- one\n[Link](https://example.org/?e=|)\n", []byte{0, 17, 25, 8}, "张伟 <b>", uint8(1))
	f.Add(" a | b \n| c |\t", []byte{1, 2, 3, 6}, "\r\nBcc: x@example.org", uint8(2))
	f.Add("x|y|z|||", []byte{4, 5, 12, 7, 15, 23}, "", uint8(0))
	f.Add("{{.name}}|{{if .v}}|", []byte{40, 0}, "{{.email}}", uint8(1))
	f.Add("%|%", []byte{8}, "a+b&c d", uint8(2))
	f.Fuzz(func(t *testing.T, text string, ops []byte, value string, kind uint8) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		var src strings.Builder
		simple := !strings.ContainsAny(text, "{}")
		for _, op := range ops {
			piece, rest, _ := strings.Cut(text, "|")
			src.WriteString(piece)
			text = rest
			field := fuzzFields[int(op>>3)%len(fuzzFields)]
			switch op & 7 {
			case 0:
				src.WriteString("{{." + field + "}}")
			case 1:
				src.WriteString("{{- ." + field + "}}")
			case 2:
				src.WriteString("{{." + field + " -}}")
			case 3:
				src.WriteString("{{- ." + field + " -}}")
			case 4:
				src.WriteString([]string{"{{unsubscribe}}", "{{- unsubscribe -}}"}[op>>3&1])
			case 5:
				src.WriteString([]string{"{{/* " + field + " */}}", "{{- /* */ -}}"}[op>>3&1])
			case 6:
				src.WriteString("{{ ." + field + " }}")
			case 7:
				src.WriteString([]string{"{{if ." + field + "}}y{{end}}", "{{." + field + ".x}}", "{{$x := ." + field + "}}"}[int(op>>3)%3])
				simple = false
			}
		}
		src.WriteString(text)
		k := kinds[int(kind)%len(kinds)]
		tp, err := k.parse("t.md", src.String())
		if err != nil {
			return
		}
		if simple && !tp.simple {
			t.Fatalf("%s %q is not simple", k.name, src.String())
		}
		fields := map[string]string{"v": value}
		for _, name := range fuzzFields[2 : len(fuzzFields)-1] {
			fields[name] = name + value
		}
		fields["name"] = "Ada"
		sameAsText(t, k.name, tp, fields)
	})
}

// benchRow is a row of the benchmark's list.
var benchRow = map[string]string{"email": "user1234@example.com", "name": "张伟", "city": "São Paulo", "plan": "pro"}

// BenchmarkExecute merges a row into the newsletter's body, into a
// bytes.Buffer reused as a campaign's check and send reuse theirs, and
// into its subject line.
func BenchmarkExecute(b *testing.B) {
	b.Run("body", func(b *testing.B) {
		newsletter, err := os.ReadFile("../../bench/template.md") // the bench's
		if err != nil {
			b.Fatal(err)
		}
		tp, err := ParseBody("news.md", string(newsletter))
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if err := tp.Execute(&buf, benchRow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("line", func(b *testing.B) {
		tp, err := ParseLine("subject", "来自SMTP的问候…… {{.name}}")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tp.Line(benchRow); err != nil {
				b.Fatal(err)
			}
		}
	})
}
