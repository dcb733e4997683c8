package templates_test

// The built-in layout in a real browser: messages rendered by batch, their
// images served as a mail client resolves cid: URLs, looked at in Chromium
// (driven with chromedp) at a desktop width and a phone's, for what a
// reader sees: the words, the card, the images, no sideways scrolling, no
// preheader. Chromium is started once per test binary, on first use; with
// none installed the tests are skipped, except in CI (CI set), where that is
// a failure. BATCH_CHROMIUM names the binary; the default is chromium on
// PATH (Debian: apt-get install chromium).
//
// Screenshots of every page at every width, in light and dark mode and with
// the colours inverted as some clients do, and the .eml files they come
// from, go to $BATCH_SCREENSHOTS if set (created if missing), otherwise to
// a temporary directory removed after the test. Chinese text needs a CJK
// font (Debian: fonts-wqy-microhei or fonts-noto-cjk) to show as more than
// boxes in them; the tests read the text, not the pixels, and need none.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/batch-mailer/batch/internal/campaign"
	"github.com/batch-mailer/batch/internal/deliver"
)

// browser is the test binary's one Chromium, started by tab.
var browser struct {
	once   sync.Once
	ctx    context.Context // its first tab: new tabs derive from it
	stop   func()
	dir    string // its --user-data-dir
	absent string // why there is no browser to test with
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.stop != nil {
		browser.stop()
	}
	if browser.dir != "" {
		// Chromium's children may write there a moment after it exits.
		for range 50 {
			if os.RemoveAll(browser.dir) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	os.Exit(code)
}

// startBrowser starts Chromium headless, with the flags this machine's
// closed network needs (no background connections) and a new, empty
// profile.
func startBrowser() {
	path := os.Getenv("BATCH_CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		browser.absent = "no Chromium: install it (Debian: apt-get install chromium) or name it with BATCH_CHROMIUM to test the layout in a browser"
		return
	}
	dir, err := os.MkdirTemp("", "batch-chromium-")
	if err != nil {
		browser.err = err
		return
	}
	browser.dir = dir
	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(dir),
	)
	ctx, stopTab := chromedp.NewContext(alloc)
	browser.ctx = ctx
	browser.stop = func() { stopTab(); stopAlloc() }
	// The first Run starts the browser, for as long as ctx lives: it
	// takes no timeout of its own, so a watchdog stops a browser that
	// doesn't answer.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(2 * time.Minute):
		err = errors.New("no answer in 2 minutes")
	}
	if err != nil {
		browser.err = fmt.Errorf("starting %s: %w", path, err)
	}
}

// tab returns a new tab of the test binary's browser, closed at the end of
// the test, or skips the test where there is no Chromium (fails in CI).
func tab(t *testing.T) context.Context {
	t.Helper()
	browser.once.Do(startBrowser)
	switch {
	case browser.absent != "" && os.Getenv("CI") != "":
		t.Fatalf("%s (CI is set: .ci/run installs it)", browser.absent)
	case browser.absent != "":
		t.Skip(browser.absent)
	case browser.err != nil:
		t.Fatal(browser.err)
	}
	ctx, cancel := context.WithTimeout(browser.ctx, 2*time.Minute) // a guard, not a measure
	ctx, closeTab := chromedp.NewContext(ctx)
	t.Cleanup(func() { closeTab(); cancel() })
	return ctx
}

// shots is the directory for screenshots and messages.
func shots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BATCH_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots and messages in %s", dir)
	return dir
}

// message is a rendered message as a mail client takes it apart: its HTML
// part, and its parts by Content-ID.
type message struct {
	file  string
	html  []byte
	parts map[string]part
}

type part struct {
	ctype string
	data  []byte
}

