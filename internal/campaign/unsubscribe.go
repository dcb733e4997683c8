package campaign

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/batch-mailer/batch/internal/merge"
)

// unsubscribeFile is the [unsubscribe] table as written.
type unsubscribeFile struct {
	URL    string `toml:"url"`
	Mailto string `toml:"mailto"`
}

// Unsubscribe is how a recipient leaves the list: one click on an https
// URL (RFC 8058), and or a mail to an address (RFC 2369).
type Unsubscribe struct {
	URL    *merge.Template // values percent-encoded; nil for none
	Mailto string
}

// loadUnsubscribe checks the [unsubscribe] table.
func loadUnsubscribe(f *unsubscribeFile, at func(string) string, bad func(key, format string, args ...any), errs *Problems) *Unsubscribe {
	u := &Unsubscribe{Mailto: strings.TrimSpace(f.Mailto)}
	if f.URL == "" && u.Mailto == "" {
		bad("unsubscribe", `give url = "https://…" (one-click unsubscribe, which Gmail and Yahoo require of bulk senders), mailto, or both`)
	}
	if f.URL != "" {
		text := strings.TrimSpace(f.URL)
		lit, _, field := strings.Cut(text, "{{")
		switch {
		case !strings.HasPrefix(strings.ToLower(text), "https://"):
			bad("unsubscribe.url", "%q: one-click unsubscribe (RFC 8058) needs an https URL: mail clients POST to it without asking, so it must be encrypted", f.URL)
		case field && merge.PlaceInURL(lit) != merge.InPath:
			bad("unsubscribe.url", "%q: a merge field can't be part of the host: put it in the path or the query", f.URL)
		default:
			t, err := merge.ParseURL(at("unsubscribe.url")+": unsubscribe.url", text)
			if err != nil {
				*errs = append(*errs, err)
			} else {
				u.URL = t
			}
		}
	}
	if u.Mailto != "" {
		if err := merge.CheckAddress(u.Mailto); err != nil {
			bad("unsubscribe.mailto", "%q: %v", u.Mailto, err)
		}
	}
	return u
}

// link returns the recipient's unsubscribe URL, checked.
func (u *Unsubscribe) link(fields map[string]string) (string, error) {
	if u == nil || u.URL == nil {
		return "", nil
	}
	s, err := u.URL.URL(fields)
	if err != nil {
		return "", err
	}
	p, err := url.Parse(s)
	if err != nil || p.Scheme != "https" || p.Host == "" || strings.ContainsAny(s, " <>\"") {
		return "", fmt.Errorf("unsubscribe.url: %q is not a valid https URL", s)
	}
	return s, nil
}
