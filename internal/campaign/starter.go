package campaign

import "github.com/batch-mailer/batch/templates"

// StarterFile is one file of the starter campaign that batch init writes.
type StarterFile = templates.StarterFile

// Starter returns the files of a small campaign that works as it is, with
// every key of the campaign file on a commented line (templates/starter).
func Starter() []StarterFile { return templates.Starter() }
