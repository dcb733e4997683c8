package merge_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/merge"
)

// domainOf returns a valid domain name of exactly n octets (n >= 5), in
// labels of at most 63 octets, ending in ".org".
func domainOf(n int) string {
	var labels []string
	rest := n - len(".org")
	for rest > 0 {
		l := min(rest, 63)
		if rest-l == 1 { // a label of 0 after its dot: shorten this one
			l--
		}
		labels = append(labels, strings.Repeat("d", l))
		rest -= l
		if rest > 0 {
			rest-- // the dot before the next label
		}
	}
	return strings.Join(labels, ".") + ".org"
}

func TestCheckAddress(t *testing.T) {
	local64 := strings.Repeat("l", 64)
	longest := local64 + "@" + domainOf(254-65)
	if len(longest) != 254 {
		t.Fatalf("test setup: address of %d octets, want 254", len(longest))
	}
	valid := []string{
		"a@example.org",
		"ada.lovelace@example.org",
		"first.last+tag@mail.sub.example.co.uk",
		"o'brien@example.ie",
		"UPPER@EXAMPLE.ORG",
		"x@a-b.example",
		"x@123.example",
		"!#$%&'*+-/=?^_`{|}~@example.org",
		local64 + "@example.org",
		"a@" + strings.Repeat("d", 63) + ".org",
		longest,
	}
	for _, s := range valid {
		if err := merge.CheckAddress(s); err != nil {
			t.Errorf("CheckAddress(%q) = %v, want nil", s, err)
		}
	}

	invalid := []struct{ why, addr string }{
		{"empty", ""},
		{"no @", "example.org"},
		{"two @", "a@b@example.org"},
		{"empty local part", "@example.org"},
		{"empty domain", "a@"},
		{"leading dot", ".a@example.org"},
		{"trailing dot before @", "a.@example.org"},
		{"two dots", "a..b@example.org"},
		{"space in local part", "a b@example.org"},
		{"leading space", " a@example.org"},
		{"trailing space", "a@example.org "},
		{"CR LF", "a@example.org\r\n"},
		{"header injection", "a@example.org\r\nBcc: x@example.org"},
		{"LF in local part", "a\nb@example.org"},
		{"tab", "a\t@example.org"},
		{"NUL", "a\x00@example.org"},
		{"non-ASCII local part", "josé@example.org"},
		{"non-ASCII domain", "a@exämple.org"},
		{"quoted local part", `"a b"@example.org`},
		{"angle brackets", "<a@example.org>"},
		{"display name", "Ada <a@example.org>"},
		{"comma", "a,b@example.org"},
		{"local part of 65", strings.Repeat("l", 65) + "@example.org"},
		{"255 in all", local64 + "@" + domainOf(255-65)},
		{"domain without a dot", "a@localhost"},
		{"domain with a trailing dot", "a@example.org."},
		{"domain with a leading dot", "a@.example.org"},
		{"domain with two dots", "a@example..org"},
		{"label starting with -", "a@-example.org"},
		{"label ending with -", "a@example-.org"},
		{"last label starting with -", "a@example.-org"},
		{"label of 64", "a@" + strings.Repeat("d", 64) + ".org"},
		{"underscore in domain", "a@ex_ample.org"},
		{"address literal", "a@[192.0.2.1]"},
	}
	for _, tt := range invalid {
		if err := merge.CheckAddress(tt.addr); err == nil {
			t.Errorf("%s: CheckAddress(%q) = nil, want an error", tt.why, tt.addr)
		}
	}
}

// AddressKey is the rule the list's repeated rows are found by: two
// addresses with the same key are one recipient, two with different keys
// are two.
func TestAddressKeyIsTheDedupeRule(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"Ada@Example.ORG", "ada@example.org", true},
		{"ADA@EXAMPLE.ORG", "ada@Example.org", true},
		{"ada+news@example.org", "ada@example.org", false},
		{"a.da@example.org", "ada@example.org", false},
	} {
		if got := merge.AddressKey(tc.a) == merge.AddressKey(tc.b); got != tc.same {
			t.Errorf("AddressKey(%q) == AddressKey(%q) is %v, want %v", tc.a, tc.b, got, tc.same)
		}
		r, err := merge.NewReader("list.csv", strings.NewReader("email\n"+tc.a+"\n"+tc.b+"\n"), merge.Columns{}, merge.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		_, err = r.Next()
		if dup := errors.Is(err, merge.ErrDuplicate); dup != tc.same {
			t.Errorf("%s then %s: the reader's duplicate is %v (%v), AddressKey says %v", tc.a, tc.b, dup, err, tc.same)
		}
	}
}
