package campaign

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
)

// JournalPath is where the campaign's journal lives: in .batch/ beside the
// campaign file.
func (c *Campaign) JournalPath() string {
	return deliver.JournalPath(filepath.Dir(c.Path), c.Name)
}

// ReadState reads the campaign's journal without taking it over; a
// campaign never sent has an empty one.
func (c *Campaign) ReadState() (*deliver.State, error) {
	f, err := os.Open(c.JournalPath())
	if errors.Is(err, os.ErrNotExist) {
		return deliver.ReadJournal(c.JournalPath(), strings.NewReader(""))
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return deliver.ReadJournal(c.JournalPath(), f)
}

// Status calls each for every recipient of the list, in order, with the
// journal's word on it, and returns the list's columns. Rows skipped for
// their address are left out.
func (c *Campaign) Status(state *deliver.State, each func(rec *merge.Recipient, e deliver.Entry)) ([]string, error) {
	f, err := os.Open(c.Recipients)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd, err := merge.NewReader(c.Recipients, f, c.Columns)
	if err != nil {
		return nil, err
	}
	for {
		rec, err := rd.Next()
		switch {
		case errors.Is(err, io.EOF):
			return rd.Header(), nil
		case errors.Is(err, merge.ErrSkipped):
			continue
		case err != nil:
			return nil, fmt.Errorf("%w: run batch check", err)
		}
		each(rec, state.Get(rec.Email))
	}
}
