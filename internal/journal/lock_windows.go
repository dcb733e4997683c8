package journal

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lock takes f's exclusive lock without waiting: ErrLocked if another
// process holds it. Windows lets it go when the handle is closed or the
// process ends. Windows' locks are mandatory, so the byte locked is far
// past any journal's end, where no read or write goes: batch status can
// still read a journal a send holds.
func lock(f *os.File) error {
	ol := windows.Overlapped{Offset: 0xffffffff, OffsetHigh: 0x7fffffff}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return ErrLocked
	}
	return err
}
