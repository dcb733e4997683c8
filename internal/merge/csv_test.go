package merge_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/merge"
)

// limits are batch's default limits: the tests read through the limiter
// as batch does.
var limits = merge.Limits{Cell: 64 << 10, Row: 1 << 20}

// result is what one call of Next gave: a recipient or an error.
type result struct {
	rcp *merge.Recipient
	err error
}

func (r result) String() string {
	if r.rcp != nil {
		return fmt.Sprintf("%+v", *r.rcp)
	}
	return fmt.Sprintf("error %v", r.err)
}

// readAll reads the list in to its end. A panic inside Next is reported as
// a test failure rather than taking down the whole test binary.
func readAll(t *testing.T, in string, cols merge.Columns) []result {
	t.Helper()
	rd, err := merge.NewReader("list.csv", strings.NewReader(in), cols, limits)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var out []result
	for i := 0; ; i++ {
		if i > len(in)+1 {
			t.Fatalf("Next did not reach io.EOF after %d calls", i)
		}
		rcp, err := next(t, rd)
		if errors.Is(err, io.EOF) {
			return out
		}
		out = append(out, result{rcp, err})
		var re *merge.RowError
		if err != nil && !errors.As(err, &re) {
			return out // not a row error: the list ends here
		}
	}
}

// next calls rd.Next, turning a panic into a failure.
func next(t *testing.T, rd *merge.Reader) (rcp *merge.Recipient, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Next panicked: %v", p)
		}
	}()
	return rd.Next()
}

func rowError(t *testing.T, err error) *merge.RowError {
	t.Helper()
	var re *merge.RowError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v (%T), want a *merge.RowError", err, err)
	}
	return re
}

func TestReaderHeaderAndLineEnds(t *testing.T) {
	want := []merge.Recipient{
		{Row: 1, Line: 2, Email: "ada@example.org", Name: "Ada Lovelace",
			Fields: map[string]string{"email": "ada@example.org", "name": "Ada Lovelace", "city": "London"}},
		{Row: 2, Line: 3, Email: "bob@example.net", Name: "Bob",
			Fields: map[string]string{"email": "bob@example.net", "name": "Bob", "city": "Paris"}},
	}
	body := "email,name,city\nada@example.org,Ada Lovelace,London\nbob@example.net,Bob,Paris\n"
	tests := []struct {
		name string
		in   string
	}{
		{"LF", body},
		{"CRLF", strings.ReplaceAll(body, "\n", "\r\n")},
		{"BOM LF", "\uFEFF" + body},
		{"BOM CRLF", "\uFEFF" + strings.ReplaceAll(body, "\n", "\r\n")},
		{"no final line end", strings.TrimSuffix(body, "\n")},
		{"spaces around header names", " email , name ,city\nada@example.org,Ada Lovelace,London\nbob@example.net,Bob,Paris\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := merge.NewReader("list.csv", strings.NewReader(tt.in), merge.Columns{}, limits)
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			if got, want := rd.Header(), []string{"email", "name", "city"}; !slices.Equal(got, want) {
				t.Errorf("Header() = %q, want %q", got, want)
			}
			got := readAll(t, tt.in, merge.Columns{})
			checkRecipients(t, got, want)
		})
	}
}

// TestReaderBOMQuotedHeader is a header written by a spreadsheet that quotes
// every field and starts the file with a byte order mark.
//
// BUG: the BOM is removed from the first header field after encoding/csv has
// parsed it, so csv sees `<BOM>"email"` as an unquoted field holding a quote
// and NewReader fails with `bare " in non-quoted-field`. The package doc
// promises UTF-8 "with or without a byte order mark". Fix: strip the BOM
// from the stream (peek 3 bytes with a bufio.Reader) before csv reads it.
func TestReaderBOMQuotedHeader(t *testing.T) {
	in := "\uFEFF\"email\",\"name\"\r\n\"ada@example.org\",\"Ada\"\r\n"
	rd, err := merge.NewReader("list.csv", strings.NewReader(in), merge.Columns{}, limits)
	if err != nil {
		t.Fatalf("BUG: NewReader with a BOM and a quoted header: %v", err)
	}
	if got, want := rd.Header(), []string{"email", "name"}; !slices.Equal(got, want) {
		t.Errorf("Header() = %q, want %q", got, want)
	}
}

func TestReaderQuotedFields(t *testing.T) {
	in := "email,name,note\n" +
		"ada@example.org,\"Lovelace, Ada\",\"she said \"\"hi\"\"\"\n" +
		"\"bob@example.net\",\"Bob\",\"line one\nline two\r\nline three\"\n" +
		"carol@example.com,Carol,\"\"\n" +
		"\"dave@example.com\",\"Dave\nSmith\",plain\n"
	want := []merge.Recipient{
		{Row: 1, Line: 2, Email: "ada@example.org", Name: "Lovelace, Ada",
			Fields: map[string]string{"email": "ada@example.org", "name": "Lovelace, Ada", "note": `she said "hi"`}},
		// encoding/csv gives CRLF inside a quoted field as LF.
		{Row: 2, Line: 3, Email: "bob@example.net", Name: "Bob",
			Fields: map[string]string{"email": "bob@example.net", "name": "Bob", "note": "line one\nline two\nline three"}},
		{Row: 3, Line: 6, Email: "carol@example.com", Name: "Carol",
			Fields: map[string]string{"email": "carol@example.com", "name": "Carol", "note": ""}},
		{Row: 4, Line: 7, Email: "dave@example.com", Name: "Dave\nSmith",
			Fields: map[string]string{"email": "dave@example.com", "name": "Dave\nSmith", "note": "plain"}},
	}
	checkRecipients(t, readAll(t, in, merge.Columns{}), want)
}

