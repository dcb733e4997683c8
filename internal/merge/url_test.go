package merge_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/merge"
)

func TestPlaceInURL(t *testing.T) {
	tests := []struct {
		before string
		want   merge.URLPlace
	}{
		// The path, query or fragment of a URL with a host.
		{"https://example.org/", merge.InPath},
		{"https://example.org/a/b-", merge.InPath},
		{"https://example.org?q=", merge.InPath},
		{"https://example.org#", merge.InPath},
		{"HTTPS://Example.org/", merge.InPath},
		{"https://user@example.org:8080/", merge.InPath},
		{`https://example.org\`, merge.InPath}, // a backslash is a slash in http(s)
		{"  https://example.org/", merge.InPath},
		{"//example.org/", merge.InPath},
		{"ftp://example.org/", merge.InPath},
		{"git+ssh://example.org/", merge.InPath},
		// Relative URLs, once their scheme can't be made any more.
		{"/unsubscribe/", merge.InPath},
		{"./", merge.InPath},
		{"page?id=", merge.InPath},
		{"#", merge.InPath},
		{"?q=", merge.InPath},
		{"1", merge.InPath},
		{"../a", merge.InPath},
		// mailto: only the subject or the body.
		{"mailto:team@example.org?subject=", merge.InPath},
		{"mailto:team@example.org?subject=Hi&body=", merge.InPath},
		{"mailto:team@example.org?Subject=", merge.InPath},

		// The start: the whole URL, or its scheme.
		{"", merge.InScheme},
		{"   ", merge.InScheme},
		{"java", merge.InScheme},
		{"page", merge.InScheme},
		{"a.b+c-", merge.InScheme},
		// The host, port or user name.
		{"https://", merge.InAuthority},
		{"https://example.org", merge.InAuthority},
		{"https://example.org:", merge.InAuthority},
		{"https://user", merge.InAuthority},
		{"https://example.org@", merge.InAuthority},
		{"https:", merge.InAuthority},
		{"https:/", merge.InAuthority},
		{"https:///", merge.InAuthority},
		{`https:\\`, merge.InAuthority},
		{"https:example.org", merge.InAuthority},       // a browser reads https://example.org
		{"https://exa\tmple.org\n", merge.InAuthority}, // tabs and line ends are dropped
		{"https://example.org%2F", merge.InAuthority},
		{"//", merge.InAuthority},
		{"//example.org", merge.InAuthority},
		{`\\example.org`, merge.InAuthority},
		{`//example.org\`, merge.InAuthority}, // the base may not be http(s)
		{"/", merge.InAuthority},              // a value "/evil.example" makes it //evil.example
		{"foo://example.org", merge.InAuthority},
		// mailto: addresses, and headers that are addresses.
		{"mailto:", merge.InMailto},
		{"mailto:team@", merge.InMailto},
		{"MAILTO:team@example.org,", merge.InMailto},
		{"mailto:team@example.org?", merge.InMailto},
		{"mailto:team@example.org?subject", merge.InMailto},
		{"mailto:team@example.org?bcc=", merge.InMailto},
		{"mailto:team@example.org?subject=x&cc=", merge.InMailto},
		{"mailto:?to=", merge.InMailto},
		// No host.
		{"javascript:", merge.InOpaque},
		{"javascript:alert('", merge.InOpaque},
		{"tel:+49", merge.InOpaque},
		{"sms:", merge.InOpaque},
		{"data:text/html,", merge.InOpaque},
		{"cid:", merge.InOpaque},
		{"foo:bar/", merge.InOpaque},
	}
	for _, tt := range tests {
		if got := merge.PlaceInURL(tt.before); got != tt.want {
			t.Errorf("PlaceInURL(%q) = %d, want %d", tt.before, got, tt.want)
		}
	}
}

// TestPlaceInURLHosts: wherever PlaceInURL allows a value, no hostile value,
// however it is escaped (percent-encoded, as in Markdown, or not at all, as
// a layout's path may be), changes the host the URL's text before it gives.
func TestPlaceInURLHosts(t *testing.T) {
	hostile := []string{".evil.com", "@evil.com", "evil.com/", "//evil.com", ":8080", "javascript:alert(1)",
		"\r\n//evil.com", "/evil.com", `\evil.com`, "evil.com", "%2F%2Fevil.com", "?x=1#y"}
	for _, before := range []string{"https://example.org/", "https://example.org/a/", "https://example.org?q=",
		"https://example.org#", "https://example.org/p?a=1&b=", "//example.org/", `https://example.org\`} {
		if merge.PlaceInURL(before) != merge.InPath {
			t.Fatalf("%q is not a path", before)
		}
		for _, v := range hostile {
			for _, esc := range []func(string) string{encode, asIs} {
				u, err := url.Parse(browser("https:" + strings.TrimPrefix(before, "https:") + esc(v)))
				if err != nil {
					t.Errorf("%q + %q: %v", before, v, err)
					continue
				}
				if u.Host != "example.org" {
					t.Errorf("%q + %q goes to host %q", before, v, u.Host)
				}
			}
		}
	}
}

func encode(s string) string { return string(merge.EscapeURL(nil, s)) }
func asIs(s string) string   { return s }

// browser gives a URL as a browser reads it (the WHATWG URL standard), for
// net/url: leading spaces and controls trimmed, tabs and line ends dropped,
// and in http(s) URLs backslashes made slashes and any run of them after
// the scheme "//".
func browser(s string) string {
	s = strings.TrimLeftFunc(s, func(r rune) bool { return r <= ' ' })
	s = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(s)
	scheme, rest, ok := strings.Cut(s, ":")
	if lower := strings.ToLower(scheme); ok && (lower == "http" || lower == "https") {
		return scheme + "://" + strings.ReplaceAll(strings.TrimLeft(rest, `/\`), `\`, "/")
	}
	return s
}

// FuzzPlaceInURL: where PlaceInURL allows a value, the value, percent-encoded
// as the Markdown's are (or as it is, in a path, as html/template's
// normalizer leaves most of it), doesn't change the URL's scheme, user,
// host or port, nor a mailto: URL's addresses and the headers it names.
func FuzzPlaceInURL(f *testing.F) {
	for _, before := range []string{"https://example.org/", "https://example.org?q=", "//example.org/a", "/u/",
		"mailto:team@example.org?subject=", "https:example.org/", `https:\\example.org\`, "./", "#", "HTTP://a@b:1/"} {
		for _, v := range []string{".evil.com", "@evil.com", "//evil.com", `\evil.com`, ":8080", "javascript:alert(1)", "?a=b&bcc=x#y"} {
			f.Add(before, v)
		}
	}
	f.Fuzz(func(t *testing.T, before, value string) {
		if merge.PlaceInURL(before) != merge.InPath {
			return
		}
		u0, err := url.Parse(browser(before + "x"))
		if err != nil {
			return
		}
		escapes := []func(string) string{encode}
		if !strings.ContainsAny(before, "?#") {
			escapes = append(escapes, func(s string) string { return strings.NewReplacer(`\`, "", "%", "").Replace(s) })
		}
		for _, esc := range escapes {
			u, err := url.Parse(browser(before + esc(value)))
			if err != nil {
				continue
			}
			if u.Scheme != u0.Scheme || u.User.String() != u0.User.String() || u.Host != u0.Host || u.Opaque != u0.Opaque {
				t.Fatalf("%q + %q: %s://%s@%s%s, was %s://%s@%s%s", before, value,
					u.Scheme, u.User, u.Host, u.Opaque, u0.Scheme, u0.User, u0.Host, u0.Opaque)
			}
			if strings.EqualFold(u.Scheme, "mailto") {
				for k := range u.Query() {
					if _, ok := u0.Query()[k]; !ok {
						t.Fatalf("%q + %q: the value adds header %q", before, value, k)
					}
				}
			}
		}
	})
}

func TestURLError(t *testing.T) {
	var err error = &merge.URLError{Pos: "t.md:3:24", What: "link", URL: "https://example.org{{…}}/", Place: merge.InAuthority}
	var ue *merge.URLError
	if !errors.As(err, &ue) || ue.Place != merge.InAuthority {
		t.Fatalf("errors.As: %v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, `t.md:3:24: link "https://example.org{{…}}/": `) || !strings.Contains(msg, "host") {
		t.Errorf("message %q", msg)
	}
	for place := merge.InScheme; place <= merge.InUnknown; place++ {
		msg := (&merge.URLError{Pos: "p", What: "link", URL: "u", Place: place}).Error()
		if strings.HasSuffix(msg, ".") || strings.ToLower(msg[:1]) != msg[:1] {
			t.Errorf("place %d: %q is not a diagnostic", place, msg)
		}
	}
}
