package transcode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livrec/livrec/internal/ffmpeg"
	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
)

// Event types reported through Handler.OnEvent.
const (
	// EventError: a transcoder failed (ffmpeg exited, could not start, or was refused).
	EventError = "record_transcode_error"
)

// Defaults of the Handler's tunables.
const (
	DefaultQueueTags         = 2048
	DefaultRestartsPerMinute = 5
	stopGrace                = 700 * time.Millisecond // ffmpeg without progress this long at the end is killed
	drainMax                 = 10 * time.Second       // the longest an ending ffmpeg may take to encode what it was given
	maxBackoff               = 8 * time.Second
	stderrLines              = 8
	tokenArg                 = "livrec_transcode"
)

// Metrics of the transcoders.
type Metrics struct {
	Running  prometheus.Gauge
	Restarts prometheus.Counter
	Dropped  prometheus.Counter
	Refused  prometheus.Counter
	CPU      prometheus.Counter
}

// NewMetrics returns the transcoder metrics; register Collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		Running:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_transcoders", Help: "ffmpeg transcoders running."}),
		Restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_transcoder_restarts_total", Help: "ffmpeg transcoders restarted after they died."}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_transcode_frames_dropped_total",
			Help: "Frames (FLV tags) not given to a transcoder because it fell behind or was restarting (the original recording keeps them)."}),
		CPU: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_transcoder_cpu_seconds_total",
			Help: "CPU seconds (user + system) used by the ffmpeg transcoders, sampled while they run and completed when they exit."}),
		Refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_transcoders_refused_total", Help: "Transcoders not started: the concurrency limit was reached."}),
	}
}

// Collectors lists the metrics for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Running, m.Restarts, m.Dropped, m.Refused, m.CPU}
}

// Handler wraps the recording's rtmp.Handler: a publish whose rule asks for renditions
// gets one ffmpeg that encodes every rendition and publishes each back to Addr as
// {StreamName}_{TemplateId}. Rendition names are reserved: only the transcoder's own
// publishes (carrying a per-process token) may use them.
type Handler struct {
	Next rtmp.Handler
	// Renditions receives the transcoder's own publishes (nil: Next).
	Renditions rtmp.Handler
	// Rules returns the current rule set.
	Rules func() *rules.Set
	// Library holds the templates at start; SetLibrary replaces it (a template change
	// applies from the next publish: a running ffmpeg keeps its command line).
	Library *Library
	// Addr is the loopback host:port of livrec's RTMP listener.
	Addr string
	// Max bounds concurrent transcoders (0: unlimited).
	Max int
	// RestartsPerMinute bounds restarts of one stream's ffmpeg (0: DefaultRestartsPerMinute).
	RestartsPerMinute int
	// QueueTags bounds the tags waiting for one ffmpeg (0: DefaultQueueTags).
	QueueTags int
	// FFmpeg is the ffmpeg binary ("ffmpeg" if empty).
	FFmpeg  string
	Logger  *slog.Logger
	Metrics *Metrics
	// OnEvent reports a transcoder event (type, stream key, code, message); it must not block.
	OnEvent func(typ, domain, app, stream, code, msg string)

	once    sync.Once
	token   string
	running atomic.Int64
	lib     atomic.Pointer[Library]
}

// SetLibrary replaces the templates for the publishes that follow.
func (h *Handler) SetLibrary(l *Library) { h.lib.Store(l) }

// library returns the current templates.
func (h *Handler) library() *Library {
	if l := h.lib.Load(); l != nil {
		return l
	}
	return h.Library
}

func (h *Handler) init() {
	h.once.Do(func() {
		b := make([]byte, 16)
		rand.Read(b)
		h.token = hex.EncodeToString(b)
		if h.Logger == nil {
			h.Logger = slog.Default()
		}
		if h.Metrics == nil {
			h.Metrics = NewMetrics()
		}
		if h.QueueTags <= 0 {
			h.QueueTags = DefaultQueueTags
		}
		if h.RestartsPerMinute <= 0 {
			h.RestartsPerMinute = DefaultRestartsPerMinute
		}
		if h.FFmpeg == "" {
			h.FFmpeg = "ffmpeg"
		}
	})
}

func (h *Handler) event(domain, app, stream, code, msg string) {
	if h.OnEvent != nil {
		h.OnEvent(EventError, domain, app, stream, code, msg) // logs it too
		return
	}
	h.Logger.Warn("transcoder", "event", EventError, "domain", domain, "app", app, "stream", stream, "code", code, "msg", msg)
}

