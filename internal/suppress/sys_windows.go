package suppress

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
)

// tryLock takes f's exclusive lock without waiting: an error if another
// process holds it. Windows' locks are mandatory, so the byte locked is
// far past the file's end, where no read or write goes.
func tryLock(f *os.File) error {
	ol := windows.Overlapped{Offset: 0xffffffff, OffsetHigh: 0x7fffffff}
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
}

// fileID is 0, 0 on Windows: a file replaced under the same name is found
// by its size and its last bytes instead.
func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }

// chownLike does nothing on Windows.
func chownLike(*os.File, fs.FileInfo) {}

// busy reports whether tryLock's error means another process holds the
// lock, so that waiting and trying again may work.
func busy(err error) bool { return errors.Is(err, windows.ERROR_LOCK_VIOLATION) }
