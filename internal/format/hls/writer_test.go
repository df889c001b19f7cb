package hls

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// recordAll feeds a whole input and finishes; it checks the common properties.
func recordAll(t *testing.T, name string) (*input, *diskStore, Result) {
	t.Helper()
	in := getInput(t, name)
	st := newDiskStore(t)
	w, dir := newTestWriter(t, st, testSlice)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.AUs)
	wantDur := expectedDuration(in.AUs, in.Video != nil)
	if got := w.Duration(); absDur(got-wantDur) > time.Millisecond {
		t.Errorf("Duration() before Finish = %v, want %v", got, wantDur)
	}
	res, err := w.Finish(context.Background(), testPlaylistKey)
	if err != nil {
		t.Fatal(err)
	}
	m := checkVOD(t, st, res, wantDur)
	checkSegmentStarts(t, st, res, in.Video != nil)
	t.Logf("%s: %d segments, %v recorded, input %v, %d bytes, target %ds", name, len(m.Segments),
		res.Duration, in.Duration, res.Bytes, m.TargetDuration)
	if absDur(res.Duration-in.Duration) > 100*time.Millisecond {
		t.Errorf("recorded %v, input ffprobe duration %v", res.Duration, in.Duration)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
	if _, err := w.Finish(context.Background(), testPlaylistKey); !errors.Is(err, ErrFinished) {
		t.Errorf("second Finish: %v", err)
	}
	return in, st, res
}

func TestH264AAC(t *testing.T) {
	in, st, res := recordAll(t, inH264AAC)
	// 12 s with a keyframe every 2 s and 4 s slices: 3 segments of exactly 4 s.
	if len(res.Segments) != 3 {
		t.Fatalf("%d segments, want 3", len(res.Segments))
	}
	for i, s := range res.Segments[:2] {
		if s.Duration != 4*time.Second {
			t.Errorf("segment %d lasts %v, want 4s", i, s.Duration)
		}
		if s.Discontinuity {
			t.Errorf("segment %d marked discontinuous", i)
		}
	}
	// Relative URIs in the final playlist.
	m, _ := readPlaylist(t, st.Path(res.PlaylistKey))
	if m.Segments[0].URI != "seg/000.ts" {
		t.Errorf("URI %q, want seg/000.ts", m.Segments[0].URI)
	}
	// The video elementary stream is carried byte for byte.
	out := demuxTS(t, bytes.NewReader(concatSegments(t, st, res.Segments)))
	if a, b := vcl(in.AUs, false), vcl(out.AUs, false); !bytes.Equal(a, b) {
		t.Errorf("VCL NAL units differ: input %d bytes, output %d bytes", len(a), len(b))
	}
	// So is the audio (every frame after the first keyframe).
	var inAudio, outAudio [][]byte
	for _, au := range in.AUs {
		if !au.Track.Codec.IsVideo() && au.DTS >= 0 {
			inAudio = append(inAudio, au.Data)
		}
	}
	for _, au := range out.AUs {
		if !au.Track.Codec.IsVideo() {
			outAudio = append(outAudio, au.Data)
		}
	}
	if !bytes.Equal(bytes.Join(inAudio, nil), bytes.Join(outAudio, nil)) {
		t.Errorf("audio differs: %d frames in, %d out", len(inAudio), len(outAudio))
	}
	// The output timeline is the playlist timeline: starts at 1 s, continuous.
	if d := out.AUs[0].DTS; d != time.Second {
		t.Errorf("first output DTS %v, want 1s", d)
	}
	if res.Bytes <= res.PlaylistBytes || res.Start.IsZero() || !res.End.After(res.Start) {
		t.Errorf("bad result totals: %+v", res)
	}
}

func TestH265AAC(t *testing.T) {
	in, st, res := recordAll(t, inH265AAC)
	out := demuxTS(t, bytes.NewReader(concatSegments(t, st, res.Segments)))
	if a, b := vcl(in.AUs, true), vcl(out.AUs, true); len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("VCL NAL units differ: input %d bytes, output %d bytes", len(a), len(b))
	}
}

func TestH264MP3(t *testing.T) {
	recordAll(t, inH264MP3)
}

