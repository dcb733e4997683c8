//go:build !unix

package render

// nonblock is nothing where a pipe is no file to open.
const nonblock = 0
