package deliver

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// linker writes files the Linux way: each is made nameless (O_TMPFILE)
// in the directory, written, and linked under its name once complete. A
// crash leaves nothing behind, not even a temporary file, and a file costs
// one new directory entry instead of two (a temporary name, then a
// rename) and no poller registration, which is measurably faster
// (ARCHITECTURE.md has the figures). A filesystem without O_TMPFILE, or a system without /proc,
// turns it off, and Dir goes back to the temporary name.
type linker struct {
	dirfd  int
	off    atomic.Bool
	linked atomic.Int64 // files written this way
}

// newLinker opens the directory path, or returns nil.
func newLinker(path string) *linker {
	if unix.Access("/proc/self/fd", unix.F_OK) != nil {
		return nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return &linker{dirfd: fd}
}

// write writes data as the file name, replacing one that is there. It
// reports false, with no error, when the portable way must do it instead;
// tmp is a free temporary name, for a file that is already there.
func (l *linker) write(name, tmp string, data []byte) (bool, error) {
	if l == nil || l.off.Load() {
		return false, nil
	}
	fd, err := unix.Openat(l.dirfd, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			l.off.Store(true)
			return false, nil
		}
		return true, err
	}
	defer unix.Close(fd)
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return true, err
		}
		data = data[n:]
	}
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	err = unix.Linkat(unix.AT_FDCWD, proc, l.dirfd, name, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		// An earlier dry run's file: replace it in one step, as rename does.
		if err = unix.Linkat(unix.AT_FDCWD, proc, l.dirfd, tmp, unix.AT_SYMLINK_FOLLOW); err == nil {
			if err = unix.Renameat(l.dirfd, tmp, l.dirfd, name); err != nil {
				unix.Unlinkat(l.dirfd, tmp, 0)
			}
		}
	}
	if err != nil {
		return true, fmt.Errorf("linking: %w", err)
	}
	l.linked.Add(1)
	return true, nil
}

// count returns how many files were linked.
func (l *linker) count() int64 { return l.linked.Load() }

func (l *linker) close() {
	if l != nil {
		unix.Close(l.dirfd)
	}
}
