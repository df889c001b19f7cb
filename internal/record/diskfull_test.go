package record

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/testenv"
)

// diskRig is a rig with the disk-full handling on (its free-space check is played by
// the test: format.FakeDiskFull and clearFull) and cfg changed by set.
func diskRig(t *testing.T, rs []rules.Rule, set func(*Config)) *rig {
	r := newRig(t, rs, nil)
	if set != nil {
		set(&r.cfg)
		r.m = NewManager(r.cfg)
		t.Cleanup(r.m.Drain)
	}
	r.m.disk = newDiskWatch(r.m)
	t.Cleanup(func() { format.FakeDiskFull(false) })
	return r
}

// clearFull is what the free-space check does once space is back.
func (r *rig) clearFull() {
	r.m.disk.mu.Lock()
	r.m.disk.full = false
	r.m.disk.mu.Unlock()
}

// sender publishes stream and sends fixture replays, counting the frames sent.
type sender struct {
	t    *testing.T
	s    rtmp.Session
	sent int
	span uint32
}

func (r *rig) sender(stream string) *sender {
	return &sender{t: r.t, s: r.publish(stream)}
}

// send sends tags shifted to the end of what was sent.
func (s *sender) send(tags []flv.Tag) {
	s.t.Helper()
	for _, tag := range tags {
		tag.Timestamp += s.span
		if err := s.s.Tag(tag); err != nil {
			s.t.Fatal(err)
		}
		if isFrame(tag) {
			s.sent++
		}
	}
	s.span += fixtureSpan
}

// generated ends the publish, runs the stitch window out and waits for every file of
// stream to be generated; it returns them by format.
func (r *rig) generated(s *sender, stream string, formats int) map[string]catalog.File {
	r.t.Helper()
	s.s.Close(nil)
	r.clock.Advance(61 * time.Second)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fs := r.files(stream)
		out := map[string]catalog.File{}
		for _, f := range fs {
			if f.Status == catalog.FileDone {
				out[f.Format] = f
			}
		}
		if len(fs) == formats && len(out) == formats {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("files not generated: %+v", fs)
		}
	}
}

// dropped is livrec_dropped_units_total{reason="disk_full"}.
func (r *rig) dropped() int {
	return int(testutil.ToFloat64(r.m.cfg.Metrics.DroppedUnits.WithLabelValues("disk_full")))
}

