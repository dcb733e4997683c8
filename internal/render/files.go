package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files are the files a recipient's row may name (Input.Attachments): the
// regular files inside Dir, symbolic links followed but never out of it
// (os.Root), none hidden (a name, or the path a link leads to, with an
// element that starts with a dot) and none of Private, whatever name leads
// to them.
type Files struct {
	Dir     string   // names are relative to it; "" for none
	Private []string // files never attached: the list, the campaign file, a key
}

// Why a file can't be embedded or attached, in a FileError.
var (
	ErrOutside    = errors.New("not in the directory of the recipients' files")
	ErrHidden     = errors.New("a hidden file (a name that starts with a dot)")
	ErrPrivate    = errors.New("one of the campaign's own files")
	ErrNotRegular = errors.New("not a regular file")
)

// FileError is a file that can't be embedded or attached.
type FileError struct {
	Path string // the file, as named (a recipient's name joined to Files.Dir)
	Err  error  // why: ErrOutside, ErrHidden, ErrPrivate, ErrNotRegular (wrapped), fs.ErrNotExist, or the system's
}

func (e *FileError) Error() string {
	if errors.Is(e.Err, fs.ErrNotExist) {
		return e.Path + ": no such file"
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *FileError) Unwrap() error { return e.Err }

// SizeError is a file over Options.FileLimit, found by its size before it
// is read or as it grew while it was read, or a message's files together
// over Options.MessageLimit.
type SizeError struct {
	Path  string // the file; "" for a message's files together
	Size  int64  // bytes; with Grew, what was read when it went past Limit
	Limit int64
	Grew  bool // the file grew past Limit after its size was looked at
}

func (e *SizeError) Error() string {
	switch {
	case e.Path == "":
		return fmt.Sprintf("the message's images and attachments come to %s, more than the limit of %s for a message", FormatSize(e.Size), FormatSize(e.Limit))
	case e.Grew:
		return fmt.Sprintf("%s: grew past the limit of %s for a file while it was read", e.Path, FormatSize(e.Limit))
	}
	return fmt.Sprintf("%s: %s, more than the limit of %s for a file", e.Path, FormatSize(e.Size), FormatSize(e.Limit))
}

// dir opens files by name: the machine's (trusted paths, as named) or an
// os.Root's (a recipient's, which can't lead out of it).
type dir interface {
	Stat(name string) (fs.FileInfo, error)
	OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error)
}

// anywhere is the machine's files, for the paths the campaign names itself.
type anywhere struct{}

func (anywhere) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }
func (anywhere) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

// fileRules are the checks every file batch embeds or attaches passes:
// regular, at most limit bytes (0: no limit), none of private.
type fileRules struct {
	limit   int64
	private []privateFile
}

type privateFile struct {
	path string
	info fs.FileInfo
}

// check tells whether st, the file at path, may be read.
func (fr *fileRules) check(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return &FileError{Path: path, Err: fmt.Errorf("%s, %w", fileKind(st.Mode()), ErrNotRegular)}
	}
	for _, p := range fr.private {
		if os.SameFile(st, p.info) {
			return &FileError{Path: path, Err: fmt.Errorf("%w: it is %s", ErrPrivate, p.path)}
		}
	}
	if fr.limit > 0 && st.Size() > fr.limit {
		return &SizeError{Path: path, Size: st.Size(), Limit: fr.limit}
	}
	return nil
}

// fileKind names what a file that is not regular is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a special file"
}

