package mp4

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	amp4 "github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"

	"github.com/livrec/livrec/internal/format/segment/segtest"
)

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// wantCodecs are ffprobe's codec name and tag per input.
var wantCodecs = map[string][][2]string{
	inH264AAC:  {{"h264", "avc1"}, {"aac", "mp4a"}},
	inH265AAC:  {{"hevc", "hvc1"}, {"aac", "mp4a"}},
	inMPEG4MP3: {{"mpeg4", "mp4v"}, {"mp3", "mp4a"}},
	inH264MP3:  {{"h264", "avc1"}, {"mp3", "mp4a"}},
	inAACOnly:  {{"aac", "mp4a"}},
}

// recordAll feeds a whole input, finishes, and checks the stored file.
func recordAll(t *testing.T, name string) (*input, string, format.Result) {
	t.Helper()
	in := getInput(t, name)
	st := newDiskStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	before := w.Duration()
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	path := st.Path(testKey)
	if res.Key != testKey || res.Segments != 0 {
		t.Errorf("result %+v", res)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != res.Bytes {
		t.Errorf("stored object: %v, size vs result %d", err, res.Bytes)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
	if _, err := w.Finish(context.Background(), testKey); !errors.Is(err, ErrFinished) {
		t.Errorf("second Finish: %v", err)
	}
	if d := before - res.Duration; absDur(d) > 2*time.Millisecond {
		t.Errorf("Duration() before Finish %v, result %v", before, res.Duration)
	}
	checkFile(t, in, name, path, res)
	return in, path, res
}

// checkFile verifies a progressive file made from (a prefix of) in.
func checkFile(t *testing.T, in *input, name, path string, res format.Result) {
	t.Helper()
	// Fast start: ftyp, moov, then mdat, nothing else.
	if boxes := topLevelBoxes(t, path); !slices.Equal(boxes, []string{"ftyp", "moov", "mdat"}) {
		t.Errorf("top-level boxes %v, want [ftyp moov mdat]", boxes)
	}
	if out := ffmpegDecode(t, path); out != "" {
		t.Errorf("ffmpeg decode reported:\n%s", out)
	}
	probed := probeStreams(t, path)
	want := wantCodecs[name]
	if len(probed) != len(want) {
		t.Fatalf("streams %+v, want %v", probed, want)
	}
	for i, s := range probed {
		if s.codec != want[i][0] || s.tag != want[i][1] {
			t.Errorf("stream %d: %s/%s, want %s/%s", i, s.codec, s.tag, want[i][0], want[i][1])
		}
		if s.kind == "video" && (s.width != 160 || s.height != 120) {
			t.Errorf("video size %dx%d", s.width, s.height)
		}
	}
	dur := probeFormatDuration(t, path)
	if absDur(dur-res.Duration) > 2*time.Millisecond {
		t.Errorf("ffprobe duration %v, result %v", dur, res.Duration)
	}

	video, audio := kept(in.aus, in.video != nil)
	var p0 time.Duration
	if len(video) > 0 {
		p0 = video[0].PTS
	} else {
		p0 = audio[0].DTS
	}
	// A/V sync: video starts at 0, audio where its first frame plays relative to the
	// first picture.
	for _, s := range probed {
		want := time.Duration(0)
		if s.kind == "audio" && len(audio) > 0 {
			want = max(audio[0].DTS-p0, 0)
		}
		if absDur(s.start-want) > time.Millisecond {
			t.Errorf("%s start_time %v, want %v", s.kind, s.start, want)
		}
	}

	// Sample by sample (mediacommon's reader): payloads, sync flags and timestamps.
	p := readPresentation(t, path)
	// The edit lists (go-mp4 as an independent reader): video skips to its first picture,
	// audio waits for its offset behind the first picture.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	elsts, err := amp4.ExtractBoxWithPayload(f, nil, amp4.BoxPath{amp4.BoxTypeMoov(), amp4.BoxTypeTrak(),
		amp4.BoxTypeEdts(), amp4.BoxTypeElst()})
	if err != nil || len(elsts) != len(p.Tracks) {
		t.Fatalf("edit lists: %d for %d tracks, %v", len(elsts), len(p.Tracks), err)
	}
	for i, tr := range p.Tracks {
		elst := elsts[i].Payload.(*amp4.Elst)
		var got [][2]int64
		for j := range int(elst.EntryCount) {
			got = append(got, [2]int64{int64(elst.GetSegmentDuration(j)), elst.GetMediaTime(j)})
		}
		var sum int64
		for _, s := range tr.Samples {
			sum += int64(s.Duration)
		}
		segDur := durToTicks(ticksToDur(sum, tr.TimeScale), movieTimescale)
		var want [][2]int64
		if tr.Codec.IsVideo() {
			want = [][2]int64{{segDur, int64(tr.Samples[0].PTSOffset)}}
		} else {
			// A first frame that starts before the first picture plays from there on.
			off := audio[0].DTS - p0
			if empty := durToTicks(off, movieTimescale); empty > 0 {
				want = append(want, [2]int64{empty, -1})
			}
			var skip int64
			if off < 0 {
				skip = durToTicks(-off, tr.TimeScale)
				segDur -= durToTicks(-off, movieTimescale)
			}
			want = append(want, [2]int64{segDur, skip})
		}
		if !slices.Equal(got, want) {
			t.Errorf("track %d: edit list %v, want %v", tr.ID, got, want)
		}
	}

	for _, tr := range p.Tracks {
		aus := audio
		if tr.Codec.IsVideo() {
			aus = video
		}
		if len(tr.Samples) > len(aus) {
			t.Fatalf("track %d: %d samples, input has %d", tr.ID, len(tr.Samples), len(aus))
		}
		// Decode times count from the file origin (the first video DTS, audio-only: the
		// first audio DTS), each track starting at 0 in its own timescale.
		origin := video
		if len(origin) == 0 {
			origin = audio
		}
		first := durToTicks(aus[0].DTS-origin[0].DTS, tr.TimeScale)
		var dts int64
		for i, s := range tr.Samples {
			au := aus[i]
			pl, err := s.GetPayload()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pl, mp4Payload(au)) {
				t.Fatalf("track %d sample %d: payload differs (%d vs %d bytes)", tr.ID, i, len(pl), len(mp4Payload(au)))
			}
			if s.IsNonSyncSample == au.Key && tr.Codec.IsVideo() {
				t.Errorf("track %d sample %d: sync %v, key %v", tr.ID, i, !s.IsNonSyncSample, au.Key)
			}
			// The video origin is the first video DTS; audio's is its own first DTS.
			if want := durToTicks(au.DTS-origin[0].DTS, tr.TimeScale) - first; dts != want {
				t.Fatalf("track %d sample %d: decode time %d, want %d", tr.ID, i, dts, want)
			}
			wantCTS := durToTicks(au.PTS-origin[0].DTS, tr.TimeScale) - durToTicks(au.DTS-origin[0].DTS, tr.TimeScale)
			if !tr.Codec.IsVideo() {
				wantCTS = 0
			}
			if int64(s.PTSOffset) != wantCTS {
				t.Fatalf("track %d sample %d: composition offset %d, want %d", tr.ID, i, s.PTSOffset, wantCTS)
			}
			dts += int64(s.Duration)
		}
		if len(tr.Samples) == len(aus) && len(aus) > 1 {
			// The last sample lasts as long as the one before.
			n := len(tr.Samples)
			if tr.Samples[n-1].Duration != tr.Samples[n-2].Duration {
				t.Errorf("track %d: last duration %d, previous %d", tr.ID, tr.Samples[n-1].Duration, tr.Samples[n-2].Duration)
			}
		}
		if tr.Codec.IsVideo() && tr.Samples[0].IsNonSyncSample {
			t.Errorf("file does not start with a keyframe")
		}
		switch tr.Codec.(type) {
		case *codecs.H264, *codecs.H265, *codecs.MPEG4Video, *codecs.MPEG4Audio, *codecs.MPEG1Audio:
		default:
			t.Errorf("track %d: codec %T", tr.ID, tr.Codec)
		}
	}
}

