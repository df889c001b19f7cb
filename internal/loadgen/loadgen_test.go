package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/rtmp"
)

const fixture = "../media/testdata/h264_aac.flv"

// sink is an in-process RTMP server that counts what each stream received.
type sink struct {
	mu      sync.Mutex
	streams map[string]*recv
	wg      sync.WaitGroup // open sessions
	delay   time.Duration  // per tag, to play a slow server
}

type recv struct {
	publishes           int
	tags, video, audio  int64
	lastVideo, lastAudi int64
	backwards           int   // a track's timestamp went back
	firstTypes          []int // per publish: kind of the first tag (0 script, 1 config, 2 frame)
	maxGap              int64 // largest step between consecutive video timestamps
	lastTS              uint32
}

type sess struct {
	s     *sink
	r     *recv
	first bool
	once  sync.Once
}

func (s *sink) Publish(req *rtmp.PublishRequest) (rtmp.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.streams[req.Stream]
	if r == nil {
		r = &recv{lastVideo: -1, lastAudi: -1}
		s.streams[req.Stream] = r
	}
	r.publishes++
	s.wg.Add(1)
	return &sess{s: s, r: r, first: true}, nil
}

func (x *sess) Tag(t flv.Tag) error {
	if x.s.delay > 0 {
		time.Sleep(x.s.delay)
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	r := x.r
	r.tags++
	kind := 0
	switch t.Type {
	case flv.TagVideo:
		h, err := flv.ParseVideoTagHeader(t.Body)
		if err == nil && h.Kind == flv.PacketFrame {
			kind = 2
			r.video++
			if r.lastVideo >= 0 {
				if int64(t.Timestamp) < r.lastVideo {
					r.backwards++
				}
				r.maxGap = max(r.maxGap, int64(t.Timestamp)-r.lastVideo)
			}
			r.lastVideo = int64(t.Timestamp)
		} else {
			kind = 1
		}
	case flv.TagAudio:
		h, err := flv.ParseAudioTagHeader(t.Body)
		if err == nil && h.Kind == flv.PacketFrame {
			kind = 2
			r.audio++
			if int64(t.Timestamp) < r.lastAudi {
				r.backwards++
			}
			r.lastAudi = int64(t.Timestamp)
		} else {
			kind = 1
		}
	}
	if x.first {
		x.first = false
		r.firstTypes = append(r.firstTypes, kind)
	}
	r.lastTS = t.Timestamp
	return nil
}

func (x *sess) Close(error) { x.once.Do(x.s.wg.Done) }

func startSink(t *testing.T) (*sink, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{streams: map[string]*recv{}}
	srv := &rtmp.Server{Handler: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s, "rtmp://" + l.Addr().String() + "/bench"
}

func (s *sink) wait(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sessions not closed")
	}
}

func loadFixture(t *testing.T) *Source {
	t.Helper()
	src, err := LoadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestLoadSource(t *testing.T) {
	src := loadFixture(t)
	// 50 video frames (2 s) and 88 AAC frames (2.04 s from 57 ms): the loop keeps the 86
	// that end within 2 s of the first.
	if src.VideoFrames != 50 || src.AudioFrames != 86 {
		t.Fatalf("frames %d/%d", src.VideoFrames, src.AudioFrames)
	}
	if len(src.Head) != 3 || src.Head[0].Type != flv.TagScript {
		t.Fatalf("head: %d tags", len(src.Head))
	}
	if h, _ := flv.ParseVideoTagHeader(src.Body[0].Body); src.Body[0].Type != flv.TagVideo || !h.Key() {
		t.Fatal("body does not start with a key frame")
	}
	if src.Span != 2000 {
		t.Fatalf("span %d ms", src.Span)
	}
	// Tag bodies share one buffer: no copy per publisher.
	if cap(src.Body[0].Body) != len(src.Body[0].Body) {
		t.Fatal("body slices are not capped")
	}
}

func TestStreamURLs(t *testing.T) {
	urls, names, err := StreamURLs("rtmp://h:1935/live?vhost=x.com", 12)
	if err != nil {
		t.Fatal(err)
	}
	if names[0] != "s01" || names[11] != "s12" || urls[0] != "rtmp://h:1935/live/s01?vhost=x.com" {
		t.Fatalf("%v %v", urls[0], names)
	}
	_, names, _ = StreamURLs("rtmp://h/live/cam", 3)
	if names[2] != "cam3" {
		t.Fatal(names)
	}
	for _, bad := range []string{"http://h/live", "rtmp:///live", "rtmp://h/"} {
		if _, _, err := StreamURLs(bad, 1); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestRealtime: 4 streams for 2.6 s in real time (the 2.08 s file loops once): every
// frame sent arrives, timestamps continue across the loop, the pace is real time.
func TestRealtime(t *testing.T) {
	s, url := startSink(t)
	var progress int
	sum, err := Run(t.Context(), Config{URL: url, Streams: 4, Duration: 2600 * time.Millisecond, Source: loadFixture(t),
		Jitter: 100 * time.Millisecond, Seed: 1, ProgressEvery: 500 * time.Millisecond, Progress: func(Snapshot) { progress++ }})
	if err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if sum.Errors != 0 || sum.Publishes != 4 || sum.PeakUp != 4 || progress < 3 {
		t.Fatalf("summary %+v (progress calls %d)", sum, progress)
	}
	for _, st := range sum.PerStream {
		r := s.streams[st.Name]
		if r == nil || r.video != st.VideoFrames || r.audio != st.AudioFrames || r.tags != st.Tags {
			t.Fatalf("%s: sent %+v, received %+v", st.Name, st, r)
		}
		// About 2.5 s of frames at 25 fps: more than one loop, not much more than real time.
		if st.VideoFrames < 55 || st.VideoFrames > 67 {
			t.Fatalf("%s: %d video frames in 2.6 s", st.Name, st.VideoFrames)
		}
		if r.backwards != 0 || r.maxGap > 200 { // the seam: the audio ends 120 ms after the video
			t.Fatalf("%s: timestamps went back %d times, max video step %d ms", st.Name, r.backwards, r.maxGap)
		}
	}
	if sum.CPUSeconds <= 0 || sum.Mbps <= 0 || sum.MaxRSSKiB <= 0 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.MaxLagSeconds <= 0 || sum.MaxLagSeconds > LagLimit.Seconds() || sum.StreamsBehind != 0 {
		t.Fatalf("a sink that keeps up: max lag %.3f s, %d streams behind", sum.MaxLagSeconds, sum.StreamsBehind)
	}
}

// TestLagShowsSlowServer: a server that takes tags slower than real time shows as lag
// (here in the close, which waits until the server has read what was queued).
func TestLagShowsSlowServer(t *testing.T) {
	s, url := startSink(t)
	s.delay = 40 * time.Millisecond // per tag: a second of media (~50 tags) takes ~2 s
	sum, err := Run(t.Context(), Config{URL: url, Streams: 1, Duration: 2 * time.Second, Source: loadFixture(t), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if sum.MaxLagSeconds < 0.5 {
		t.Fatalf("a server at half real-time speed: max lag only %.3f s", sum.MaxLagSeconds)
	}
}

// TestMax: as fast as possible: many loops in a second, every frame arrives.
func TestMax(t *testing.T) {
	s, url := startSink(t)
	sum, err := Run(t.Context(), Config{URL: url, Streams: 2, Duration: 500 * time.Millisecond, Source: loadFixture(t), Max: true})
	if err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if sum.Errors != 0 || sum.Publishes != 2 || sum.Rate != "max" {
		t.Fatalf("summary %+v", sum)
	}
	for _, st := range sum.PerStream {
		r := s.streams[st.Name]
		if r == nil || r.video != st.VideoFrames || r.audio != st.AudioFrames || r.tags != st.Tags {
			t.Fatalf("%s: sent %+v, received %+v", st.Name, st, r)
		}
		if st.VideoFrames < 250 { // 5 loops in half a second is slow even under -race
			t.Fatalf("%s: only %d frames at max rate", st.Name, st.VideoFrames)
		}
		if r.backwards != 0 {
			t.Fatalf("%s: timestamps went back %d times", st.Name, r.backwards)
		}
	}
}

// TestReconnects: reconnects every ~300 ms in real time: every publish starts with the
// head, all frames arrive, timestamps keep going up across publishes.
func TestReconnects(t *testing.T) {
	s, url := startSink(t)
	sum, err := Run(t.Context(), Config{URL: url + "/rc", Streams: 3, Duration: 1500 * time.Millisecond, Source: loadFixture(t),
		ReconnectEvery: 300 * time.Millisecond, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if sum.Errors != 0 || sum.Reconnects < 3 || sum.Publishes != sum.Reconnects+3 {
		t.Fatalf("summary %+v", sum)
	}
	for _, st := range sum.PerStream {
		r := s.streams[st.Name]
		if r == nil || r.video != st.VideoFrames || r.audio != st.AudioFrames || int64(r.publishes) != st.Publishes {
			t.Fatalf("%s: sent %+v, received %+v", st.Name, st, r)
		}
		for _, k := range r.firstTypes {
			if k == 2 {
				t.Fatalf("%s: a publish started without its head", st.Name)
			}
		}
		if r.backwards != 0 {
			t.Fatalf("%s: timestamps went back %d times", st.Name, r.backwards)
		}
	}
}

// TestPublishErrors: a server that is not there: errors are counted and retried, the run
// still ends on time.
func TestPublishErrors(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	sum, err := Run(context.Background(), Config{URL: "rtmp://" + addr + "/bench", Streams: 2, Duration: 700 * time.Millisecond,
		Source: loadFixture(t), RetryDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("run took %v", time.Since(start))
	}
	if sum.Errors < 4 || sum.Publishes != 0 || len(sum.ErrorKinds) == 0 || sum.PerStream[0].LastError == "" {
		t.Fatalf("summary %+v", sum)
	}
}

// TestWriteTagsNoAlloc: the batch path allocates nothing per tag.
func TestWriteTagsNoAlloc(t *testing.T) {
	_, url := startSink(t)
	p, err := rtmp.Publish(t.Context(), url+"/alloc", rtmp.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	src := loadFixture(t)
	if _, err := p.WriteTags(src.Head); err != nil {
		t.Fatal(err)
	}
	batch := src.Body[:8]
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := p.WriteTags(batch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
}

// loopSteps returns the timestamp steps between the coded frames of each tag type of an
// FLV file, failing if a track goes back.
func loopSteps(t *testing.T, b []byte) map[uint8][]uint32 {
	t.Helper()
	r, err := flv.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	last := map[uint8]uint32{}
	steps := map[uint8][]uint32{}
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if v, err := flv.ParseVideoTagHeader(tag.Body); tag.Type == flv.TagVideo && (err != nil || v.Kind != flv.PacketFrame) {
			continue
		}
		if a, err := flv.ParseAudioTagHeader(tag.Body); tag.Type != flv.TagVideo && (err != nil || a.Kind != flv.PacketFrame) {
			continue // script tags, decoder configurations
		}
		if l, ok := last[tag.Type]; ok && tag.Timestamp != l {
			if tag.Timestamp < l {
				t.Fatalf("type %d went back from %d to %d", tag.Type, l, tag.Timestamp)
			}
			steps[tag.Type] = append(steps[tag.Type], tag.Timestamp-l)
		}
		last[tag.Type] = tag.Timestamp
	}
	return steps
}

// TestLoopSeam: the fixture's audio outlasts its video by ~40 ms; looped, the video keeps
// its 40 ms spacing across every seam and the audio its 23 ms spacing, up to one frame:
// neither track has a gap or overlaps itself.
func TestLoopSeam(t *testing.T) {
	src := loadFixture(t)
	var buf bytes.Buffer
	if err := src.WriteLoopedFLV(&buf, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	steps := loopSteps(t, buf.Bytes())
	for _, s := range steps[flv.TagVideo] {
		if s != 40 {
			t.Fatalf("video step %d ms, want 40", s)
		}
	}
	for _, s := range steps[flv.TagAudio] {
		if s < 23 || s > 2*23 {
			t.Fatalf("audio step %d ms, want 23 (24) up to one more frame", s)
		}
	}
	if len(steps[flv.TagVideo]) < 240 || len(steps[flv.TagAudio]) < 400 {
		t.Fatalf("%d video, %d audio steps in 10 s", len(steps[flv.TagVideo]), len(steps[flv.TagAudio]))
	}
}

// TestLoopSpanTracks: the span is the video's extent, measured from its first frame;
// audio lasting longer by up to maxLoopTrim loses its tail, audio lasting longer still
// keeps all frames and the video gets the gap; video is never cut.
func TestLoopSpanTracks(t *testing.T) {
	mk := func(vEnd, aStart, aEnd uint32) ([]flv.Tag, []uint8) {
		var body []flv.Tag
		var kind []uint8
		for v, a := uint32(0), aStart; v < vEnd || a < aEnd; {
			if v < vEnd && (a >= aEnd || v <= a) {
				body, kind = append(body, flv.Tag{Type: flv.TagVideo, Timestamp: v}), append(kind, kindVideoFrame)
				v += 40
			} else {
				body, kind = append(body, flv.Tag{Type: flv.TagAudio, Timestamp: a}), append(kind, kindAudioFrame)
				a += 20
			}
		}
		return body, kind
	}
	for _, c := range []struct {
		vEnd, aStart, aEnd uint32
		span               uint32
		dropped            int
	}{
		{2000, 0, 2000, 2000, 0},
		{2000, 60, 2060, 2000, 0},  // audio starts late: no gap for it
		{2000, 60, 2160, 2000, 5},  // audio 100 ms longer: its last 5 frames go
		{2000, 0, 1900, 2000, 0},   // video 100 ms longer: kept whole, audio gap
		{2000, 0, 4000, 4000, 0},   // audio 2 s longer: kept, video gap
		{2000, 500, 2500, 2000, 0}, // same lengths, offset
		{4000, 0, 1000, 4000, 0},   // video 3 s longer: audio gap
		{0, 0, 1000, 1000, 0},      // audio only
	} {
		body, kind := mk(c.vEnd, c.aStart, c.aEnd)
		span, keep := loopSpan(body, kind)
		dropped := 0
		for i := range body {
			if !keep(i) {
				dropped++
			}
		}
		if span != c.span || dropped != c.dropped {
			t.Errorf("video to %d, audio %d..%d: span %d, %d dropped; want %d, %d", c.vEnd, c.aStart, c.aEnd, span, dropped, c.span, c.dropped)
		}
	}
}
