// Package loadgen is the load generator of `livrec bench`: N concurrent RTMP publishers
// (internal/rtmp.Publish) that loop one FLV file held in memory, with continuous
// rewritten timestamps, in real time or as fast as the server takes them, for a
// duration; optionally with jittered starts and random reconnects.
//
// It is meant to run beside the server on a small machine, so a publisher is cheap: one
// goroutine (plus the publisher's reader), one reused timer, the tag bodies shared by all
// publishers, no allocation per tag, the tags due at a wake-up sent in one batch with one
// write system call (Publisher.WriteTags), counters updated per batch. The generator
// measures its own CPU time (getrusage) and reports it with the results.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/rtmp"
)

// Defaults of Config.
const (
	DefaultTick            = 40 * time.Millisecond
	DefaultDialConcurrency = 64
	DefaultRetryDelay      = time.Second

	// LagLimit is the write lag (StreamStats.MaxLagSeconds) above which a stream counts
	// as not kept up with (Summary.StreamsBehind).
	LagLimit      = time.Second
	maxBatch      = 64
	maxErrorKinds = 20
)

// Config configures Run.
type Config struct {
	// URL is rtmp://host[:port]/app[/prefix][?query]. Stream i (from 1) is named
	// "{prefix}{i}" with prefix "s" if the URL has none, zero-padded to the width of
	// Streams; the query is kept.
	URL     string
	Streams int
	// Duration of the run from the start (publishers stop at start+Duration).
	Duration time.Duration
	Source   *Source
	// Max sends as fast as the connection takes the tags; otherwise real time.
	Max bool
	// Jitter delays each publisher's start by a random time in [0, Jitter).
	Jitter time.Duration
	// ReconnectEvery makes each publisher close and publish again after a random time in
	// [ReconnectEvery/2, 3·ReconnectEvery/2), repeatedly; 0 never. A new publish starts
	// with the head tags and the loop's first key frame, timestamps continuing.
	ReconnectEvery time.Duration
	// Tick is the pacing granularity in real time: tags due within it are sent together
	// (default 40 ms: one frame at 25 fps).
	Tick time.Duration
	// DialConcurrency bounds the publishes being negotiated at once (default 64).
	DialConcurrency int
	// RetryDelay is the wait after a failed publish or write before publishing again
	// (default 1 s).
	RetryDelay time.Duration
	// Seed of the random jitter and reconnect times (0: random).
	Seed uint64
	// Publish options of every publisher.
	Publish rtmp.PublishOptions
	// Progress, if set, is called about every ProgressEvery (default 1 s) with the
	// running totals, from one goroutine.
	Progress      func(Snapshot)
	ProgressEvery time.Duration
}

// StreamStats is what one stream sent, over all its publishes.
type StreamStats struct {
	Name        string `json:"name"`
	Tags        int64  `json:"tags"`
	Bytes       int64  `json:"bytes"`
	VideoFrames int64  `json:"videoFrames"`
	AudioFrames int64  `json:"audioFrames"`
	Publishes   int64  `json:"publishes"`  // successful publishes (1 + reconnects without errors)
	Reconnects  int64  `json:"reconnects"` // planned reconnects done (publishes after a planned close)
	Errors      int64  `json:"errors"`
	LastError   string `json:"lastError,omitempty"`
	// MaxLagSeconds is, at real-time rate, the most a write of this stream completed
	// after its last tag was due, or the longest graceful close (the server reading what
	// was still queued in the socket buffers): the server (or the generator) not keeping
	// up with real time shows here. About the tick when all is well.
	MaxLagSeconds float64 `json:"maxLagSeconds"`
}

// Snapshot is the running state, for a progress line.
type Snapshot struct {
	Elapsed    time.Duration
	Up         int // publishes live now
	Streams    int
	Tags       int64
	Bytes      int64
	Errors     int64
	Reconnects int64
	// Mbps is the output rate since the previous snapshot, in Mbit/s of tag bodies.
	Mbps float64
	// CPU is the generator's CPU time so far.
	CPU time.Duration
	// MaxLag is the largest StreamStats.MaxLagSeconds so far.
	MaxLag time.Duration
}