func TestReaderBlankLinesAndSpaces(t *testing.T) {
	// Blank lines are not rows, but Line still counts them; the address is
	// trimmed while Fields keeps the value as written.
	in := "email,name\n\n  ada@example.org\t,Ada\n\n\nbob@example.net,Bob\n"
	want := []merge.Recipient{
		{Row: 1, Line: 3, Email: "ada@example.org", Name: "Ada",
			Fields: map[string]string{"email": "  ada@example.org\t", "name": "Ada"}},
		{Row: 2, Line: 6, Email: "bob@example.net", Name: "Bob",
			Fields: map[string]string{"email": "bob@example.net", "name": "Bob"}},
	}
	checkRecipients(t, readAll(t, in, merge.Columns{}), want)
}

// TestReaderBlankLineNumbers: however many blank lines, LF or CRLF, come
// before a row, before the header too, or after a row with a quoted value
// over several lines, the line of a row, or of what is wrong with it, is the
// one an editor shows.
func TestReaderBlankLineNumbers(t *testing.T) {
	blank := strings.Repeat("\n\r\n", 2500) // 5,000 lines, more than csv's buffer
	in := "\n\r\nemail,name\n" +            // header at line 3
		blank + "ada@example.org,Ada\n" + // row 1, line 5,004
		"\n\"bob@example.net\",\"Bob\nSmith\"\n" + // row 2, lines 5,006-5,007
		blank + "cy@example.org,Cy,extra\n" + // row 3, line 5,008+5,000
		"\r\n\r\ndi@example.org,Di\n" + // row 4, line 10,011
		"\n\n\"eve@example.org,Eve\n" // row 5, line 10,014: a quote left open
	got := readAllLimits(t, in, merge.Limits{Cell: 100, Row: 100})
	if len(got) != 5 {
		t.Fatalf("got %d results, want 5: %v", len(got), got)
	}
	for i, line := range []int{5004, 5006, 10008, 10011, 10014} {
		if r := got[i].rcp; r != nil {
			if r.Row != i+1 || r.Line != line {
				t.Errorf("%s: row %d line %d, want row %d line %d", r.Email, r.Row, r.Line, i+1, line)
			}
			continue
		}
		if re := rowError(t, got[i].err); re.Row != i+1 || re.Line != line {
			t.Errorf("%v: row %d line %d, want row %d line %d", got[i].err, re.Row, re.Line, i+1, line)
		}
	}
	if !errors.Is(got[4].err, csv.ErrQuote) {
		t.Errorf("row 5: %v, want csv.ErrQuote", got[4].err)
	}

	// The header's problems are at its line too.
	_, err := merge.NewReader("list.csv", strings.NewReader("\n\r\nname,name\n"), merge.Columns{}, limits)
	var herr *merge.HeaderError
	if !errors.As(err, &herr) || len(herr.Problems) != 2 {
		t.Fatalf("got %v, want a *HeaderError of two problems", err)
	}
	for _, p := range herr.Problems {
		if !strings.HasPrefix(p.Error(), "list.csv:3: ") {
			t.Errorf("%v: want it at list.csv:3, the header's line", p)
		}
	}
}

func TestReaderSkippedRows(t *testing.T) {
	in := "email,name\n" +
		"ada@example.org,Ada\n" + // row 1, line 2
		"not-an-address,Nobody\n" + // row 2, line 3: invalid
		"ADA@Example.ORG,Ada again\n" + // row 3, line 4: repeats row 1
		"\"multi\nline\",x\n" + // row 4, line 5: invalid (starts on line 5)
		"bob@example.net,Bob\n" + // row 5, line 7
		"bob@example.net,Bob again\n" + // row 6, line 8: repeats row 5
		"not-an-address,Nobody again\n" + // row 7, line 9: invalid, not a duplicate
		"carol@example.com,Carol\n" // row 8, line 10
	type want struct {
		row, line int
		email     string // "" for a skipped row
		kind      error  // ErrInvalid or ErrDuplicate
	}
	wants := []want{
		{1, 2, "ada@example.org", nil},
		{2, 3, "", merge.ErrInvalid},
		{3, 4, "", merge.ErrDuplicate},
		{4, 5, "", merge.ErrInvalid},
		{5, 7, "bob@example.net", nil},
		{6, 8, "", merge.ErrDuplicate},
		{7, 9, "", merge.ErrInvalid},
		{8, 10, "carol@example.com", nil},
	}
	got := readAll(t, in, merge.Columns{})
	if len(got) != len(wants) {
		t.Fatalf("got %d results, want %d: %v", len(got), len(wants), got)
	}
	for i, w := range wants {
		r := got[i]
		if w.kind == nil {
			if r.err != nil {
				t.Errorf("row %d: unexpected error %v", w.row, r.err)
				continue
			}
			if r.rcp.Row != w.row || r.rcp.Line != w.line || r.rcp.Email != w.email {
				t.Errorf("row %d: got Row %d Line %d Email %q, want %d %d %q",
					w.row, r.rcp.Row, r.rcp.Line, r.rcp.Email, w.row, w.line, w.email)
			}
			continue
		}
		if r.rcp != nil {
			t.Errorf("row %d: got recipient %+v with error %v, want only an error", w.row, r.rcp, r.err)
		}
		re := rowError(t, r.err)
		if re.Row != w.row || re.Line != w.line || re.Path != "list.csv" {
			t.Errorf("row %d: got Path %q Row %d Line %d, want list.csv %d %d", w.row, re.Path, re.Row, re.Line, w.row, w.line)
		}
		if !errors.Is(r.err, merge.ErrSkipped) {
			t.Errorf("row %d: %v does not wrap ErrSkipped", w.row, r.err)
		}
		if !errors.Is(r.err, w.kind) {
			t.Errorf("row %d: %v does not wrap %v", w.row, r.err, w.kind)
		}
		other := merge.ErrDuplicate
		if w.kind == merge.ErrDuplicate {
			other = merge.ErrInvalid
		}
		if errors.Is(r.err, other) {
			t.Errorf("row %d: %v also wraps %v", w.row, r.err, other)
		}
		// The warning is the product here: it must name the file, line and row.
		if prefix := fmt.Sprintf("list.csv:%d: row %d: ", w.line, w.row); !strings.HasPrefix(r.err.Error(), prefix) {
			t.Errorf("row %d: message %q does not start with %q", w.row, r.err, prefix)
		}
	}
	// A duplicate names the row it repeats: the first one is kept.
	if msg := got[2].err.Error(); !strings.Contains(msg, "row 1") {
		t.Errorf("duplicate message %q does not name row 1", msg)
	}
	if msg := got[5].err.Error(); !strings.Contains(msg, "row 5") {
		t.Errorf("duplicate message %q does not name row 5", msg)
	}
}

