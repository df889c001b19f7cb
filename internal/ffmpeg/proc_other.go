//go:build !linux

package ffmpeg

import "os/exec"

// Isolate has no process-group or parent-death guarantee outside Linux.
func Isolate(cmd *exec.Cmd) {}

// KillGroup kills the child (there is no group outside Linux).
func KillGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		cmd.Process.Kill()
	}
}
