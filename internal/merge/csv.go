package merge

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// Recipient is one row of the list, merged into templates as its fields.
type Recipient struct {
	Row    int               // data row, 1 for the first row after the header
	Line   int               // line of the file where the row starts
	Email  string            // the address, trimmed and checked
	Name   string            // display name, "" when the list has none
	Fields map[string]string // every column by its header name
}

// Columns names the list's special columns.
type Columns struct {
	Email       string // default "email"
	Name        string // default "name"; a missing name column is allowed only when it is the default
	Attachments string // files for this recipient only; "" for none
}

// RowError is a problem with one row of the list.
type RowError struct {
	Path string // the list as the user named it
	Line int
	Row  int
	Err  error
}

func (e *RowError) Error() string {
	if e.Row > 0 {
		return fmt.Sprintf("%s:%d: row %d: %v", e.Path, e.Line, e.Row, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// ErrSkipped marks a row that is left out of the campaign but does not stop
// it; ErrDuplicate (a repeated address) and ErrInvalid (an address batch
// can't send to) say why. Test with errors.Is.
var (
	ErrSkipped   = errors.New("row skipped")
	ErrDuplicate = errors.New("repeated address")
	ErrInvalid   = errors.New("invalid address")
)

// skip is the error of a skipped row: its reason, ErrSkipped and its kind.
type skip struct {
	reason string
	kind   error
}

func (s skip) Error() string { return s.reason + "; row skipped" }
func (s skip) Is(target error) bool {
	return target == ErrSkipped || target == s.kind
}

// Reader streams the recipients of a list. Next returns them in file order.
type Reader struct {
	path   string
	cr     *csv.Reader
	header []string
	email  int
	name   int // -1 when the list has no name column
	seed   maphash.Seed
	seen   map[uint64]int32 // hash of lower-case address → first row
	row    int
	broken bool // a structural error that ends reading (unterminated quote)
}

// NewReader reads the header of the list at path (used in messages) from r
// and checks it. The caller closes r.
func NewReader(path string, r io.Reader, cols Columns) (*Reader, error) {
	if cols.Email == "" {
		cols.Email = "email"
	}
	nameDefault := cols.Name == ""
	if nameDefault {
		cols.Name = "name"
	}
	// A byte order mark goes before csv sees it: in front of a quoted
	// header ("email") it would make a bare quote.
	br := bufio.NewReader(r)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\uFEFF" {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: the file is empty: the first line must name the columns, e.g. email,name", path)
	}
	if err != nil {
		return nil, csvError(path, err)
	}
	header = append([]string(nil), header...)
	var problems []string
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		header[i] = h
		switch {
		case !utf8.ValidString(h):
			problems = append(problems, fmt.Sprintf("column %d: the header is not UTF-8 text: save the file as UTF-8", i+1))
		case h == "":
			problems = append(problems, fmt.Sprintf("column %d has no name in the header row", i+1))
		case seen[h]:
			problems = append(problems, fmt.Sprintf("column %q appears twice in the header row", h))
		}
		seen[h] = true
	}
	rd := &Reader{path: path, cr: cr, header: header, email: -1, name: -1,
		seed: maphash.MakeSeed(), seen: make(map[uint64]int32)}
	for i, h := range header {
		switch h {
		case cols.Email:
			rd.email = i
		case cols.Name:
			rd.name = i
		}
	}
	if rd.email < 0 {
		problems = append(problems, fmt.Sprintf("no %q column: the header row (%s) must name the column that holds the addresses, or set [columns] email in the campaign file", cols.Email, strings.Join(header, ",")))
	}
	if cols.Attachments != "" && !slices.Contains(header, cols.Attachments) {
		problems = append(problems, fmt.Sprintf("no %q column for [columns] attachments: the header row is %s", cols.Attachments, strings.Join(header, ",")))
	}
	if rd.name < 0 && !nameDefault {
		problems = append(problems, fmt.Sprintf("no %q column for [columns] name: the header row is %s", cols.Name, strings.Join(header, ",")))
	}
	if len(problems) > 0 {
		herr := &HeaderError{Columns: header}
		for _, p := range problems {
			herr.Problems = append(herr.Problems, fmt.Errorf("%s:1: %s", path, p))
		}
		return nil, herr
	}
	cr.FieldsPerRecord = len(header)
	return rd, nil
}

// HeaderError is every problem with a list's header row. Columns are the
// names it has, so that templates can still be checked against them.
type HeaderError struct {
	Columns  []string
	Problems []error
}

func (e *HeaderError) Error() string { return errors.Join(e.Problems...).Error() }

// Unwrap gives errors.Is and errors.As every problem.
func (e *HeaderError) Unwrap() []error { return e.Problems }

// Header returns the column names in file order.
func (r *Reader) Header() []string { return append([]string(nil), r.header...) }

// Next returns the next recipient, or io.EOF after the last. A row that is
// skipped returns a *RowError that wraps ErrSkipped; reading may go on after
// any *RowError. Other errors end the list.
func (r *Reader) Next() (*Recipient, error) {
	if r.broken {
		return nil, io.EOF
	}
	rec, err := r.cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	r.row++
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				hint := "quote any value that holds a comma"
				if len(rec) < len(r.header) {
					hint = "give every column a value, an empty one too (a,,c)"
				}
				return nil, &RowError{Path: r.path, Line: pe.StartLine, Row: r.row,
					Err: fmt.Errorf("%s where the header has %d: %s", fieldCount(len(rec)), len(r.header), hint)}
			}
			// A quote error may swallow the rest of the file; report it
			// at the row where it starts and stop rather than report
			// every later row.
			r.broken = true
			where := fmt.Sprintf("column %d", pe.Column)
			if pe.Line != pe.StartLine {
				where = fmt.Sprintf("line %d, column %d", pe.Line, pe.Column)
			}
			return nil, &RowError{Path: r.path, Line: pe.StartLine, Row: r.row,
				Err: fmt.Errorf("%s: %w: a value with a quote must be quoted, its quotes doubled (\"like \"\"this\"\"\")", where, pe.Err)}
		}
		return nil, fmt.Errorf("%s: %w", r.path, err)
	}
	line, _ := r.cr.FieldPos(0)
	at := &RowError{Path: r.path, Line: line, Row: r.row}
	fields := make(map[string]string, len(rec))
	for i, v := range rec {
		if !utf8.ValidString(v) {
			at.Err = fmt.Errorf("column %q is not UTF-8 text: save the file as UTF-8", r.header[i])
			return nil, at
		}
		fields[r.header[i]] = v
	}
	email := strings.TrimSpace(rec[r.email])
	if err := CheckAddress(email); err != nil {
		at.Err = skip{fmt.Sprintf("invalid address %q: %v", email, err), ErrInvalid}
		return nil, at
	}
	h := maphash.String(r.seed, strings.ToLower(email))
	if first, dup := r.seen[h]; dup {
		at.Err = skip{fmt.Sprintf("%s repeats row %d", email, first), ErrDuplicate}
		return nil, at
	}
	r.seen[h] = int32(r.row)
	rcp := &Recipient{Row: r.row, Line: line, Email: email, Fields: fields}
	if r.name >= 0 {
		rcp.Name = rec[r.name]
	}
	return rcp, nil
}

func csvError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: column %d: %w", path, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

func fieldCount(n int) string {
	if n == 1 {
		return "1 field"
	}
	return fmt.Sprintf("%d fields", n)
}
