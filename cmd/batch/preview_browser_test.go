package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath is the Chromium binary the browser test drives: Debian's
// (apt-get install chromium), or one in PATH.
func chromiumPath() string {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// requestLog tells a test which paths the server was asked for.
type requestLog struct {
	mu    sync.Mutex
	paths []string
	added chan struct{} // a token each time a path is added
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.paths = append(l.paths, r.URL.Path)
		l.mu.Unlock()
		select {
		case l.added <- struct{}{}:
		default:
		}
		h.ServeHTTP(w, r)
	})
}

// await waits for a request whose path has prefix; a guard ends a hung
// test.
func (l *requestLog) await(t *testing.T, prefix string) {
	t.Helper()
	guard := time.After(30 * time.Second) // a guard against a hung test, not a measure
	for {
		l.mu.Lock()
		for _, p := range l.paths {
			if strings.HasPrefix(p, prefix) {
				l.mu.Unlock()
				return
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-guard:
			t.Fatalf("the browser never asked for %s…; it asked for %q", prefix, l.paths)
		}
	}
}

// TestPreviewBrowser drives Chromium through the preview: the index and
// its shapes, a row and its message (the HTML in its sandboxed frame, the
// image served from the message), the phone width, and an edit on disk
// that the page shows after it reloads itself. It writes screenshots
// into $BATCH_PREVIEW_SCREENSHOTS (a temporary directory without it).
func TestPreviewBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium binary: CI installs Debian's chromium (.ci/run); the browser test must run there")
		}
		t.Skip("no Chromium binary (/usr/bin/chromium): apt-get install -y chromium to run the browser test")
	}
	shots := os.Getenv("BATCH_PREVIEW_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := writeDir(t, previewFixture())
	log := &requestLog{added: make(chan struct{}, 1)}
	srv := httptest.NewServer(log.wrap(previewHandler(t, filepath.Join(dir, "c.toml"))))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a guard, not a measure
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // start the browser
		t.Fatalf("starting %s: %v", chromium, err)
	}

	// What the pages write to the console: a policy's refusal shows there.
	var console syncBuffer
	consoleCtx, stopConsole := context.WithCancel(browser)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range chromedp.Console(consoleCtx) {
			if err != nil {
				return
			}
			console.Write([]byte(m.String() + "\n"))
		}
	}()
	defer func() {
		stopConsole()
		<-consoleDone
		if strings.Contains(console.String(), "Refused") || strings.Contains(console.String(), "Content Security Policy") {
			t.Errorf("the browser refused something:\n%s", console.String())
		}
	}()

	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(browser, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("the text of #%s: %v", id, err)
		}
		return s
	}
	eval := func(js string) int {
		t.Helper()
		n, err := chromedp.Run(browser, chromedp.Evaluate[int](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return n
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The index: the shapes, the rows.
	do("the index", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("shapes")))
	if s := text("shape-2"); !strings.Contains(s, "shape 2: 2 rows, e.g. row 3") || !strings.Contains(s, "differs from shape 1 at line 5") {
		t.Errorf("shape 2 reads %q", s)
	}
	if s := text("row-3"); !strings.Contains(s, "*Bob* <script>alert(1)</script>") {
		t.Errorf("row 3 reads %q: the name should show as the text it is", s)
	}
	if n := eval(`document.scripts.length`); n != 1 {
		t.Errorf("the index has %d scripts, want 1, the preview's", n)
	}
	shot("index.png")

	// Shape 2's example, at desktop width: the HTML in its frame, and its
	// image asked of the preview (the frame's policy allows it).
	do("shape 2's example", chromedp.Click(chromedp.CSS("#shape-2 a")), chromedp.WaitVisible(chromedp.ID("html")))
	if loc, err := chromedp.Run(browser, chromedp.Location()); err != nil || loc != srv.URL+"/row/3" {
		t.Errorf("shape 2's link went to %s (%v), want /row/3", loc, err)
	}
	if s := text("subject"); s != "来自SMTP的问候 *Bob* <script>alert(1)</script>" {
		t.Errorf("the subject reads %q", s)
	}
	if w := eval(`document.getElementById("html").clientWidth`); w != desktopWidth {
		t.Errorf("the message is %d px wide, want %d", w, desktopWidth)
	}
	log.await(t, "/row/3/html")
	log.await(t, "/row/3/cid/")
	// Give the frame its load: the screenshot should show the image.
	do("the frame's load", chromedp.Poll[chromedp.Void](`document.readyState === "complete"`))
	shot("row-desktop.png")

	// Phone width.
	do("the phone width", chromedp.Click(chromedp.ID("phone")), chromedp.WaitVisible(chromedp.CSS("b#phone")))
	if w := eval(`document.getElementById("html").clientWidth`); w != phoneWidth {
		t.Errorf("at phone width the message is %d px wide, want %d", w, phoneWidth)
	}
	if href, err := chromedp.Run(browser, chromedp.AttributeValue(chromedp.ID("next"), "href")); err != nil || !strings.HasSuffix(href.Value, "/row/4?width=phone") {
		t.Errorf("the next link is %q (%v), want the phone width kept", href.Value, err)
	}
	do("the frame's load", chromedp.Poll[chromedp.Void](`document.readyState === "complete"`))
	shot("row-phone.png")

	// The message's HTML on its own: sandboxed by its policy, its image
	// still loads.
	do("the HTML alone", chromedp.Navigate(srv.URL+"/row/3/html"),
		chromedp.Poll[chromedp.Void](`document.images.length > 0 && document.images[0].complete && document.images[0].naturalWidth > 0`,
			chromedp.WithPollingTimeout(20*time.Second)))

	// An edit on disk: the row's page, polling /version, reloads itself
	// and shows it.
	do("row 3 again", chromedp.Navigate(srv.URL+"/row/3?width=phone"), chromedp.WaitVisible(chromedp.ID("text")))
	edit := func(context.Context, *chromedp.Target) (chromedp.Void, error) {
		md := strings.Replace(previewFixture()["news.md"], "# Hello", "# Good morning", 1)
		return chromedp.Void{}, os.WriteFile(filepath.Join(dir, "news.md"), []byte(md), 0o644)
	}
	if _, err := chromedp.Run(browser, chromedp.WaitEvent(cdpage.LoadEventFired, nil, edit)); err != nil {
		t.Fatalf("the reload after the edit: %v", err)
	}
	do("the page after the edit", chromedp.WaitVisible(chromedp.ID("text")))
	if s := text("text"); !strings.Contains(s, "Good morning *Bob*") {
		t.Errorf("after the edit the text reads\n%s", s)
	}
	if w := eval(`document.getElementById("html").clientWidth`); w != phoneWidth {
		t.Errorf("after the reload the message is %d px wide, want %d", w, phoneWidth)
	}
	do("the frame's load", chromedp.Poll[chromedp.Void](`document.readyState === "complete"`))
	shot("row-edited.png")
	t.Logf("screenshots in %s", shots)
}
