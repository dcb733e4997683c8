// Package templates holds the layouts and shared Markdown templates that
// ship with batch, and the campaign batch init starts one from. The
// default layout and the starter campaign are embedded in the binary.
package templates

import (
	"embed"
	"io/fs"
)

// DefaultLayout is the HTML layout used when a campaign names none. It is an
// html/template: .Subject, .Body (the rendered Markdown), .Email, .Name,
// .Fields (the recipient's columns), .Preheader, .Unsubscribe (the
// recipient's unsubscribe URL) and .Lang (the campaign's language, a BCP 47
// tag, or "") are available, escaped where used, and so is the function
// unsubscribe.
//
//go:embed default.html
var DefaultLayout string

//go:embed starter images/banner.png
var starter embed.FS

// StarterFile is a file of the starter campaign.
type StarterFile struct {
	Path string // relative to the campaign's directory, slash-separated
	Data []byte
}

// Starter returns the files of a small campaign that works, as batch init
// writes them: campaign.toml (every key of the campaign file, the optional
// ones commented out), recipients.csv, newsletter.md, the image it shows
// and a .gitignore.
func Starter() []StarterFile {
	read := func(name string) []byte {
		b, err := fs.ReadFile(starter, name)
		if err != nil {
			panic(err) // embedded: can't fail
		}
		return b
	}
	return []StarterFile{
		{"campaign.toml", read("starter/campaign.toml")},
		{"recipients.csv", read("starter/recipients.csv")},
		{"newsletter.md", read("starter/newsletter.md")},
		{"images/banner.png", read("images/banner.png")},
		{".gitignore", read("starter/gitignore")},
	}
}
