//go:build !linux

package transcode

// procCPUSeconds is not available: CPU time is counted when ffmpeg exits.
func procCPUSeconds(pid int) (float64, bool) { return 0, false }
