package cmaf

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/format/segment/segtest"
	"github.com/livrec/livrec/internal/media"
)

// recordAll records a whole input and checks the common properties.
func recordAll(t *testing.T, name, codecs string) (*segtest.Input, *segtest.Store, segment.Result, *output) {
	t.Helper()
	in := segtest.GetInput(t, name)
	st := segtest.NewStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	segtest.Feed(t, w, in.AUs)
	wantDur := segtest.ExpectedDuration(in.AUs, in.Video != nil)
	if got := w.Duration(); segtest.AbsDur(got-wantDur) > time.Millisecond {
		t.Errorf("Duration() before Finish = %v, want %v", got, wantDur)
	}
	res := finish(t, w)
	m := segtest.CheckVOD(t, st, res, wantDur, 6)
	if m.Map == nil || m.Map.URI != "seg/init0.mp4" {
		t.Errorf("EXT-X-MAP %+v, want seg/init0.mp4", m.Map)
	}
	if got := probeCodecs(t, st.Path(res.PlaylistKey)); got != codecs {
		t.Errorf("ffprobe codecs %q, want %q", got, codecs)
	}
	t.Logf("%s: %d segments, %v recorded, input %v, %d bytes", name, len(m.Segments), res.Duration, in.Duration, res.Bytes)
	if segtest.AbsDur(res.Duration-in.Duration) > 100*time.Millisecond {
		t.Errorf("recorded %v, input ffprobe duration %v", res.Duration, in.Duration)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
	out := readOutput(t, st, res)
	if in.Video != nil {
		if a, b := inputPayloads(in.AUs, true), out.payloads(true); len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("video samples differ from the input: %d bytes in, %d out", len(a), len(b))
		}
	}
	if a, b := inputPayloads(in.AUs, false), out.payloads(false); len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("audio samples differ from the input: %d bytes in, %d out", len(a), len(b))
	}
	if _, err := w.Finish(context.Background(), testPlaylistKey); !errors.Is(err, ErrFinished) {
		t.Errorf("second Finish: %v", err)
	}
	return in, st, res, out
}

func TestH264AAC(t *testing.T) {
	in, st, res, out := recordAll(t, segtest.H264AAC, "aac,h264")
	// 12 s with a keyframe every 2 s and 4 s slices: 3 segments of exactly 4 s.
	if len(res.Segments) != 3 {
		t.Fatalf("%d segments, want 3", len(res.Segments))
	}
	for i, s := range res.Segments[:2] {
		if s.Duration != 4*time.Second || s.Discontinuity {
			t.Errorf("segment %d: %v, discontinuity %v; want 4s, none", i, s.Duration, s.Discontinuity)
		}
	}
	m, _ := segtest.ReadPlaylist(t, st.Path(res.PlaylistKey))
	if m.Segments[0].URI != "seg/000.m4s" {
		t.Errorf("URI %q, want seg/000.m4s", m.Segments[0].URI)
	}
	// Sample timing: video at 90 kHz from the input DTS, composition offsets = PTS−DTS
	// (B-frames), sync flags = keyframes, durations = DTS deltas.
	v := out.tracks[0][1]
	var vin []*media.AccessUnit
	for _, au := range in.AUs {
		if au.Track == in.Video && (len(vin) > 0 || au.Key) {
			vin = append(vin, au)
		}
	}
	if len(v.samples) != len(vin) || v.timeScale != 90000 {
		t.Fatalf("%d video samples at %d Hz, want %d at 90000", len(v.samples), v.timeScale, len(vin))
	}
	reordered := 0
	for i, au := range vin {
		s := v.samples[i]
		if want := uint64((au.DTS - vin[0].DTS) * 90000 / time.Second); v.dts[i] != want {
			t.Fatalf("sample %d: decode time %d, want %d", i, v.dts[i], want)
		}
		if want := int32((au.PTS - au.DTS) * 90000 / time.Second); s.PTSOffset != want {
			t.Errorf("sample %d: composition offset %d, want %d", i, s.PTSOffset, want)
		}
		if s.IsNonSyncSample == au.Key {
			t.Errorf("sample %d: non-sync %v, key %v", i, s.IsNonSyncSample, au.Key)
		}
		if s.Duration != 3600 {
			t.Errorf("sample %d: duration %d, want 3600", i, s.Duration)
		}
		if s.PTSOffset > 3600 {
			reordered++
		}
	}
	if reordered == 0 {
		t.Error("input has no B-frames: the test cannot check composition offsets")
	}
	// Audio: sample-rate time scale, 1024 per frame, continuous across segments.
	a := out.tracks[0][2]
	if a.timeScale != uint32(in.Audio.SampleRate) {
		t.Errorf("audio time scale %d, want %d", a.timeScale, in.Audio.SampleRate)
	}
	for i, s := range a.samples {
		if s.Duration != 1024 || i > 0 && a.dts[i] != a.dts[i-1]+1024 {
			t.Fatalf("audio sample %d: duration %d, decode time %d after %d", i, s.Duration, a.dts[i], a.dts[max(i-1, 0)])
		}
	}
}

