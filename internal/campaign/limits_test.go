package campaign

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/merge"
)

func TestParseSize(t *testing.T) {
	for text, want := range map[string]int64{
		"64KiB": 64 << 10, "1 MiB": 1 << 20, "25MB": 25_000_000, "1000": 1000, "2GiB": 2 << 30, "10B": 10,
	} {
		if got, err := parseSize(text); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
	for _, text := range []string{"", "x", "-1", "0", "1.5MB", "12 parsecs", "99999999999GB"} {
		if n, err := parseSize(text); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", text, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		64 << 10: "64 KiB", 1 << 20: "1 MiB", 25_000_000: "25 MB", 1500: "1.5 KB", 12: "12 bytes", 31_457_280: "30 MiB",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCheckListLimits(t *testing.T) {
	const limits = "\n[limits]\ncell = \"16B\"\nrow = \"64B\"\n"
	long := strings.Repeat("x", 17)
	tests := []struct {
		name, list string
		column     string // of the *merge.SizeError; "" for the row
		row, line  int
		want       string // the message after "list.csv:LINE: row ROW: "
		more       int    // further rows with the same problem
	}{
		{"a cell", "email,name\nada@example.org,Ada\nbob@example.net," + long + "\ncy@example.net," + long + "\n",
			"name", 2, 3, `column "name" holds more than 16 bytes: raise [limits] cell in %s, or shorten the value`, 1},
		// The rows after the one too long are not read: the 17-byte
		// name in row 3 is not reported.
		{"a row", "email,name\nada@example.org,Ada\nbob@example.net,\"" + strings.Repeat("Bob\n", 15) + "\"\ncy@example.net," + long + "\n",
			"", 2, 3, "the row is larger than 64 bytes, so reading stopped here: raise [limits] row in %s, or fix row 2 (a quote left open makes the rest of the file one value)", 0},
		{"the header", "email,name," + strings.Repeat("x", 64) + "\nada@example.org,Ada,x\n",
			"", 0, 1, "the header row is larger than 64 bytes, so the list can't be read: raise [limits] row in %s, or fix the header row (is the file CSV, with a line end after the header?)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCampaign(t, tt.list, "Hi {{.name}}\n", limits, nil)
			_, err := c.Check(context.Background(), Options{Now: now})
			p := problemsOf(t, err)
			if len(p) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(p), err)
			}
			var size *merge.SizeError
			if !errors.As(p[0], &size) || size.Column != tt.column {
				t.Errorf("%v: want a *merge.SizeError of column %q", p[0], tt.column)
			}
			var re *merge.RowError
			if !errors.As(p[0], &re) || re.Row != tt.row || re.Line != tt.line {
				t.Errorf("%v: want a *merge.RowError at row %d, line %d", p[0], tt.row, tt.line)
			}
			want := c.Recipients + fmt.Sprintf(":%d: ", tt.line)
			if tt.row > 0 {
				want += fmt.Sprintf("row %d: ", tt.row)
			}
			want += fmt.Sprintf(tt.want, c.Path)
			if tt.more > 0 {
				want += fmt.Sprintf(" (and %d more rows)", tt.more)
			}
			if p[0].Error() != want {
				t.Errorf("got  %s\nwant %s", p[0], want)
			}
		})
	}
}

func TestStatusListLimits(t *testing.T) {
	c := newCampaign(t, "email,name\nada@example.org,"+strings.Repeat("x", 17)+"\n", "Hi {{.name}}\n", "\n[limits]\ncell = \"16B\"\n", nil)
	_, err := c.Status(nil, Shard{}, func(*merge.Recipient, journal.Entry) {})
	var size *merge.SizeError
	if !errors.As(err, &size) || !strings.Contains(err.Error(), "raise [limits] cell in "+c.Path) {
		t.Errorf("Status of a list with a value past the limit: %v", err)
	}
}