func TestReaderColumns(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		cols      merge.Columns
		wantEmail string
		wantName  string
	}{
		{"defaults", "email,name\nada@example.org,Ada\n", merge.Columns{}, "ada@example.org", "Ada"},
		{"no name column is allowed by default", "email,city\nada@example.org,London\n", merge.Columns{}, "ada@example.org", ""},
		{"custom email column", "Mail,name\nada@example.org,Ada\n", merge.Columns{Email: "Mail"}, "ada@example.org", "Ada"},
		{"custom name column", "email,full name,name\nada@example.org,Ada Lovelace,ignored\n",
			merge.Columns{Name: "full name"}, "ada@example.org", "Ada Lovelace"},
		{"both custom, columns reordered", "Vorname,E-Mail,email\nAda,ada@example.org,not-an-address\n",
			merge.Columns{Email: "E-Mail", Name: "Vorname"}, "ada@example.org", "Ada"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll(t, tt.in, tt.cols)
			if len(got) != 1 || got[0].err != nil {
				t.Fatalf("got %v, want one recipient", got)
			}
			if r := got[0].rcp; r.Email != tt.wantEmail || r.Name != tt.wantName {
				t.Errorf("got Email %q Name %q, want %q %q", r.Email, r.Name, tt.wantEmail, tt.wantName)
			}
		})
	}
}

