package transcode

import (
	"os/exec"
	"syscall"
)

// isolate puts ffmpeg in its own process group (so stopping kills all of it) and has
// the kernel kill it when livrec dies, even by kill -9. Pdeathsig fires when the OS
// thread that started the child exits; Go keeps its threads for the process's life
// unless a goroutine locked to one exits, which livrec never does around exec.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills ffmpeg's process group.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
