package render

import (
	"html/template"
	"io"
	"net/mail"
	"reflect"
	"slices"
	"testing"

	"github.com/batch-mailer/batch/templates"
)

// escapedLayout parses layout as New does and runs it once, as Render
// has before Check decides: html/template escapes it on its first run,
// whatever the data.
func escapedLayout(t *testing.T, layout string) *template.Template {
	t.Helper()
	r := newFixture(t).rendererWith(func(o *Options) { o.Layout, o.LayoutName = layout, "layout.html" })
	_ = r.layout.Execute(io.Discard, LayoutData{Fields: map[string]string{}})
	return r.layout
}

// TestFixedLayout: the layouts that can't fail for one recipient's data
// and not another's are the whitelist's, and nothing else.
func TestFixedLayout(t *testing.T) {
	cases := []struct {
		name, layout string
		fixed        bool
		keys         []string // of .Fields, when fixed
	}{
		{"the built-in layout", templates.DefaultLayout, true, nil},
		{"text only", "<p>hi</p>", true, nil},
		{"a comment", "{{/* a note */}}<p>hi</p>", true, nil},
		{"every string field", "<title>{{.Subject}}</title>{{.Body}}{{.Email}}{{.Name}}{{.Preheader}}{{.Unsubscribe}}{{.Lang}}", true, nil},
		{"$'s fields inside with", "{{with .Name}}{{$.Email}} {{.}}{{end}}", true, nil},
		{"if and else", "{{if .Name}}a{{else}}b{{end}}", true, nil},
		{"with and else", "{{with .Lang}}{{.}}{{else}}x{{end}}", true, nil},
		{"else with", "{{with .Name}}{{.}}{{else with .Email}}{{.}}{{else}}none{{end}}", true, nil},
		{"with of the body", "{{with .Body}}{{.}}{{end}}", true, nil},
		{"a column", "<p>{{.Fields.city}}</p>{{with $.Fields.plan}}{{.}}{{end}}", true, []string{"city", "plan"}},
		{"in an attribute", `<p title="{{.Name}}" class={{.Lang}}>x</p>`, true, nil},
		{"in a script", "<script>var who = {{.Name}};</script>", true, nil},
		{"in a style", "<style>p { font-family: {{.Lang}}; }</style>", true, nil},
		{"in a URL's path", `<a href="https://example.org/{{.Name}}">x</a>`, true, nil},
		{"print, printf, println", `{{print .Name "!"}}{{printf "%s <%s>" .Name .Email}}{{.Name | printf "%s"}}{{println .Email}}`, true, nil},
		{"html, js, urlquery", "{{html .Name .Email}}<script>var a = '{{js .Name}}';</script>{{urlquery .Email}}", true, nil},
		{"len of a string", "{{len .Email}}{{len .Body}}", true, nil},
		{"not, and, or", `{{if not .Name}}x{{end}}{{and .Name .Email}}{{or .Preheader "none"}}{{.Name | or .Lang}}`, true, nil},
		{"eq and ne of strings", `{{if eq .Lang "en" "fr"}}x{{end}}{{if ne .Name .Email}}y{{end}}{{if eq .Body "x"}}z{{end}}{{.Email | eq "a@b"}}`, true, nil},
		{"eq in a with of a string", `{{with .Name}}{{if eq . "Ada"}}hi{{end}}{{end}}`, true, nil},
		{"a string constant, parentheses", `{{"x"}}{{(.Name)}}{{print (.Email) ("y")}}{{if (eq .Lang "en")}}e{{end}}`, true, nil},
		{"the unsubscribe function", "<p>{{unsubscribe}}</p>", true, nil},

		{"slice", "{{slice .Email 0 3}}", false, nil},
		{"index", `{{index .Fields "city"}}`, false, nil},
		{"call", "{{if .Preheader}}{{call .Email}}{{end}}", false, nil},
		{"range", "{{range .Fields}}{{.}}{{end}}", false, nil},
		{"a template call", `{{define "x"}}y{{end}}{{template "x" .}}`, false, nil},
		{"block", `{{block "x" .}}{{.Name}}{{end}}`, false, nil},
		{"a field of a string", "{{with .Email}}{{.X}}{{end}}", false, nil},
		{"a field of the data's in with of a string", "{{with .Email}}{{.Name}}{{end}}", false, nil},
		{"eq of a string and a number", "{{if eq .Email 1}}x{{end}}", false, nil},
		{"eq of one", "{{eq .Email}}", false, nil},
		{"ne of three", "{{ne .Name .Email .Lang}}", false, nil},
		{"lt", "{{lt .Name .Email}}", false, nil},
		{"eq of a bool", "{{eq (not .Name) .Email}}", false, nil},
		{"len of a bool", "{{len (not .Name)}}", false, nil},
		{"printf of the body", "{{printf .Body}}", false, nil},
		{"printf of nothing", "{{printf}}", false, nil},
		{"not of two", "{{not .Name .Email}}", false, nil},
		{"and of none", "{{and}}", false, nil},
		{"a declaration", "{{$x := .Email}}", false, nil},
		{"a variable", "{{$x := .Email}}{{$x}}", false, nil},
		{"a variable in with", "{{with $x := .Email}}{{$x}}{{end}}", false, nil},
		{"the data itself", "{{.}}", false, nil},
		{"$ itself", "{{$}}", false, nil},
		{"Fields itself", "{{.Fields}}", false, nil},
		{"a field of a column", "{{.Fields.city.X}}", false, nil},
		{"a column in with of a string", "{{with .Name}}{{.Fields.city}}{{end}}", false, nil},
		{"no such field", "{{if .Name}}{{.Nope}}{{end}}", false, nil},
		{"a field with arguments", `{{.Name "x"}}`, false, nil},
		{"a field after a pipe", "{{.Name | .Email}}", false, nil},
		{"a number", "{{1}}", false, nil},
		{"a bool", "{{true}}", false, nil},
		{"nil", "{{if .Name}}{{nil}}{{end}}", false, nil},
		{"a chain", "{{(.Name).X}}", false, nil},
		{"unsubscribe of a value", "{{.Name | unsubscribe}}", false, nil},
		{"a break", "{{range .Fields}}{{break}}{{end}}", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fixedLayout(escapedLayout(t, tc.layout))
			if got.ok != tc.fixed || !slices.Equal(got.keys, tc.keys) {
				t.Errorf("fixed %v, keys %q; want %v, keys %q", got.ok, got.keys, tc.fixed, tc.keys)
			}
		})
	}
	if got := fixedLayout(nil); got.ok {
		t.Error("no layout is fixed")
	}
}