func TestReaderHeaderErrors(t *testing.T) {
	// These messages are the product: each must say what is wrong with the
	// header, so the test checks what they name.
	tests := []struct {
		name string
		in   string
		cols merge.Columns
		want []string // substrings of the message
	}{
		{"empty file", "", merge.Columns{}, []string{"list.csv", "empty"}},
		{"missing email column", "mail,name\nada@example.org,Ada\n", merge.Columns{},
			[]string{"list.csv:1:", `"email"`, "mail,name"}},
		{"missing custom email column", "email,name\n", merge.Columns{Email: "Mail"},
			[]string{"list.csv:1:", `"Mail"`, "email,name"}},
		{"missing configured name column", "email,name\n", merge.Columns{Name: "full name"},
			[]string{"list.csv:1:", `"full name"`, "email,name"}},
		{"duplicate column", "email,name,name\n", merge.Columns{}, []string{"list.csv:1:", `"name"`, "twice"}},
		{"empty column name", "email,,city\n", merge.Columns{}, []string{"list.csv:1:", "column 2"}},
		{"non-UTF-8 header", "email,n\xe4me\n", merge.Columns{}, []string{"list.csv:1:", "column 2", "UTF-8"}},
		{"every problem at once", "name,name,\n", merge.Columns{}, []string{`"name"`, "column 3", `"email"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := merge.NewReader("list.csv", strings.NewReader(tt.in), tt.cols, limits)
			if err == nil {
				t.Fatalf("NewReader succeeded (header %q), want an error", rd.Header())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestReaderRaggedRow(t *testing.T) {
	in := "email,name\n" +
		"ada@example.org,Ada\n" +
		"bob@example.net,Smith, Bob\n" + // row 2, line 3: three fields
		"carol@example.com\n" + // row 3, line 4: one field
		"\"dave@example.com\",\"Dave\nSmith\",x\n" + // row 4, lines 5-6: three fields
		"erin@example.com,Erin\n" // row 5, line 7
	got := readAll(t, in, merge.Columns{})
	if len(got) != 5 {
		t.Fatalf("got %d results, want 5: %v", len(got), got)
	}
	for i, w := range []struct{ row, line int }{{2, 3}, {3, 4}, {4, 5}} {
		r := got[i+1]
		re := rowError(t, r.err)
		if re.Row != w.row || re.Line != w.line {
			t.Errorf("ragged row: got Row %d Line %d, want %d %d", re.Row, re.Line, w.row, w.line)
		}
		if errors.Is(r.err, merge.ErrSkipped) {
			t.Errorf("ragged row %d: %v is ErrSkipped; a broken row must stop the campaign", w.row, r.err)
		}
		if !strings.HasPrefix(r.err.Error(), fmt.Sprintf("list.csv:%d: row %d: ", w.line, w.row)) {
			t.Errorf("message %q does not name the file, line and row", r.err)
		}
	}
	if got[0].err != nil || got[4].err != nil {
		t.Fatalf("rows around the ragged ones: %v, %v", got[0].err, got[4].err)
	}
	if r := got[4].rcp; r.Email != "erin@example.com" || r.Row != 5 || r.Line != 7 {
		t.Errorf("after the ragged rows: got %+v, want erin@example.com at row 5, line 7", r)
	}
}

func TestReaderQuoteErrorStops(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error // the csv error wrapped
		row  int
	}{
		{"unbalanced quote in a later column",
			"email,name\nada@example.org,Ada\nbob@example.net,\"Bob\ncarol@example.com,Carol\n",
			csv.ErrQuote, 2},
		{"text after a closing quote",
			"email,name\nada@example.org,\"Ada\"x\nbob@example.net,Bob\n",
			csv.ErrQuote, 1},
		{"bare quote in a later column",
			"email,name\nada@example.org,Ada \"the\" Countess\nbob@example.net,Bob\n",
			csv.ErrBareQuote, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll(t, tt.in, merge.Columns{})
			last := got[len(got)-1]
			re := rowError(t, last.err)
			if !errors.Is(last.err, tt.err) {
				t.Errorf("%v does not wrap %v", last.err, tt.err)
			}
			if errors.Is(last.err, merge.ErrSkipped) {
				t.Errorf("%v is ErrSkipped", last.err)
			}
			if re.Row != tt.row {
				t.Errorf("Row = %d, want %d", re.Row, tt.row)
			}
			if len(got) != tt.row {
				t.Errorf("got %d results, want %d: reading must stop at a quote error", len(got), tt.row)
			}
		})
	}
}

// TestReaderQuoteErrorInFirstColumn is a quote error in the first field of a
// row.
//
// BUG: Next panics ("out of range index passed to FieldPos"): it calls
// r.cr.FieldPos(0) after a failed Read, and encoding/csv records no field
// position when the error is in the first field. It should return a
// *RowError wrapping csv.ErrBareQuote / csv.ErrQuote, like a quote error in a
// later column. Fix (csv.go, Next): call FieldPos only when err == nil, or
// take the line from the *csv.ParseError.
func TestReaderQuoteErrorInFirstColumn(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"bare quote", "email,name\nada@example.org,Ada\nbob\"@example.net,Bob\n", csv.ErrBareQuote},
		{"unbalanced quote", "email,name\nada@example.org,Ada\n\"bob@example.net,Bob\n", csv.ErrQuote},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := merge.NewReader("list.csv", strings.NewReader(tt.in), merge.Columns{}, limits)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rd.Next(); err != nil {
				t.Fatalf("row 1: %v", err)
			}
			var rcp *merge.Recipient
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
					}
				}()
				rcp, err = rd.Next()
			}()
			var re *merge.RowError
			if !errors.As(err, &re) || !errors.Is(err, tt.err) {
				t.Fatalf("BUG: row 2 gave %v, %v; want a *RowError wrapping %v", rcp, err, tt.err)
			}
			if re.Row != 2 {
				t.Errorf("Row = %d, want 2", re.Row)
			}
			if _, err := rd.Next(); !errors.Is(err, io.EOF) {
				t.Errorf("after a quote error Next gave %v, want io.EOF", err)
			}
		})
	}
}

func TestReaderNotUTF8(t *testing.T) {
	in := "email,name\nada@example.org,Ad\xe4\nbob@example.net,Bob\n"
	got := readAll(t, in, merge.Columns{})
	if len(got) != 2 {
		t.Fatalf("got %d results, want 2", len(got))
	}
	re := rowError(t, got[0].err)
	if re.Row != 1 || re.Line != 2 {
		t.Errorf("got Row %d Line %d, want 1 2", re.Row, re.Line)
	}
	if errors.Is(got[0].err, merge.ErrSkipped) {
		t.Errorf("%v is ErrSkipped; a row batch can't read must stop the campaign", got[0].err)
	}
	// The message is the product: it names the column.
	if !strings.Contains(got[0].err.Error(), `"name"`) {
		t.Errorf("message %q does not name the column", got[0].err)
	}
	if got[1].err != nil || got[1].rcp.Email != "bob@example.net" {
		t.Errorf("reading did not go on: %v %v", got[1].rcp, got[1].err)
	}
}

// rowSource produces a CSV list of n rows as it is read, never holding the
// whole list.
type rowSource struct {
	n, next int
	buf     []byte
}

func (s *rowSource) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) && s.next <= s.n {
		if s.next == 0 {
			s.buf = append(s.buf, "email,name,n\r\n"...)
		} else {
			s.buf = fmt.Appendf(s.buf, "user%d@example.org,\"User, %d\",%d\r\n", s.next, s.next, s.next)
		}
		s.next++
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func TestReaderStreams(t *testing.T) {
	const rows = 200_000
	src := &rowSource{n: rows}
	rd, err := merge.NewReader("big.csv", src, merge.Columns{}, limits)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; ; i++ {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			if i != rows+1 {
				t.Fatalf("io.EOF after %d rows, want %d", i-1, rows)
			}
			break
		}
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if i == 1 && src.next > rows/2 {
			t.Fatalf("the first row came back after %d rows were produced: the list is not streamed", src.next)
		}
		if r.Row != i || r.Line != i+1 {
			t.Fatalf("got Row %d Line %d, want %d %d", r.Row, r.Line, i, i+1)
		}
		if want := fmt.Sprintf("user%d@example.org", i); r.Email != want {
			t.Fatalf("row %d: Email %q, want %q", i, r.Email, want)
		}
		if want := fmt.Sprintf("User, %d", i); r.Name != want {
			t.Fatalf("row %d: Name %q, want %q", i, r.Name, want)
		}
	}
}

func checkRecipients(t *testing.T, got []result, want []merge.Recipient) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.err != nil {
			t.Errorf("row %d: %v", w.Row, g.err)
			continue
		}
		r := g.rcp
		if r.Row != w.Row || r.Line != w.Line || r.Email != w.Email || r.Name != w.Name {
			t.Errorf("row %d: got Row %d Line %d Email %q Name %q, want %d %d %q %q",
				w.Row, r.Row, r.Line, r.Email, r.Name, w.Row, w.Line, w.Email, w.Name)
		}
		if !maps.Equal(r.Fields, w.Fields) {
			t.Errorf("row %d: Fields = %q, want %q", w.Row, r.Fields, w.Fields)
		}
	}
}

// FuzzReader reads arbitrary bytes as a list, with or without a fixed
// header line before them, with no limits and with limits of limit bytes a
// row and about half that a cell (limit 0: batch's). Whatever the input,
// Next must not panic, must reach the end, and every recipient it gives
// must be sendable and whole; with limits, it must give what it gives
// without them up to the first row or value past them, a row past them
// must be the last thing it gives, and no value it gives may pass them.
func FuzzReader(f *testing.F) {
	const header = "email,name,city\n"
	seeds := []struct {
		data       string
		withHeader bool
		limit      uint8
	}{
		{"ada@example.org,Ada,London\n", true, 0},
		{"ada@example.org,Ada,London\r\nADA@example.org,Ada,Paris\r\n", true, 0},
		{"\"bob@example.net\",\"Smith, Bob\",\"a\nb\"\n", true, 0},
		{"x,y\nnot-an-address,,\n", true, 0},
		{"ada@example.org,Ada\nbob@example.net,Bob,Paris,extra\n", true, 0},
		{"ada@example.org,\"Ada,London\n", true, 0},
		{"ada@example.org,Ad\xe4,X\n", true, 0},
		{"\n\n\r\n", true, 0},
		{"", true, 0},
		{"\uFEFFemail,name\nada@example.org,Ada\n", false, 0},
		{"name,email\n\"A \"\"B\"\"\", a@b.example.org \n", false, 0},
		{"email\na@b.example\na@b.example\n", false, 0},
		{"email,email\n", false, 0},
		{"", false, 0},
		{"ada@example.org,\u202eadA,London\n", true, 0},
		// At the limits: rows of 28 bytes and cells of 15, exactly at
		// them and one over, a quoted value over several lines, blank
		// lines before a row, a row with no line end, a long header.
		{"ada@example.org,Ada,Londonnn\nbob@example.org,Bob,Londonnnn\n", true, 28},
		{"ada@example.org,Ada,\"Lon\"\"don\"\nbob@example.org,0123456789abcdef,x\n", true, 28},
		{"ada@example.org,\"A\nd\na\",x\nbob@example.org,\"B\no\nb\nb\ny\ny\",x\ncy@example.org,C,x\n", true, 28},
		{"\"ada@example.org\nada@example.org,\nAda\",x\ncy@example.org,C,x\n", true, 28},
		{"ada@example.org,Ada,x\n\n\n\n\n\n\n\n\nbob@example.org,Bob,x\n", true, 28},
		{"ada@example.org,Ada,x\n\n\r\n\n\n\n\n\n\nbob@example.org,Bob,London\n\n\n", true, 28},
		{"ada@example.org,Ada,Londonnn", true, 28},
		{"ada@example.org,Ada,Londonnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn", true, 28},
		{"\uFEFFemail,name,city,country,planet,galaxy\nada@example.org,Ada,a,b,c,d\n", false, 28},
		{"ada@example.org,Ada,x\n\"bob@example.org", true, 1},
	}
	for _, s := range seeds {
		f.Add([]byte(s.data), s.withHeader, s.limit)
	}
	f.Fuzz(func(t *testing.T, data []byte, withHeader bool, limit uint8) {
		if withHeader {
			data = append([]byte(header), data...)
		}
		lim := limits
		if limit > 0 {
			lim = merge.Limits{Cell: int64(limit)/2 + 1, Row: int64(limit)}
		}
		free := readFuzz(t, data, merge.Limits{})
		held := readFuzz(t, data, lim)
		if held.header != nil {
			var size *merge.SizeError
			if !errors.As(held.header, &size) && (free.header == nil || free.header.Error() != held.header.Error()) {
				t.Fatalf("NewReader with limits: %v; without: %v", held.header, free.header)
			}
			return
		}
		if free.header != nil {
			t.Fatalf("NewReader without limits: %v; with limits it read the header", free.header)
		}
		for i, h := range held.results {
			var size *merge.SizeError
			if errors.As(h.err, &size) {
				re := rowError(t, h.err)
				if i >= len(free.results) || rowOf(free.results[i]) != re.Row {
					t.Fatalf("a row past the limits at row %d, where without them: %v", re.Row, free.results[i:])
				}
				if size.Column == "" && i != len(held.results)-1 {
					t.Fatalf("row %d past the row limit was not the last: %v", re.Row, held.results[i+1:])
				}
				// Without quotes a row is its line, from its first byte
				// to its line end: it is past the limit only if that
				// line is. Blank lines before it are not rows.
				if lines := bytes.SplitAfter(data, []byte("\n")); size.Column == "" && !bytes.ContainsRune(data, '"') &&
					re.Line <= len(lines) && int64(len(lines[re.Line-1])) <= lim.Row {
					t.Fatalf("row %d past the row limit at line %d, %q, of %d bytes", re.Row, re.Line, lines[re.Line-1], len(lines[re.Line-1]))
				}
				// Past a size error the reader's set of addresses seen
				// differs: what follows is not compared.
				return
			}
			if i >= len(free.results) {
				t.Fatalf("with limits, result %d (%v) that reading without them doesn't give", i, h)
			}
			if g, w := h.String(), free.results[i].String(); g != w {
				t.Fatalf("result %d with limits: %s; without: %s", i, g, w)
			}
			if h.rcp != nil {
				for c, v := range h.rcp.Fields {
					if int64(len(v)) > lim.Cell {
						t.Fatalf("row %d: column %q holds %d bytes, past the limit of %d", h.rcp.Row, c, len(v), lim.Cell)
					}
				}
			}
		}
		if len(held.results) != len(free.results) {
			t.Fatalf("with limits %d results, without %d, and no size error", len(held.results), len(free.results))
		}
	})
}

// fuzzRead is what a list gave: the header's error, or every result.
type fuzzRead struct {
	header  error
	results []result
}

// readFuzz reads data as a list held to lim, checking what must hold of
// every result, limits or not.
func readFuzz(t *testing.T, data []byte, lim merge.Limits) fuzzRead {
	rd, err := merge.NewReader("fuzz.csv", bytes.NewReader(data), merge.Columns{}, lim)
	if err != nil {
		return fuzzRead{header: err}
	}
	var out fuzzRead
	cols := rd.Header()
	lastRow, lastLine := 0, 0
	seen := map[string]int{}
	for calls := 0; ; calls++ {
		if calls > len(data)+1 {
			t.Fatalf("Next did not reach the end after %d calls", calls)
		}
		rcp, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		out.results = append(out.results, result{rcp, err})
		var re *merge.RowError
		if err != nil && !errors.As(err, &re) {
			return out // an error that ends the list
		}
		if err != nil {
			if rcp != nil {
				t.Fatalf("row %d: a recipient and an error: %v", re.Row, err)
			}
			if re.Row <= lastRow || re.Line <= lastLine {
				t.Fatalf("row error at row %d line %d after row %d line %d", re.Row, re.Line, lastRow, lastLine)
			}
			lastRow, lastLine = re.Row, re.Line
			continue
		}
		if rcp.Row <= lastRow || rcp.Line <= lastLine {
			t.Fatalf("row %d line %d after row %d line %d", rcp.Row, rcp.Line, lastRow, lastLine)
		}
		lastRow, lastLine = rcp.Row, rcp.Line
		if err := merge.CheckAddress(rcp.Email); err != nil {
			t.Fatalf("row %d: address %q: %v", rcp.Row, rcp.Email, err)
		}
		if len(rcp.Fields) != len(cols) {
			t.Fatalf("row %d: %d fields for %d columns", rcp.Row, len(rcp.Fields), len(cols))
		}
		for _, c := range cols {
			if _, ok := rcp.Fields[c]; !ok {
				t.Fatalf("row %d: no field %q", rcp.Row, c)
			}
		}
		if rcp.Email != strings.TrimSpace(rcp.Fields["email"]) {
			t.Fatalf("row %d: Email %q, email column %q", rcp.Row, rcp.Email, rcp.Fields["email"])
		}
		key := strings.ToLower(rcp.Email)
		if first, dup := seen[key]; dup {
			t.Fatalf("row %d: %q repeats row %d but was not skipped", rcp.Row, rcp.Email, first)
		}
		seen[key] = rcp.Row
		if rcp.Warning != nil {
			if !errors.Is(rcp.Warning, merge.ErrBidi) {
				t.Fatalf("row %d: warning %v is not ErrBidi", rcp.Row, rcp.Warning)
			}
			if re := rowError(t, rcp.Warning); re.Row != rcp.Row || re.Line != rcp.Line {
				t.Fatalf("row %d line %d: warning at row %d line %d", rcp.Row, rcp.Line, re.Row, re.Line)
			}
		}
	}
}

// rowOf is the row a result is about.
func rowOf(r result) int {
	if r.rcp != nil {
		return r.rcp.Row
	}
	var re *merge.RowError
	if errors.As(r.err, &re) {
		return re.Row
	}
	return 0
}

// sizeError returns the *SizeError err wraps, in a *RowError at row and
// line.
func sizeError(t *testing.T, err error, row, line int) *merge.SizeError {
	t.Helper()
	re := rowError(t, err)
	if re.Row != row || re.Line != line || re.Path != "list.csv" {
		t.Errorf("%v: at %s row %d line %d, want list.csv row %d line %d", err, re.Path, re.Row, re.Line, row, line)
	}
	var size *merge.SizeError
	if !errors.As(err, &size) {
		t.Fatalf("%v (%T) is not a *merge.SizeError", err, re.Err)
	}
	if errors.Is(err, merge.ErrSkipped) {
		t.Errorf("%v is ErrSkipped; a row too large must stop the campaign", err)
	}
	return size
}

func TestReaderRowLimit(t *testing.T) {
	const head = "email,name,note\n"
	// row makes a row of exactly n bytes, its line end (LF or CRLF)
	// included.
	row := func(email string, n int, end string) string {
		s := email + ",N,"
		return s + strings.Repeat("x", n-len(s)-len(end)) + end
	}
	lim := merge.Limits{Cell: 100, Row: 100}
	tests := []struct {
		name string
		in   string
		ok   int // rows read before the one past the limit; -1 when none is
		line int // where that row starts
	}{
		{"exactly at", head + row("a@example.org", 100, "\n") + row("b@example.org", 100, "\r\n"), -1, 0},
		{"exactly at, the last with no line end", head + row("a@example.org", 100, "\n") + row("b@example.org", 100, ""), -1, 0},
		{"one over", head + row("a@example.org", 100, "\n") + row("b@example.org", 101, "\n") + row("c@example.org", 50, "\n"), 1, 3},
		{"one over with CRLF", head + row("a@example.org", 101, "\r\n") + row("b@example.org", 50, "\n"), 0, 2},
		{"one over, the last with no line end", head + row("a@example.org", 101, ""), 0, 2},
		// Blank lines before a row, which csv skips, count in no row's
		// size; the row past the limit is named at its own line.
		{"blank lines before", head + row("a@example.org", 50, "\n") + "\n\r\n" + row("b@example.org", 100, "\n"), -1, 0},
		{"blank lines before, one over", head + row("a@example.org", 50, "\n") + "\n\r\n" + row("b@example.org", 101, "\n"), 1, 5},
		{"more blank lines than the limit and csv's buffer", head + row("a@example.org", 50, "\n") +
			strings.Repeat("\r\n", 3000) + row("b@example.org", 100, "\n"), -1, 0},
		{"more blank lines than the limit, then one over", head + row("a@example.org", 50, "\n") +
			strings.Repeat("\n", 3000) + row("b@example.org", 101, "\n"), 1, 3003},
		{"blank lines at the end", head + row("a@example.org", 50, "\n") + row("b@example.org", 100, "\n") +
			strings.Repeat("\n", 300), -1, 0},
		// Much more than the limit, and more than csv's buffer.
		{"a long line", head + row("a@example.org", 50, "\n") + row("b@example.org", 100_000, "\n") + row("c@example.org", 50, "\n"), 1, 3},
		// A quoted value over many lines: each line is short, the row is
		// not. Named at the line where the row starts.
		{"multi-line quoted value", head + row("a@example.org", 50, "\n") +
			"b@example.org,N,\"" + strings.Repeat("a line\n", 30) + "\"\n" + row("c@example.org", 50, "\n"), 1, 3},
		{"multi-line quoted first value", head + "\"a@example.org\",N,\"two\nlines\"\n" +
			"\"" + strings.Repeat("a line\n", 30) + "\",N,x\n" + row("c@example.org", 50, "\n"), 1, 4},
		// A quote left open: the rest of the file is one value.
		{"a quote left open", head + row("a@example.org", 50, "\n") + "b@example.org,\"N,x\n" +
			strings.Repeat(row("c@example.org", 50, "\n"), 20), 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := merge.NewReader("list.csv", strings.NewReader(tt.in), merge.Columns{}, lim)
			if err != nil {
				t.Fatal(err)
			}
			var got []result
			for {
				rcp, err := next(t, rd)
				if errors.Is(err, io.EOF) {
					break
				}
				got = append(got, result{rcp, err})
			}
			if tt.ok < 0 {
				for _, r := range got {
					if r.err != nil {
						t.Errorf("a row within the limit: %v", r.err)
					}
				}
				if len(got) != 2 {
					t.Errorf("got %d rows, want 2", len(got))
				}
				return
			}
			// Reading stops at the row: nothing after it, not even io.EOF's
			// row count going on.
			if len(got) != tt.ok+1 {
				t.Fatalf("got %d results, want %d and then the end: %v", len(got), tt.ok+1, got)
			}
			for _, r := range got[:tt.ok] {
				if r.err != nil {
					t.Errorf("a row before the one past the limit: %v", r.err)
				}
			}
			size := sizeError(t, got[tt.ok].err, tt.ok+1, tt.line)
			if size.Column != "" || size.Limit != 100 {
				t.Errorf("got %+v, want the row's limit, 100", size)
			}
		})
	}
}

func TestReaderCellLimit(t *testing.T) {
	lim := merge.Limits{Cell: 10, Row: 1000}
	in := "email,name,note\n" +
		"a@b.org,N,0123456789\n" + // row 1: exactly at
		"b@b.org,N,\"01234\"\"678\"\n" + // row 2: exactly at, a quote doubled in the file
		"c@b.org,N,0123456789a\n" + // row 3: one over
		"d@b.org,\"0123\n56789a\",x\n" + // row 4, lines 5-6: one over, over two lines
		"e@b.org,N,x\n" // row 5, line 7: reading goes on
	got := readAllLimits(t, in, lim)
	if len(got) != 5 {
		t.Fatalf("got %d results, want 5: %v", len(got), got)
	}
	for _, i := range []int{0, 1, 4} {
		if got[i].err != nil {
			t.Fatalf("row %d: %v", i+1, got[i].err)
		}
	}
	if v := got[1].rcp.Fields["note"]; v != `01234"678` {
		t.Errorf("row 2: note %q", v)
	}
	for _, w := range []struct {
		i, line int
		column  string
	}{{2, 4, "note"}, {3, 5, "name"}} {
		size := sizeError(t, got[w.i].err, w.i+1, w.line)
		if size.Column != w.column || size.Limit != 10 {
			t.Errorf("row %d: got %+v, want column %q, limit 10", w.i+1, size, w.column)
		}
	}
	if r := got[4].rcp; r.Row != 5 || r.Line != 7 {
		t.Errorf("after the values past the limit: row %d line %d, want 5 7", r.Row, r.Line)
	}
}

// readAllLimits reads the list in to its end, held to lim.
func readAllLimits(t *testing.T, in string, lim merge.Limits) []result {
	t.Helper()
	rd, err := merge.NewReader("list.csv", strings.NewReader(in), merge.Columns{}, lim)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var out []result
	for {
		rcp, err := next(t, rd)
		if errors.Is(err, io.EOF) {
			return out
		}
		out = append(out, result{rcp, err})
	}
}

func TestReaderHeaderLimit(t *testing.T) {
	for name, in := range map[string]string{
		"long":                      "email,name," + strings.Repeat("x", 200) + "\nada@example.org,Ada,x\n",
		"no line end":               strings.Repeat("x", 5000),
		"byte order mark, one over": "\uFEFF" + "email,name," + strings.Repeat("x", 100-len("email,name,\n")+1) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := merge.NewReader("list.csv", strings.NewReader(in), merge.Columns{}, merge.Limits{Cell: 100, Row: 100})
			re := rowError(t, err)
			if re.Row != 0 || re.Line != 1 {
				t.Errorf("%v: row %d line %d, want the header, line 1", err, re.Row, re.Line)
			}
			var size *merge.SizeError
			if !errors.As(err, &size) || size.Limit != 100 || size.Column != "" {
				t.Errorf("%v: want a *SizeError of the row limit", err)
			}
		})
	}
	// The byte order mark doesn't count.
	in := "\uFEFF" + "email,name," + strings.Repeat("x", 100-len("email,name,\n")) + "\n"
	if _, err := merge.NewReader("list.csv", strings.NewReader(in), merge.Columns{}, merge.Limits{Cell: 100, Row: 100}); err != nil {
		t.Errorf("a header of exactly the limit after a byte order mark: %v", err)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// xs reads as x without end.
type xs struct{}

func (xs) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestReaderStopsEarly is a list whose second row is a line of 64 MiB: the
// reader must give up having read no more of it than the limit.
func TestReaderStopsEarly(t *testing.T) {
	const head, first = "email,name\n", "ada@example.org,Ada\n"
	lim := merge.Limits{Cell: 64 << 10, Row: 1 << 20}
	src := &countingReader{r: io.MultiReader(strings.NewReader(head+first+"bob@example.org,"),
		io.LimitReader(xs{}, 64<<20), strings.NewReader("\ncy@example.org,Cy\n"))}
	rd, err := merge.NewReader("list.csv", src, merge.Columns{}, lim)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := rd.Next(); err != nil || r.Email != "ada@example.org" {
		t.Fatalf("row 1: %v, %v", r, err)
	}
	_, err = rd.Next()
	sizeError(t, err, 2, 3)
	// The limiter passes csv no more than one byte past the limit, from
	// where the row starts.
	if max := int64(len(head+first)) + lim.Row + 1; src.n > max {
		t.Errorf("read %d bytes of the list, want at most %d", src.n, max)
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after a row past the limit: %v, want io.EOF", err)
	}
}

func TestReaderBidiWarning(t *testing.T) {
	in := "email,name\n" +
		"ada@example.org,\u202eadA\n" + // row 1: RIGHT-TO-LEFT OVERRIDE
		"bob@example.org,Bob\n" + // row 2: none
		"cy@example.org,\"C\u2066y\n\u2069\u2066\"\n" + // row 3, lines 4-5: isolates, one twice
		"dee@example.org,\u05d3\u05e0\u05d4\u200f (Dee)\n" + // row 4, line 6: a right-to-left mark, which is no warning
		"eve@example.org,\u061cEve\u200e\n" // row 5, line 7: ARABIC LETTER MARK, LEFT-TO-RIGHT MARK
	got := readAll(t, in, merge.Columns{})
	if len(got) != 5 {
		t.Fatalf("got %d results, want 5: %v", len(got), got)
	}
	for i, r := range got {
		if r.err != nil || r.rcp == nil {
			t.Fatalf("row %d: %v; a warning must not keep the row from being sent", i+1, r.err)
		}
	}
	for _, w := range []struct {
		i, line int
		chars   string
	}{{0, 2, "(U+202E)"}, {2, 4, "(U+2066, U+2069)"}} {
		warn := got[w.i].rcp.Warning
		if !errors.Is(warn, merge.ErrBidi) {
			t.Fatalf("row %d: warning %v, want ErrBidi", w.i+1, warn)
		}
		re := rowError(t, warn)
		if re.Row != w.i+1 || re.Line != w.line {
			t.Errorf("%v: row %d line %d, want %d %d", warn, re.Row, re.Line, w.i+1, w.line)
		}
		// The message is the product: it names the characters, and shows
		// the name with them escaped, so that it doesn't turn the
		// terminal's text around.
		msg := warn.Error()
		if !strings.Contains(msg, w.chars) {
			t.Errorf("%q does not name %s", msg, w.chars)
		}
		if strings.ContainsFunc(msg, func(r rune) bool { return r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' }) {
			t.Errorf("%q holds the characters themselves", msg)
		}
	}
	for _, i := range []int{1, 3, 4} {
		if warn := got[i].rcp.Warning; warn != nil {
			t.Errorf("row %d: warning %v", i+1, warn)
		}
	}
	// Every one of the embeddings, overrides and isolates.
	for c := rune(0x2000); c < 0x2100; c++ {
		got := readAll(t, "email,name\nada@example.org,A"+string(c)+"da\n", merge.Columns{})
		want := c >= 0x202a && c <= 0x202e || c >= 0x2066 && c <= 0x2069
		if len(got) != 1 || got[0].rcp == nil {
			t.Fatalf("U+%04X: %v", c, got)
		}
		if warned := got[0].rcp.Warning != nil; warned != want {
			t.Errorf("U+%04X: warned %v, want %v", c, warned, want)
		}
	}
}