// Summary is the final report.
type Summary struct {
	URL             string           `json:"url"`
	Streams         int              `json:"streams"`
	Rate            string           `json:"rate"` // realtime or max
	DurationSeconds float64          `json:"durationSeconds"`
	ElapsedSeconds  float64          `json:"elapsedSeconds"` // including the closes
	Tags            int64            `json:"tags"`
	Bytes           int64            `json:"bytes"`
	VideoFrames     int64            `json:"videoFrames"`
	AudioFrames     int64            `json:"audioFrames"`
	Mbps            float64          `json:"mbps"`          // average over the duration
	PeakUp          int              `json:"peakUp"`        // most publishes live at once
	Publishes       int64            `json:"publishes"`     // successful publishes
	Reconnects      int64            `json:"reconnects"`    // planned reconnects
	Errors          int64            `json:"errors"`        // failed publishes, writes and closes
	MaxLagSeconds   float64          `json:"maxLagSeconds"` // the largest StreamStats.MaxLagSeconds (real time only)
	StreamsBehind   int              `json:"streamsBehind"` // streams whose MaxLagSeconds exceeded LagLimit
	ErrorKinds      map[string]int64 `json:"errorKinds,omitempty"`
	CPUSeconds      float64          `json:"cpuSeconds"`          // the generator's user+system CPU time
	CPUPercent      float64          `json:"cpuPercent"`          // of one core, over the elapsed time
	CPUPercentPer   float64          `json:"cpuPercentPerStream"` // CPUPercent / Streams
	MaxRSSKiB       int64            `json:"maxRssKiB"`           // peak resident set of the process
	PerStream       []StreamStats    `json:"perStream"`
}

// StreamURLs returns the publish URL and stream name of each stream.
func StreamURLs(base string, n int) ([]string, []string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, nil, fmt.Errorf("loadgen: bad URL: %w", err)
	}
	if u.Scheme != "rtmp" || u.Host == "" {
		return nil, nil, fmt.Errorf("loadgen: URL %q: need rtmp://host[:port]/app[/prefix]", base)
	}
	app, prefix, _ := strings.Cut(strings.Trim(u.Path, "/"), "/")
	if app == "" {
		return nil, nil, fmt.Errorf("loadgen: URL %q has no app", base)
	}
	if prefix == "" {
		prefix = "s"
	}
	width := len(strconv.Itoa(n))
	urls, names := make([]string, n), make([]string, n)
	for i := range n {
		name := fmt.Sprintf("%s%0*d", prefix, width, i+1)
		v := *u
		v.Path = "/" + app + "/" + name
		urls[i], names[i] = v.String(), name
	}
	return urls, names, nil
}

// counters of one stream, updated by its publisher per batch.
type counters struct {
	tags, bytes, video, audio, publishes, reconnects, errs atomic.Int64
	maxLag                                                 atomic.Int64 // ns; see StreamStats.MaxLagSeconds
}