// probeFrames counts the packets (frames) of every stream of a recording file with
// ffprobe, and checks that it decodes without an error.
func probeFrames(t *testing.T, path string) int {
	t.Helper()
	if out, err := exec.Command(testenv.Path(t, testenv.FFmpeg), "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("%s does not decode clean: %v\n%s", path, err, out)
	}
	out, err := exec.Command(testenv.Path(t, testenv.FFprobe), "-v", "error", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	// The streams, not the programs (an HLS playlist lists its streams in both).
	var probe struct {
		Streams []struct {
			Packets string `json:"nb_read_packets"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	n := 0
	for _, st := range probe.Streams {
		v, err := strconv.Atoi(st.Packets)
		if err != nil {
			t.Fatalf("ffprobe %s: %s", path, out)
		}
		n += v
	}
	return n
}

// formatSets are the four formats in rules that can go together (m3u8 and cmaf cannot).
var formatSets = [][]rules.Format{{rules.M3U8, rules.FLV, rules.MP4}, {rules.CMAF}}

// eachSet runs f for every set of formatSets.
func eachSet(t *testing.T, f func(t *testing.T, formats []rules.Format)) {
	for _, set := range formatSets {
		t.Run(string(set[0]), func(t *testing.T) { f(t, set) })
	}
}

// TestDiskFullHeld: the disk fills in the middle of a segment (and of an mp4 fragment, an
// flv buffer) and frees again before the hold bound is reached. Nothing is lost: every
// format holds every frame sent, decodes clean, and the playlists have no discontinuity
// (the segment being written when the disk filled was completed in memory and written
// whole). Nothing is dropped and nothing stays held.
func TestDiskFullHeld(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	eachSet(t, testDiskFullHeld)
}

func testDiskFullHeld(t *testing.T, allFormats []rules.Format) {
	r := diskRig(t, m3u8Rule(60, allFormats...), nil)
	s := r.sender("a")
	tags := fixtureTags()
	s.send(tags)
	s.send(frames(tags))
	format.FakeDiskFull(true)
	for range 3 {
		s.send(frames(tags))
	}
	r.m.disk.mu.Lock()
	full := r.m.disk.full
	r.m.disk.mu.Unlock()
	if !full {
		t.Error("the disk is not marked full after writes failed for lack of space")
	}
	if r.m.hold.n.Load() == 0 {
		t.Fatal("nothing held in memory while the disk is full")
	}
	format.FakeDiskFull(false)
	r.clearFull()
	time.Sleep(300 * time.Millisecond) // the writers try the disk again every 250 ms
	for range 2 {
		s.send(frames(tags))
	}
	files := r.generated(s, "a", len(allFormats))
	if n := r.dropped(); n != 0 {
		t.Errorf("%d units dropped, want none (the disk was full for less than the bound)", n)
	}
	if n := r.m.hold.n.Load(); n != 0 {
		t.Errorf("%d bytes still counted as held", n)
	}
	for _, f := range allFormats {
		row := files[string(f)]
		path, err := r.cfg.Store.(*storage.Local).Path(row.Key)
		if err != nil {
			t.Fatal(err)
		}
		if got := probeFrames(t, path); got != s.sent {
			t.Errorf("%s: %d frames recorded, %d sent", f, got, s.sent)
		}
		if f == rules.M3U8 || f == rules.CMAF {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), "DISCONTINUITY") {
				t.Errorf("%s playlist has a discontinuity:\n%s", f, b)
			}
		}
	}
}

// TestDiskFullBoundDrops: the disk stays full past the per-stream hold bound. What the
// writers took before the bound is written once space returns; past it new media is
// dropped and counted (once reported as disk_full_dropping), and recording resumes at a
// keyframe. The flv file holds exactly the frames not counted as dropped, and every
// format decodes clean.
func TestDiskFullBoundDrops(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	eachSet(t, testDiskFullBoundDrops)
}

func testDiskFullBoundDrops(t *testing.T, allFormats []rules.Format) {
	r := diskRig(t, m3u8Rule(60, allFormats...), func(c *Config) { c.DiskFullHoldPerStream = 64 << 10 })
	s := r.sender("a")
	tags := fixtureTags()
	s.send(tags)
	before := s.sent
	format.FakeDiskFull(true)
	for range 4 {
		s.send(frames(tags))
	}
	format.FakeDiskFull(false)
	r.clearFull()
	time.Sleep(300 * time.Millisecond)
	// Space is back in the middle of a group of pictures: from the fixture's second video
	// frame on, then the whole fixture again.
	rest := frames(tags)
	for i, tag := range rest {
		if tag.Type == flv.TagVideo && tag.Body[0]>>4 != 1 {
			rest = rest[i:]
			break
		}
	}
	s.send(rest)
	n := s.sent
	s.send(frames(tags))
	last := s.sent - n
	files := r.generated(s, "a", len(allFormats))
	dropped := r.dropped()
	if dropped == 0 {
		t.Fatal("nothing dropped past the hold bound")
	}
	reported := 0
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.Type == EventError && ev.Code == "disk_full_dropping" {
			reported++
		}
	}
	if reported != 1 {
		t.Errorf("disk_full_dropping reported %d times, want once", reported)
	}
	if n := r.m.hold.n.Load(); n != 0 {
		t.Errorf("%d bytes still counted as held", n)
	}
	for _, f := range allFormats {
		path, err := r.cfg.Store.(*storage.Local).Path(files[string(f)].Key)
		if err != nil {
			t.Fatal(err)
		}
		got := probeFrames(t, path)
		t.Logf("%s: %d frames recorded, %d dropped, %d sent", f, got, dropped, s.sent)
		if got+dropped != s.sent {
			t.Errorf("%s: sent %d frames: %d recorded + %d counted as dropped", f, s.sent, got, dropped)
		}
		if got < before+last {
			t.Errorf("%s: %d frames recorded, want at least the %d sent before the disk filled and the %d of the last replay", f, got, before, last)
		}
	}
	if f, ok := files["flv"]; ok {
		path, err := r.cfg.Store.(*storage.Local).Path(f.Key)
		if err != nil {
			t.Fatal(err)
		}
		if recorded := countFrames(t, path); recorded+dropped != s.sent {
			t.Errorf("flv parser: sent %d frames: %d recorded + %d dropped", s.sent, recorded, dropped)
		}
	}
}

// frames returns the fixture's audio and video frames (no script data, no sequence headers).
func frames(tags []flv.Tag) []flv.Tag {
	var out []flv.Tag
	for _, tag := range tags {
		if isFrame(tag) {
			out = append(out, tag)
		}
	}
	return out
}

func isFrame(tag flv.Tag) bool {
	switch tag.Type {
	case flv.TagVideo:
		h, err := flv.ParseVideoTagHeader(tag.Body)
		return err == nil && h.Kind == flv.PacketFrame
	case flv.TagAudio:
		h, err := flv.ParseAudioTagHeader(tag.Body)
		return err == nil && h.Kind == flv.PacketFrame
	}
	return false
}

// countFrames counts the audio and video frames of an FLV file.
func countFrames(t *testing.T, path string) int {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rd, err := flv.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		tag, err := rd.ReadTag()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if isFrame(tag) {
			n++
		}
	}
}

// TestDiskFullFinishWakes: a file whose generation waits for space (its writer holds
// what the full disk refused) is generated as soon as the free-space check sees the disk
// usable again, not at the end of the retry backoff.
func TestDiskFullFinishWakes(t *testing.T) {
	r := diskRig(t, m3u8Rule(15, rules.FLV), nil)
	s := r.sender("a")
	s.send(fixtureTags())
	format.FakeDiskFull(true)
	s.send(frames(fixtureTags()))
	s.s.Close(nil)
	r.clock.Advance(16 * time.Second) // the stitch window ends: Finish fails, retried after 1, 2, 4 s
	time.Sleep(3500 * time.Millisecond)
	// The catalog as it is (rig.files would wait for the finalizers).
	status := func() string {
		fs := r.cat.Files()
		if len(fs) != 1 {
			t.Fatalf("%d files, want 1: %+v", len(fs), fs)
		}
		return fs[0].Status
	}
	if st := status(); st != catalog.FileRecording {
		t.Fatalf("file %s on a full disk, want recording", st)
	}
	format.FakeDiskFull(false)
	freed := time.Now()
	r.m.disk.check() // the test's data directory has space: the disk is usable
	for status() == catalog.FileRecording {
		if time.Since(freed) > 2*time.Second {
			t.Fatal("not generated 2 s after the disk became usable (the next try of the backoff is 3.5 s later)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f := r.files("a")[0]; f.Status != catalog.FileDone {
		t.Fatalf("file %s: %s", f.Status, f.Error)
	}
}