func TestH265AAC(t *testing.T) {
	recordAll(t, segtest.H265AAC, "aac,hevc")
}

func TestMPEG4MP3(t *testing.T) {
	_, st, res, _ := recordAll(t, segtest.MPEG4MP3, "mp3,mpeg4")
	b, err := os.ReadFile(st.Path(res.Segments[0].MapKey))
	if err != nil {
		t.Fatal(err)
	}
	// mp4v sample entry with the real picture size; MP3 as mp4a with OTI 0x6B.
	i := bytes.Index(b, []byte("mp4v"))
	if i < 0 || b[i+28] != 0 || b[i+29] != 160 || b[i+30] != 0 || b[i+31] != 120 {
		t.Errorf("mp4v sample entry without the 160x120 picture size")
	}
	// DecoderConfigDescriptor object types: 0x20 (MPEG-4 Visual) in mp4v, 0x6B (MPEG-1
	// audio) in mp4a.
	oti := func(entry string) int {
		j := bytes.Index(b, []byte(entry))
		if j < 0 {
			return -1
		}
		k := bytes.Index(b[j:], []byte{0x04, 0x80, 0x80, 0x80})
		if k < 0 || j+k+5 >= len(b) {
			return -1
		}
		return int(b[j+k+5])
	}
	if v, a := oti("mp4v"), oti("mp4a"); v != 0x20 || a != 0x6B {
		t.Errorf("object type indications %#x (mp4v), %#x (mp4a); want 0x20, 0x6b", v, a)
	}
}

func TestAudioOnly(t *testing.T) {
	in, _, res, _ := recordAll(t, segtest.AACOnly, "aac")
	frame := time.Second * 1024 / time.Duration(in.Audio.SampleRate)
	if len(res.Segments) < 3 {
		t.Fatalf("%d segments", len(res.Segments))
	}
	for i, s := range res.Segments[:len(res.Segments)-1] {
		if s.Duration < testSlice || s.Duration >= testSlice+frame {
			t.Errorf("segment %d lasts %v, want [4s, 4s+%v)", i, s.Duration, frame)
		}
	}
}

