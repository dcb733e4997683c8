//go:build unix

package main

import (
	"os"
	"runtime"
	"syscall"
)

// peakMiB is a finished process's maximum resident set.
func peakMiB(ps *os.ProcessState) float64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return float64(ru.Maxrss) / (1 << 20) // bytes there
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

// free is the space left for an unprivileged user on dir's filesystem.
func free(dir string) uint64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return ^uint64(0)
	}
	return st.Bavail * uint64(st.Bsize)
}

// syncDisks writes every filesystem's dirty data back (sync(2)), so that
// the run that follows doesn't pay for the one before.
func syncDisks() { syscall.Sync() }