// noteLag records how late a write completed: now minus when its last tag was due.
func (c *counters) noteLag(d time.Duration) {
	for {
		old := c.maxLag.Load()
		if int64(d) <= old || c.maxLag.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

type runner struct {
	cfg      Config
	src      *Source
	start    time.Time
	deadline time.Time
	dialSem  chan struct{}
	up       atomic.Int64
	peakUp   atomic.Int64

	errMu     sync.Mutex
	errKinds  map[string]int64
	lastError []string
}

// Run runs the load and returns the summary. It returns early, with what was sent so
// far, when ctx is cancelled. The error is about the configuration only: failures of
// publishes are counted in the summary.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Source == nil || len(cfg.Source.Body) == 0 {
		return nil, errors.New("loadgen: no source")
	}
	if cfg.Streams <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("loadgen: streams and duration must be positive")
	}
	urls, names, err := StreamURLs(cfg.URL, cfg.Streams)
	if err != nil {
		return nil, err
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = DefaultDialConcurrency
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = DefaultRetryDelay
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c69767265630a))

	cpu0 := cpuTime()
	r := &runner{cfg: cfg, src: cfg.Source, start: time.Now(), dialSem: make(chan struct{}, cfg.DialConcurrency),
		errKinds: map[string]int64{}, lastError: make([]string, cfg.Streams)}
	r.deadline = r.start.Add(cfg.Duration)
	runCtx, cancel := context.WithDeadline(ctx, r.deadline)
	defer cancel()

	stats := make([]counters, cfg.Streams)
	var wg sync.WaitGroup
	for i := range cfg.Streams {
		var delay, reconnect time.Duration
		if cfg.Jitter > 0 {
			delay = time.Duration(rng.Int64N(int64(cfg.Jitter)))
		}
		// Each publisher gets its own generator, seeded from the run's.
		prng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		reconnect = cfg.ReconnectEvery
		wg.Go(func() { r.publisher(runCtx, i, urls[i], delay, reconnect, prng, &stats[i]) })
	}

	// Progress.
	progDone := make(chan struct{})
	var progWG sync.WaitGroup
	if cfg.Progress != nil {
		progWG.Go(func() {
			tk := time.NewTicker(cfg.ProgressEvery)
			defer tk.Stop()
			var lastBytes int64
			last := r.start
			for {
				select {
				case <-progDone:
					return
				case now := <-tk.C:
					s := r.snapshot(stats, cpu0)
					if dt := now.Sub(last).Seconds(); dt > 0 {
						s.Mbps = float64(s.Bytes-lastBytes) * 8 / 1e6 / dt
					}
					lastBytes, last = s.Bytes, now
					cfg.Progress(s)
				}
			}
		})
	}
	wg.Wait()
	close(progDone)
	progWG.Wait()

	elapsed := time.Since(r.start)
	cpu := cpuTime() - cpu0
	sum := &Summary{URL: cfg.URL, Streams: cfg.Streams, Rate: "realtime", DurationSeconds: cfg.Duration.Seconds(),
		ElapsedSeconds: elapsed.Seconds(), PeakUp: int(r.peakUp.Load()), CPUSeconds: cpu.Seconds(), ErrorKinds: r.errKinds,
		MaxRSSKiB: maxRSS()}
	if cfg.Max {
		sum.Rate = "max"
	}
	sum.PerStream = make([]StreamStats, cfg.Streams)
	for i := range stats {
		c := &stats[i]
		st := StreamStats{Name: names[i], Tags: c.tags.Load(), Bytes: c.bytes.Load(), VideoFrames: c.video.Load(),
			AudioFrames: c.audio.Load(), Publishes: c.publishes.Load(), Reconnects: c.reconnects.Load(), Errors: c.errs.Load(),
			LastError: r.lastError[i], MaxLagSeconds: time.Duration(c.maxLag.Load()).Seconds()}
		sum.MaxLagSeconds = max(sum.MaxLagSeconds, st.MaxLagSeconds)
		if st.MaxLagSeconds > LagLimit.Seconds() {
			sum.StreamsBehind++
		}
		sum.PerStream[i] = st
		sum.Tags += st.Tags
		sum.Bytes += st.Bytes
		sum.VideoFrames += st.VideoFrames
		sum.AudioFrames += st.AudioFrames
		sum.Publishes += st.Publishes
		sum.Reconnects += st.Reconnects
		sum.Errors += st.Errors
	}
	if d := min(elapsed, cfg.Duration).Seconds(); d > 0 {
		sum.Mbps = float64(sum.Bytes) * 8 / 1e6 / d
	}
	if e := elapsed.Seconds(); e > 0 {
		sum.CPUPercent = cpu.Seconds() / e * 100
		sum.CPUPercentPer = sum.CPUPercent / float64(cfg.Streams)
	}
	return sum, nil
}

