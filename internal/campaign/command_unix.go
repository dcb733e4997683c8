//go:build unix

package campaign

import (
	"os"
	"os/exec"
	"syscall"
)

// inGroup makes cmd the leader of a process group of its own, killed whole
// when cmd's context is done.
func inGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
}

// killGroup kills every process of cmd's group, cmd included; with none
// left, it returns os.ErrProcessDone. The group outlives cmd while a
// process of it runs, so its number is still its own.
func killGroup(cmd *exec.Cmd) error {
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err == syscall.ESRCH {
		return os.ErrProcessDone
	}
	return err
}
