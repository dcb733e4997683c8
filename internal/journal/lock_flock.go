//go:build !windows

package journal

import (
	"errors"
	"os"
	"syscall"
)

// lock takes f's exclusive lock without waiting: ErrLocked if another
// process holds it. The kernel lets it go when the process ends.
func lock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}
