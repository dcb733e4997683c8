package journal

import (
	"os"
	"strings"
)

// thisBoot returns the boot ID of this machine's running kernel, which
// changes at every boot; "" if it can't be read.
func thisBoot() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