func TestAudioOnly(t *testing.T) {
	in, _, res := recordAll(t, inAACOnly)
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

// The live EVENT playlist is valid and playable while recording.
func TestLivePlaylist(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st, testSlice)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, au := range in.AUs {
		if err := w.WriteAU(au); err != nil {
			t.Fatal(err)
		}
		n := len(st.Stored())
		if n == checked || n == 0 {
			continue
		}
		checked = n
		m, text := readPlaylist(t, w.LivePlaylistPath())
		if m.PlaylistType == nil || *m.PlaylistType != playlist.MediaPlaylistTypeEvent || m.Endlist {
			t.Fatalf("not an open EVENT playlist:\n%s", text)
		}
		if len(m.Segments) != n {
			t.Fatalf("live playlist lists %d segments, %d stored", len(m.Segments), n)
		}
		for _, s := range m.Segments {
			if float64(m.TargetDuration) < s.Duration.Seconds() {
				t.Errorf("TARGETDURATION %d < EXTINF %v", m.TargetDuration, s.Duration)
			}
		}
		// Closed, it must decode cleanly (URIs are absolute paths in this test).
		closed := filepath.Join(t.TempDir(), "closed.m3u8")
		if err := os.WriteFile(closed, []byte(text+"#EXT-X-ENDLIST\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := ffmpegDecode(t, closed); out != "" {
			t.Errorf("live playlist does not decode cleanly:\n%s", out)
		}
	}
	if checked != 2 {
		t.Errorf("live playlist seen with %d segments, want 2 before Finish", checked)
	}
	if _, err := w.Finish(context.Background(), testPlaylistKey); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.LivePlaylistPath()); !os.IsNotExist(err) {
		t.Errorf("live playlist not removed: %v", err)
	}
}

// A stitched resume: timestamps restart, the resume begins mid-GOP.
func TestDiscontinuity(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st, testSlice)
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
	feed(t, w, part1)
	w.Discontinuity()
	feed(t, w, part2)
	res, err := w.Finish(context.Background(), testPlaylistKey)
	if err != nil {
		t.Fatal(err)
	}
	want := expectedDuration(part1, true) + expectedDuration(part2, true)
	m := checkVOD(t, st, res, want)
	checkSegmentStarts(t, st, res, true)
	if b, err := os.ReadFile(st.Path(res.PlaylistKey)); err == nil {
		t.Logf("playlist:\n%s", b)
	}
	if discs := discontinuities(m); len(discs) != 1 || discs[0] != 2 {
		t.Errorf("discontinuities at segments %v, want [2]", discs)
	}
	// Segment 1 ends the first run: the end of its last frame (video, or audio that
	// ends up to one audio frame later), no gap included.
	if d := res.Segments[1].Duration; d < 2*time.Second-time.Millisecond || d > 2*time.Second+25*time.Millisecond {
		t.Errorf("segment before the resume lasts %v, want 2s (+ at most one audio frame)", d)
	}
	// The output TS timeline stays monotonic across the resume.
	out := demuxTS(t, bytes.NewReader(concatSegments(t, st, res.Segments)))
	videoIncreasing(t, out.AUs)
	// The video is all there: part1, then part2 from its first keyframe (the GOP tail
	// the resume began with is dropped).
	kept := append([]*media.AccessUnit{}, part1...)
	seen := false
	for _, au := range part2 {
		seen = seen || au.Track.Codec.IsVideo() && au.Key
		if seen {
			kept = append(kept, au)
		}
	}
	if a, b := vcl(kept, false), vcl(out.AUs, false); !bytes.Equal(a, b) {
		t.Errorf("VCL differs: want %d bytes, got %d", len(a), len(b))
	}
}

