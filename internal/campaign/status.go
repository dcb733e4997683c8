package campaign

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/merge"
)

// JournalPath is where the journal of the campaign's shard lives: in
// .batch/ beside the campaign file, one for each shard.
func (c *Campaign) JournalPath(shard Shard) string {
	return journal.Path(filepath.Dir(c.Path), c.Name+shard.suffix())
}

// ReadState reads the shard's journal without taking it over; a campaign
// never sent has an empty one. With an [smtp] quota, the State keeps the
// journal's part of the quota's window now too (State.Window), which
// QuotaUsed takes instead of reading the journal again.
func (c *Campaign) ReadState(shard Shard) (*journal.State, error) {
	var keep []journal.ReadOption
	if c.SMTP != nil {
		keep = keepWindow(c.SMTP.Quota, time.Now())
	}
	path := c.JournalPath(shard)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return journal.Read(path, strings.NewReader(""), keep...)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return journal.Read(path, f, keep...)
}

// Status calls each for every recipient of the list (of the shard), in
// order, with the journal's word on it, and returns the list's columns. Rows skipped for
// their address are left out.
func (c *Campaign) Status(state *journal.State, shard Shard, each func(rec *merge.Recipient, e journal.Entry)) ([]string, error) {
	f, err := os.Open(c.Recipients)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd, err := merge.NewReader(c.Recipients, f, c.Columns, c.listLimits())
	if err != nil {
		return nil, c.explainLimit(err)
	}
	for {
		rec, err := rd.Next()
		switch {
		case errors.Is(err, io.EOF):
			return rd.Header(), nil
		case errors.Is(err, merge.ErrSkipped):
			continue
		case err != nil:
			return nil, fmt.Errorf("%w: run batch check", c.explainLimit(err))
		}
		if shard.Has(rec.Email) {
			each(rec, state.Get(rec.Email))
		}
	}
}
