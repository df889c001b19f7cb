package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/livrec/livrec/internal/remux"
	"github.com/livrec/livrec/internal/rules"
)

// formatList is a repeatable flag of formats, each value a comma list.
type formatList []rules.Format

func (f *formatList) String() string {
	s := make([]string, len(*f))
	for i, v := range *f {
		s[i] = string(v)
	}
	return strings.Join(s, ",")
}

func (f *formatList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if !rules.Format(p).Valid() {
			return fmt.Errorf("%q is not one of m3u8, flv, mp4, cmaf", p)
		}
		*f = append(*f, rules.Format(p))
	}
	return nil
}

// isTerminal reports whether f is a character device (a terminal, not a pipe or file).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func remuxCmd(args []string) error {
	fs := flag.NewFlagSet("remux", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: livrec remux [flags] IN.flv OUTDIR

Runs the recording pipeline offline: the FLV file is recorded as one publish, as fast as
possible, into OUTDIR (a local storage root; keys {stream}/...). Prints the generated
files and the throughput.

`)
		fs.PrintDefaults()
	}
	var formats formatList
	fs.Var(&formats, "format", "output format: m3u8, flv, mp4, cmaf (repeatable or a comma list; default m3u8)")
	slice := fs.Int("slice", rules.DefaultSliceDuration, "segment duration in seconds for m3u8/cmaf (5-30)")
	cycle := fs.Int("cycle", rules.DefaultCycleDuration, "start a new file after this many media seconds (900-21600)")
	stream := fs.String("stream", "", "stream name used in the keys (default: the input's base name)")
	quiet := fs.Bool("q", false, "no progress bar")
	verbose := fs.Bool("v", false, "log the recorder's events to stderr")
	// Flags may follow the positional arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 2 {
		fs.Usage()
		return errors.New("remux: need IN.flv and OUTDIR")
	}
	opt := remux.Options{Formats: formats, SliceDuration: *slice, CycleDuration: *cycle, Stream: *stream}
	if *verbose {
		opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	bar := !*quiet && !*verbose && isTerminal(os.Stderr)
	if bar {
		start := time.Now()
		var lastDraw time.Time
		opt.Progress = func(done, total int64) {
			now := time.Now()
			if now.Sub(lastDraw) < 100*time.Millisecond && done < total {
				return
			}
			lastDraw = now
			pct := 0.0
			if total > 0 {
				pct = float64(done) / float64(total) * 100
			}
			const width = 30
			n := int(pct / 100 * width)
			mbps := float64(done) / 1e6 / max(now.Sub(start).Seconds(), 1e-3)
			fmt.Fprintf(os.Stderr, "\r[%s%s] %5.1f%%  %.1f/%.1f MB  %.1f MB/s ", strings.Repeat("#", n), strings.Repeat(".", width-n),
				pct, float64(done)/1e6, float64(total)/1e6, mbps)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := remux.Run(ctx, pos[0], pos[1], opt)
	if bar {
		fmt.Fprintln(os.Stderr)
	}
	if res != nil {
		for _, f := range res.Files {
			seg := ""
			if f.Segments > 0 {
				seg = fmt.Sprintf("  %d segments", f.Segments)
			}
			fmt.Printf("%-5s %s  %.3f s  %d bytes%s\n", f.Format, f.Path, f.Duration, f.Bytes, seg)
		}
		for _, e := range res.Errors {
			fmt.Fprintln(os.Stderr, "livrec remux: error:", e)
		}
		fmt.Printf("remuxed %.1f MB (%d video + %d audio frames, %.1f s of media) in %.3f s: %.1f MB/s, %.0fx real time\n",
			float64(res.InputBytes)/1e6, res.VideoFrames, res.AudioFrames, res.MediaDuration.Seconds(), res.Elapsed.Seconds(),
			res.MBps(), res.Speed())
		if err == nil && len(res.Errors) > 0 {
			err = fmt.Errorf("%d recording error(s)", len(res.Errors))
		}
	}
	return err
}