// A stitched resume whose timestamps continue (the recording task repairs them so): the
// audio until the new publish's first keyframe goes on in the segment still open, so the
// stitch loses no sound, and A/V keep their input relationship.
func TestDiscontinuityKeepsAudio(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st, testSlice)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	cut := 5*time.Second + 500*time.Millisecond // mid-GOP (keyframes every 2 s)
	resumed := false
	var keptVideo []*media.AccessUnit
	audio, waitKey := 0, false
	for _, au := range in.AUs {
		if !resumed && au.DTS >= cut {
			w.Discontinuity()
			resumed, waitKey = true, true
		}
		if au.Track.Codec.IsVideo() {
			waitKey = waitKey && !au.Key
			if !waitKey {
				keptVideo = append(keptVideo, au)
			}
		} else if au.DTS >= in.AUs[0].DTS {
			audio++
		}
		if err := w.WriteAU(au); err != nil {
			t.Fatal(err)
		}
	}
	res, err := w.Finish(context.Background(), testPlaylistKey)
	if err != nil {
		t.Fatal(err)
	}
	m := checkVOD(t, st, res, 0) // decodes it too
	// The run before the resume ends with the end of its last frame of either track: up
	// to one audio frame more than continuous input lasts.
	if want, d := expectedDuration(in.AUs, true), res.Duration; d < want-time.Millisecond || d > want+25*time.Millisecond {
		t.Errorf("duration %v, want %v (+ at most one audio frame)", d, want)
	}
	if discs := discontinuities(m); len(discs) != 1 {
		t.Errorf("discontinuities at segments %v, want one", discs)
	}
	out := demuxTS(t, bytes.NewReader(concatSegments(t, st, res.Segments)))
	var outVideo []*media.AccessUnit
	outAudio := 0
	var last time.Duration = -1
	for _, au := range out.AUs {
		if au.Track.Codec.IsVideo() {
			outVideo = append(outVideo, au)
			continue
		}
		outAudio++
		if au.DTS <= last {
			t.Fatalf("output audio DTS not increasing: %v after %v", au.DTS, last)
		}
		last = au.DTS
	}
	if outAudio != audio {
		t.Errorf("%d audio frames recorded, want all %d", outAudio, audio)
	}
	if len(outVideo) != len(keptVideo) {
		t.Fatalf("%d video frames recorded, want %d", len(outVideo), len(keptVideo))
	}
	// The output timeline is the input's shifted by one constant (to within an audio
	// frame across the resume): the audio written after the resume does not push the
	// pictures of the new run away from their sound.
	off := outVideo[0].DTS - keptVideo[0].DTS
	for i, au := range outVideo {
		if d := au.DTS - keptVideo[i].DTS - off; absDur(d) > 25*time.Millisecond {
			t.Fatalf("video frame %d (input DTS %v) is %v off the input timeline", i, keptVideo[i].DTS, d)
		}
	}
}

// A parameter change (new resolution) ends the segment at the next keyframe and marks a
// discontinuity; the timeline continues.
func TestTrackChange(t *testing.T) {
	a := getInput(t, inH264AAC)
	b := getInput(t, inH264AAC2)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st, testSlice)
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
	feed(t, w, part1)
	// Same parameters again: no change.
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
	feed(t, w, part2)
	res, err := w.Finish(context.Background(), testPlaylistKey)
	if err != nil {
		t.Fatal(err)
	}
	m := checkVOD(t, st, res, 0)
	checkSegmentStarts(t, st, res, true)
	if discs := discontinuities(m); len(discs) != 1 {
		t.Errorf("discontinuities at segments %v, want one", discs)
	}
	want := expectedDuration(part1, true) + expectedDuration(part2, true)
	if absDur(res.Duration-want) > 50*time.Millisecond {
		t.Errorf("duration %v, want about %v", res.Duration, want)
	}
}

