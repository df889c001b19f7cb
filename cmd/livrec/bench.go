package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/livrec/livrec/internal/loadgen"
)

func benchCmd(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: livrec bench --file IN.flv [flags]

Publishes N concurrent RTMP streams, each looping IN.flv (held in memory once) with
continuous timestamps, for a duration. Stream i is rtmp://host/app/{prefix}{i}. Prints a
progress line every second on stderr and a JSON summary at the end (per stream: tags,
bytes, video/audio frames sent; errors, reconnects; the generator's own CPU time).

`)
		fs.PrintDefaults()
	}
	u := fs.String("url", "rtmp://127.0.0.1:1935/bench", "rtmp://host[:port]/app[/prefix][?query]")
	streams := fs.Int("streams", 10, "number of concurrent streams")
	dur := fs.Duration("duration", 20*time.Second, "how long to publish")
	file := fs.String("file", "", "FLV file to loop (required)")
	rate := fs.String("rate", "realtime", "realtime, or max (as fast as the server takes it)")
	jitter := fs.Duration("jitter", 0, "spread the stream starts randomly over this time")
	reconnect := fs.Duration("reconnect-every", 0, "reconnect each stream after a random time around this (0: never)")
	tick := fs.Duration("tick", loadgen.DefaultTick, "real-time pacing granularity: tags due within it go in one write")
	dials := fs.Int("dial-concurrency", loadgen.DefaultDialConcurrency, "publishes negotiated at once")
	seed := fs.Uint64("seed", 0, "random seed of jitter and reconnects (0: random)")
	jsonOut := fs.String("json", "", "also write the JSON summary to this file")
	perStream := fs.Bool("per-stream", true, "include the per-stream counters in the JSON summary")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *file == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("bench: --file is required (and no positional arguments)")
	}
	var max bool
	switch *rate {
	case "realtime":
	case "max":
		max = true
	default:
		return fmt.Errorf("bench: --rate %q: realtime or max", *rate)
	}
	src, err := loadgen.LoadFile(*file)
	if err != nil {
		return err
	}
	term := isTerminal(os.Stderr)
	cfg := loadgen.Config{URL: *u, Streams: *streams, Duration: *dur, Source: src, Max: max, Jitter: *jitter,
		ReconnectEvery: *reconnect, Tick: *tick, DialConcurrency: *dials, Seed: *seed,
		Progress: func(s loadgen.Snapshot) {
			end := "\n"
			if term {
				end = "\033[K"
				fmt.Fprint(os.Stderr, "\r")
			}
			cpu := 0.0
			if e := s.Elapsed.Seconds(); e > 0 {
				cpu = s.CPU.Seconds() / e * 100
			}
			fmt.Fprintf(os.Stderr, "%4.0fs  up %d/%d  %.1f Mbit/s  tags %d  errors %d  reconnects %d  max lag %.2fs  cpu %.0f%%%s",
				s.Elapsed.Seconds(), s.Up, s.Streams, s.Mbps, s.Tags, s.Errors, s.Reconnects, s.MaxLag.Seconds(), cpu, end)
		}}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "bench: %d streams × %s (%.2f s loop, %d video + %d audio frames, %.2f Mbit/s) to %s, %s, %v\n",
		*streams, *file, float64(src.Span)/1000, src.VideoFrames, src.AudioFrames,
		float64(src.Bytes)*8/1e6/(float64(src.Span)/1000), *u, *rate, *dur)
	sum, err := loadgen.Run(ctx, cfg)
	if term {
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		return err
	}
	if !*perStream {
		sum.PerStream = nil
	}
	out, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	if *jsonOut != "" {
		if err := os.WriteFile(*jsonOut, out, 0o644); err != nil {
			return err
		}
	}
	os.Stdout.Write(out)
	fmt.Fprintf(os.Stderr, "bench: %d streams, %d tags, %.1f Mbit/s, %d errors, %d reconnects; max lag %.2f s, %d streams behind by over %v; generator CPU %.2f s = %.1f%% of a core (%.3f%% per stream), max RSS %d MiB\n",
		sum.Streams, sum.Tags, sum.Mbps, sum.Errors, sum.Reconnects, sum.MaxLagSeconds, sum.StreamsBehind, loadgen.LagLimit,
		sum.CPUSeconds, sum.CPUPercent, sum.CPUPercentPer, sum.MaxRSSKiB/1024)
	if sum.Errors > 0 {
		return fmt.Errorf("bench: %d errors", sum.Errors)
	}
	return nil
}
