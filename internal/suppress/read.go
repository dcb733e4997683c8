package suppress

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/batch-mailer/batch/internal/merge"
)

// header is the list's first line.
var header = []string{"email", "reason", "at", "campaign", "detail"}

// maxProblems is how many bad lines a read reports before it stops.
const maxProblems = 20

// Scan reads the list from r, named path in errors, and calls fn with each
// entry in file order, every field read: for batch suppress list, or a
// report. It stops at fn's first error and returns it.
func Scan(path string, r io.Reader, fn func(Entry) error) error {
	_, err := scan(path, r, position{line: 1}, listFormat, func(e Entry, _, _ int64) error { return fn(e) })
	return err
}

// position is a place in the file: a byte offset, the line the byte there
// is on, and whether the header is before it.
type position struct {
	offset int64
	line   int
	header bool
}

// fileState is what a List knows of the file it read, so that Append reads
// only what was added since: the file, how far it was read, and the bytes
// before that point, which tell an edit in place.
type fileState struct {
	valid    bool
	dev, ino uint64
	pos      position
	tail     []byte
}

// tailLen is how many bytes before the end of what was read are kept.
const tailLen = 64

// scan reads the lines of a file of format f from r, which starts at the
// file's position at (line 1 at offset 0), and calls fn with each entry
// and the bytes [start, end) of the file it spans, with the blank lines
// before it. It returns the position at the end of r. Bad lines are
// reported together, up to maxProblems, each a *merge.RowError.
func scan[T any](path string, r io.Reader, at position, f *format[T], fn func(e T, start, end int64) error) (position, error) {
	cr, ok := r.(*countReader)
	if !ok {
		cr = &countReader{r: r}
	}
	br := bufio.NewReader(cr)
	base := at.offset
	if at.offset == 0 {
		// A byte order mark goes before csv sees it, as in the list.
		if bom, err := br.Peek(3); err == nil && string(bom) == "\uFEFF" {
			br.Discard(3)
			base += 3
		}
	}
	rd := csv.NewReader(br)
	rd.FieldsPerRecord = -1
	rd.ReuseRecord = true
	var problems []error
	bad := func(line int, format string, args ...any) {
		problems = append(problems, &merge.RowError{Path: path, Line: line, Err: fmt.Errorf(format, args...)})
	}
	var start int64
	for len(problems) < maxProblems {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return at, fmt.Errorf("%s: %w", path, err)
			}
			// A quote error may swallow the rest of the file: report
			// where it starts, and stop.
			problems = append(problems, &merge.RowError{Path: path, Line: at.line - 1 + pe.StartLine,
				Err: fmt.Errorf("column %d: %w: a value with a quote must be quoted, its quotes doubled (\"like \"\"this\"\"\")", pe.Column, pe.Err)})
			break
		}
		fl, _ := rd.FieldPos(0)
		line := at.line - 1 + fl
		end := rd.InputOffset()
		from := start
		start = end
		if !at.header {
			if !isHeader(rec, f.header) {
				bad(line, "the first line must be the header %s, not %s: put it back, or start the file again with it", strings.Join(f.header, ","), strings.Join(rec, ","))
				break
			}
			at.header = true
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a line of spaces, by hand
		}
		e, err := f.parse(rec, line)
		if err != nil {
			bad(line, "%v", err)
			continue
		}
		if err := fn(e, base+from, base+end); err != nil {
			return at, err
		}
	}
	if len(problems) > 0 {
		return at, errors.Join(problems...)
	}
	return position{offset: at.offset + cr.n, line: at.line + cr.lines, header: at.header}, nil
}

func isHeader(rec, header []string) bool {
	if len(rec) != len(header) {
		return false
	}
	for i, h := range header {
		if !strings.EqualFold(strings.TrimSpace(rec[i]), h) {
			return false
		}
	}
	return true
}

// listFormat is the suppression list's.
var listFormat = &format[Entry]{header: header, parse: parseLine}

// parseLine reads the fields of a line of the list.
func parseLine(rec []string, line int) (Entry, error) {
	if len(rec) < 2 || len(rec) > len(header) {
		fields := fmt.Sprintf("%d fields", len(rec))
		if len(rec) == 1 {
			fields = "1 field"
		}
		return Entry{}, fmt.Errorf("%s: a line is %s, at least the address and the reason; quote a value that holds a comma", fields, strings.Join(header, ","))
	}
	for i, v := range rec {
		if !utf8.ValidString(v) {
			return Entry{}, fmt.Errorf("the %s is not UTF-8 text: save the file as UTF-8", header[i])
		}
	}
	e := Entry{Email: unformula(strings.TrimSpace(rec[0])), Reason: Reason(strings.ToLower(strings.TrimSpace(rec[1])))}
	if err := merge.CheckAddress(e.Email); err != nil {
		return Entry{}, fmt.Errorf("invalid address %q: %v: correct it, or delete the line", e.Email, err)
	}
	if e.Reason.index() < 0 {
		return Entry{}, fmt.Errorf("reason %q for %s: write unsubscribed, bounced, complained or manual", rec[1], e.Email)
	}
	if len(rec) > 2 {
		if at := strings.TrimSpace(rec[2]); at != "" {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return Entry{}, fmt.Errorf("time %q for %s: write an RFC 3339 time, like 2026-12-01T16:19:14Z, or nothing", at, e.Email)
			}
			e.At = t.UTC()
		}
	}
	if len(rec) > 3 {
		e.Campaign = rec[3]
	}
	if len(rec) > 4 {
		e.Detail = rec[4]
	}
	e.Line = line
	return e, nil
}

// unformula returns an address as it was before merge.CSVWriter made it
// text: an address may begin with = + or - (they are atext), which the
// writer writes with a quote in front. An address that does begin with a
// quote and then one of those is taken for the one without: suppressing
// one address too many, never one too few.
func unformula(addr string) string {
	if len(addr) > 1 && addr[0] == '\'' && strings.IndexByte("=+-@", addr[1]) >= 0 {
		return addr[1:]
	}
	return addr
}

// countReader counts the bytes and line ends read through it, and keeps
// the last tailLen bytes.
type countReader struct {
	r     io.Reader
	n     int64
	lines int
	last  []byte
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.lines += bytes.Count(p[:n], []byte{'\n'})
	c.last = append(c.last, p[:n]...)
	if over := len(c.last) - tailLen; over > 0 {
		c.last = append(c.last[:0], c.last[over:]...)
	}
	return n, err
}
