package flvfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"

	"github.com/livrec/livrec/internal/format/segment/segtest"
)

// recordCase describes an input and how its output can be verified.
type recordCase struct {
	name string
	// ffmpeg: ffmpeg 5.1 can read the output (H.264, AAC, MP3). It cannot read Enhanced
	// RTMP HEVC nor FLV codec id 9 (MPEG-4 Part 2): those outputs are verified by reading
	// them back with package flv and livrec's demuxer and comparing every unit's bytes and
	// timestamps with the input, which is done for every case.
	ffmpeg bool
	codecs []string // ffprobe codec names, sorted
	tol    time.Duration
}

var recordCases = []recordCase{
	{name: inH264AAC, ffmpeg: true, codecs: []string{"aac", "h264"}},
	{name: inH264MP3, ffmpeg: true, codecs: []string{"h264", "mp3"}},
	{name: inMPEG4MP3},
	// From MPEG-TS: 90 kHz timestamps are rounded to milliseconds.
	{name: inH265AAC, tol: 500 * time.Microsecond},
	{name: inAACOnly, ffmpeg: true, codecs: []string{"aac"}},
}

func TestRecord(t *testing.T) {
	for _, c := range recordCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := getInput(t, c.name)
			st := newStore(t)
			w, dir := newTestWriter(t, st)
			if err := w.SetTracks(in.video, in.audio); err != nil {
				t.Fatal(err)
			}
			feed(t, w, in.aus)
			want, base := expectedUnits(in.aus, -1)
			// Only units before the first keyframe are dropped (ffmpeg's MPEG-4 Part 2
			// FLV starts with audio).
			if len(in.aus)-len(want) > 2 {
				t.Fatalf("%d of %d units kept", len(want), len(in.aus))
			}
			dur := w.Duration()
			res, err := w.Finish(context.Background(), testKey)
			if err != nil {
				t.Fatal(err)
			}
			if res.Key != testKey || res.Duration != dur || res.Segments != 0 {
				t.Errorf("result %+v, Duration() before Finish %v", res, dur)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("work dir not cleaned: %v", entries)
			}
			if _, err := w.Finish(context.Background(), testKey); !errors.Is(err, ErrFinished) {
				t.Errorf("second Finish: %v", err)
			}
			path := storedPath(t, st, testKey)
			fi := readBack(t, path)
			checkFile(t, c, in, fi, res)
			compareUnits(t, want, base, fi.aus, c.tol)
			if !fi.video.SameParams(in.video) || !fi.audio.SameParams(in.audio) {
				t.Errorf("tracks read back %+v / %+v, want %+v / %+v", fi.video, fi.audio, in.video, in.audio)
			}
			keys := 0
			for _, au := range in.aus {
				if au.Key && au.Track == in.video {
					keys++
				}
			}
			if len(fi.kfPos) != keys {
				t.Errorf("keyframes index has %d entries, input %d keyframes", len(fi.kfPos), keys)
			}
			if c.ffmpeg && filepath.Ext(in.path) == ".flv" && len(want) == len(in.aus) && base == 0 {
				// Independent of package flv: ffmpeg's own parser sees the same packets
				// (payload md5, DTS, PTS) in the input and in the recording.
				if a, b := framemd5(t, in.path), framemd5(t, path); !slices.Equal(a, b) {
					t.Errorf("ffmpeg framemd5 differs: input %d packets, recording %d", len(a), len(b))
					for i := range min(len(a), len(b)) {
						if a[i] != b[i] {
							t.Errorf("first difference at packet %d: %s vs %s", i, a[i], b[i])
							break
						}
					}
				}
			}
			t.Logf("%s: %v, %d bytes, %d keyframes, %d units", c.name, res.Duration, res.Bytes, len(fi.kfPos), len(fi.aus))
		})
	}
}

