//go:build unix

package render

import "syscall"

// nonblock opens a file without waiting for a writer, should it be a pipe.
const nonblock = syscall.O_NONBLOCK
