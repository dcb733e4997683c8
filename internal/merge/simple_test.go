package merge

import (
	"bytes"
	"testing"
)

// newsletter is the benchmark's Markdown body (the one of ./bench): about
// 1.5 KB in 30 lines, four merge fields, a list, two links and an image.
const newsletter = `![Python Meetup](logo.png)

# Hello {{.name}}!

Our November meetup is on Thursday in {{.city}}. We have three talks lined
up, pizza, and the usual hallway track. As a member on the {{.plan}} plan you
can bring a friend for free; just reply to this mail with their name.

- 18:30: doors open, coffee and introductions
- 19:00: Typing asyncio in anger, lessons from a year of production code
- 19:45: Packaging in 2026, what changed and what you can finally forget
- 20:30: lightning talks, five minutes each, sign up at the door

The venue is the same as last time: third floor, the big room at the end of
the corridor. If you come by bike, the racks are in the courtyard. The talks
will be recorded and published on [our channel](https://pymeetup.example.org/videos)
a week later, together with the slides.

We are still looking for speakers for December and January. If you have
something to share, a library you wrote, a bug you hunted, a tool you love,
[propose a talk](https://pymeetup.example.org/cfp?from={{.email}}). First-time
speakers are very welcome, and we are happy to help you prepare.

Getting there: the venue is five minutes from the central station. Take
the north exit, walk along the river and turn left after the bakery. There is
no parking on site, but the garage on the corner stays open until midnight
and gives meetup members a discount if you show this mail at the desk.
The doors close at 19:15 sharp, so please be on time for the first talk.

See you on Thursday,
the organisers
`

// benchRow is a row of the benchmark's list.
var benchRow = map[string]string{"email": "user1234@example.com", "name": "张伟", "city": "São Paulo", "plan": "pro"}

// BenchmarkExecute merges a row into the newsletter's body, into a
// bytes.Buffer reused as a campaign's check and send reuse theirs, and
// into its subject line.
func BenchmarkExecute(b *testing.B) {
	b.Run("body", func(b *testing.B) {
		tp, err := ParseBody("news.md", newsletter)
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
