package merge

import (
	"bufio"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CSVWriter writes CSV (RFC 4180, LF line ends) for people, who open it in
// a spreadsheet: every export of batch's goes through it. A cell a
// spreadsheet would run as a formula (CSV injection) is written with a
// single quote in front, which makes it text: one that begins with =, +, -,
// @, a tab or a carriage return (OWASP's rule), or with white space and then
// =, +, - or @ (which some spreadsheets trim). The cells of the list are
// untrusted, and so are a server's replies. With Raw, every cell is written
// as it is.
//
// A cell is quoted when RFC 4180 needs it (a comma, a quote, a line end),
// and also when it holds a semicolon or a tab, so that a spreadsheet that
// splits on those (Excel where the list separator is ";") still sees one
// cell: one that doesn't begin with what it would run.
type CSVWriter struct {
	Raw bool // write cells as they are

	w *bufio.Writer
}

// NewCSVWriter returns a writer to w that neutralises formulas.
func NewCSVWriter(w io.Writer) *CSVWriter {
	return &CSVWriter{w: bufio.NewWriter(w)}
}

// Write writes one record. Errors are kept by the buffer until Flush.
func (w *CSVWriter) Write(record []string) error {
	for i, cell := range record {
		if i > 0 {
			w.w.WriteByte(',')
		}
		if !w.Raw && isFormula(cell) {
			cell = "'" + cell
		}
		if !needsQuotes(cell) && !(cell == "" && len(record) == 1) {
			w.w.WriteString(cell)
			continue
		}
		w.w.WriteByte('"')
		w.w.WriteString(strings.ReplaceAll(cell, `"`, `""`))
		w.w.WriteByte('"')
	}
	_, err := w.w.WriteString("\n")
	return err
}

// Flush writes what is buffered and returns the first error of any write.
func (w *CSVWriter) Flush() error { return w.w.Flush() }

// isFormula reports whether a spreadsheet could take cell for a formula:
// it begins with =, +, -, @, a tab or a carriage return, or with white
// space followed by =, +, - or @.
func isFormula(cell string) bool {
	if cell == "" {
		return false
	}
	if cell[0] == '\t' || cell[0] == '\r' {
		return true
	}
	rest := strings.TrimLeftFunc(cell, unicode.IsSpace)
	return rest != "" && strings.IndexByte("=+-@", rest[0]) >= 0
}

// needsQuotes reports whether cell must be quoted: for RFC 4180 (a comma, a
// quote, a line end), for a reader that trims leading spaces, for
// PostgreSQL's end-of-data marker (as encoding/csv), or for a spreadsheet
// that splits on a semicolon or a tab.
func needsQuotes(cell string) bool {
	if cell == `\.` || strings.ContainsAny(cell, ",\"\r\n;\t") {
		return true
	}
	r, _ := utf8.DecodeRuneInString(cell)
	return cell != "" && unicode.IsSpace(r)
}