// checkFile verifies a stored file: header, onMetaData (duration, filesize, codecs, size,
// keyframe index), and for ffmpeg-readable codecs a clean decode and ffprobe's view.
func checkFile(t *testing.T, c recordCase, in *input, fi *fileInfo, res format.Result) {
	t.Helper()
	if fi.size != res.Bytes {
		t.Errorf("file is %d bytes, result says %d", fi.size, res.Bytes)
	}
	if fi.header.HasVideo != (in.video != nil) || fi.header.HasAudio != (in.audio != nil) {
		t.Errorf("header flags %+v", fi.header)
	}
	md := fi.md
	if d := time.Duration(md.Duration*1e9) - res.Duration; absDur(d) > time.Millisecond {
		t.Errorf("onMetaData duration %v s, result %v", md.Duration, res.Duration)
	}
	if v, _ := metaValue(t, fi, "filesize").(float64); int64(v) != fi.size {
		t.Errorf("onMetaData filesize %v, file %d", v, fi.size)
	}
	if in.video != nil {
		var id float64
		switch in.video.Codec {
		case media.H264:
			id = 7
		case media.H265:
			id = float64(flv.FourCCHEVC)
		case media.MPEG4Video:
			id = 9
		}
		if md.VideoCodecID != id || !md.HasVideo {
			t.Errorf("videocodecid %v (hasVideo %v), want %v", md.VideoCodecID, md.HasVideo, id)
		}
		if md.Width != 160 || md.Height != 120 || md.FrameRate < 24.9 || md.FrameRate > 25.1 {
			t.Errorf("width/height/framerate %v/%v/%v", md.Width, md.Height, md.FrameRate)
		}
		if md.VideoDataRate <= 0 {
			t.Errorf("videodatarate %v", md.VideoDataRate)
		}
		if v, _ := metaValue(t, fi, "hasKeyframes").(bool); !v {
			t.Error("hasKeyframes is not true")
		}
		if len(fi.kfPos) == 0 {
			t.Error("no keyframes index")
		}
		checkKeyframeIndex(t, fi)
	} else if md.HasVideo || len(fi.kfPos) != 0 {
		t.Errorf("audio-only file announces video (%v) or keyframes (%d)", md.HasVideo, len(fi.kfPos))
	}
	if in.audio != nil {
		id := 10.0
		if in.audio.Codec == media.MP3 {
			id = 2
		}
		if md.AudioCodecID != id || !md.HasAudio || md.AudioDataRate <= 0 {
			t.Errorf("audiocodecid %v (hasAudio %v, rate %v), want %v", md.AudioCodecID, md.HasAudio, md.AudioDataRate, id)
		}
	}
	// The duration covers the last unit's presentation plus at most about a frame.
	var lastPTS time.Duration
	for _, au := range fi.aus {
		lastPTS = max(lastPTS, au.PTS)
	}
	if res.Duration <= lastPTS || res.Duration > lastPTS+60*time.Millisecond {
		t.Errorf("duration %v, last unit presented at %v", res.Duration, lastPTS)
	}
	if !c.ffmpeg {
		return
	}
	if out := ffmpegDecode(t, fi.path); out != "" {
		t.Errorf("ffmpeg decode reported:\n%s", out)
	}
	pd, codecs := probe(t, fi.path)
	if absDur(pd-res.Duration) > 100*time.Millisecond {
		t.Errorf("ffprobe duration %v, result %v", pd, res.Duration)
	}
	if !slices.Equal(codecs, c.codecs) {
		t.Errorf("ffprobe codecs %v, want %v", codecs, c.codecs)
	}
}