func checkComplete(t *testing.T, in *input, path string, res format.Result) {
	t.Helper()
	video, audio := kept(in.aus, in.video != nil)
	// The input's own measure: from the first picture to the end of the last frame of
	// either track. A track ends one frame spacing after its last DTS, shifted by the
	// decoder delay (first PTS − first DTS) for video.
	end := func(aus []*media.AccessUnit) time.Duration {
		n := len(aus)
		return 2*aus[n-1].DTS - aus[n-2].DTS - aus[0].DTS + aus[0].PTS
	}
	var want time.Duration
	if len(video) > 0 {
		want = end(video)
		if len(audio) > 1 {
			want = max(want, end(audio))
		}
		want -= video[0].PTS
		// ffprobe's estimate for the MPEG-TS input (unreliable for audio-only TS, whose
		// PES carry batches of frames).
		if absDur(res.Duration-in.duration) > 100*time.Millisecond {
			t.Errorf("recorded %v, input ffprobe duration %v", res.Duration, in.duration)
		}
	} else {
		want = end(audio) - audio[0].DTS
	}
	if absDur(res.Duration-want) > time.Millisecond {
		t.Errorf("recorded %v, input spans %v", res.Duration, want)
	}
	p := readPresentation(t, path)
	for _, tr := range p.Tracks {
		want := len(audio)
		if tr.Codec.IsVideo() {
			want = len(video)
		}
		if len(tr.Samples) != want {
			t.Errorf("track %d: %d samples, want %d", tr.ID, len(tr.Samples), want)
		}
	}
}

