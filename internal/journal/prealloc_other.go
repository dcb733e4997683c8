//go:build !linux

package journal

import "os"

// preallocate is Linux's; elsewhere the journal grows as it is written.
func preallocate(*os.File, int64) bool { return false }

// datasync flushes f.
func datasync(f *os.File) error { return f.Sync() }