// dryRun writes a campaign's messages into dir as batch send --dry-run does
// and reads them back, in the list's order.
func dryRun(t *testing.T, path, dir string) []*message {
	t.Helper()
	camp, err := campaign.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := campaign.Options{Now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), SinglePass: true}
	open := func(*campaign.Summary) (deliver.Sender, error) { return deliver.NewDir(dir), nil }
	if _, err := camp.Send(context.Background(), open, opts); err != nil {
		t.Fatalf("dry run of %s: %v", path, err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no messages in %s (%v)", dir, err)
	}
	sort.Strings(files)
	var out []*message
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := &message{file: f, parts: map[string]part{}}
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walkParts(t, f, msg.Header, msg.Body, m)
		if m.html == nil {
			t.Fatalf("%s: no text/html part", f)
		}
		out = append(out, m)
	}
	return out
}

// walkParts collects a MIME entity's HTML part and its parts with a
// Content-ID.
func walkParts(t *testing.T, file string, h map[string][]string, body io.Reader, m *message) {
	t.Helper()
	header := mail.Header(h)
	mt, params, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("%s: Content-Type: %v", file, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("%s: %s: %v", file, mt, err)
			}
			walkParts(t, file, p.Header, p, m)
		}
	}
	switch strings.ToLower(header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("%s: %s: %v", file, mt, err)
	}
	if mt == "text/html" && m.html == nil {
		m.html = data
	}
	if id := strings.Trim(header.Get("Content-ID"), "<> "); id != "" {
		m.parts[id] = part{mt, data}
	}
}

// cidURL is a cid: URL in an attribute.
var cidURL = regexp.MustCompile(`(src|href|background)="cid:([^"]*)"`)

