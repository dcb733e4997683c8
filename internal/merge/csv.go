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
	// Warning is a *RowError about the row that doesn't keep it from
	// being sent (ErrBidi); nil for most rows.
	Warning error
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

// ErrBidi marks the warning of a row whose name holds bidirectional
// control characters (the embeddings, overrides and isolates, U+202A to
// U+202E and U+2066 to U+2069): they make text show in another order than
// it has, so that a name can read as something it isn't, a known phishing
// trick. The row is sent all the same. The marks U+200E, U+200F and U+061C
// are left alone: they can't reverse text, and names that mix right-to-left
// and left-to-right script need them.
var ErrBidi = errors.New("bidirectional control characters")

// bidi is the warning of a name with bidirectional control characters.
type bidi struct {
	name  string
	chars []rune // each once, in the order met
}

func (b bidi) Error() string {
	codes := make([]string, len(b.chars))
	for i, c := range b.chars {
		codes[i] = fmt.Sprintf("U+%04X", c)
	}
	return fmt.Sprintf("the name %q holds bidirectional control characters (%s), which can make it show as other text, a phishing trick: sent as it is; take them out of the row if they are not meant",
		b.name, strings.Join(codes, ", "))
}

func (b bidi) Is(target error) bool { return target == ErrBidi }

// bidiControls returns the bidirectional control characters in s, each
// once, or nil.
func bidiControls(s string) []rune {
	var found []rune
	for _, c := range s {
		if (c >= '\u202A' && c <= '\u202E' || c >= '\u2066' && c <= '\u2069') && !slices.Contains(found, c) {
			found = append(found, c)
		}
	}
	return found
}

// Limits bound what one row of the list may hold, in bytes, so that no
// list makes the reader hold more than that in memory; 0 is no bound.
type Limits struct {
	Cell int64 // one value, as read (its quotes undone)
	Row  int64 // one row as the file has it: its values, commas, quotes and line ends
}

// SizeError is a row, or one of its values, larger than the reader's
// Limits allow; it comes wrapped in a *RowError. Test with errors.As.
type SizeError struct {
	Column string // the value's column; "" for the whole row
	Limit  int64  // the bound it passed, in bytes
}

func (e *SizeError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("the row is larger than %d bytes, the most a row may hold", e.Limit)
	}
	return fmt.Sprintf("column %q holds more than %d bytes, the most a value may hold", e.Column, e.Limit)
}

// Reader streams the recipients of a list. Next returns them in file order.
type Reader struct {
	path   string
	br     *bufio.Reader // csv's buffer
	cr     *csv.Reader
	in     *rowLimiter // under csv's buffer; nil without a row limit
	bom    int64       // bytes of a byte order mark, which csv doesn't count
	limits Limits
	header []string
	email  int
	name   int // -1 when the list has no name column
	seed   maphash.Seed
	seen   map[uint64]int32 // hash of lower-case address → first row
	row    int
	next   int  // the line after the last row read: where the next starts, or blank lines before it
	broken bool // a structural error that ends reading (unterminated quote, a row too large)

	// The blank lines taken out of csv's buffer before it saw them (see
	// skipBlank): csv's offsets and lines are short of these.
	blankBytes int64
	blankLines int
}

// csvBuffer is the size of the buffer csv reads the list through: how far
// past the row it is parsing it may have read.
const csvBuffer = 4096

// rowLimiter passes the list on to csv's buffer, and fails once it has
// passed stop bytes: encoding/csv holds a whole row in memory, so what it
// can see of one is bounded here, before it is read. Before each row, stop
// is set one byte past the row limit, counted from where the row starts.
// csv asks for more only when the line it is reading goes on, so a row
// within the limit never meets the failure, and csv never holds more of a
// row than the limit and its buffer.
type rowLimiter struct {
	r       io.Reader
	n       int64 // bytes passed on
	stop    int64
	tripped bool // stop was reached and more was asked for
}

// errRowLimit is what csv reads once a row has passed the limit; Next
// reports a *SizeError.
var errRowLimit = errors.New("row limit passed")

