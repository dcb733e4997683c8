package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is batch version, and batch --version.
func (c *cli) version(args []string) error {
	fs := c.flags("version")
	rest, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("version: no arguments expected, got %q", rest[0])}
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintln(c.stdout, versionLine(version, info))
	return nil
}

// versionLine says which batch this is, from its build information (nil
// when the binary has none): "batch v1.2.0 (revision 030c04b5e1f2,
// modified) go1.26.8 linux/amd64". A build outside a module (go run of a
// file) is "(devel)"; one without VCS stamping has "revision unknown".
// stamped, the version a release build set (main.version), comes first.
func versionLine(stamped string, info *debug.BuildInfo) string {
	v, goVersion := "(devel)", runtime.Version()
	rev, modified := "unknown", false
	if info != nil {
		if info.Main.Version != "" {
			v = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if stamped != "" {
		v = stamped
	}
	dirty := ""
	if modified {
		dirty = ", modified"
	}
	return fmt.Sprintf("batch %s (revision %s%s) %s %s/%s", v, rev, dirty, goVersion, runtime.GOOS, runtime.GOARCH)
}