func (r *runner) snapshot(stats []counters, cpu0 time.Duration) Snapshot {
	s := Snapshot{Elapsed: time.Since(r.start), Up: int(r.up.Load()), Streams: len(stats), CPU: cpuTime() - cpu0}
	for i := range stats {
		s.Tags += stats[i].tags.Load()
		s.Bytes += stats[i].bytes.Load()
		s.Errors += stats[i].errs.Load()
		s.Reconnects += stats[i].reconnects.Load()
		s.MaxLag = max(s.MaxLag, time.Duration(stats[i].maxLag.Load()))
	}
	return s
}

func (r *runner) fail(i int, c *counters, err error) {
	c.errs.Add(1)
	msg := err.Error()
	kind := errorKind(msg)
	r.errMu.Lock()
	if _, ok := r.errKinds[kind]; ok || len(r.errKinds) < maxErrorKinds {
		r.errKinds[kind]++
	} else {
		r.errKinds["other"]++
	}
	r.lastError[i] = msg
	r.errMu.Unlock()
}

// errorKind shortens an error message to group equal failures of different streams: the
// stream names and addresses are dropped.
func errorKind(msg string) string {
	var b strings.Builder
	for _, f := range strings.Fields(msg) {
		if strings.ContainsAny(f, "0123456789") && (strings.Contains(f, ":") || strings.Contains(f, "/")) {
			f = "…"
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f)
	}
	s := b.String()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// sleep waits for d or until ctx is done (false).
func sleep(ctx context.Context, tm *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm.Reset(d)
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		tm.Stop()
		return false
	}
}

// publisher runs stream i until ctx ends.
func (r *runner) publisher(ctx context.Context, i int, rawURL string, delay, reconnectEvery time.Duration, rng *rand.Rand, c *counters) {
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	defer tm.Stop()
	if !sleep(ctx, tm, delay) {
		return
	}
	src := r.src
	batch := make([]flv.Tag, 0, maxBatch)
	var base uint32       // timestamp offset of the current loop
	var lastTS uint32     // last timestamp sent
	var anyTS bool        // lastTS is set
	var t0 time.Time      // wall time of timestamp 0 (real time pacing)
	first := true         // the next publish is the stream's first
	reconnecting := false // the next publish is a planned reconnect
	for ctx.Err() == nil {
		// Publish (bounded concurrency of negotiations).
		select {
		case r.dialSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		p, err := rtmp.Publish(ctx, rawURL, r.cfg.Publish)
		<-r.dialSem
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.fail(i, c, err)
			if !sleep(ctx, tm, r.cfg.RetryDelay) {
				return
			}
			continue
		}
		c.publishes.Add(1)
		if reconnecting {
			c.reconnects.Add(1)
			reconnecting = false
		}
		for n := r.up.Add(1); ; {
			if old := r.peakUp.Load(); n <= old || r.peakUp.CompareAndSwap(old, n) {
				break
			}
		}
		// A publish starts with the head and the loop's first tag (a key frame); after the
		// first one the timestamps continue one frame interval after the last sent.
		if !first && anyTS {
			base = lastTS + 40
		}
		now := time.Now()
		if first || t0.IsZero() {
			t0 = now
		} else {
			// Real time: the new publish's tags are due from now on.
			t0 = now.Add(-time.Duration(base) * time.Millisecond)
		}
		first = false
		var until time.Time // planned reconnect
		if reconnectEvery > 0 {
			until = now.Add(reconnectEvery/2 + time.Duration(rng.Int64N(int64(reconnectEvery))))
		}
		batch = batch[:0]
		for _, h := range src.Head {
			h.Timestamp = base
			batch = append(batch, h)
		}
		werr := r.send(ctx, p, batch, c)
		planned := false
		if werr == nil {
			var ts uint32
			planned, ts, werr = r.stream(ctx, p, &base, t0, until, tm, batch, c)
			lastTS, anyTS = ts, true
		}
		r.up.Add(-1)
		closeStart := time.Now()
		cerr := p.Close()
		if !r.cfg.Max && cerr == nil {
			// A graceful close waits until the server has read everything sent: what was
			// still queued in the socket buffers when the stream ended is lag too.
			c.noteLag(time.Since(closeStart))
		}
		if werr != nil {
			r.fail(i, c, werr)
		} else if cerr != nil {
			r.fail(i, c, fmt.Errorf("close: %w", cerr))
		}
		if planned {
			reconnecting = true
			continue
		}
		if ctx.Err() == nil && !sleep(ctx, tm, r.cfg.RetryDelay) {
			return
		}
	}
}

