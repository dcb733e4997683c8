// Package templates holds the layouts and shared Markdown templates that
// ship with batch. The default layout is embedded in the binary.
package templates

import _ "embed"

// DefaultLayout is the HTML layout used when a campaign names none. It is an
// html/template: .Subject, .Body (the rendered Markdown), .Email, .Name,
// .Fields (the recipient's columns), .Preheader, .Unsubscribe (the
// recipient's unsubscribe URL) and .Lang (the campaign's language, a BCP 47
// tag, or "") are available, escaped where used, and so is the function
// unsubscribe.
//
//go:embed default.html
var DefaultLayout string
