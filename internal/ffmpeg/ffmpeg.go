// Package ffmpeg runs ffmpeg and ffprobe as children of livrec, the one way the codebase
// does it: each child in its own process group that dies with livrec (even by kill -9),
// a cancelled context kills the whole group, the last stderr lines are kept as the
// failure reason, and `-progress` output becomes a percentage of the input's duration.
package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Default binaries, looked up on PATH.
const (
	FFmpeg  = "ffmpeg"
	FFprobe = "ffprobe"
)

// DefaultTailLines is how many stderr lines a failure reports.
const DefaultTailLines = 8

// waitDelay bounds how long Wait waits for the child's pipes after it was killed (a
// grandchild holding them open must not hang livrec).
const waitDelay = 2 * time.Second

// Command returns an isolated command: cancelling ctx kills the child's process group.
func Command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if bin == "" {
		bin = FFmpeg
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	Isolate(cmd)
	cmd.Cancel = func() error {
		KillGroup(cmd)
		return nil
	}
	cmd.WaitDelay = waitDelay
	return cmd
}

// Error is a failed ffmpeg run: why it ended and its last stderr lines.
type Error struct {
	Err  error
	Tail string // last stderr lines joined by " | "
}

func (e *Error) Error() string {
	if e.Tail == "" {
		return "ffmpeg: " + e.Err.Error()
	}
	return "ffmpeg: " + e.Err.Error() + "; last lines: " + e.Tail
}

func (e *Error) Unwrap() error { return e.Err }

// Options of Run.
type Options struct {
	Bin string // ffmpeg binary (FFmpeg if empty)
	// Duration of the input: with it and Progress, ffmpeg's progress reports become
	// percentages (0–100).
	Duration time.Duration
	Progress func(percent float64)
	// TailLines of stderr kept for the error (DefaultTailLines if 0).
	TailLines int
}

// Run runs ffmpeg with args (without the program name) until it exits. A non-zero exit
// or a cancelled ctx returns an *Error carrying ffmpeg's last stderr lines; after a
// cancel the error wraps ctx.Err(). Run adds -nostdin and, for progress, -progress pipe:1.
func Run(ctx context.Context, args []string, o Options) error {
	full := append([]string{"-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1"}, args...)
	cmd := Command(ctx, o.Bin, full...)
	n := o.TailLines
	if n <= 0 {
		n = DefaultTailLines
	}
	tail := NewTail(n)
	cmd.Stderr = tail
	out, err := cmd.StdoutPipe()
	if err != nil {
		return &Error{Err: err}
	}
	if err := cmd.Start(); err != nil {
		return &Error{Err: err}
	}
	parseProgress(out, o.Duration, o.Progress)
	err = cmd.Wait()
	if ctx.Err() != nil {
		return &Error{Err: fmt.Errorf("%w (%v)", ctx.Err(), err), Tail: tail.String()}
	}
	if err != nil {
		return &Error{Err: err, Tail: tail.String()}
	}
	return nil
}

// parseProgress reads `-progress` key=value lines until EOF and reports out_time_us as a
// percentage of d. It never reports 100 before progress=end, so a caller sees 100 only
// once ffmpeg has written everything.
func parseProgress(r io.Reader, d time.Duration, report func(float64)) {
	sc := bufio.NewScanner(r)
	last := -1.0
	for sc.Scan() {
		if report == nil || d <= 0 {
			continue
		}
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		var p float64
		switch k {
		case "out_time_us":
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || us < 0 { // "N/A" before the first frame
				continue
			}
			p = min(float64(us)/float64(d.Microseconds())*100, 99.9)
		case "progress":
			if strings.TrimSpace(v) != "end" {
				continue
			}
			p = 100
		default:
			continue
		}
		if p > last {
			last = p
			report(p)
		}
	}
	io.Copy(io.Discard, r)
}

// Tail keeps the last lines written to it (an io.Writer for a child's stderr).
type Tail struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  []byte
}

// NewTail keeps the last n lines.
func NewTail(n int) *Tail { return &Tail{max: n} }

func (b *Tail) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.part = append(b.part, p...)
	for {
		i := bytes.IndexByte(b.part, '\n')
		if i < 0 {
			break
		}
		if l := strings.TrimSpace(string(b.part[:i])); l != "" {
			b.lines = append(b.lines, l)
			if len(b.lines) > b.max {
				b.lines = b.lines[1:]
			}
		}
		b.part = b.part[i+1:]
	}
	if len(b.part) > 4096 {
		b.part = b.part[:0]
	}
	return len(p), nil
}

// String returns the kept lines joined by " | ".
func (b *Tail) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := b.lines
	if l := strings.TrimSpace(string(b.part)); l != "" {
		if len(lines) == b.max {
			lines = lines[1:]
		}
		lines = append(slices.Clip(lines), l)
	}
	return strings.Join(lines, " | ")
}

var (
	encMu    sync.Mutex
	encoders = map[string]string{} // binary → `ffmpeg -encoders` output
)

// HasEncoder reports whether the ffmpeg binary bin ("" for FFmpeg) has the encoder
// (e.g. "libx265"). The list is asked once per binary.
func HasEncoder(bin, encoder string) bool {
	if bin == "" {
		bin = FFmpeg
	}
	encMu.Lock()
	defer encMu.Unlock()
	out, ok := encoders[bin]
	if !ok {
		b, err := exec.Command(bin, "-hide_banner", "-encoders").Output()
		if err != nil {
			b = nil
		}
		out = string(b)
		encoders[bin] = out
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[1] == encoder {
			return true
		}
	}
	return false
}

// IsCanceled reports whether err is a run ended by its context.
func IsCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
