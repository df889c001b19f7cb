package merge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/loadgen"
	"github.com/livrec/livrec/internal/remux"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/testenv"
)

// cycles is a task's cycle recordings made by livrec itself: a 20 s H.264/AAC file
// looped to 16 min and remuxed with a 900 s cycle, 10 s segments (two m3u8 files).
type cycles struct {
	root     string
	store    *storage.Local
	keys     []string
	duration float64 // sum of the files' durations (s)
	frames   int     // video frames
}

var (
	cyclesOnce sync.Once
	cyclesDir  string
	cyclesVal  *cycles
	cyclesErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cyclesDir != "" && os.Getenv("MERGE_KEEP") == "" {
		os.RemoveAll(cyclesDir)
	}
	os.Exit(code)
}

func makeCycles(t *testing.T) *cycles {
	t.Helper()
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	cyclesOnce.Do(func() {
		cyclesDir, cyclesErr = os.MkdirTemp("", "merge-test-")
		if cyclesErr != nil {
			return
		}
		cyclesVal, cyclesErr = buildCycles(cyclesDir)
	})
	if cyclesErr != nil {
		t.Fatal(cyclesErr)
	}
	return cyclesVal
}

func buildCycles(dir string) (*cycles, error) {
	// The audio of the looped piece ends just before its video (ffmpeg's AAC runs about
	// 70 ms past it otherwise), so the loop seams are one frame interval apart on both
	// tracks, as in a real push.
	short := filepath.Join(dir, "short.flv")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=20",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=19.95",
		"-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "flv", short).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg: %v\n%s", err, out)
	}
	src, err := loadgen.LoadFile(short)
	if err != nil {
		return nil, err
	}
	long := filepath.Join(dir, "task.flv")
	f, err := os.Create(long)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriter(f)
	err = src.WriteLoopedFLV(bw, 960*time.Second)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "store")
	res, err := remux.Run(context.Background(), long, root, remux.Options{Formats: []rules.Format{rules.M3U8},
		SliceDuration: 10, CycleDuration: 900})
	if err != nil {
		return nil, err
	}
	if len(res.Errors) > 0 || len(res.Files) != 2 {
		return nil, errors.New("remux: want 2 files without errors")
	}
	st, err := storage.NewLocal(root)
	if err != nil {
		return nil, err
	}
	c := &cycles{root: root, store: st, frames: res.VideoFrames}
	for _, fl := range res.Files {
		c.keys = append(c.keys, fl.Key)
		c.duration += fl.Duration
	}
	return c, nil
}

// ffprobeNum runs ffprobe with args and parses its one-number answer.
func ffprobeNum(t *testing.T, args ...string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error", "-of", "csv=p=0"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %v: %v", args, err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.Split(string(out), "\n")[0]), 64)
	if err != nil {
		t.Fatalf("ffprobe %v: %q", args, out)
	}
	return v
}

// decodeClean decodes the whole input with ffmpeg and fails on any error line.
func decodeClean(t *testing.T, in string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", in, "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("ffmpeg decode of %s: %v\n%s", in, err, out)
	}
}

func videoPackets(t *testing.T, in string) int {
	return int(ffprobeNum(t, "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets", in))
}

// TestPlaylistCycles merges livrec's two cycle files: every segment once, in order, one
// discontinuity (each file's TS timeline starts at 1 s), the sum of the durations,
// decoding clean with every video frame.
func TestPlaylistCycles(t *testing.T) {
	c := makeCycles(t)
	key := "merged/task.m3u8"
	res, err := Playlist(t.Context(), c.store, c.keys, key, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.Discontinuities != 1 {
		t.Errorf("discontinuities: %d, want 1 (the second cycle restarts at TS time 1 s)", res.Discontinuities)
	}
	if d := math.Abs(res.Duration.Seconds() - c.duration); d > 0.1 {
		t.Errorf("duration %.3f s, inputs %.3f s", res.Duration.Seconds(), c.duration)
	}
	path := filepath.Join(c.root, key)
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(body)
	if !strings.Contains(s, "#EXT-X-PLAYLIST-TYPE:VOD") || !strings.HasSuffix(s, "#EXT-X-ENDLIST\n") ||
		strings.Count(s, "#EXT-X-DISCONTINUITY\n") != 1 {
		t.Fatalf("playlist:\n%s", s)
	}
	var want []string
	for _, k := range c.keys {
		refs, err := References(t.Context(), c.store, k)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, refs...)
	}
	got, err := References(t.Context(), c.store, key)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || res.Segments != len(want) {
		t.Fatalf("merged references %d segments, inputs %d", len(got), len(want))
	}
	decodeClean(t, path)
	if n := videoPackets(t, path); n != c.frames {
		t.Errorf("merged playlist: %d video packets, input %d frames", n, c.frames)
	}
	t.Logf("merged playlist: %d segments, %.3f s (inputs %.3f s), %d discontinuity", res.Segments, res.Duration.Seconds(),
		c.duration, res.Discontinuities)
	// Deleting a cycle asset keeps the segments the merge still lists.
	orph, err := Orphans(t.Context(), c.store, c.keys[0], []string{key, c.keys[1]})
	if err != nil || len(orph) != 0 {
		t.Fatalf("orphans of cycle 1 with the merge kept: %v, %v", orph, err)
	}
	own, err := References(t.Context(), c.store, c.keys[0])
	if err != nil {
		t.Fatal(err)
	}
	orph, err = Orphans(t.Context(), c.store, c.keys[0], []string{c.keys[1]})
	if err != nil || !slices.Equal(orph, own) {
		t.Fatalf("orphans of cycle 1 alone: %d, %v", len(orph), err)
	}
	if _, err := Playlist(t.Context(), c.store, c.keys, key, t.TempDir()); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second merge to the same key: %v", err)
	}
}