func TestCrashRecover(t *testing.T) {
	in := getInput(t, inH264AAC)
	for _, variant := range []string{"flushed", "torn-tail", "zero-tail", "zeroed-end"} {
		t.Run(variant, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			w, dir := newTestWriter(t, st)
			if err := w.SetTracks(in.video, in.audio); err != nil {
				t.Fatal(err)
			}
			// Abandon the writer 60% in, as a kill -9 would: what sits in its buffer is
			// lost, the rest is in the working file.
			n := len(in.aus) * 6 / 10
			feed(t, w, in.aus[:n])
			want, base := expectedUnits(in.aus[:n], -1)
			var fedEnd time.Duration
			for _, au := range want {
				fedEnd = max(fedEnd, au.PTS-base)
			}
			work := filepath.Join(dir, workName)
			switch variant {
			case "torn-tail": // the last write stopped mid-tag
				fi, err := os.Stat(work)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(work, fi.Size()-7); err != nil {
					t.Fatal(err)
				}
			case "zeroed-end": // the last tag's end and PreviousTagSize never reached the disk
				f, err := os.OpenFile(work, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				fi, _ := f.Stat()
				_, _ = f.WriteAt(make([]byte, 20), fi.Size()-20)
				f.Close()
			case "zero-tail": // a power loss left zero-filled blocks
				f, err := os.OpenFile(work, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = f.Write(make([]byte, 4096))
				f.Close()
			}
			backup := copyDir(t, dir)

			var gotEnd time.Time
			keyFn := func(end time.Time) string {
				gotEnd = end
				return fmt.Sprintf("rec/%d.flv", end.UnixMilli())
			}
			res, err := Recover(context.Background(), dir, st, keyFn, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if !gotEnd.Equal(testStart.Add(res.Duration)) {
				t.Errorf("key end %v, want start + %v", gotEnd, res.Duration)
			}
			t.Logf("fed %v, recovered %v (%d bytes)", fedEnd, res.Duration, res.Bytes)
			// The writer hands its buffer to the OS at least every second of media.
			if res.Duration < fedEnd-1100*time.Millisecond || res.Duration > fedEnd+100*time.Millisecond {
				t.Errorf("recovered %v of %v fed", res.Duration, fedEnd)
			}
			path := storedPath(t, st, res.Key)
			fi := readBack(t, path)
			c := recordCase{name: variant, ffmpeg: true, codecs: []string{"aac", "h264"}}
			checkFile(t, c, in, fi, res)
			if len(fi.aus) == 0 || len(fi.aus) > len(want) {
				t.Fatalf("recovered %d units of %d", len(fi.aus), len(want))
			}
			compareUnits(t, want[:len(fi.aus)], base, fi.aus, 0)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("work dir not cleaned: %v", entries)
			}
			if _, err := Recover(context.Background(), dir, st, keyFn, nil); !errors.Is(err, ErrNothingToRecover) {
				t.Errorf("second Recover: %v", err)
			}

			// A crash after the store but before the cleanup: Recover runs again on the
			// same working files, finds the same bytes stored and succeeds.
			restoreDir(t, backup, dir)
			stored, _ := os.ReadFile(path)
			res2, err := Recover(context.Background(), dir, st, keyFn, nil)
			if err != nil || res2 != res {
				t.Errorf("repeated Recover: %+v, %v; first %+v", res2, err, res)
			}
			if again, _ := os.ReadFile(path); !bytes.Equal(again, stored) {
				t.Error("stored file changed")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("work dir not cleaned: %v", entries)
			}
		})
	}
}

func copyDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	if m[stateName] == nil || m[workName] == nil {
		t.Fatalf("work dir holds %d files, no state or working file", len(m))
	}
	return m
}

func restoreDir(t *testing.T, m map[string][]byte, dir string) {
	t.Helper()
	for name, b := range m {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecoverKeyChosen: a Finish whose store failed journaled its key; Recover stores
// under that key, not a new one.
func TestRecoverKeyChosen(t *testing.T) {
	in := getInput(t, inAACOnly)
	st := &flakyStore{Local: newStore(t), fails: 1}
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus[:200])
	if _, err := w.Finish(context.Background(), testKey); err == nil {
		t.Fatal("Finish succeeded with a failing store")
	}
	res, err := Recover(context.Background(), dir, st, func(time.Time) string { return "other.flv" }, nil)
	if err != nil || res.Key != testKey {
		t.Fatalf("Recover: %+v, %v", res, err)
	}
	fi := readBack(t, storedPath(t, st.Local, testKey))
	want, base := expectedUnits(in.aus[:200], -1)
	compareUnits(t, want, base, fi.aus, 0)
}

// TestFinishRetry: Finish after a failed store succeeds and stores the same file.
func TestFinishRetry(t *testing.T) {
	in := getInput(t, inH264MP3)
	st := &flakyStore{Local: newStore(t), fails: 1}
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	if _, err := w.Finish(context.Background(), testKey); err == nil {
		t.Fatal("Finish succeeded with a failing store")
	}
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	fi := readBack(t, storedPath(t, st.Local, testKey))
	checkFile(t, recordCase{name: inH264MP3, ffmpeg: true, codecs: []string{"h264", "mp3"}}, in, fi, res)
}

type flakyStore struct {
	*storage.Local
	fails int
}

func (s *flakyStore) Store(ctx context.Context, key, path string) error {
	if s.fails > 0 {
		s.fails--
		return errors.New("injected store failure")
	}
	return s.Local.Store(ctx, key, path)
}

func TestNeedNewFile(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newStore(t)
	w, _ := newTestWriter(t, st)
	other := *in.video
	other.SPS = append(bytes.Clone(in.video.SPS), 0x80) // a different SPS
	mp3 := &media.Track{Codec: media.MP3, SampleRate: 44100, Channels: 2}

	if err := w.WriteAU(in.aus[0]); !errors.Is(err, ErrNoTracks) {
		t.Errorf("WriteAU before SetTracks: %v", err)
	}
	// Before any media, tracks may change freely.
	if err := w.SetTracks(&other, mp3); err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus[:100])
	for _, c := range []struct {
		name         string
		video, audio *media.Track
	}{
		{"new SPS", &other, in.audio},
		{"audio codec", in.video, mp3},
		{"audio removed", in.video, nil},
		{"video removed", nil, in.audio},
	} {
		if err := w.SetTracks(c.video, c.audio); !errors.Is(err, format.ErrNeedNewFile) {
			t.Errorf("%s: SetTracks = %v, want ErrNeedNewFile", c.name, err)
		}
	}
	// Same parameters in new *Track values (a resumed publish): accepted; units of
	// either the old or the new values are written.
	v2, a2 := *in.video, *in.audio
	if err := w.SetTracks(&v2, &a2); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus[100:200])
	for _, au := range in.aus[200:] {
		cp := *au
		if au.Track == in.video {
			cp.Track = &v2
		} else {
			cp.Track = &a2
		}
		if err := w.WriteAU(&cp); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteAU(&media.AccessUnit{Track: &other, Key: true, NALUs: [][]byte{{0x65, 1}}}); err == nil {
		t.Error("unit of an undeclared track accepted")
	}
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	fi := readBack(t, storedPath(t, st, testKey))
	compareUnits(t, in.aus, 0, fi.aus, 0)
	checkFile(t, recordCases[0], in, fi, res)
}

