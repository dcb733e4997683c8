package journal

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate makes f's blocks up to size exist, zeros, and f that long,
// so that writing records into them changes no size and an fdatasync has
// only the data to flush, which takes less time and CPU than an fsync that
// must also write the inode (ARCHITECTURE.md has the figures). It reports
// false where the filesystem can't.
func preallocate(f *os.File, size int64) bool {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if !errors.Is(err, unix.EINTR) {
			return err == nil
		}
	}
}

// datasync flushes f's data, and the metadata needed to read it back.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
