//go:build !unix

package campaign

import "os/exec"

// inGroup leaves cmd as it is: process groups are Unix's, and killing cmd
// when its context is done is exec's default.
func inGroup(cmd *exec.Cmd) {}

// killGroup kills cmd; what it started is beyond reach.
func killGroup(cmd *exec.Cmd) error { return cmd.Process.Kill() }
