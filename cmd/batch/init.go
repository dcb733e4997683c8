package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/batch-mailer/batch/internal/campaign"
)

// filesDir is the directory batch init makes for attachments: the
// default [columns] attachments_dir.
const filesDir = "files"

// init is batch init [DIR]: it writes the starter campaign into DIR, and
// nothing if any of its files is there already.
func (c *cli) init(args []string) error {
	rest, err := c.parseArgs(c.flags("init"), args)
	if err != nil {
		return err
	}
	dir := "."
	switch len(rest) {
	case 0:
	case 1:
		dir = rest[0]
	default:
		return usageError{fmt.Sprintf("init: one directory expected, got %d", len(rest))}
	}
	files := campaign.Starter()
	targets := []string{filepath.Join(dir, filesDir)}
	for _, f := range files {
		targets = append(targets, filepath.Join(dir, filepath.FromSlash(f.Path)))
	}
	if err := refuseExisting(targets); err != nil {
		return err
	}
	var written []string
	undo := func() {
		for _, p := range slices.Backward(written) {
			os.Remove(p)
		}
	}
	mkdir := func(p string) error {
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		written = append(written, p)
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := mkdir(targets[0]); err != nil {
		undo()
		return err
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if sub := filepath.Dir(p); sub != filepath.Clean(dir) {
			if _, err := os.Stat(sub); errors.Is(err, fs.ErrNotExist) {
				if err := mkdir(sub); err != nil {
					undo()
					return err
				}
			}
		}
		if err := writeNew(p, f.Data); err != nil {
			undo()
			return fmt.Errorf("init: %w", err)
		}
		written = append(written, p)
	}
	camp := filepath.Join(dir, "campaign.toml")
	fmt.Fprintf(c.stdout, "wrote a campaign into %s: campaign.toml, recipients.csv, newsletter.md, images/, files/, .gitignore\n", dir)
	fmt.Fprintf(c.stdout, "next:\n  batch check %s\n  batch preview %s\n  batch send --dry-run %s %s\n",
		camp, camp, filepath.Join(dir, "out"), camp)
	return nil
}

// refuseExisting returns a problem for each of paths that exists, saying
// what is there when it is not a regular file (a directory where batch init
// would make files/ or write campaign.toml, say).
func refuseExisting(paths []string) error {
	var probs campaign.Problems
	for _, p := range paths {
		info, err := os.Lstat(p)
		switch {
		case err == nil:
			probs = append(probs, fmt.Errorf("init: %s: %w", p, existing(info.Mode())))
		case !errors.Is(err, fs.ErrNotExist):
			probs = append(probs, fmt.Errorf("init: %w", err))
		}
	}
	if len(probs) > 0 {
		return append(probs, errors.New("init: batch init overwrites nothing, so it wrote no file: give it a new directory (batch init DIR), or move those aside"))
	}
	return nil
}

// existsError is a path batch init would write that is there already, as
// something other than a regular file. It is an fs.ErrExist.
type existsError struct{ kind string }

func (e existsError) Error() string { return "exists (" + e.kind + ")" }
func (e existsError) Unwrap() error { return fs.ErrExist }

// existing is the error for a path in the way that has mode: fs.ErrExist
// itself for a regular file, an existsError naming anything else.
func existing(mode fs.FileMode) error {
	var kind string
	switch {
	case mode.IsRegular():
		return fs.ErrExist
	case mode.IsDir():
		kind = "a directory"
	case mode&fs.ModeSymlink != 0:
		kind = "a symbolic link"
	case mode&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	case mode&fs.ModeDevice != 0:
		kind = "a device"
	default:
		kind = "not a regular file"
	}
	return existsError{kind}
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