// Crash after two stored segments, with the partial third segment torn mid-packet.
func TestRecover(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, dir := newTestWriter(t, st, testSlice)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	var fed []*media.AccessUnit
	for _, au := range in.AUs {
		if au.DTS < 10500*time.Millisecond {
			fed = append(fed, au)
		}
	}
	feed(t, w, fed)
	if n := len(st.Stored()); n != 2 {
		t.Fatalf("%d segments stored before the crash, want 2", n)
	}
	// Simulate the crash: the buffered data reached the file, the last write was torn.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, "seg000002.ts")
	fi, err := os.Stat(partial)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(partial, fi.Size()-100); err != nil {
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
	var gotEnd time.Time
	keyFn := func(end time.Time) string {
		gotEnd = end
		return "rec/live/s1/2026-01-01/recovered.m3u8"
	}
	if _, err := Recover(context.Background(), dir, st, keyFn, testLogger(t)); err == nil {
		t.Fatal("first Recover succeeded despite the store failure")
	}
	res, err := Recover(context.Background(), dir, st, keyFn, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered || len(res.Segments) != 3 {
		t.Fatalf("recovered %d segments, want 3", len(res.Segments))
	}
	last := res.Segments[2]
	if !gotEnd.Equal(last.Start.Add(last.Duration)) || !res.End.Equal(gotEnd) {
		t.Errorf("end %v, want %v", gotEnd, last.Start.Add(last.Duration))
	}
	checkVOD(t, st, res, 0)
	checkSegmentStarts(t, st, res, true)
	// The partial segment covers the fed media up to a few frames (the torn tail).
	fedDur := expectedDuration(fed, true)
	if res.Duration > fedDur || res.Duration < fedDur-200*time.Millisecond {
		t.Errorf("recovered %v, fed %v", res.Duration, fedDur)
	}
	// Its EXTINF matches its content: last video DTS − first + one frame.
	b, _ := os.ReadFile(st.Path(last.Key))
	d := demuxTS(t, bytes.NewReader(b))
	var first, lastDTS time.Duration
	n := 0
	for _, au := range d.AUs {
		if au.Track.Codec.IsVideo() {
			if n == 0 {
				first = au.DTS
			}
			lastDTS = au.DTS
			n++
		}
	}
	if want := lastDTS - first + 40*time.Millisecond; absDur(last.Duration-want) > 20*time.Microsecond {
		t.Errorf("partial segment EXTINF %v, content %v", last.Duration, want)
	}
	if _, err := Recover(context.Background(), dir, st, keyFn, nil); !errors.Is(err, ErrNoJournal) {
		t.Errorf("third Recover: %v, want ErrNoJournal", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
}

// Crash without any flush of the partial segment (kill -9 with data still buffered).
func TestRecoverUnflushed(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, dir := newTestWriter(t, st, testSlice)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	var fed []*media.AccessUnit
	for _, au := range in.AUs {
		if au.DTS < 8100*time.Millisecond {
			fed = append(fed, au)
		}
	}
	feed(t, w, fed) // abandoned: no Finish, no Close
	res, err := Recover(context.Background(), dir, st, func(time.Time) string { return testPlaylistKey }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Segments) != 2 {
		t.Fatalf("%d segments, want 2", len(res.Segments))
	}
	checkVOD(t, st, res, 8*time.Second)
	w.Abandon()
}

// A failed store is retried at the next boundary; the live playlist lists only the
// stored prefix meanwhile.
func TestStoreRetry(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st, testSlice)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	fails := 0
	st.Fail = func(key string) error {
		if key == testSegmentKey(0, time.Time{}) && fails == 0 {
			fails++
			return errors.New("spool full")
		}
		return nil
	}
	feed(t, w, in.AUs)
	if fails != 1 {
		t.Fatalf("store failure not triggered")
	}
	res, err := w.Finish(context.Background(), testPlaylistKey)
	if err != nil {
		t.Fatal(err)
	}
	checkVOD(t, st, res, expectedDuration(in.AUs, true))
}

// ErrExists is reported, the local file kept, never overwritten.
// TestStoreExists: keys another recording holds (a segment, the playlist) are never
// overwritten and never fail the file: the objects go to the next free keys, which the
// playlist lists and the result reports.
func TestStoreExists(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	taken := []string{st.Path(testSegmentKey(1, time.Time{})), st.Path(testPlaylistKey)}
	for _, p := range taken {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("someone else's"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := newTestWriter(t, st, testSlice)
	if err := w.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	for _, au := range in.AUs {
		if err := w.WriteAU(au); err != nil {
			t.Fatalf("WriteAU: %v", err)
		}
	}
	res, err := w.Finish(context.Background(), testPlaylistKey)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	for _, p := range taken {
		if b, _ := os.ReadFile(p); string(b) != "someone else's" {
			t.Errorf("existing object %s overwritten", p)
		}
	}
	segKey := storage.ClashKey(testSegmentKey(1, time.Time{}), 1)
	if res.PlaylistKey != storage.ClashKey(testPlaylistKey, 1) || len(res.Segments) < 2 || res.Segments[1].Key != segKey {
		t.Fatalf("result: playlist %q, segments %+v; want the playlist and segment 1 under their _1 keys", res.PlaylistKey, res.Segments)
	}
	pl, err := os.ReadFile(st.Path(res.PlaylistKey))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pl), path.Base(segKey)+"\n") {
		t.Errorf("playlist does not list %s:\n%s", segKey, pl)
	}
	if _, err := os.Stat(st.Path(segKey)); err != nil {
		t.Errorf("segment 1 not stored under %s: %v", segKey, err)
	}
}

// Odd input never panics.
func TestOddInput(t *testing.T) {
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st, testSlice)
	v := &media.Track{Codec: media.H264, SPS: []byte{0x67, 0x42, 0, 0x1e}, PPS: []byte{0x68, 0xce}}
	a := &media.Track{Codec: media.AAC, AudioConfig: []byte{0x12, 0x10}}
	if err := w.WriteAU(&media.AccessUnit{Track: v, Key: true, NALUs: [][]byte{{0x65, 1}}}); !errors.Is(err, ErrNoTracks) {
		t.Errorf("AU before SetTracks: %v", err)
	}
	if err := w.SetTracks(nil, nil); err == nil {
		t.Error("SetTracks(nil, nil) accepted")
	}
	if err := w.SetTracks(&media.Track{Codec: "vp8"}, nil); err == nil {
		t.Error("unsupported codec accepted")
	}
	if err := w.SetTracks(&media.Track{Codec: media.H264}, nil); err == nil {
		t.Error("H.264 without SPS accepted")
	}
	if err := w.SetTracks(v, a); err != nil {
		t.Fatal(err)
	}
	for _, au := range []*media.AccessUnit{
		{Track: v, Key: true},                                     // empty
		{Track: v, Key: true, NALUs: [][]byte{{}, {}}},            // empty NALUs
		{Track: a, Data: []byte{1, 2, 3}},                         // audio before the keyframe
		{Track: v, NALUs: [][]byte{{0x41, 1}}},                    // not a keyframe
		{Track: v, Key: true, NALUs: [][]byte{{0x65, 1}}},         // opens the segment
		{Track: v, DTS: -time.Second, NALUs: [][]byte{{0x41, 2}}}, // backwards
		{Track: a, DTS: 10 * time.Millisecond, Data: []byte{0x21, 0x1b}},
		{Track: v, DTS: 40 * time.Millisecond, PTS: 0, NALUs: [][]byte{{0x41, 3}}}, // PTS < DTS
	} {
		if err := w.WriteAU(au); err != nil {
			t.Errorf("WriteAU(%+v): %v", au, err)
		}
	}
	if err := w.WriteAU(nil); err == nil {
		t.Error("nil AU accepted")
	}
	if err := w.WriteAU(&media.AccessUnit{Track: &media.Track{Codec: media.MP3}, Data: []byte{1}}); err == nil {
		t.Error("AU of an undeclared track accepted")
	}
	if d := w.Duration(); d != 80*time.Millisecond {
		t.Errorf("Duration %v, want 80ms", d)
	}
	res, err := w.Finish(context.Background(), testPlaylistKey)
	if err != nil || len(res.Segments) != 1 {
		t.Fatalf("Finish: %v %+v", err, res)
	}
	if err := w.WriteAU(&media.AccessUnit{Track: v, Key: true, NALUs: [][]byte{{0x65}}}); !errors.Is(err, ErrFinished) {
		t.Errorf("WriteAU after Finish: %v", err)
	}

	// Nothing decodable: ErrNoMedia, nothing stored.
	st2 := newDiskStore(t)
	w2, dir2 := newTestWriter(t, st2, testSlice)
	if err := w2.SetTracks(v, a); err != nil {
		t.Fatal(err)
	}
	_ = w2.WriteAU(&media.AccessUnit{Track: v, NALUs: [][]byte{{0x41}}})
	if _, err := w2.Finish(context.Background(), testPlaylistKey); !errors.Is(err, ErrNoMedia) {
		t.Errorf("Finish without media: %v", err)
	}
	if len(st2.Stored()) != 0 {
		t.Error("something stored")
	}
	if _, err := Recover(context.Background(), dir2, st2, func(time.Time) string { return "x" }, nil); !errors.Is(err, ErrNoJournal) {
		t.Errorf("Recover of an empty dir: %v", err)
	}
}

// BenchmarkWriter muxes the 12 s H.264+AAC input into a local-disk store; MB/s counts
// elementary-stream bytes. "fsync" is the real path (segment, journal and playlist
// fsyncs, which dominate on a small stream); "mux" replaces fsync with a no-op to show
// the CPU cost.
func BenchmarkWriter(b *testing.B) {
	in := getInput(b, inH264AAC)
	b.Run("fsync", func(b *testing.B) { benchWriter(b, in) })
	b.Run("mux", func(b *testing.B) {
		prev := segment.SetSync(func(*os.File) error { return nil })
		defer segment.SetSync(prev)
		benchWriter(b, in)
	})
}

func benchWriter(b *testing.B, in *input) {
	var size int64
	for _, au := range in.AUs {
		size += int64(au.Size())
	}
	media := in.AUs[len(in.AUs)-1].DTS
	b.SetBytes(size)
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	for b.Loop() {
		st := newDiskStore(b)
		dir := b.TempDir()
		w, err := New(Config{SliceDuration: testSlice, WorkDir: dir, SegmentKey: testSegmentKey, Store: st})
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
	b.ReportMetric(float64(media)*float64(b.N)/float64(elapsed), "x-realtime")
}