// TestDiscontinuity: after a resume, video is dropped until the next keyframe; audio goes
// on and the timeline continues.
func TestDiscontinuity(t *testing.T) {
	in := getInput(t, inH264AAC)
	// Resume in the middle of the second GOP.
	resume, videos := -1, 0
	for i, au := range in.aus {
		if au.Track == in.video {
			if videos++; videos == 70 {
				resume = i
				break
			}
		}
	}
	if in.aus[resume].Key {
		t.Fatal("resume point is a keyframe")
	}
	st := newStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus[:resume])
	w.Discontinuity()
	feed(t, w, in.aus[resume:])
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	want, base := expectedUnits(in.aus, resume)
	droppedVideo := 0
	for _, au := range in.aus {
		if au.Track == in.video {
			droppedVideo++
		}
	}
	for _, au := range want {
		if au.Track == in.video {
			droppedVideo--
		}
	}
	if droppedVideo < 20 || len(in.aus)-len(want) != droppedVideo {
		t.Fatalf("expected %d video units dropped and no audio (%d kept of %d)", droppedVideo, len(want), len(in.aus))
	}
	fi := readBack(t, storedPath(t, st, testKey))
	compareUnits(t, want, base, fi.aus, 0)
	checkFile(t, recordCases[0], in, fi, res)
}

// TestStartsOnKeyframe: units before the first video keyframe (audio included) are dropped
// and the file's timestamps start at 0 on that keyframe.
func TestStartsOnKeyframe(t *testing.T) {
	in := getInput(t, inH264AAC)
	from, videos := -1, 0
	for i, au := range in.aus {
		if au.Track == in.video {
			if videos++; videos == 10 {
				from = i
				break
			}
		}
	}
	aus := in.aus[from:]
	want, base := expectedUnits(aus, -1)
	if base < time.Second || len(want) > len(aus)-50 {
		t.Fatalf("bad test input: base %v, %d of %d units kept", base, len(want), len(aus))
	}
	st := newStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, aus)
	if _, err := w.Finish(context.Background(), testKey); err != nil {
		t.Fatal(err)
	}
	fi := readBack(t, storedPath(t, st, testKey))
	if len(fi.aus) == 0 || fi.aus[0].Track != fi.video || !fi.aus[0].Key || fi.aus[0].DTS != 0 {
		t.Fatalf("the file does not start with a keyframe at 0: %+v", fi.aus[0])
	}
	compareUnits(t, want, base, fi.aus, 0)
	if out := ffmpegDecode(t, storedPath(t, st, testKey)); out != "" {
		t.Errorf("ffmpeg decode reported:\n%s", out)
	}
}

