//go:build !linux

package transcode

import "os/exec"

// isolate has no process-group or parent-death guarantee outside Linux.
func isolate(cmd *exec.Cmd) {}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		cmd.Process.Kill()
	}
}