// serve serves each message's HTML at /N/ and its parts at /N/cid/ID, the
// HTML's cid: URLs pointed there, as a mail client resolves them; a cid:
// with no part is a 404, an image that doesn't load.
func serve(t *testing.T, msgs []*message) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for i, m := range msgs {
		prefix := fmt.Sprintf("/%d/", i)
		html := cidURL.ReplaceAll(m.html, []byte(`$1="`+prefix+`cid/$2"`))
		mux.HandleFunc(prefix, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == prefix {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write(html)
				return
			}
			p, ok := m.parts[strings.TrimPrefix(r.URL.Path, prefix+"cid/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", p.ctype)
			w.Write(p.data)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// seen is what a reader sees of a page, measured by seeJS.
type seen struct {
	Text        string // the page's text, white space collapsed
	ScrollWidth float64
	InnerWidth  float64
	ClientWidth float64
	Card        struct {
		Found       bool
		Left, Width float64
		Background  string
	}
	Page   string // the colour around the card
	Images []struct {
		Alt          string
		Complete     bool
		NaturalWidth float64
		Width        float64
		Height       float64
		InText       bool    // its paragraph has text beside it
		LineHeight   float64 // of that paragraph
		Lines        float64 // that paragraph's height in line heights
	}
	Preheader struct {
		Found   bool
		Visible bool // checkVisibility, with opacity and visibility
		Area    float64
	}
	Contrast []struct {
		What       string
		Color      string
		Background string
		Ratio      float64
	}
}

// seeJS measures a page for seen. The card is the first background
// behind the body's first heading or paragraph; the page is the
// background around the card.
const seeJS = `(() => {
  const rgba = (c) => { const m = c.match(/[\d.]+/g) || [0, 0, 0, 0]; return m.map(Number).concat([1]).slice(0, 4); };
  const opaque = (el) => rgba(getComputedStyle(el).backgroundColor)[3] > 0;
  const backdrop = (el) => { for (; el; el = el.parentElement) if (opaque(el)) return el; return null; };
  const bg = (el) => { const b = backdrop(el); return b ? getComputedStyle(b).backgroundColor : "rgb(255, 255, 255)"; };
  const lum = (c) => { const [r, g, b] = rgba(c).map((v) => v / 255).map((v) => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const out = {
    Text: document.body.innerText.replace(/\s+/g, " ").trim(),
    ScrollWidth: document.scrollingElement.scrollWidth,
    InnerWidth: window.innerWidth,
    ClientWidth: document.documentElement.clientWidth,
    Card: { Found: false }, Page: "", Images: [], Preheader: { Found: false }, Contrast: [],
  };
  const first = document.querySelector("h1, h2, p");
  const card = first && backdrop(first);
  if (card) {
    const r = card.getBoundingClientRect();
    out.Card = { Found: true, Left: r.left, Width: r.width, Background: getComputedStyle(card).backgroundColor };
    out.Page = bg(card.parentElement);
  }
  for (const img of document.images) {
    const p = img.closest("p, li, td, th, h1, h2, h3, h4, h5, h6") || img.parentElement;
    const lh = parseFloat(getComputedStyle(p).lineHeight);
    const r = img.getBoundingClientRect();
    out.Images.push({ Alt: img.alt, Complete: img.complete, NaturalWidth: img.naturalWidth, Width: r.width, Height: r.height,
      InText: p.innerText.trim() !== "", LineHeight: lh, Lines: p.getBoundingClientRect().height / lh });
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walker.nextNode()); ) {
    if (n.data.includes(PREHEADER)) {
      const el = n.parentElement, r = el.getBoundingClientRect();
      out.Preheader = { Found: true, Visible: el.checkVisibility({ opacityProperty: true, visibilityProperty: true }), Area: r.width * r.height };
    }
  }
  const text = (what, el) => {
    if (!el) return;
    const s = getComputedStyle(el), back = bg(el);
    out.Contrast.push({ What: what, Color: s.color, Background: back, Ratio: ratio(s.color, back) });
  };
  text("the first paragraph", document.querySelector("p"));
  text("a link", document.querySelector("p a"));
  text("a quote", document.querySelector("blockquote"));
  text("a table cell", document.querySelector("td td, td th"));
  const footer = [...document.querySelectorAll("td")].find((td) => td.innerText.trim().startsWith("This message was sent to"));
  text("the footer", footer);
  text("the footer's link", footer && footer.querySelector("a"));
  return out;
})()`

// look measures the page in ctx, and saves a screenshot of it as name.png.
func look(t *testing.T, ctx context.Context, dir, name, preheader string) *seen {
	t.Helper()
	js := strings.Replace(seeJS, "PREHEADER", fmt.Sprintf("%q", preheader), 1)
	s, err := chromedp.Run(ctx, chromedp.Evaluate[*seen](js))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("%s: screenshot: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// page is one message to look at, and what a reader must see in it.
type page struct {
	name      string
	msg       *message
	sentences []string // in the page's text, white space collapsed
	preheader string   // in the page, and not seen
	images    int      // <img> elements, each one loaded
}

// checkPages opens each page in one tab and checks what a reader sees at
// 800 and 375 px wide, in light and in dark mode.
func checkPages(t *testing.T, dir string, pages []page) {
	ctx := tab(t)
	var msgs []*message
	for _, p := range pages {
		msgs = append(msgs, p.msg)
	}
	srv := serve(t, msgs)
	for i, p := range pages {
		if err := chromedp.Do(ctx, scheme("light"), chromedp.EmulateViewport(800, 900),
			chromedp.Navigate(fmt.Sprintf("%s/%d/", srv.URL, i))); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		for _, width := range []int64{800, 375} {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900)); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("%s-%d", p.name, width)
			s := look(t, ctx, dir, name, p.preheader)
			checkSeen(t, name, p, s, width)
			if width == 800 && s.Card.Found && math.Abs(s.Card.Width-600) > 0.5 {
				t.Errorf("%s: the card is %.1f px wide, want 600", name, s.Card.Width)
			}
			if width == 800 && s.Card.Found && math.Abs(s.Card.Left-(s.ClientWidth-s.Card.Width)/2) > 1 {
				t.Errorf("%s: the card is not centred: %.1f px from the left of %.0f", name, s.Card.Left, s.ClientWidth)
			}
		}
		// Dark mode, as Apple Mail and Outlook ask for it; then the
		// colours inverted by the client, as Gmail's apps do, for a
		// person to look at.
		name := p.name + "-375-dark"
		if err := chromedp.Do(ctx, scheme("dark")); err != nil {
			t.Fatal(err)
		}
		checkSeen(t, name, p, look(t, ctx, dir, name, p.preheader), 375)
		if err := chromedp.Do(ctx, scheme("light"), inverted(true)); err != nil {
			t.Fatal(err)
		}
		look(t, ctx, dir, p.name+"-375-inverted", p.preheader)
		if err := chromedp.Do(ctx, inverted(false)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSeen checks what a reader sees of page p at width.
func checkSeen(t *testing.T, name string, p page, s *seen, width int64) {
	t.Helper()
	var missing []string
	for _, want := range p.sentences {
		if !strings.Contains(s.Text, want) {
			missing = append(missing, fmt.Sprintf("%q", want))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: the reader doesn't see\n\t%s\nin\n%s", name, strings.Join(missing, "\n\t"), s.Text)
	}
	if s.ScrollWidth > s.InnerWidth || s.ScrollWidth > s.ClientWidth {
		t.Errorf("%s: the page is %.0f px wide in a window of %.0f (%.0f without its scroll bar): it scrolls sideways",
			name, s.ScrollWidth, s.InnerWidth, s.ClientWidth)
	}
	if s.InnerWidth != float64(width) {
		t.Errorf("%s: the window is %.0f px wide, want %d", name, s.InnerWidth, width)
	}
	switch {
	case !s.Card.Found:
		t.Errorf("%s: no background behind the body's text: no card", name)
	case s.Card.Background == s.Page:
		t.Errorf("%s: the card (%s) is the colour of the page around it (%s)", name, s.Card.Background, s.Page)
	}
	if len(s.Images) != p.images {
		t.Errorf("%s: %d images, want %d", name, len(s.Images), p.images)
	}
	for _, img := range s.Images {
		if !img.Complete || img.NaturalWidth == 0 {
			t.Errorf("%s: image %q did not load", name, img.Alt)
		}
		if img.Width > s.Card.Width {
			t.Errorf("%s: image %q is %.0f px wide, wider than the card (%.0f)", name, img.Alt, img.Width, s.Card.Width)
		}
		// An image in a line of text is no taller than the line, and
		// pushes no line apart from the others.
		if img.InText && (img.Height > img.LineHeight || math.Abs(img.Lines-math.Round(img.Lines)) > 0.1) {
			t.Errorf("%s: image %q is %.1f px high in lines of %.1f px, and its paragraph %.2f lines high",
				name, img.Alt, img.Height, img.LineHeight, img.Lines)
		}
	}
	if p.preheader != "" {
		switch {
		case !s.Preheader.Found:
			t.Errorf("%s: the preheader %q is not in the page", name, p.preheader)
		case s.Preheader.Visible || s.Preheader.Area > 0 || strings.Contains(s.Text, p.preheader):
			t.Errorf("%s: the preheader %q can be seen (%.0f px²)", name, p.preheader, s.Preheader.Area)
		}
	}
	if len(s.Contrast) < 3 {
		t.Errorf("%s: only %d texts to check the colours of: %+v", name, len(s.Contrast), s.Contrast)
	}
	for _, c := range s.Contrast {
		if c.Ratio < 4.5 { // WCAG AA for body text
			t.Errorf("%s: %s is %s on %s, a contrast of %.2f:1, want 4.5:1 or more", name, c.What, c.Color, c.Background, c.Ratio)
		}
	}
}

// scheme emulates a reader's choice of light or dark mode.
func scheme(s string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s}},
		})
		return err
	})
}

// inverted turns on or off Chromium's automatic dark mode, which darkens a
// page's light colours and lightens its dark ones, as mail clients that
// don't read the message's dark-mode styles do.
func inverted(on bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetAutoDarkModeOverride, emulation.SetAutoDarkModeOverrideParams{Enabled: &on})
		return err
	})
}

