//go:build !windows

package journal

import (
	"os"
	"syscall"
)

// lock takes f's exclusive lock without waiting: an error if another
// process holds it. The kernel lets it go when the process ends.
func lock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
