package campaign

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// limitsFile is the [limits] table as written: sizes such as "64KiB" or
// "25MB".
type limitsFile struct {
	Cell       string `toml:"cell"`
	Row        string `toml:"row"`
	Attachment string `toml:"attachment"`
	Message    string `toml:"message"`
}

// Limits bound what one row of the list, and one message, may hold, so that
// no list (it is untrusted) can make batch use unbounded memory. Sizes are
// in bytes.
type Limits struct {
	Cell       int64 // one value of the list
	Row        int64 // one row of the list, all its values
	Attachment int64 // one attached file, or one image
	Message    int64 // one message's attachments and images together
}

// DefaultLimits are far above what a real newsletter meets: 64 KiB a cell,
// 1 MiB a row, and 25 MB (the common provider limit) for an attachment
// and for all the files of a message.
var DefaultLimits = Limits{
	Cell:       64 << 10,
	Row:        1 << 20,
	Attachment: 25_000_000,
	Message:    25_000_000,
}

// listLimits are the limits the list's reader holds each row to.
func (c *Campaign) listLimits() merge.Limits {
	return merge.Limits{Cell: c.Limits.Cell, Row: c.Limits.Row}
}

// limitError is a row or value of the list past [limits], said with the
// key that raises the limit.
type limitError struct {
	size *merge.SizeError
	msg  string
}

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return e.size }

// explainLimit says, of a row or value of the list past [limits] (a
// *merge.RowError wrapping a *merge.SizeError), which key raises the limit;
// it returns other errors as they are.
func (c *Campaign) explainLimit(err error) error {
	var re *merge.RowError
	var size *merge.SizeError
	if !errors.As(err, &re) || !errors.As(err, &size) {
		return err
	}
	var msg string
	switch {
	case size.Column != "":
		msg = fmt.Sprintf("column %q holds more than %s: raise [limits] cell in %s, or shorten the value",
			size.Column, FormatSize(size.Limit), c.Path)
	case re.Row == 0:
		msg = fmt.Sprintf("the header row is larger than %s, so the list can't be read: raise [limits] row in %s, or fix the header row (is the file CSV, with a line end after the header?)",
			FormatSize(size.Limit), c.Path)
	default:
		msg = fmt.Sprintf("the row is larger than %s, so reading stopped here: raise [limits] row in %s, or fix row %d (a quote left open makes the rest of the file one value)",
			FormatSize(size.Limit), c.Path, re.Row)
	}
	re.Err = &limitError{size, msg}
	return err
}

// loadLimits checks the [limits] table; f may be nil.
func loadLimits(f *limitsFile, bad func(key, format string, args ...any)) Limits {
	l := DefaultLimits
	if f == nil {
		return l
	}
	size := func(key, text string, into *int64) {
		if text == "" {
			return
		}
		n, err := parseSize(text)
		if err != nil {
			bad(key, "%v", err)
			return
		}
		*into = n
	}
	size("limits.cell", f.Cell, &l.Cell)
	size("limits.row", f.Row, &l.Row)
	size("limits.attachment", f.Attachment, &l.Attachment)
	size("limits.message", f.Message, &l.Message)
	if l.Cell > l.Row {
		bad("limits.cell", "%s is more than limits.row (%s): a cell is part of a row", FormatSize(l.Cell), FormatSize(l.Row))
	}
	return l
}

// sizeUnits are the units a size in the campaign file may have, longest
// suffix first.
var sizeUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000},
	{"B", 1},
}

// parseSize reads a size such as "64KiB", "25MB" or "1000".
func parseSize(text string) (int64, error) {
	s := strings.TrimSpace(text)
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want a size such as \"64KiB\", \"1MiB\" or \"25MB\"", text)
	}
	return n * mult, nil
}

// FormatSize writes n bytes the way a person reads them: "64 KiB", "25 MB"
// (render's, which names sizes in its problems too).
func FormatSize(n int64) string { return render.FormatSize(n) }