// TestLayoutInBrowser: the example campaign's messages, as a reader sees
// them: its Chinese, its pro and free branches and its hostile name.
func TestLayoutInBrowser(t *testing.T) {
	dir := shots(t)
	msgs := dryRun(t, filepath.Join("..", "campaigns", "newsletter.toml"), filepath.Join(dir, "newsletter"))
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 5", len(msgs))
	}
	common := func(name, email, city string) []string {
		return []string{
			"Hello " + name + "!",
			"Our November meetup is on Thursday in " + city + ". 这是一个中文段落，换行不会在汉字之间插入空格。",
			"Programme Time Talk 19:00 Typing asyncio in anger 20:00 Lightning Flash talks",
			"Venue booked",
			"Pizza ordered Schedule attached as a PDF",
			"Bring your laptop, and a friend.",
			"Questions? Reply to this mail or write to team@pymeetup.example.org. See https://pymeetup.example.org for past talks.",
			"You get this mail because you joined the meetup list. Unsubscribe at any time.",
			"This message was sent to " + email + ". Unsubscribe",
		}
	}
	const preheader = "three talks, pizza, and the hallway track"
	checkPages(t, dir, []page{
		{"newsletter-pro", msgs[0], append(common("管理员", "guanliyuan@example.com", "北京"),
			"As a pro member you have a reserved seat."), preheader, 3},
		{"newsletter-free", msgs[1], append(common("Ada Lovelace", "ada@example.org", "London"),
			"Seats are first come, first served — upgrade to pro to reserve one."), preheader, 2},
		{"newsletter-hostile", msgs[3], common("*Bob* <script>x</script> [x](javascript:alert(1))", "mallory@example.org", "Berlin"),
			preheader, 2},
	})
}