// stat returns the size of the file name in d (shown as path), checked by
// its stat alone: a pipe or a device is never opened, a file over the limit
// never read.
func (fr *fileRules) stat(d dir, path, name string) (int64, error) {
	st, err := d.Stat(name)
	if err != nil {
		return 0, fileErr(path, err)
	}
	if err := fr.check(path, st); err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// read reads the file name in d (shown as path), checked by stat before it
// is opened, and once open by the open file's own stat: a file swapped for
// a pipe in between is opened without waiting (O_NONBLOCK) and refused.
// The read stops past the limit, so a file that grows meanwhile can't take
// more memory than that.
func (fr *fileRules) read(d dir, path, name string) ([]byte, error) {
	if _, err := fr.stat(d, path, name); err != nil {
		return nil, err
	}
	f, err := d.OpenFile(name, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, fileErr(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fileErr(path, err)
	}
	if err := fr.check(path, st); err != nil {
		return nil, err
	}
	limit := fr.limit
	if limit <= 0 {
		limit = 1<<63 - 2
	}
	var b bytes.Buffer
	b.Grow(int(min(st.Size(), limit)) + bytes.MinRead)
	if _, err := b.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, fileErr(path, err)
	}
	if int64(b.Len()) > limit {
		return nil, &SizeError{Path: path, Size: int64(b.Len()), Limit: limit, Grew: true}
	}
	return b.Bytes(), nil
}

// fileErr makes err, met at path, a FileError without the system call's
// name and a second copy of the path.
func fileErr(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &FileError{Path: path, Err: err}
}

// recipientFiles finds the files recipients name in Files.Dir.
type recipientFiles struct {
	dir     string // as named, for messages
	realDir string // symbolic links resolved, to see where a name leads
	dirErr  error  // why there is no realDir
}

func newRecipientFiles(dir string) *recipientFiles {
	rf := &recipientFiles{dir: dir}
	if dir != "" {
		if rf.realDir, rf.dirErr = filepath.EvalSymlinks(dir); rf.dirErr != nil {
			rf.dirErr = fileErr(dir, rf.dirErr)
		}
	}
	return rf
}

// path is name as shown in messages: joined to the directory.
func (rf *recipientFiles) path(name string) string { return filepath.Join(rf.dir, name) }

// where checks a recipient's name, and where it leads, before the file is
// looked at: inside the directory and not hidden.
func (rf *recipientFiles) where(name string) error {
	path := rf.path(name)
	switch {
	case rf.dir == "":
		return &FileError{Path: name, Err: ErrOutside}
	case rf.dirErr != nil:
		return rf.dirErr
	case !filepath.IsLocal(name):
		return &FileError{Path: path, Err: ErrOutside}
	case hidden(name):
		return &FileError{Path: path, Err: ErrHidden}
	}
	// os.Root holds the name inside the directory as it is opened; this
	// only finds where a link leads, to refuse a hidden file behind it and
	// to say why a link that leads out is refused.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fileErr(path, err)
	}
	rel, err := filepath.Rel(rf.realDir, real)
	switch {
	case err != nil || !filepath.IsLocal(rel):
		return &FileError{Path: path, Err: fmt.Errorf("%w: a symbolic link to %s", ErrOutside, real)}
	case hidden(rel):
		return &FileError{Path: path, Err: fmt.Errorf("%w: a symbolic link to %s", ErrHidden, real)}
	}
	return nil
}

// stat returns the size of the recipient's file name, checked without
// opening it.
func (rf *recipientFiles) stat(fr *fileRules, name string) (int64, error) {
	if err := rf.where(name); err != nil {
		return 0, err
	}
	root, err := os.OpenRoot(rf.dir)
	if err != nil {
		return 0, fileErr(rf.dir, err)
	}
	defer root.Close()
	return fr.stat(root, rf.path(name), name)
}

// read reads the recipient's file name, through an os.Root of the
// directory.
func (rf *recipientFiles) read(fr *fileRules, name string) ([]byte, error) {
	if err := rf.where(name); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(rf.dir)
	if err != nil {
		return nil, fileErr(rf.dir, err)
	}
	defer root.Close()
	return fr.read(root, rf.path(name), name)
}

// hidden tells whether a path has an element that starts with a dot (but
// is not "." or "..").
func hidden(path string) bool {
	for _, el := range strings.Split(filepath.ToSlash(path), "/") {
		if strings.HasPrefix(el, ".") && el != "." && el != ".." {
			return true
		}
	}
	return false
}

// FormatSize writes n bytes the way a person reads them: "64 KiB", "25 MB".
func FormatSize(n int64) string {
	units := [...]struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}}
	for _, u := range units {
		if n >= u.n && n%u.n == 0 && (n/u.n < 1024 || u.n >= 1<<30 || u.n >= 1000_000_000) {
			return fmt.Sprintf("%d %s", n/u.n, u.suffix)
		}
	}
	switch {
	case n >= 1000_000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}