// domainOf is the stream key's domain as the recorder forms it.
func domainOf(req *rtmp.PublishRequest) string {
	if d := strings.ToLower(req.Domain); d != "" {
		return d
	}
	return "default"
}

// Running returns the number of live transcoders.
func (h *Handler) Running() int { return int(h.running.Load()) }

// Publish implements rtmp.Handler.
func (h *Handler) Publish(req *rtmp.PublishRequest) (rtmp.Session, error) {
	h.init()
	set := h.Rules()
	domain := domainOf(req)
	if _, _, ok := set.RenditionOf(domain, req.App, req.Stream); ok {
		if req.Args.Get(tokenArg) != h.token {
			return nil, fmt.Errorf("%w: stream name %q is reserved for a transcoded rendition", rtmp.ErrBadName, req.Stream)
		}
		if h.Renditions != nil {
			return h.Renditions.Publish(req)
		}
		return h.Next.Publish(req)
	}
	sess, err := h.Next.Publish(req)
	if err != nil {
		return nil, err
	}
	rule, ok := set.Match(domain, req.App, req.Stream)
	if !ok || len(rule.TranscodeTemplates) == 0 {
		return sess, nil
	}
	ts, missing := h.library().Resolve(domain, req.App, rule.TranscodeTemplates)
	if len(missing) > 0 {
		h.event(domain, req.App, req.Stream, "unknown_template",
			fmt.Sprintf("transcode templates %s are not defined for domain %s app %s: not transcoded", strings.Join(missing, ", "), domain, req.App))
	}
	if len(ts) == 0 {
		return sess, nil
	}
	if n := h.running.Add(1); h.Max > 0 && n > int64(h.Max) {
		h.running.Add(-1)
		h.Metrics.Refused.Inc()
		h.event(domain, req.App, req.Stream, "transcoder_limit",
			fmt.Sprintf("%d transcoders are running, the limit (maxTranscoders) is %d: not transcoded, the original is recorded", n-1, h.Max))
		return sess, nil
	}
	h.Metrics.Running.Inc()
	tr := &transcoder{h: h, domain: domain, app: req.App, stream: req.Stream, templates: ts,
		queue: make(chan flv.Tag, h.QueueTags), stop: make(chan struct{}), done: make(chan struct{})}
	go tr.run()
	return &tee{Session: sess, tr: tr}, nil
}

// tee hands every tag to the recording first, then, without waiting, to the transcoder.
type tee struct {
	rtmp.Session
	tr *transcoder
	// resync: tags were dropped; skip until the next video key frame so ffmpeg gets a
	// decodable stream again.
	resync bool
}

func (t *tee) Tag(tag flv.Tag) error {
	err := t.Session.Tag(tag)
	// The body is lent for this call only (rtmp.Session.Tag); the transcoder's queue and
	// its replayed tags outlive it.
	tag.Body = bytes.Clone(tag.Body)
	t.tr.remember(tag)
	if t.resync {
		if !isKey(tag) {
			t.tr.h.Metrics.Dropped.Inc()
			return err
		}
		t.resync = false
	}
	select {
	case t.tr.queue <- tag:
	default:
		t.tr.h.Metrics.Dropped.Inc()
		t.tr.dropped.Add(1)
		t.resync = true
	}
	return err
}

func (t *tee) Close(err error) {
	t.Session.Close(err)
	t.tr.close()
}

func isKey(tag flv.Tag) bool {
	if tag.Type != flv.TagVideo {
		return false
	}
	h, err := flv.ParseVideoTagHeader(tag.Body)
	return err == nil && h.Key() && h.Kind == flv.PacketFrame
}

