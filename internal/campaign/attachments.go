package campaign

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// defaultAttachmentsDir is where the rows' own attachments come from
// unless [columns] attachments_dir says otherwise.
const defaultAttachmentsDir = "files"

// loadAttachmentsDir checks [columns] attachments_dir, when the list has
// an attachments column: a directory, not batch's run state.
func (c *Campaign) loadAttachmentsDir(f columns, rel func(string) string, bad func(key, format string, args ...any)) {
	dir, key := f.AttachmentsDir, "columns.attachments_dir"
	if strings.TrimSpace(dir) == "" {
		dir, key = defaultAttachmentsDir, "columns.attachments"
	}
	c.AttachmentsDir = rel(dir)
	c.absDir, _ = filepath.Abs(filepath.Dir(c.Path))
	c.absFiles, _ = filepath.Abs(c.AttachmentsDir)
	if f.Attachments == "" {
		return
	}
	st, err := os.Stat(c.AttachmentsDir)
	switch {
	case err != nil && errors.Is(err, os.ErrNotExist):
		bad(key, "%s: no such directory: the files the %q column names are kept there; make it, or name another with [columns] attachments_dir", c.AttachmentsDir, f.Attachments)
		return
	case err != nil:
		bad(key, "%v", err)
		return
	case !st.IsDir():
		bad(key, "%s is not a directory: name the directory that holds the files the %q column names", c.AttachmentsDir, f.Attachments)
		return
	}
	// Where both lead, links followed: .batch may be a link too.
	state := filepath.Join(filepath.Dir(c.Path), ".batch")
	if real, err := filepath.EvalSymlinks(state); err == nil {
		state = real
	}
	files := c.AttachmentsDir
	if real, err := filepath.EvalSymlinks(files); err == nil {
		files = real
	}
	absState, _ := filepath.Abs(state)
	absFiles, _ := filepath.Abs(files)
	if r, err := filepath.Rel(absState, absFiles); err == nil && filepath.IsLocal(r) {
		bad(key, "%s is in .batch, batch's run state, which is never attached: keep the recipients' files in a directory of their own", c.AttachmentsDir)
	}
}

// recipientFiles returns the files named in the recipient's attachments
// column: ;-separated paths relative to the campaign file, which must lie
// in AttachmentsDir. They are returned as names in that directory, where
// render opens them (os.Root) and holds them to its rules: a value can't
// reach any other file of the machine.
func (c *Campaign) recipientFiles(rec *merge.Recipient) ([]string, error) {
	if c.Columns.Attachments == "" {
		return nil, nil
	}
	var out []string
	for _, p := range strings.Split(rec.Fields[c.Columns.Attachments], ";") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, err := filepath.Rel(c.absFiles, filepath.Join(c.absDir, p))
		if filepath.IsAbs(p) || err != nil || !filepath.IsLocal(name) {
			return nil, fmt.Errorf("column %q: %q: %w (%s): a row attaches only the files in it ([columns] attachments_dir), so move it there",
				c.Columns.Attachments, p, render.ErrOutside, c.shownFiles())
		}
		out = append(out, name)
	}
	return out, nil
}

// shownFiles is AttachmentsDir as messages show it: "files/".
func (c *Campaign) shownFiles() string {
	return strings.TrimSuffix(c.AttachmentsDir, string(filepath.Separator)) + string(filepath.Separator)
}

// files says to render where the rows' own attachments come from, and
// which files they may never be: the list, the campaign file, the DKIM
// key and the run state's files (a link to them is refused by its path,
// a hard link by this).
func (c *Campaign) files() render.Files {
	if c.Columns.Attachments == "" {
		return render.Files{}
	}
	private := []string{c.Path, c.Recipients}
	if c.keyFile != "" {
		private = append(private, c.keyFile)
	}
	// The run state, should a hard link lead to it: its journals.
	state := filepath.Join(filepath.Dir(c.Path), ".batch")
	entries, _ := os.ReadDir(state) // none yet: nothing to keep out
	for _, e := range entries {
		private = append(private, filepath.Join(state, e.Name()))
	}
	return render.Files{Dir: c.AttachmentsDir, Private: private}
}

// explain tells, in the campaign file's terms, what to do about render's
// problems: with a file, which key to raise or where to move it; with
// {{unsubscribe}}, what to add.
func (c *Campaign) explain(err error) error {
	if list, ok := err.(render.Errors); ok {
		out := make(Problems, len(list))
		for i, e := range list {
			out[i] = c.explain(e)
		}
		return out
	}
	var size *render.SizeError
	var file *render.FileError
	switch {
	case errors.Is(err, render.ErrNoUnsubscribe):
		return fmt.Errorf("%w: give the campaign an [unsubscribe] url, in %s", err, c.loc("unsubscribe"))
	case errors.As(err, &size) && size.Path == "":
		return fmt.Errorf("%w: raise [limits] message in %s, or attach fewer or smaller files", err, c.loc("limits.message"))
	case errors.As(err, &size):
		return fmt.Errorf("%w: raise [limits] attachment in %s, or send a link to it instead", err, c.loc("limits.attachment"))
	case !errors.As(err, &file):
		return err
	case errors.Is(file, render.ErrOutside):
		return fmt.Errorf("%w: a row attaches only the files in %s ([columns] attachments_dir): move it there", err, c.shownFiles())
	case errors.Is(file, render.ErrHidden):
		return fmt.Errorf("%w: batch never attaches one: rename it without the leading dot", err)
	case errors.Is(file, render.ErrPrivate):
		return fmt.Errorf("%w: a row never attaches the list, the campaign file or the DKIM key: put the file it should attach in %s", err, c.shownFiles())
	case errors.Is(file, render.ErrNotRegular):
		return fmt.Errorf("%w: name a regular file", err)
	}
	return err
}