// send writes a batch and counts it.
func (r *runner) send(ctx context.Context, p *rtmp.Publisher, batch []flv.Tag, c *counters) error {
	if len(batch) == 0 {
		return nil
	}
	n, err := p.WriteTags(batch)
	var bytes int64
	for _, t := range batch[:n] {
		bytes += int64(len(t.Body))
	}
	c.tags.Add(int64(n))
	c.bytes.Add(bytes)
	return err
}

// stream loops the body from its first tag on the publish until ctx ends (nil error),
// until the planned reconnect time (planned), or a write fails. It returns the last
// timestamp sent.
func (r *runner) stream(ctx context.Context, p *rtmp.Publisher, base *uint32, t0, until time.Time, tm *time.Timer,
	batch []flv.Tag, c *counters) (planned bool, last uint32, err error) {
	src := r.src
	body, kind := src.Body, src.kind
	last = *base
	idx := 0
	tick := r.cfg.Tick
	for {
		if ctx.Err() != nil {
			return false, last, nil
		}
		now := time.Now()
		if !until.IsZero() && !now.Before(until) {
			return true, last, nil
		}
		// Collect the tags due now (real time) or the next batch (max).
		batch = batch[:0]
		var video, audio int64
		horizon := uint32(0)
		if !r.cfg.Max {
			el := now.Sub(t0)
			if el < 0 {
				el = 0
			}
			horizon = uint32(el / time.Millisecond)
		}
		for len(batch) < maxBatch {
			ts := *base + body[idx].Timestamp
			if !r.cfg.Max && int32(ts-horizon) > 0 {
				break
			}
			t := body[idx]
			t.Timestamp = ts
			batch = append(batch, t)
			switch kind[idx] {
			case kindVideoFrame:
				video++
			case kindAudioFrame:
				audio++
			}
			last = ts
			idx++
			if idx == len(body) {
				idx = 0
				*base += src.Span
			}
		}
		if len(batch) > 0 {
			n, werr := p.WriteTags(batch)
			if n < len(batch) {
				video, audio = countFrames(batch[:n])
			}
			var bytes int64
			for _, t := range batch[:n] {
				bytes += int64(len(t.Body))
			}
			c.tags.Add(int64(n))
			c.bytes.Add(bytes)
			c.video.Add(video)
			c.audio.Add(audio)
			if !r.cfg.Max && n > 0 {
				c.noteLag(time.Since(t0.Add(time.Duration(batch[n-1].Timestamp) * time.Millisecond)))
			}
			if werr != nil {
				return false, last, werr
			}
			if len(batch) == maxBatch {
				continue // more may be due already
			}
		}
		if r.cfg.Max {
			continue
		}
		// Sleep until the next tag is due, at least one tick after now.
		next := t0.Add(time.Duration(*base+body[idx].Timestamp) * time.Millisecond)
		wake := now.Add(tick)
		if next.After(wake) {
			wake = next
		}
		if !until.IsZero() && until.Before(wake) {
			wake = until
		}
		if !sleep(ctx, tm, time.Until(wake)) {
			return false, last, nil
		}
	}
}

// countFrames counts the coded frames of a partly written batch (rare: a write failed).
func countFrames(tags []flv.Tag) (video, audio int64) {
	for _, t := range tags {
		switch t.Type {
		case flv.TagVideo:
			if h, err := flv.ParseVideoTagHeader(t.Body); err == nil && h.Kind == flv.PacketFrame {
				video++
			}
		case flv.TagAudio:
			if h, err := flv.ParseAudioTagHeader(t.Body); err == nil && h.Kind == flv.PacketFrame {
				audio++
			}
		}
	}
	return video, audio
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRSS is the process's peak resident set in KiB (Linux reports KiB).
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss)
}