// transcoder runs (and restarts) one stream's ffmpeg.
type transcoder struct {
	h                   *Handler
	domain, app, stream string
	templates           []Template
	queue               chan flv.Tag
	dropped             atomic.Int64

	mu                 sync.Mutex
	meta, vconf, aconf *flv.Tag // the latest script and decoder-config tags, replayed to a restarted ffmpeg
	width, height      int

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// remember keeps the tags a fresh ffmpeg needs before the next key frame.
func (tr *transcoder) remember(tag flv.Tag) {
	var slot **flv.Tag
	switch tag.Type {
	case flv.TagScript:
		slot = &tr.meta
	case flv.TagVideo:
		if h, err := flv.ParseVideoTagHeader(tag.Body); err == nil && h.Kind == flv.PacketConfig {
			slot = &tr.vconf
		}
	case flv.TagAudio:
		if h, err := flv.ParseAudioTagHeader(tag.Body); err == nil && h.Kind == flv.PacketConfig {
			slot = &tr.aconf
		}
	}
	if slot == nil {
		return
	}
	c := tag
	tr.mu.Lock()
	*slot = &c
	tr.mu.Unlock()
}

func (tr *transcoder) close() {
	tr.stopOnce.Do(func() { close(tr.stop) })
	<-tr.done
}

func (tr *transcoder) stopped() bool {
	select {
	case <-tr.stop:
		return true
	default:
		return false
	}
}

func (tr *transcoder) run() {
	defer close(tr.done)
	defer func() {
		tr.h.running.Add(-1)
		tr.h.Metrics.Running.Dec()
	}()
	var failures []time.Time
	backoff := 500 * time.Millisecond
	for first := true; ; first = false {
		err, tail := tr.runOnce(first)
		if tr.stopped() {
			return
		}
		now := time.Now()
		failures = append(failures, now)
		for len(failures) > 0 && now.Sub(failures[0]) > time.Minute {
			failures = failures[1:]
		}
		msg := fmt.Sprintf("ffmpeg for %s exited: %v", strings.Join(tr.ids(), ", "), err)
		if tail != "" {
			msg += "; last lines: " + tail
		}
		if len(failures) > tr.h.RestartsPerMinute {
			tr.h.event(tr.domain, tr.app, tr.stream, "transcoder_given_up",
				msg+fmt.Sprintf(" (more than %d restarts in a minute: not restarted until the next publish)", tr.h.RestartsPerMinute))
			tr.drain()
			return
		}
		tr.h.event(tr.domain, tr.app, tr.stream, "transcoder_exited", msg+fmt.Sprintf(" (restarting in %s)", backoff))
		select {
		case <-tr.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
		tr.h.Metrics.Restarts.Inc()
	}
}

// drain discards the queue until the publish ends, so the tee never blocks.
func (tr *transcoder) drain() {
	for {
		select {
		case <-tr.stop:
			return
		case <-tr.queue:
		}
	}
}

func (tr *transcoder) ids() []string {
	ids := make([]string, len(tr.templates))
	for i, t := range tr.templates {
		ids[i] = t.ID
	}
	return ids
}

// runOnce runs one ffmpeg until it exits or the publish ends. It returns why ffmpeg
// ended and its last stderr lines.
func (tr *transcoder) runOnce(first bool) (error, string) {
	// The process's lifetime is the publish's, not a context's: stop closes stdin first
	// so ffmpeg flushes, and only then kills the group.
	cmd := ffmpeg.Command(context.Background(), tr.h.FFmpeg, tr.args()...)
	stderr := ffmpeg.NewTail(stderrLines)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err, ""
	}
	if err := cmd.Start(); err != nil {
		return err, ""
	}
	tr.h.Logger.Info("transcoder started", "stream", tr.domain+"/"+tr.app+"/"+tr.stream, "templates", tr.ids(), "pid", cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		exited <- err
	}()
	cpu := &cpuMeter{pid: cmd.Process.Pid, counter: tr.h.Metrics.CPU}
	stopSampling := cpu.sample(cpuSampleEvery)
	defer func() {
		stopSampling()
		cpu.exited(cmd.ProcessState)
	}()

	fed := make(chan error, 1)
	go func() { fed <- tr.feed(stdin, !first) }()
	select {
	case err := <-exited:
		stdin.Close()
		return err, stderr.String()
	case <-tr.stop:
		// The publish ended. ffmpeg gets what is still queued, then EOF, and the time
		// to encode it: one behind real time holds seconds of media (the queue, the
		// pipe, its encoders' look-ahead), the end of every rendition. It is killed once
		// it makes no progress (no CPU time for stopGrace: a stalled one goes within a
		// second) or after drainMax in all.
		deadline := time.Now().Add(drainMax)
		pid := cmd.Process.Pid
		if _, ok := untilStalled(pid, fed, deadline); !ok {
			ffmpeg.KillGroup(cmd)
			<-fed
		}
		stdin.Close()
		if err, ok := untilStalled(pid, exited, deadline); ok {
			return err, stderr.String()
		}
		ffmpeg.KillGroup(cmd)
		return <-exited, stderr.String()
	}
}

// untilStalled waits for ch while process pid uses CPU time: it gives up (false) when the
// process used none for stopGrace or at deadline. Where CPU time cannot be read, it waits
// stopGrace.
func untilStalled[T any](pid int, ch <-chan T, deadline time.Time) (T, bool) {
	tick := time.NewTicker(stopGrace / 7)
	defer tick.Stop()
	last, _ := procCPUSeconds(pid)
	moved := time.Now()
	for {
		select {
		case v := <-ch:
			return v, true
		case now := <-tick.C:
			if c, ok := procCPUSeconds(pid); ok && c > last {
				last, moved = c, now
			}
			if now.Sub(moved) >= stopGrace || now.After(deadline) {
				var zero T
				return zero, false
			}
		}
	}
}

// feed writes the FLV stream to ffmpeg. A restarted ffmpeg first gets the remembered
// metadata and decoder configuration, then tags from the next video key frame.
func (tr *transcoder) feed(w io.WriteCloser, restart bool) error {
	fw, err := flv.NewWriter(w, true, true)
	if err != nil {
		return err
	}
	waitKey := false
	if restart {
		tr.mu.Lock()
		pre := []*flv.Tag{tr.meta, tr.vconf, tr.aconf}
		tr.mu.Unlock()
		for _, t := range pre {
			if t != nil {
				if err := fw.WriteTag(*t); err != nil {
					return err
				}
			}
		}
		waitKey = true
	}
	write := func(t flv.Tag) error {
		if waitKey {
			if !isKey(t) {
				return nil
			}
			waitKey = false
		}
		// An error: ffmpeg died; the queue keeps filling (and dropping) until the restart.
		return fw.WriteTag(t)
	}
	for {
		select {
		case <-tr.stop:
			// The publish ended: nothing more comes; what is queued still goes to ffmpeg.
			for {
				select {
				case t := <-tr.queue:
					if err := write(t); err != nil {
						return err
					}
				default:
					return nil
				}
			}
		case t := <-tr.queue:
			if err := write(t); err != nil {
				return err
			}
		}
	}
}

// args builds the ffmpeg command line: one input on stdin, one output per template.
// A rendition is never taller (or wider) than its source: asking for more scales to the
// source's size instead of upscaling.
func (tr *transcoder) args() []string {
	a := []string{"-hide_banner", "-v", "warning", "-f", "flv", "-i", "pipe:0"}
	for _, t := range tr.templates {
		var scale string
		switch {
		case t.Width != 0 && t.Height != 0:
			scale = fmt.Sprintf("scale=w='min(%d,iw)':h='min(%d,ih)'", t.Width, t.Height)
		case t.Height != 0:
			scale = fmt.Sprintf("scale=w=-2:h='min(%d,ih)'", t.Height)
		default:
			scale = fmt.Sprintf("scale=w='min(%d,iw)':h=-2", t.Width)
		}
		a = append(a, "-map", "0:v:0?", "-map", "0:a:0?", "-vf", scale)
		enc := ffmpeg.Encoder(t.Codec)
		kb := strconv.Itoa(t.VideoBitrate) + "k"
		a = append(a, "-c:v", enc, "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-b:v", kb, "-maxrate", kb, "-bufsize", strconv.Itoa(2*t.VideoBitrate)+"k",
			"-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%d)", t.GOP), "-sc_threshold", "0")
		if t.FPS > 0 {
			a = append(a, "-r", strconv.Itoa(t.FPS))
		}
		if t.Profile != "" {
			a = append(a, "-profile:v", t.Profile)
		}
		if t.AudioCodec == "copy" {
			a = append(a, "-c:a", "copy")
		} else {
			a = append(a, "-c:a", "aac", "-b:a", strconv.Itoa(t.AudioBitrate)+"k")
			if t.AudioRate > 0 {
				a = append(a, "-ar", strconv.Itoa(t.AudioRate))
			}
			if t.AudioChannels > 0 {
				a = append(a, "-ac", strconv.Itoa(t.AudioChannels))
			}
		}
		q := url.Values{tokenArg: {tr.h.token}, "vhost": {tr.domain}}
		a = append(a, "-f", "flv", "rtmp://"+tr.h.Addr+"/"+tr.app+"/"+tr.stream+"_"+t.ID+"?"+q.Encode())
	}
	return a
}