// TestFixedLayoutFields: the fields fixedLayout takes for LayoutData's
// strings are its string fields, and LayoutData has no method a field's
// name could call instead.
func TestFixedLayoutFields(t *testing.T) {
	typ := reflect.TypeFor[LayoutData]()
	if n := typ.NumMethod() + reflect.PointerTo(typ).NumMethod(); n != 0 {
		t.Errorf("LayoutData has %d methods", n)
	}
	var f layoutSkip
	for i := range typ.NumField() {
		sf := typ.Field(i)
		k, ok := f.field([]string{sf.Name})
		switch {
		case sf.Type == reflect.TypeFor[string]():
			if !ok || k != kString {
				t.Errorf("string field %s: kinds %b, %v; want a string", sf.Name, k, ok)
			}
		case sf.Type == reflect.TypeFor[template.HTML]():
			if !ok || k != kHTML {
				t.Errorf("template.HTML field %s: kinds %b, %v; want HTML", sf.Name, k, ok)
			}
		case ok:
			t.Errorf("field %s of type %s is taken for a string", sf.Name, sf.Type)
		}
	}
	if k, ok := f.field([]string{"Fields", "x"}); !ok || k != kString || reflect.TypeFor[map[string]string]() != func() reflect.Type { sf, _ := typ.FieldByName("Fields"); return sf.Type }() {
		t.Errorf(".Fields.x: kinds %b, %v; want a string, of a map[string]string", k, ok)
	}
}

// TestCheckSkipsLayout: once a message is written, Check runs a fixed
// layout no more, but Render does; a layout that isn't fixed runs for
// every check, and so does a fixed one for a recipient without a column
// it prints. Check still finds what Render would.
func TestCheckSkipsLayout(t *testing.T) {
	f := newFixture(t)
	in := func(name string, fields map[string]string, preheader string) *Input {
		return &Input{Seq: 1, To: mail.Address{Name: name, Address: "ada@example.org"}, Subject: "Hi",
			Markdown: []byte("Hi"), Fields: fields, Preheader: preheader}
	}
	plan := map[string]string{"plan": "pro"}
	cases := []struct {
		name, layout string
		skips, fails bool // fails: for a recipient without the column, with a preheader
	}{
		{"the built-in layout", templates.DefaultLayout, true, false},
		{"a column under if", "<html><body>{{if .Preheader}}{{.Fields.plan}}{{end}}{{.Body}}</body></html>", true, true},
		{"slice under if", "<html><body>{{if .Preheader}}{{slice .Email 0 30}}{{end}}{{.Body}}</body></html>", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.rendererWith(func(o *Options) { o.Layout, o.LayoutName = tc.layout, "layout.html" })
			if err := r.Check(in("Ada", plan, "")); err != nil {
				t.Fatal(err)
			}
			runs := r.layoutRuns.Load()
			if runs != 1 || !r.wrote.Load() {
				t.Fatalf("the first check ran the layout %d times, wrote %v; want once, written", runs, r.wrote.Load())
			}
			for i := range 3 {
				if err := r.Check(in("Ada", plan, "")); err != nil {
					t.Fatalf("check %d: %v", i, err)
				}
			}
			want := runs
			if !tc.skips {
				want += 3
			}
			if got := r.layoutRuns.Load(); got != want {
				t.Errorf("three more checks ran the layout %d times in all, want %d", got, want)
			}
			if _, err := r.Render(in("Ada", plan, "")); err != nil {
				t.Fatal(err)
			}
			if got := r.layoutRuns.Load(); got != want+1 {
				t.Errorf("Render ran the layout %d times in all, want %d: always once", got, want+1)
			}
			// A recipient for whom the layout fails, or not.
			other := in("Ada", map[string]string{}, "Seats")
			cerr := r.Check(other)
			_, rerr := r.Render(other)
			if (rerr != nil) != tc.fails || (cerr == nil) != (rerr == nil) || cerr != nil && cerr.Error() != rerr.Error() {
				t.Errorf("without the column, with a preheader: Check %v, Render %v; want the same, an error %v", cerr, rerr, tc.fails)
			}
		})
	}
}