func TestNoMedia(t *testing.T) {
	st := newStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(nil, &media.Track{Codec: media.MP3, SampleRate: 44100, Channels: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finish(context.Background(), testKey); !errors.Is(err, ErrNoMedia) {
		t.Errorf("Finish without media: %v", err)
	}
	if _, err := Recover(context.Background(), dir, st, func(time.Time) string { return "x.flv" }, nil); !errors.Is(err, ErrNothingToRecover) {
		t.Errorf("Recover of an empty dir: %v", err)
	}
	if _, err := os.Stat(storedPath(t, st, testKey)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was stored: %v", err)
	}
	if _, err := New(Config{WorkDir: filepath.Join(dir, "missing"), Store: st}); err == nil {
		t.Error("New accepted a missing work dir")
	}
}

// BenchmarkWriter measures writing H.264 + AAC units into the working file (the per-unit
// cost while recording; Finish is excluded). Bytes are elementary-stream bytes.
func BenchmarkWriter(b *testing.B) {
	in := getInput(b, inH264AAC)
	var total int64
	for _, au := range in.aus {
		total += int64(au.Size())
	}
	period := in.aus[len(in.aus)-1].DTS + 40*time.Millisecond
	st := newStore(b)
	w, _ := newTestWriter(b, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total / int64(len(in.aus)))
	b.ReportAllocs()
	var au media.AccessUnit
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src := in.aus[i%len(in.aus)]
		shift := time.Duration(i/len(in.aus)) * period
		au = *src
		au.DTS += shift
		au.PTS += shift
		if err := w.WriteAU(&au); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = w.Close()
}

// TestFlushInterval: at any point while recording, the working file on disk holds the
// media up to at most about a second before the last unit fed (what a kill -9 keeps).
func TestFlushInterval(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	var fed time.Duration
	checks := 0
	for i, au := range in.aus {
		if err := w.WriteAU(au); err != nil {
			t.Fatal(err)
		}
		fed = max(fed, au.PTS)
		if i%10 != 0 || fed < 1500*time.Millisecond {
			continue
		}
		x, err := scanWork(filepath.Join(dir, workName), testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		checks++
		if onDisk := x.duration(&w.meta); onDisk < fed-1100*time.Millisecond {
			t.Fatalf("after %v fed, the working file holds %v", fed, onDisk)
		}
	}
	if checks < 20 {
		t.Fatalf("only %d checks", checks)
	}
	_ = w.Close()
}

// TestPause: when the publish ends (Pause) everything written so far is in the working
// file, not in the process: a crash during the stitch window loses nothing.
func TestPause(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	n := len(in.aus) / 2
	for _, au := range in.aus[:n] {
		if err := w.WriteAU(au); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, workName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= w.n {
		t.Fatalf("nothing buffered before the pause (%d of %d bytes in the file): the test proves nothing", fi.Size(), w.n)
	}
	sync := w.Pause()
	if sync == nil {
		t.Fatal("Pause returned no sync")
	}
	if err := sync(); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Stat(filepath.Join(dir, workName)); err != nil || fi.Size() != w.n {
		t.Fatalf("after Pause the working file has %d bytes (err %v), %d were written", fi.Size(), err, w.n)
	}
	var _ format.Pauser = w
	// The file goes on after a resume.
	w.Discontinuity()
	feed(t, w, in.aus[n:])
	res, err := w.Finish(context.Background(), "paused.flv")
	if err != nil {
		t.Fatal(err)
	}
	if out := ffmpegDecode(t, storedPath(t, st, res.Key)); out != "" {
		t.Fatalf("ffmpeg: %s", out)
	}
}

// With a Syncer the file's start (sidecar, directory) does not wait for the disk on the
// caller's goroutine: its fsyncs are queued, and the file finishes as without one.
func TestStartSyncOffCaller(t *testing.T) {
	in := getInput(t, inH264AAC)
	syncs := segtest.CountJournalSyncs(t)
	st, sy := newStore(t), &segtest.Syncer{}
	w, err := New(Config{WorkDir: t.TempDir(), Store: st, Now: func() time.Time { return testStart }, Logger: testLogger(t), Syncer: sy})
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
	if msg := ffmpegDecode(t, storedPath(t, st, res.Key)); msg != "" {
		t.Fatalf("decode: %s", msg)
	}
}
