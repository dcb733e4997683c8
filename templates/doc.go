// Package templates holds the layouts and shared Markdown templates that
// ship with batch. The default layout is embedded in the binary.
package templates

import _ "embed"

// DefaultLayout is the HTML layout used when a campaign names none. It is an
// html/template: .Subject, .Body (the rendered Markdown), .Email, .Name and
// .Fields (the recipient's columns) are available, escaped where used.
//
//go:embed default.html
var DefaultLayout string