func TestH264AAC(t *testing.T) {
	in, path, res := recordAll(t, inH264AAC)
	checkComplete(t, in, path, res)
	// B-frames: composition offsets and an edit list that skips to the first picture.
	if out := ffprobe(t, path, "-select_streams", "v", "-show_entries", "stream=has_b_frames", "-of", "csv=p=0"); out == "0" {
		t.Errorf("no B-frames detected")
	}
	t.Logf("%v, %d bytes, input %v", res.Duration, res.Bytes, in.duration)
}

func TestH265AAC(t *testing.T) {
	in, path, res := recordAll(t, inH265AAC)
	checkComplete(t, in, path, res)
}

func TestMPEG4MP3(t *testing.T) {
	in, path, res := recordAll(t, inMPEG4MP3)
	checkComplete(t, in, path, res)
}

func TestH264MP3(t *testing.T) {
	in, path, res := recordAll(t, inH264MP3)
	checkComplete(t, in, path, res)
}

func TestAudioOnly(t *testing.T) {
	in, path, res := recordAll(t, inAACOnly)
	checkComplete(t, in, path, res)
}

// The elementary stream survives an independent demuxer too: ffmpeg's Annex B output of
// the file equals the input's VCL NAL units.
func TestAnnexBRoundTrip(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	if _, err := w.Finish(context.Background(), testKey); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "v.h264")
	requireRun(t, "ffmpeg", "-nostdin", "-v", "error", "-i", st.Path(testKey), "-map", "0:v", "-c", "copy",
		"-bsf:v", "h264_mp4toannexb", "-f", "h264", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for _, n := range splitAnnexB(b) {
		if typ := n[0] & 0x1F; typ >= 1 && typ <= 5 {
			got = append(got, n)
		}
	}
	video, _ := kept(in.aus, true)
	var want [][]byte
	for _, au := range video {
		for _, n := range au.NALUs {
			if typ := n[0] & 0x1F; typ >= 1 && typ <= 5 {
				want = append(want, n)
			}
		}
	}
	if len(want) == 0 || !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("VCL NAL units differ: %d from ffmpeg, %d from the input", len(got), len(want))
	}
}

func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+3 <= len(b); {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

func requireRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if b, err := execCombined(name, args...); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
}

