package render

import (
	"net/mail"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/merge"
)

// benchTemplate is a realistic newsletter: about 1.5 KB of Markdown, four
// merge fields, a list, two links and an image.
const benchTemplate = `![Python Meetup](logo.png)

# Hello {{.name}}!

Our **November meetup** is on *Thursday* in {{.city}}. We have three talks
lined up, pizza, and the usual hallway track. As a member on the {{.plan}}
plan you can bring a friend for free; just reply to this mail with their name.

## Programme

- 18:30 — doors open, coffee and introductions
- 19:00 — *Typing asyncio in anger*: lessons from a year of production code
- 19:45 — *Packaging in 2026*: what changed and what you can finally forget
- 20:30 — lightning talks (sign up at the door, five minutes each)
- 21:00 — drinks at the usual place around the corner

The venue is the same as last time: third floor, the big room at the end of
the corridor. If you come by bike, the racks are in the courtyard. The talks
will be recorded and published on [our channel](https://pymeetup.example.org/videos)
a week later, together with the slides.

We are still looking for speakers for December and January. If you have
something to share — a library you wrote, a bug you hunted, a tool you love —
[propose a talk](https://pymeetup.example.org/cfp?from={{.email}}). First-time
speakers are very welcome, and we are happy to help you prepare.

See you on Thursday,
the organisers
`

func BenchmarkRender(b *testing.B) {
	fx := &fixture{t: &testing.T{}, dir: b.TempDir()}
	fx.file("logo.png", make([]byte, 20<<10))
	r := fx.renderer()
	body, err := merge.ParseBody("template.md", benchTemplate)
	if err != nil {
		b.Fatal(err)
	}
	subject, err := merge.ParseLine("subject", "来自SMTP的问候…… {{.name}}")
	if err != nil {
		b.Fatal(err)
	}
	fields := map[string]string{"email": "ada@example.org", "name": "张伟", "city": "上海", "plan": "pro"}
	var md strings.Builder
	size := 0
	b.ReportAllocs()
	for b.Loop() {
		md.Reset()
		if err := body.Execute(&md, fields); err != nil {
			b.Fatal(err)
		}
		subj, err := subject.Line(fields)
		if err != nil {
			b.Fatal(err)
		}
		m, err := r.Render(&Input{Seq: 1, To: mail.Address{Name: fields["name"], Address: fields["email"]},
			Subject: subj, Markdown: []byte(md.String()), Fields: fields})
		if err != nil {
			b.Fatal(err)
		}
		size = len(m.Data)
		m.Release() // as a send does once the message is written or delivered
	}
	b.ReportMetric(float64(size), "bytes/msg")
}
