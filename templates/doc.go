// Package templates holds the layouts and shared Markdown templates that
// ship with batch. The default layout is embedded in the binary.
package templates

import _ "embed"

// DefaultLayout is the HTML layout used when a campaign names none. It is an
// html/template: .Subject, .Body (the rendered Markdown), .Email, .Name,
// .Fields (the recipient's columns), .Preheader and .Unsubscribe (the
// recipient's unsubscribe URL) are available, escaped where used, and so is
// the function unsubscribe.
//
//go:embed default.html
var DefaultLayout string
