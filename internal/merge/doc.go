// Package merge reads a campaign's recipient list and merges each recipient's
// row into templates.
//
// The list is a CSV file (RFC 4180, UTF-8 with or without a byte order mark,
// CRLF or LF line ends) with a header row that names the columns. It is read
// one row at a time, never held whole in memory, and each row and value is
// held to [Limits] as it is read: a row past its limit is refused having been
// read no further than that, and ends the list; a value past its limit is a
// problem of its row. Blank lines are no row and count in no row's size, but
// lines are numbered as the file has them. The email column is checked as an RFC 5321 mailbox;
// rows with an invalid or repeated address are skipped with a warning that
// names the row. A name with bidirectional control characters is read with a
// warning ([Recipient].Warning, [ErrBidi]), and sent.
//
// Templates use Go's text/template syntax with missingkey=error, so a field
// that is not a column is an error, never "<no value>". A template of text,
// {{.field}} and {{unsubscribe}} alone, as most are, is merged without
// text/template's reflection, into the same bytes; a row it misses a field
// of, and every other template, goes through text/template.
//
// A recipient's values are inert: in a body template every value printed
// by an action is replaced by an opaque token (see [Inert]) that survives
// Markdown parsing as plain text and is swapped for the value, escaped for
// the context it landed in (HTML text, URL, plain text), only after the
// Markdown has been rendered. In a header template every value is folded to one line with control
// characters removed, so no value can add a header or a recipient. In a URL
// a value may only be in the path, query or fragment: [PlaceInURL] tells,
// from the URL's text before it, where it lands.
//
// CSV that batch writes for people (batch status --failed, and any export)
// goes through [CSVWriter], which makes a cell a spreadsheet would run as a
// formula into text.
package merge
