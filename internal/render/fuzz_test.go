package render

import (
	"html/template"
	"io"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/templates"
)

var tagRE = regexp.MustCompile(`<(/?[a-zA-Z][a-zA-Z0-9]*)|href="`)

// tags lists the HTML tags and links of a message, in order.
func tags(t testing.TB, data []byte) string {
	_, root := parse(t, data)
	var out []string
	for _, m := range tagRE.FindAllStringSubmatch(string(root.find("text/html")[0].body), -1) {
		out = append(out, m[0])
	}
	return strings.Join(out, " ")
}

// FuzzCells puts arbitrary strings in a recipient's cells and checks that
// the message still parses, has exactly the expected header fields and one
// recipient, and that its HTML has the same tags and links as with harmless
// values: no value can add markup, links, headers or recipients.
func FuzzCells(f *testing.F) {
	for _, s := range []string{
		"Ada", "管理员", "*Bob* <script>x</script> [x](javascript:alert(1))", "x\r\nBcc: evil@example.org",
		"=?utf-8?b?SGk=?=", "\"quoted\" \\ back", "\ue000616263\ue001", "%EE%80%80616263%EE%80%81",
		strings.Repeat("龙", 120), "<https://evil.example>", "www.evil.example", "a\x00b\x1bc", "\u2028\u2029",
		"![x](/etc/passwd)", "| a | b |\n|---|---|", "    code\n\n# heading", "&amp; &lt;b&gt;", "https://evil.example/x",
	} {
		f.Add(s, "Paris", "ada@example.org")
		f.Add("Ada", s, "ada@example.org")
	}
	fx := &fixture{t: &testing.T{}, dir: f.TempDir()}
	fx.file("logo.png", testPNG)
	r := fx.renderer()
	body, err := merge.ParseBody("template.md", "![logo](logo.png)\n\n# Hi {{.name}}\n\n"+
		"Welcome to *{{.city}}* — see [the map](https://example.org/map?c={{.city}}).\n\n- {{.name}}\n- `{{.city}}`\n")
	if err != nil {
		f.Fatal(err)
	}
	subject, err := merge.ParseLine("subject", "News for {{.name}} in {{.city}}")
	if err != nil {
		f.Fatal(err)
	}
	header, err := merge.ParseLine("X-City", "{{.city}}")
	if err != nil {
		f.Fatal(err)
	}
	render := func(t *testing.T, name, city, email string) *Message {
		fields := map[string]string{"name": name, "city": city, "email": email}
		var b strings.Builder
		if err := body.Execute(&b, fields); err != nil {
			t.Fatal(err)
		}
		subj, err := subject.Line(fields)
		if err != nil {
			t.Fatal(err)
		}
		x, err := header.Line(fields)
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Render(&Input{Seq: 1, To: mail.Address{Name: merge.OneLine(name), Address: email},
			Subject: subj, Markdown: []byte(b.String()), Headers: []Field{{"X-City", x}}, Fields: fields})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	baseline := tags(f, render(&testing.T{}, "Ada", "Paris", "ada@example.org").Data)

	f.Fuzz(func(t *testing.T, name, city, email string) {
		if !utf8.ValidString(name) || !utf8.ValidString(city) {
			t.Skip("the CSV reader refuses text that is not UTF-8")
		}
		if merge.CheckAddress(email) != nil {
			email = "ada@example.org"
		}
		m := render(t, name, city, email)
		checkLines(t, m.Data, 998)
		msg, _ := parse(t, m.Data)
		var names []string
		for k := range msg.Header {
			names = append(names, k)
		}
		if len(names) != 9 {
			t.Errorf("header fields %v, want the 9 expected", names)
		}
		for _, k := range []string{"From", "To", "Reply-To", "Subject", "Date", "Message-Id", "Mime-Version", "X-City", "Content-Type"} {
			if len(msg.Header[k]) != 1 {
				t.Errorf("%d %s fields, want 1", len(msg.Header[k]), k)
			}
		}
		to, err := msg.Header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Address != email {
			t.Fatalf("To %v (%v), want exactly %s", to, err, email)
		}
		if want := merge.OneLine(name); to[0].Name != want {
			t.Errorf("To name %q, want %q", to[0].Name, want)
		}
		if got, want := decodeHeader(t, msg.Header.Get("Subject")), merge.OneLine("News for "+name+" in "+city); got != want {
			t.Errorf("Subject %q, want %q", got, want)
		}
		if got := tags(t, m.Data); got != baseline {
			t.Errorf("the values changed the HTML's tags or links:\n got %s\nwant %s", got, baseline)
		}
	})
}

// FuzzFixedLayout holds fixedLayout to what it claims: a layout it takes
// for fixed, once it has run without error for one recipient's data, runs
// without error for any other's that has the columns it prints, whatever
// their values (empty ones too, which change the way through if and
// with).
func FuzzFixedLayout(f *testing.F) {
	for _, s := range []string{
		templates.DefaultLayout,
		`{{if .Preheader}}{{slice .Email 0 30}}{{end}}`,
		`{{with .Name}}{{if eq . "Ada"}}{{.}}{{else}}{{len .}}{{end}}{{else with .Email}}{{printf "%s" .}}{{end}}`,
		`<a title="{{.Fields.plan}}" href="/x?{{.Email}}">{{and .Lang .Name | or .Preheader}}</a>`,
		`<script>var a = {{.Name}}, b = '{{js .Email}}';</script>{{html .Name .Subject}}{{urlquery .Lang}}`,
		`{{if not (eq .Body "")}}{{print .Body (.Unsubscribe)}}{{end}}{{unsubscribe}}`,
		`{{with .Fields.city}}{{.}}{{end}}{{$.Fields.plan}}{{ne .Name .Email}}`,
		`{{range .Fields}}{{.}}{{end}}{{index .Fields "plan"}}{{$x := .Name}}{{$x}}`,
		// Not fixed, each failing only under a preheader, which the first
		// run has none of: a looser fixedLayout fails on them.
		`{{with .Preheader}}{{.Name}}{{end}}`,
		`{{if .Preheader}}{{printf .Body}}{{end}}`,
		`{{if .Preheader}}{{len (not .Name)}}{{end}}`,
		`{{if .Preheader}}{{eq .Name (not .Email)}}{{end}}`,
		`{{if .Preheader}}{{not .Name .Email}}{{end}}`,
		`{{with .Preheader}}{{.Fields.plan}}{{end}}`,
	} {
		f.Add(s)
	}
	values := []string{"", "Ada", "ada@example.org", "<b>\"x\" & 'y'</b>", "javascript:alert(1)", "0", "{{.}}", "\ue000abc\ue001", strings.Repeat("x", 40)}
	f.Fuzz(func(t *testing.T, layout string) {
		tmpl, err := parseLayout("layout.html", layout)
		if err != nil {
			return
		}
		data := func(i int, keys []string) LayoutData {
			v := func(j int) string { return values[(i+j)%len(values)] }
			d := LayoutData{Subject: v(0), Body: template.HTML(v(1)), Email: v(2), Name: v(3),
				Preheader: v(4), Unsubscribe: v(5), Lang: v(6), Fields: map[string]string{}}
			for j, k := range keys {
				d.Fields[k] = v(7 + j)
			}
			return d
		}
		// The first run, as the first message's, escapes the layout.
		first := LayoutData{Subject: "Hi", Body: "<p>Hi</p>", Email: "ada@example.org", Name: "Ada", Fields: map[string]string{}}
		if err := tmpl.Execute(io.Discard, first); err != nil {
			return
		}
		skip := fixedLayout(tmpl)
		if !skip.ok {
			return
		}
		for i := range len(values) * 2 {
			d := data(i, skip.keys)
			if i >= len(values) { // every value empty but one
				d = LayoutData{Fields: map[string]string{}}
				for _, k := range skip.keys {
					d.Fields[k] = ""
				}
				switch i % 4 {
				case 0:
					d.Name = values[i%len(values)]
				case 1:
					d.Email = values[i%len(values)]
				case 2:
					d.Preheader = values[i%len(values)]
				case 3:
					d.Lang = values[i%len(values)]
				}
			}
			if err := tmpl.Execute(io.Discard, d); err != nil {
				t.Fatalf("fixedLayout took %q for fixed, but it fails for %+v: %v", layout, d, err)
			}
		}
	})
}