// TestPlaylistContinuous splits one recording into two playlists: their timestamps
// continue, so the merge joins them without a discontinuity.
func TestPlaylistContinuous(t *testing.T) {
	c := makeCycles(t)
	pl, err := segment.ReadPlaylist(t.Context(), c.store, c.keys[0])
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	half := len(pl.Segments) / 2
	var parts []string
	for i, segs := range [][]segment.StoredSegment{pl.Segments[:half], pl.Segments[half:]} {
		var b strings.Builder
		b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:11\n#EXT-X-PLAYLIST-TYPE:VOD\n")
		for _, s := range segs {
			b.WriteString("#EXTINF:" + strconv.FormatFloat(s.Duration.Seconds(), 'f', 5, 64) + ",\n" +
				segment.RelativeURI("split/p.m3u8", s.Key) + "\n")
		}
		b.WriteString("#EXT-X-ENDLIST\n")
		tmp := filepath.Join(work, "p.m3u8")
		if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		k := "split/part" + strconv.Itoa(i) + ".m3u8"
		if err := c.store.Store(t.Context(), k, tmp); err != nil && !errors.Is(err, storage.ErrExists) {
			t.Fatal(err)
		}
		parts = append(parts, k)
	}
	res, err := Playlist(t.Context(), c.store, parts, "split/merged.m3u8", work)
	if err != nil {
		t.Fatal(err)
	}
	if res.Discontinuities != 0 || res.Segments != len(pl.Segments) || res.Duration != pl.Duration() {
		t.Fatalf("merge of a split recording: %+v (want no discontinuity, %d segments, %v)", res, len(pl.Segments), pl.Duration())
	}
}

// TestMP4Cycles merges the cycle files into one MP4 with livrec's mp4 writer.
func TestMP4Cycles(t *testing.T) {
	c := makeCycles(t)
	key := "merged/task.mp4"
	var calls int
	res, err := MP4(t.Context(), c.store, c.keys, key, t.TempDir(), MP4Options{Progress: func(done, total time.Duration) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.root, key)
	segs := 0
	for _, k := range c.keys {
		refs, err := References(t.Context(), c.store, k)
		if err != nil {
			t.Fatal(err)
		}
		segs += len(refs)
	}
	if calls != segs || res.Key != key {
		t.Errorf("progress calls %d (%d segments), result %+v", calls, segs, res)
	}
	if d := math.Abs(res.Duration.Seconds() - c.duration); d > 0.1 {
		t.Errorf("writer duration %.3f s, inputs %.3f s", res.Duration.Seconds(), c.duration)
	}
	if d := ffprobeNum(t, "-show_entries", "format=duration", path); math.Abs(d-c.duration) > 0.1 {
		t.Errorf("ffprobe duration %.3f s, inputs %.3f s", d, c.duration)
	}
	decodeClean(t, path)
	if n := videoPackets(t, path); n != c.frames {
		t.Errorf("mp4: %d video packets, input %d frames", n, c.frames)
	}
	// Audio: every frame of the inputs but the few the mp4 writer drops before the first
	// picture and at the join (overlap).
	var in int
	for _, k := range c.keys {
		in += audioPackets(t, filepath.Join(c.root, k))
	}
	n := audioPackets(t, path)
	if n > in || n < in-4 {
		t.Errorf("mp4: %d audio packets, inputs %d", n, in)
	}
	t.Logf("mp4: %.3f s (inputs %.3f s), %d video / %d audio packets (inputs %d / %d)", res.Duration.Seconds(), c.duration,
		c.frames, n, c.frames, in)
}

func audioPackets(t *testing.T, in string) int {
	return int(ffprobeNum(t, "-select_streams", "a:0", "-count_packets", "-show_entries", "stream=nb_read_packets", in))
}

// TestBadInput: each mistake names its field.
func TestBadInput(t *testing.T) {
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	work := t.TempDir()
	live := filepath.Join(work, "live.m3u8")
	os.WriteFile(live, []byte("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n1.ts\n"), 0o644)
	if err := st.Store(ctx, "a/live.m3u8", live); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		err  error
		want string
	}{
		"no inputs":  {func() error { _, err := Playlist(ctx, st, nil, "m.m3u8", work); return err }(), "inputs:"},
		"bad key":    {func() error { _, err := Playlist(ctx, st, []string{"a/live.m3u8"}, "m.mp4", work); return err }(), "key:"},
		"unsafe key": {func() error { _, err := Playlist(ctx, st, []string{"a/live.m3u8"}, "../m.m3u8", work); return err }(), "key:"},
		"missing":    {func() error { _, err := Playlist(ctx, st, []string{"nope.m3u8"}, "m.m3u8", work); return err }(), "inputs[0]:"},
		"live":       {func() error { _, err := Playlist(ctx, st, []string{"a/live.m3u8"}, "m.m3u8", work); return err }(), "ENDLIST"},
		"no workDir": {func() error { _, err := MP4(ctx, st, []string{"a/live.m3u8"}, "m.mp4", "", MP4Options{}); return err }(), "workDir:"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, c.err, c.want)
		}
	}
}