func TestTrackChange(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st)
	other := *in.video
	other.SPS = bytes.Clone(in.video.SPS)
	other.SPS[len(other.SPS)-1] ^= 0x01 // different parameters (still parses)
	// Before any media: a change simply replaces the declaration.
	if err := w.SetTracks(&other, in.audio); err != nil {
		t.Fatalf("SetTracks before media: %v", err)
	}
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus[:100])
	d := w.Duration()
	if err := w.SetTracks(&other, in.audio); !errors.Is(err, format.ErrNeedNewFile) {
		t.Errorf("changed SPS: %v, want ErrNeedNewFile", err)
	}
	if err := w.SetTracks(in.video, nil); !errors.Is(err, format.ErrNeedNewFile) {
		t.Errorf("audio removed: %v, want ErrNeedNewFile", err)
	}
	mp3 := &media.Track{Codec: media.MP3, SampleRate: 44100, Channels: 2}
	if err := w.SetTracks(in.video, mp3); !errors.Is(err, format.ErrNeedNewFile) {
		t.Errorf("audio codec changed: %v, want ErrNeedNewFile", err)
	}
	// Identical parameters in new values: nothing happens.
	same, sameA := *in.video, *in.audio
	if err := w.SetTracks(&same, &sameA); err != nil {
		t.Errorf("identical parameters: %v", err)
	}
	if w.Duration() != d {
		t.Errorf("duration changed by SetTracks")
	}
	feed(t, w, in.aus[100:])
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, in, inH264AAC, st.Path(testKey), res)
	checkComplete(t, in, st.Path(testKey), res)
}

// A stitched resume mid-GOP: video waits for the next keyframe, the timeline has no gap
// and the file stays in sync.
func TestDiscontinuity(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	cut := 5*time.Second + 500*time.Millisecond // mid-GOP (keyframes every 2 s)
	var skipped int
	resumed := false
	for _, au := range in.aus {
		if !resumed && au.DTS >= cut {
			w.Discontinuity()
			resumed = true
		}
		if w.gate.WaitsForKey() && au.Track.Codec.IsVideo() && !au.Key {
			skipped++
		}
		if err := w.WriteAU(au); err != nil {
			t.Fatal(err)
		}
	}
	if skipped == 0 {
		t.Fatal("no video dropped after the discontinuity")
	}
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	path := st.Path(testKey)
	if out := ffmpegDecode(t, path); out != "" {
		t.Errorf("ffmpeg decode reported:\n%s", out)
	}
	if absDur(res.Duration-in.duration) > 100*time.Millisecond {
		t.Errorf("duration %v, input %v: the timeline must not shrink", res.Duration, in.duration)
	}
	video, _ := kept(in.aus, true)
	if n := probeStreams(t, path)[0].frames; n != len(video)-skipped {
		t.Errorf("%d video frames, want %d (%d skipped)", n, len(video)-skipped, skipped)
	}
}

