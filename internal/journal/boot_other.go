//go:build !linux

package journal

// thisBoot returns "": no boot is known to be this one, so a "sending"
// record with nothing after it is unknown (see the package's doc).
func thisBoot() string { return "" }
