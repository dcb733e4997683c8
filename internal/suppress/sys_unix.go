//go:build !windows

package suppress

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// tryLock takes f's exclusive lock without waiting: an error if another
// process holds it.
func tryLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// fileID is the device and inode of a file, to tell it from another one
// under the same name.
func fileID(info fs.FileInfo) (dev, ino uint64) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino)
	}
	return 0, 0
}

// chownLike gives f the owner of info's file, where allowed: root's edit
// of a user's file stays the user's.
func chownLike(f *os.File, info fs.FileInfo) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		f.Chown(int(st.Uid), int(st.Gid))
	}
}

// busy reports whether tryLock's error means another process holds the
// lock (or a signal came), so that waiting and trying again may work.
func busy(err error) bool {
	return errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR)
}