// The live EVENT playlist (with its map) is valid and playable while recording.
func TestLivePlaylist(t *testing.T) {
	in := segtest.GetInput(t, segtest.H264AAC)
	st := segtest.NewStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, au := range in.AUs {
		if err := w.WriteAU(au); err != nil {
			t.Fatal(err)
		}
		n := len(st.Stored()) - 1 // the init segment
		if n <= checked {
			continue
		}
		checked = n
		m, text := segtest.ReadPlaylist(t, w.LivePlaylistPath())
		if m.PlaylistType == nil || *m.PlaylistType != playlist.MediaPlaylistTypeEvent || m.Endlist || m.Map == nil {
			t.Fatalf("not an open EVENT playlist with a map:\n%s", text)
		}
		if len(m.Segments) != n {
			t.Fatalf("live playlist lists %d segments, %d stored", len(m.Segments), n)
		}
		closed := filepath.Join(t.TempDir(), "closed.m3u8")
		if err := os.WriteFile(closed, []byte(text+"#EXT-X-ENDLIST\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := segtest.Decode(t, closed); out != "" {
			t.Errorf("live playlist does not decode cleanly:\n%s", out)
		}
	}
	if checked != 2 {
		t.Errorf("live playlist seen with %d segments, want 2 before Finish", checked)
	}
	finish(t, w)
	if _, err := os.Stat(w.LivePlaylistPath()); !os.IsNotExist(err) {
		t.Errorf("live playlist not removed: %v", err)
	}
}

// A stitched resume: timestamps restart, the resume begins mid-GOP; the output decode
// times continue after the end of the first run, without gap or overlap.
func TestDiscontinuity(t *testing.T) {
	in := segtest.GetInput(t, segtest.H264AAC)
	st := segtest.NewStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	var part1, part2 []*media.AccessUnit
	for _, au := range in.AUs {
		if au.DTS < 6*time.Second {
			part1 = append(part1, au)
		}
		if au.DTS >= 3*time.Second {
			c := *au // the second publish starts its timeline near 0 again
			c.DTS -= 3 * time.Second
			c.PTS -= 3 * time.Second
			part2 = append(part2, &c)
		}
	}
	segtest.Feed(t, w, part1)
	w.Discontinuity()
	segtest.Feed(t, w, part2)
	res := finish(t, w)
	want := segtest.ExpectedDuration(part1, true) + segtest.ExpectedDuration(part2, true)
	m := segtest.CheckVOD(t, st, res, want, 6)
	discs := segtest.Discontinuities(m)
	if len(discs) == 1 && discs[0] != 2 {
		t.Errorf("discontinuity at segment %d, want 2", discs[0])
	}
	if len(discs) != 1 || len(res.Segments) < 3 {
		t.Fatalf("%d discontinuities in %d segments, want 1", len(discs), len(res.Segments))
	}
	out := readOutput(t, st, res)
	// The second run starts where the first one ends (its last frame of either track).
	runEnd := res.Segments[0].Duration + res.Segments[1].Duration
	for id, tr := range out.tracks[0] {
		k := tr.segStart[2]
		end := tr.dts[k-1] + uint64(tr.samples[k-1].Duration)
		start := tr.dts[k]
		ts := time.Duration(tr.timeScale)
		if time.Duration(end)*time.Second/ts > runEnd+time.Millisecond {
			t.Errorf("track %d: first run ends at %d/%d, after the segment end %v", id, end, tr.timeScale, runEnd)
		}
		if d := time.Duration(start)*time.Second/ts - runEnd; d < -time.Second/ts || d > 50*time.Millisecond {
			t.Errorf("track %d: second run starts %v after the first run's end", id, d)
		}
	}
	kept := append([]*media.AccessUnit{}, part1...)
	seen := false
	for _, au := range part2 {
		seen = seen || au.Track.Codec.IsVideo() && au.Key
		if seen {
			kept = append(kept, au)
		}
	}
	if a, b := inputPayloads(kept, true), out.payloads(true); !bytes.Equal(a, b) {
		t.Errorf("video differs: want %d bytes, got %d", len(a), len(b))
	}
}

// A parameter change (new resolution) gets a new init segment, a new EXT-X-MAP and a
// discontinuity; identical parameters re-announced change nothing.
func TestTrackChange(t *testing.T) {
	a := segtest.GetInput(t, segtest.H264AAC)
	b := segtest.GetInput(t, segtest.H264AAC2)
	st := segtest.NewStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(a.Video, a.Audio); err != nil {
		t.Fatal(err)
	}
	var part1 []*media.AccessUnit
	var end time.Duration
	for _, au := range a.AUs {
		if au.DTS < 6*time.Second {
			part1 = append(part1, au)
			end = au.DTS
		}
	}
	segtest.Feed(t, w, part1)
	vcopy, acopy := *a.Video, *a.Audio
	if err := w.SetTracks(&vcopy, &acopy); err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks(b.Video, b.Audio); err != nil {
		t.Fatal(err)
	}
	shift := end + 40*time.Millisecond
	var part2 []*media.AccessUnit
	for _, au := range b.AUs {
		c := *au
		c.DTS += shift
		c.PTS += shift
		part2 = append(part2, &c)
	}
	segtest.Feed(t, w, part2)
	res := finish(t, w)
	m := segtest.CheckVOD(t, st, res, 0, 6)
	text, _ := os.ReadFile(st.Path(res.PlaylistKey))
	if len(segtest.Discontinuities(m)) != 1 || strings.Count(string(text), "#EXT-X-MAP:") != 2 || !strings.Contains(string(text), "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"seg/init1.mp4\"\n") {
		t.Errorf("want one discontinuity followed by the second map:\n%s", text)
	}
	want := segtest.ExpectedDuration(part1, true) + segtest.ExpectedDuration(part2, true)
	if segtest.AbsDur(res.Duration-want) > 50*time.Millisecond {
		t.Errorf("duration %v, want about %v", res.Duration, want)
	}
	out := readOutput(t, st, res)
	if len(out.inits) != 2 {
		t.Fatalf("%d init segments, want 2", len(out.inits))
	}
	// The video is carried as is; after the change, each segment's first keyframe also
	// carries the new SPS/PPS in-band.
	if a, b := append(inputPayloads(part1, true), inputPayloads(part2, true)...), out.payloads(true); !bytes.Equal(a, stripParams(b)) {
		t.Errorf("video differs: want %d bytes, got %d", len(a), len(b))
	}
	inband := 0
	for _, tr := range out.tracks[1] {
		for _, k := range tr.segStart {
			if p := tr.samples[k].Payload; tr.timeScale == 90000 && len(p) > 4 && p[4]&0x1F == 7 {
				inband++
			}
		}
	}
	if inband != len(out.tracks[1][1].segStart) {
		t.Errorf("%d of %d segments after the change carry SPS/PPS in-band", inband, len(out.tracks[1][1].segStart))
	}
}

// Crash mid-segment: the partial segment keeps its complete fragments (the last one is
// torn mid-box), and the media reaches within about a second of what was written.
func TestRecover(t *testing.T) {
	in := segtest.GetInput(t, segtest.H264AAC)
	st := segtest.NewStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	var fed []*media.AccessUnit
	for _, au := range in.AUs {
		if au.DTS < 10500*time.Millisecond {
			fed = append(fed, au)
		}
	}
	segtest.Feed(t, w, fed)
	if n := len(st.Stored()); n != 3 {
		t.Fatalf("%d objects stored before the crash, want init + 2 segments", n)
	}
	w.Abandon() // kill -9: nothing more is written
	partial := filepath.Join(dir, "seg000002.m4s")
	fi, err := os.Stat(partial)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(partial, fi.Size()-100); err != nil { // a torn last write
		t.Fatal(err)
	}

	// The playlist store fails once: Recover must be repeatable.
	failed := false
	st.Fail = func(key string) error {
		if strings.HasSuffix(key, ".m3u8") && !failed {
			failed = true
			return errors.New("transient")
		}
		return nil
	}
	keyFn := func(time.Time) string { return "rec/live/s1/2026-01-01/recovered.m3u8" }
	if _, err := Recover(context.Background(), dir, st, keyFn, segtest.Logger(t)); err == nil {
		t.Fatal("first Recover succeeded despite the store failure")
	}
	fres, err := Recover(context.Background(), dir, st, keyFn, segtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if fres.Segments != 3 || fres.Key != keyFn(time.Time{}) {
		t.Fatalf("recovered %+v, want 3 segments", fres)
	}
	// Rebuild the detailed result from the playlist for the common checks.
	m, _ := segtest.ReadPlaylist(t, st.Path(fres.Key))
	res := segment.Result{PlaylistKey: fres.Key, Duration: fres.Duration}
	for i, s := range m.Segments {
		res.Segments = append(res.Segments, segment.Segment{Key: testSegmentKey(i, time.Time{}), Duration: s.Duration,
			MapKey: testInitKey(0)})
		fi, err := os.Stat(st.Path(testSegmentKey(i, time.Time{})))
		if err != nil {
			t.Fatal(err)
		}
		res.Segments[i].Bytes = fi.Size()
	}
	segtest.CheckVOD(t, st, res, 0, 6)
	readOutput(t, st, res)
	fedDur := segtest.ExpectedDuration(fed, true)
	t.Logf("fed %v, recovered %v", fedDur, res.Duration)
	if res.Duration > fedDur || res.Duration < fedDur-1100*time.Millisecond {
		t.Errorf("recovered %v, fed %v: more than the last fragment lost", res.Duration, fedDur)
	}
	if _, err := Recover(context.Background(), dir, st, keyFn, nil); !errors.Is(err, ErrNoJournal) {
		t.Errorf("third Recover: %v, want ErrNoJournal", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
}

// Odd input never panics; nothing decodable gives ErrNoMedia.
func TestOddInput(t *testing.T) {
	st := segtest.NewStore(t)
	if _, err := New(Config{SliceDuration: time.Second, WorkDir: t.TempDir(), SegmentKey: testSegmentKey, Store: st}); err == nil {
		t.Error("Config without InitKey accepted")
	}
	w, dir := newTestWriter(t, st)
	v := &media.Track{Codec: media.H264, SPS: []byte{0x67, 0x42, 0, 0x1e}, PPS: []byte{0x68, 0xce}}
	if err := w.WriteAU(&media.AccessUnit{Track: v, Key: true, NALUs: [][]byte{{0x65, 1}}}); !errors.Is(err, ErrNoTracks) {
		t.Errorf("AU before SetTracks: %v", err)
	}
	if err := w.SetTracks(&media.Track{Codec: "vp8"}, nil); err == nil {
		t.Error("unsupported codec accepted")
	}
	if err := w.SetTracks(nil, &media.Track{Codec: media.MP3}); err == nil {
		t.Error("MP3 without sample rate accepted")
	}
	if err := w.SetTracks(v, nil); err != nil {
		t.Fatal(err)
	}
	_ = w.WriteAU(&media.AccessUnit{Track: v, NALUs: [][]byte{{0x41}}})
	if _, err := w.Finish(context.Background(), testPlaylistKey); !errors.Is(err, ErrNoMedia) {
		t.Errorf("Finish without media: %v", err)
	}
	if len(st.Stored()) != 0 {
		t.Error("something stored")
	}
	if _, err := Recover(context.Background(), dir, st, func(time.Time) string { return "x" }, nil); !errors.Is(err, ErrNoJournal) {
		t.Errorf("Recover of an empty dir: %v", err)
	}
}

func TestCompleteFragments(t *testing.T) {
	box := func(typ string, n int) []byte {
		b := make([]byte, n)
		b[3] = byte(n)
		copy(b[4:], typ)
		return b
	}
	s := stypBox
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, c := range []struct {
		b    []byte
		want int
	}{
		{s, 0},
		{cat(s, box("moof", 16)), 0},
		{cat(s, box("moof", 16), box("mdat", 20)), len(s) + 36},
		{cat(s, box("moof", 16), box("mdat", 20), box("moof", 16), box("mdat", 20))[:len(s)+36+30], len(s) + 36},
		{cat(s, box("moof", 16), box("mdat", 20), box("mdat", 20)), len(s) + 36},
		{cat(s, box("mdat", 20)), 0},
		{[]byte("garbage"), 0},
	} {
		if got := completeFragments(c.b); got != c.want {
			t.Errorf("completeFragments(%d bytes) = %d, want %d", len(c.b), got, c.want)
		}
	}
}

// BenchmarkWriter muxes the 12 s H.264+AAC input into a local-disk store; MB/s counts
// elementary-stream bytes. "fsync" is the real path; "mux" replaces fsync with a no-op
// to show the CPU cost.
func BenchmarkWriter(b *testing.B) {
	in := segtest.GetInput(b, segtest.H264AAC)
	b.Run("fsync", func(b *testing.B) { benchWriter(b, in) })
	b.Run("mux", func(b *testing.B) {
		prev := segment.SetSync(func(*os.File) error { return nil })
		defer segment.SetSync(prev)
		benchWriter(b, in)
	})
}

func benchWriter(b *testing.B, in *segtest.Input) {
	var size int64
	for _, au := range in.AUs {
		size += int64(au.Size())
	}
	mediaDur := in.AUs[len(in.AUs)-1].DTS
	b.SetBytes(size)
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	for b.Loop() {
		st := segtest.NewStore(b)
		w, err := New(Config{SliceDuration: testSlice, WorkDir: b.TempDir(), SegmentKey: testSegmentKey,
			InitKey: testInitKey, Store: st})
		if err != nil {
			b.Fatal(err)
		}
		if err := w.SetTracks(in.Video, in.Audio); err != nil {
			b.Fatal(err)
		}
		for _, au := range in.AUs {
			if err := w.WriteAU(au); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Finish(context.Background(), testPlaylistKey); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N)/float64(len(in.AUs)), "allocs/AU")
	b.ReportMetric(float64(mediaDur)*float64(b.N)/float64(elapsed), "x-realtime")
}

// With a Syncer, nothing waits for the disk on the caller's goroutine — not the
// initialization segment either: it is written at once but stored, like the segments,
// only once its sync ran. After a crash before that sync, a torn initialization segment
// is dropped with the segments that use it.
func TestSyncOffCallerInit(t *testing.T) {
	in := segtest.GetInput(t, segtest.H264AAC)
	syncs := segtest.CountJournalSyncs(t)
	newWriter := func(st *segtest.Store, sy *segtest.Syncer) (*Writer, string) {
		dir := t.TempDir()
		w, err := New(Config{SliceDuration: testSlice, WorkDir: dir, SegmentKey: testSegmentKey, InitKey: testInitKey,
			SegmentURI: st.Path, Store: st, Now: segtest.FakeClock(), Logger: segtest.Logger(t), Syncer: sy})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.SetTracks(in.Video, in.Audio); err != nil {
			t.Fatal(err)
		}
		return w, dir
	}
	var fed []*media.AccessUnit
	for _, au := range in.AUs {
		if au.DTS < 10500*time.Millisecond {
			fed = append(fed, au)
		}
	}

	st, sy := segtest.NewStore(t), &segtest.Syncer{}
	w, _ := newWriter(st, sy)
	segtest.Feed(t, w, fed)
	if n := syncs(); n != 0 {
		t.Fatalf("%d fsyncs on the caller's goroutine, want 0", n)
	}
	if got := st.Stored(); len(got) != 0 || sy.Len() == 0 {
		t.Fatalf("before the syncs ran: stored %v (want nothing), %d jobs queued", got, sy.Len())
	}
	if err := sy.Run(); err != nil {
		t.Fatal(err)
	}
	if n := len(st.Stored()); n != 3 || syncs() == 0 {
		t.Fatalf("after the syncs: %d objects stored (want init + 2 segments), %d journal fsyncs", n, syncs())
	}
	segtest.Feed(t, w, in.AUs[len(fed):])
	res := finish(t, w)
	segtest.CheckVOD(t, st, res, segtest.ExpectedDuration(in.AUs, true), 6)

	// The crash: nothing synced yet, the initialization segment torn.
	st2, sy2 := segtest.NewStore(t), &segtest.Syncer{}
	w2, dir := newWriter(st2, sy2)
	segtest.Feed(t, w2, fed)
	initSync := sy2.Take(0) // queued first: the initialization segment opens the file
	if err := sy2.Run(); err != nil {
		t.Fatal(err)
	}
	if got := st2.Stored(); len(got) != 0 {
		t.Fatalf("stored %v before the initialization segment was synced, want nothing", got)
	}
	_ = initSync // the crash comes first
	w2.Abandon()
	init := filepath.Join(dir, "init000.m4s")
	if err := os.Truncate(init, 10); err != nil {
		t.Fatal(err)
	}
	_, err := Recover(context.Background(), dir, st2, func(time.Time) string { return "rec/x.m3u8" }, segtest.Logger(t))
	if !errors.Is(err, ErrNoMedia) {
		t.Fatalf("Recover with a torn initialization segment: %v, want ErrNoMedia (its segments dropped)", err)
	}
	if got := st2.Stored(); len(got) != 0 {
		t.Fatalf("stored %v, want nothing", got)
	}
}