func (l *rowLimiter) Read(p []byte) (int, error) {
	if l.n >= l.stop {
		l.tripped = true
		return 0, errRowLimit
	}
	if int64(len(p)) > l.stop-l.n {
		p = p[:l.stop-l.n]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// NewReader reads the header of the list at path (used in messages) from r
// and checks it. Every row, the header too, is held to lim. The caller
// closes r.
func NewReader(path string, r io.Reader, cols Columns, lim Limits) (*Reader, error) {
	if cols.Email == "" {
		cols.Email = "email"
	}
	nameDefault := cols.Name == ""
	if nameDefault {
		cols.Name = "name"
	}
	rd := &Reader{path: path, limits: lim, email: -1, name: -1, next: 1}
	if lim.Row > 0 {
		rd.in = &rowLimiter{r: r, stop: lim.Row + 1 + 3} // a byte order mark, then the header
		r = rd.in
	}
	// A byte order mark goes before csv sees it: in front of a quoted
	// header ("email") it would make a bare quote. csv reads through this
	// buffer as it is (it is a *bufio.Reader of at least its own size).
	br := bufio.NewReaderSize(r, csvBuffer)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\uFEFF" {
		br.Discard(3)
		rd.bom = 3
	}
	rd.br, rd.cr = br, csv.NewReader(br)
	rd.cr.ReuseRecord = true
	header, line, err := rd.read()
	var size *SizeError
	switch {
	case errors.As(err, &size):
		return nil, &RowError{Path: path, Line: line, Err: err}
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%s: the file is empty: the first line must name the columns, e.g. email,name", path)
	case err != nil:
		return nil, csvError(path, err)
	}
	header = append([]string(nil), header...)
	problems := trimHeader(header)
	rd.header, rd.seed, rd.seen = header, maphash.MakeSeed(), make(map[uint64]int32)
	problems = append(problems, rd.findColumns(cols, nameDefault)...)
	if len(problems) > 0 {
		herr := &HeaderError{Columns: header}
		for _, p := range problems {
			herr.Problems = append(herr.Problems, fmt.Errorf("%s:%d: %s", path, line, p))
		}
		return nil, herr
	}
	rd.cr.FieldsPerRecord = len(header)
	return rd, nil
}

// trimHeader trims the names of header in place and returns what is wrong
// with them: not UTF-8, empty, or twice.
func trimHeader(header []string) []string {
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
	return problems
}

// findColumns finds the columns of cols in the header and returns those
// it lacks, the name column only when the campaign named it.
func (rd *Reader) findColumns(cols Columns, nameDefault bool) []string {
	for i, h := range rd.header {
		switch h {
		case cols.Email:
			rd.email = i
		case cols.Name:
			rd.name = i
		}
	}
	var problems []string
	if rd.email < 0 {
		problems = append(problems, fmt.Sprintf("no %q column: the header row (%s) must name the column that holds the addresses, or set [columns] email in the campaign file", cols.Email, strings.Join(rd.header, ",")))
	}
	if cols.Attachments != "" && !slices.Contains(rd.header, cols.Attachments) {
		problems = append(problems, fmt.Sprintf("no %q column for [columns] attachments: the header row is %s", cols.Attachments, strings.Join(rd.header, ",")))
	}
	if rd.name < 0 && !nameDefault {
		problems = append(problems, fmt.Sprintf("no %q column for [columns] name: the header row is %s", cols.Name, strings.Join(rd.header, ",")))
	}
	return problems
}

// read reads the next record with csv, held to the row limit, and the line
// where it starts. A record past the limit is a *SizeError, whatever csv
// made of the part it saw, and ends the list: where such a row ends can't
// be known without reading it. The blank lines before a record count in no
// row's size: they are skipped here, before csv would read them with it.
func (r *Reader) read() (rec []string, line int, err error) {
	if err := r.skipBlank(); err != nil {
		return nil, r.next, err
	}
	start := r.offset()
	if r.in != nil {
		r.in.stop = start + r.limits.Row + 1
	}
	rec, err = r.cr.Read()
	line = r.next
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		pe.StartLine += r.blankLines
		pe.Line += r.blankLines
	}
	if len(rec) > 0 {
		line, _ = r.cr.FieldPos(0)
		line += r.blankLines
		// csv counts a line at each LF, and gives each line end inside
		// a quoted value as one LF.
		last, _ := r.cr.FieldPos(len(rec) - 1)
		r.next = last + r.blankLines + strings.Count(rec[len(rec)-1], "\n") + 1
	}
	if r.in != nil && (r.in.tripped || !errors.Is(err, io.EOF) && r.offset()-start > r.limits.Row) {
		r.broken = true
		return nil, line, &SizeError{Limit: r.limits.Row}
	}
	return rec, line, err
}

// offset is how far into the list csv has read, the byte order mark and the
// blank lines it did not see counted.
func (r *Reader) offset() int64 { return r.bom + r.blankBytes + r.cr.InputOffset() }

// skipBlank takes the blank lines (an LF, or a CRLF, alone) before the next
// record out of csv's buffer, which csv would skip as it reads the record,
// and counts them in r.blankBytes, r.blankLines and r.next, so that csv's
// offsets and lines can be made the file's. Each moves the row limit's stop
// on, so a run of them is not held to the limit either.
func (r *Reader) skipBlank() error {
	for {
		if r.in != nil {
			r.in.stop = r.offset() + r.limits.Row + 1
		}
		b, err := r.br.Peek(2)
		n := 0
		switch {
		case len(b) > 0 && b[0] == '\n':
			n = 1
		case len(b) == 2 && b[0] == '\r' && b[1] == '\n':
			n = 2
		}
		if n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return err // csv would meet it reading the record
			}
			return nil
		}
		r.br.Discard(n)
		r.blankBytes += int64(n)
		r.blankLines++
		r.next++
	}
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
	rec, line, err := r.read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	r.row++
	var size *SizeError
	if errors.As(err, &size) {
		return nil, &RowError{Path: r.path, Line: line, Row: r.row, Err: err}
	}
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
	at := &RowError{Path: r.path, Line: line, Row: r.row}
	fields := make(map[string]string, len(rec))
	for i, v := range rec {
		if r.limits.Cell > 0 && int64(len(v)) > r.limits.Cell {
			at.Err = &SizeError{Column: r.header[i], Limit: r.limits.Cell}
			return nil, at
		}
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
		if c := bidiControls(rcp.Name); c != nil {
			rcp.Warning = &RowError{Path: r.path, Line: line, Row: r.row, Err: bidi{rcp.Name, c}}
		}
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
