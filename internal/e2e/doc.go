// Package e2e holds end-to-end tests: they build the livrec binary, run it as a separate
// process, publish real media with ffmpeg over RTMP and check the recordings with
// ffprobe and ffmpeg. Tests named TestLong* take more than a few seconds each and are
// skipped with -short.
package e2e