// Media that cannot start a file: ErrNoMedia, nothing stored, work dir clean.
func TestNoMedia(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.WriteAU(in.aus[0]); !errors.Is(err, ErrNoTracks) {
		t.Errorf("WriteAU before SetTracks: %v", err)
	}
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	for _, au := range in.aus {
		if !au.Key || !au.Track.Codec.IsVideo() { // audio and non-key video only
			if err := w.WriteAU(au); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d := w.Duration(); d != 0 {
		t.Errorf("Duration %v", d)
	}
	if _, err := w.Finish(context.Background(), testKey); !errors.Is(err, ErrNoMedia) {
		t.Errorf("Finish: %v, want ErrNoMedia", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 || len(st.Stored()) != 0 {
		t.Errorf("left %v, stored %v", entries, st.Stored())
	}
	if _, err := Recover(context.Background(), dir, st, nil, nil); !errors.Is(err, ErrNoJournal) {
		t.Errorf("Recover: %v, want ErrNoJournal", err)
	}
}

// An object with other content under the key (another recording rendered the same key):
// it stays, and the file is stored under the next free key, which the result reports.
func TestStoreExistsDifferent(t *testing.T) {
	in := getInput(t, inAACOnly)
	st := newDiskStore(t)
	if err := os.MkdirAll(filepath.Dir(st.Path(testKey)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.Path(testKey), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(nil, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatalf("Finish onto another object: %v", err)
	}
	if want := storage.ClashKey(testKey, 1); res.Key != want {
		t.Fatalf("stored under %q, want %q", res.Key, want)
	}
	if b, _ := os.ReadFile(st.Path(testKey)); string(b) != "other" {
		t.Error("the other object was overwritten")
	}
	checkFile(t, in, inAACOnly, st.Path(res.Key), res)
}

// TestAudioFrameAtFirstPicture: the audio frame that is playing when the first picture
// appears (it starts before it, B-frames delay the picture) is kept, so the file holds
// every audio frame of the input from the first video keyframe on, as flv and m3u8 do;
// the edit list skips the part of it before the picture.
func TestAudioFrameAtFirstPicture(t *testing.T) {
	in := getInput(t, inH264AAC)
	var origin, p0 time.Duration
	started, across := false, false
	want := 0
	for _, au := range in.aus {
		if au.Track.Codec.IsVideo() {
			if !started && au.Key {
				started, origin, p0 = true, au.DTS, au.PTS
			}
			continue
		}
		if !started || au.DTS < origin {
			continue
		}
		end := au.DTS + 1024*time.Second/time.Duration(au.Track.SampleRate)
		if end <= p0 {
			continue // plays wholly before the first picture
		}
		across = across || au.DTS < p0
		want++
	}
	if !across {
		t.Fatalf("the input has no audio frame across the first picture (%v): the test proves nothing", p0)
	}
	_, path, _ := recordAll(t, inH264AAC)
	for _, s := range probeStreams(t, path) {
		if s.kind == "audio" && s.frames != want {
			t.Errorf("audio: %d frames in the mp4, the input has %d from the first keyframe on", s.frames, want)
		}
	}
}

// TestQuietTrack: the audio goes quiet for 3 s while the video goes on (a gap of the
// input: media dropped on a full disk), so its held-back sample stays low in the arena
// across fragments. Every audio sample keeps its payload, the one before the gap too.
func TestQuietTrack(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	var fed []*media.AccessUnit
	for _, au := range in.aus {
		if !au.Track.Codec.IsVideo() && au.DTS >= 3*time.Second && au.DTS < 6*time.Second {
			continue
		}
		fed = append(fed, au)
	}
	feed(t, w, fed)
	if _, err := w.Finish(context.Background(), testKey); err != nil {
		t.Fatal(err)
	}
	path := st.Path(testKey)
	if out := ffmpegDecode(t, path); out != "" {
		t.Errorf("ffmpeg decode reported:\n%s", out)
	}
	_, audio := kept(fed, true)
	p := readPresentation(t, path)
	for _, tr := range p.Tracks {
		if tr.Codec.IsVideo() {
			continue
		}
		if len(tr.Samples) != len(audio) {
			t.Fatalf("%d audio samples, want %d", len(tr.Samples), len(audio))
		}
		for i, s := range tr.Samples {
			pl, err := s.GetPayload()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pl, mp4Payload(audio[i])) {
				t.Errorf("audio sample %d (dts %v): payload differs", i, audio[i].DTS)
			}
		}
	}
}

// readPresentation parses the MP4 file at path with mediacommon's reader; the file stays
// open for the samples' payloads until the test ends.
func readPresentation(t *testing.T, path string) *pmp4.Presentation {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var p pmp4.Presentation
	if err := p.Unmarshal(f); err != nil {
		t.Fatalf("pmp4 reader: %v", err)
	}
	return &p
}

// With a Syncer the file's start (working file's init, journal, directory) does not wait
// for the disk on the caller's goroutine: its fsyncs are queued, and the file finishes
// as without one.
func TestStartSyncOffCaller(t *testing.T) {
	in := getInput(t, inH264AAC)
	syncs := segtest.CountJournalSyncs(t)
	st, sy := newDiskStore(t), &segtest.Syncer{}
	w, err := New(Config{WorkDir: t.TempDir(), Store: st, Now: fakeClock(), Logger: testLogger(t), Syncer: sy})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	sy.CheckQueuedAndRun(t, syncs, 1) // one job: the start
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	if msg := ffmpegDecode(t, st.Path(res.Key)); msg != "" {
		t.Fatalf("decode: %s", msg)
	}
}