// hardWrapped is a template written as people write Markdown in an editor:
// every line broken before the margin, after any kind of text.
const hardWrapped = `# A letter wrapped by hand

Dear {{.name}}, this paragraph was wrapped
by hand, the way people write Markdown
in an editor: every line ends before
the margin, and the words on either side
of each line break stay apart.

A line can end in *emphasis*
or **strong words**, in ` + "`code`" + `,
in a [link](https://example.org/programme)
or an autolink: <https://example.org/>
and the next line goes on.
Write to <team@example.org>.
The next sentence starts on a new line,
after {{.city}}
and a star ![star](star.png)
in the middle of a line.

- a list item that goes on
  over a second line
- [ ] a task that
  wraps too

> A quote wrapped
> over two lines.

Long words don't widen the card on a phone:
https://example.org/an/address/far/too/long/for/a/phone/screen/to/show/on/one/line?with=a&query=string

    a code block whose line is longer than a phone's screen is wide: it scrolls inside the card

Yours,
the team
`

// TestHardWrappedInBrowser: a hard-wrapped template reads as the sentences
// it holds, with a space wherever a line was broken, and nothing in it
// widens the page past a phone's screen.
func TestHardWrappedInBrowser(t *testing.T) {
	dir := shots(t)
	src := t.TempDir()
	star, err := os.ReadFile(filepath.Join("images", "star.png"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"letter.toml": `name = "letter"
from = "The Team <team@example.org>"
subject = "A letter for {{.name}}"
preheader = "Wrapped by hand, read as written"
template = "letter.md"
recipients = "list.csv"
[unsubscribe]
url = "https://example.org/unsubscribe?e={{.email}}"
`,
		"letter.md": hardWrapped,
		"list.csv":  "email,name,city\nada@example.org,Ada Lovelace,London\n",
		"star.png":  string(star),
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	msgs := dryRun(t, filepath.Join(src, "letter.toml"), filepath.Join(dir, "letter"))
	checkPages(t, dir, []page{{"letter", msgs[0], []string{
		"A letter wrapped by hand",
		"Dear Ada Lovelace, this paragraph was wrapped by hand, the way people write Markdown in an editor: " +
			"every line ends before the margin, and the words on either side of each line break stay apart.",
		"A line can end in emphasis or strong words, in code, in a link or an autolink: https://example.org/ " +
			"and the next line goes on. Write to team@example.org. The next sentence starts on a new line, " +
			"after London and a star in the middle of a line.",
		"a list item that goes on over a second line",
		"a task that wraps too",
		"A quote wrapped over two lines.",
		"Long words don't widen the card on a phone: " +
			"https://example.org/an/address/far/too/long/for/a/phone/screen/to/show/on/one/line?with=a&query=string",
		"a code block whose line is longer than a phone's screen is wide: it scrolls inside the card",
		"Yours, the team",
		"This message was sent to ada@example.org. Unsubscribe",
	}, "Wrapped by hand, read as written", 1}})
}
