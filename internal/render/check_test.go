package render

import (
	"net/mail"
	"testing"

	"github.com/batch-mailer/batch/templates"
)

// TestCheckAsRender: Check finds what Render would, message by message,
// before and after a message has been written in full: the shape's
// problems, the layout's for one recipient's data, a missing unsubscribe
// URL, a recipient's missing or oversized file, and, until a message has
// been written, what fails for every message (the DKIM signature).
func TestCheckAsRender(t *testing.T) {
	f := newFixture(t)
	f.file("files/ok.txt", []byte("attached"))
	f.file("files/big.txt", make([]byte, 2048))
	layout := `{{if eq .Name "boom"}}{{call .Email}}{{end}}<html><body>{{.Body}}</body></html>`
	r := f.rendererWith(func(o *Options) {
		o.Layout, o.LayoutName = layout, "layout.html"
		o.Files = Files{Dir: f.dir + "/files"}
		o.FileLimit = 1024
	})
	in := func(name, md string, files ...string) *Input {
		return &Input{Seq: 1, To: mail.Address{Name: name, Address: "ada@example.org"}, Subject: "Hi",
			Markdown: merged(t, md, map[string]string{"name": name}), Fields: map[string]string{"name": name}, Attachments: files}
	}
	cases := []struct {
		name string
		in   *Input
		bad  bool
	}{
		{"fine", in("Ada", "Hi {{.name}}"), false},
		{"a value in a link's host", in("Ada", "[x](https://{{.name}}/)"), true},
		{"the layout fails for this row", in("boom", "Hi {{.name}}"), true},
		{"{{unsubscribe}} without a URL", in("Ada", "[leave]({{unsubscribe}})"), true},
		{"a file of the recipient's", in("Ada", "Hi", "ok.txt"), false},
		{"a missing file", in("Ada", "Hi", "missing.txt"), true},
		{"a file over the limit", in("Ada", "Hi", "big.txt"), true},
	}
	if r.wrote.Load() {
		t.Fatal("a new renderer has written a message already")
	}
	for _, round := range []string{"first", "after a message was written"} {
		for _, tc := range cases {
			_, rerr := r.Render(tc.in)
			cerr := r.Check(tc.in)
			if (rerr != nil) != tc.bad || (cerr == nil) != (rerr == nil) || cerr != nil && cerr.Error() != rerr.Error() {
				t.Errorf("%s, %s: Check %v, Render %v; want the same, an error %v", round, tc.name, cerr, rerr, tc.bad)
			}
		}
		if !r.wrote.Load() {
			t.Fatalf("%s: no message written, though some rendered", round)
		}
	}

	// Fresh, Check writes in full until it has written a message: a
	// problem of every message is found, however many were checked.
	d := f.rendererWith(func(o *Options) {
		o.Layout = templates.DefaultLayout
		o.DKIM = &DKIM{Domain: "example.org", Selector: "s"} // no key
	})
	for i := range 3 {
		if err := d.Check(in("Ada", "Hi")); err == nil || d.wrote.Load() {
			t.Errorf("check %d with a DKIM key missing: %v, wrote %v; want an error, nothing written", i, err, d.wrote.Load())
		}
	}
	_, rerr := d.Render(in("Ada", "Hi"))
	if cerr := d.Check(in("Ada", "Hi")); rerr == nil || cerr == nil || cerr.Error() != rerr.Error() {
		t.Errorf("Render %v, Check %v: want the same DKIM problem", rerr, cerr)
	}
}
