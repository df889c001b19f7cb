package thumbnail

import (
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/remux"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/testenv"
	"github.com/livrec/livrec/internal/testmedia"
)

// recording is an m3u8 recording made by livrec (remux of a 95 s 320x180 H.264/AAC
// file with keyframes every second, 10 s segments).
type recording struct {
	playlist string
	duration time.Duration
}

var (
	recOnce sync.Once
	recVal  recording
	recErr  error
	recDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if recDir != "" {
		os.RemoveAll(recDir)
	}
	os.Exit(code)
}

func makeRecording(t *testing.T) recording {
	t.Helper()
	testenv.Require(t, testenv.FFmpeg)
	recOnce.Do(func() {
		if recDir, recErr = os.MkdirTemp("", "thumbnail-test-"); recErr != nil {
			return
		}
		var flv string
		flv, recErr = testmedia.MakeFLV(recDir, testmedia.Spec{Video: testmedia.H264, Audio: testmedia.AAC, Seconds: 95,
			Width: 320, Height: 180})
		if recErr != nil {
			return
		}
		var res *remux.Result
		res, recErr = remux.Run(t.Context(), flv, filepath.Join(recDir, "store"), remux.Options{Formats: []rules.Format{rules.M3U8}, SliceDuration: 10})
		if recErr == nil && len(res.Files) != 1 {
			recErr = fmt.Errorf("remux: %+v", res)
		}
		if recErr == nil {
			recVal = recording{playlist: res.Files[0].Path, duration: time.Duration(res.Files[0].Duration * float64(time.Second))}
		}
	})
	if recErr != nil {
		t.Fatal(recErr)
	}
	return recVal
}

func decodeJPEG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

func TestCover(t *testing.T) {
	rec := makeRecording(t)
	dir := t.TempDir()
	for name, opt := range map[string]CoverOptions{
		"default":             {},
		"offset 30 s":         {Offset: 30 * time.Second, Duration: rec.duration},
		"clamped to duration": {Offset: time.Hour, Duration: rec.duration},
		"past the end":        {Offset: time.Hour}, // no duration given: falls back to 0
	} {
		out := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".jpg")
		img, err := Cover(t.Context(), rec.playlist, out, opt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b := decodeJPEG(t, out).Bounds()
		if img.Width != 320 || img.Height != 180 || b.Dx() != 320 || b.Dy() != 180 {
			t.Errorf("%s: cover %dx%d (decoded %v), want the stream's 320x180", name, img.Width, img.Height, b)
		}
	}
	// The offset is honoured: the test pattern moves, so pictures 29 s apart differ and
	// one taken again at the same offset does not.
	def, at30 := decodeJPEG(t, filepath.Join(dir, "default.jpg")), decodeJPEG(t, filepath.Join(dir, "offset_30_s.jpg"))
	again := filepath.Join(dir, "again.jpg")
	if _, err := Cover(t.Context(), rec.playlist, again, CoverOptions{Offset: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if d := meanDiff(def, at30); d < 5 {
		t.Errorf("covers at 1 s and 30 s differ by %.1f on average: the offset was not used", d)
	}
	if d := meanDiff(at30, decodeJPEG(t, again)); d > 0.5 {
		t.Errorf("two covers at 30 s differ by %.1f", d)
	}
}

// meanDiff is the mean absolute difference of the green channel (0–255).
func meanDiff(a, b image.Image) float64 {
	var sum, n float64
	r := a.Bounds().Intersect(b.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			_, ga, _, _ := a.At(x, y).RGBA()
			_, gb, _, _ := b.At(x, y).RGBA()
			sum += math.Abs(float64(ga>>8) - float64(gb>>8))
			n++
		}
	}
	return sum / n
}

// TestSprites: 95 s at 10 s = 10 tiles on 4×2 sheets: two sheets of 4×80 by 2×46 px, 10
// cues whose rectangles lie inside them; the last tile is a picture and the padding after
// it is empty.
func TestSprites(t *testing.T) {
	rec := makeRecording(t)
	dir := t.TempDir()
	sp, err := Sprites(t.Context(), rec.playlist, dir, SpriteOptions{Duration: rec.duration, TileWidth: 80, Columns: 4, Rows: 2})
	if err != nil {
		t.Fatal(err)
	}
	wantTiles := int((rec.duration + DefaultInterval - 1) / DefaultInterval)
	if sp.Tiles != wantTiles || wantTiles != 10 || len(sp.Sheets) != 2 || sp.TileWidth != 80 || sp.TileHeight != 46 {
		t.Fatalf("sprite %+v, want %d tiles of 80x46 (45 rounded to even) on 2 sheets", sp, wantTiles)
	}
	sheets := map[string]image.Image{}
	for i, p := range sp.Sheets {
		img := decodeJPEG(t, p)
		if b := img.Bounds(); b.Dx() != 4*80 || b.Dy() != 2*46 {
			t.Fatalf("sheet %d is %v, want 320x92", i, b)
		}
		sheets[filepath.Base(p)] = img
	}
	vtt, err := os.ReadFile(sp.VTT)
	if err != nil {
		t.Fatal(err)
	}
	cue := regexp.MustCompile(`(?m)^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)$`)
	if !strings.HasPrefix(string(vtt), "WEBVTT\n\n") {
		t.Fatalf("vtt:\n%s", vtt)
	}
	cues := cue.FindAllStringSubmatch(string(vtt), -1)
	if len(cues) != wantTiles || strings.Count(string(vtt), "-->") != wantTiles {
		t.Fatalf("%d cues, want %d:\n%s", len(cues), wantTiles, vtt)
	}
	ts := func(m []string) time.Duration {
		n := make([]int, 4)
		for i := range n {
			n[i], _ = strconv.Atoi(m[i])
		}
		return time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute + time.Duration(n[2])*time.Second +
			time.Duration(n[3])*time.Millisecond
	}
	var prevEnd time.Duration
	for i, c := range cues {
		start, end := ts(c[1:5]), ts(c[5:9])
		if start != prevEnd || end <= start || end-start > DefaultInterval {
			t.Errorf("cue %d: %v --> %v after %v", i, start, end, prevEnd)
		}
		prevEnd = end
		img := sheets[c[9]]
		if img == nil {
			t.Fatalf("cue %d names %q, not a sheet", i, c[9])
		}
		var r [4]int
		for j := range r {
			r[j], _ = strconv.Atoi(c[10+j])
		}
		rect := image.Rect(r[0], r[1], r[0]+r[2], r[1]+r[3])
		if !rect.In(img.Bounds()) || r[2] != 80 || r[3] != 46 {
			t.Errorf("cue %d: %v outside the sheet %v or not a tile", i, rect, img.Bounds())
		}
		if lumaSpread(img, rect) < 20 {
			t.Errorf("cue %d: tile %v is blank", i, rect)
		}
	}
	if d := prevEnd - rec.duration.Truncate(time.Millisecond); d != 0 {
		t.Errorf("last cue ends at %v, video lasts %v", prevEnd, rec.duration)
	}
	// Sheet 1 holds tiles 8 and 9; its other six places are padding.
	if s := lumaSpread(sheets[filepath.Base(sp.Sheets[1])], image.Rect(160, 0, 240, 46)); s > 20 {
		t.Errorf("the padding after the last tile is not empty (spread %d): more tiles than cues", s)
	}
}

// lumaSpread is max − min of the green channel over r (inset by 2 px against JPEG
// ringing): a test-pattern tile has a wide spread, the black padding none.
func lumaSpread(img image.Image, r image.Rectangle) int {
	lo, hi := 255, 0
	for y := r.Min.Y + 2; y < r.Max.Y-2; y++ {
		for x := r.Min.X + 2; x < r.Max.X-2; x++ {
			_, g, _, _ := img.At(x, y).RGBA()
			v := int(g >> 8)
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	return hi - lo
}

func TestVTTAgreesWithGeometry(t *testing.T) {
	sp := &Sprite{Tiles: 7, TileWidth: 100, TileHeight: 50, Columns: 2, Rows: 2}
	got := string(VTT(sp, 65*time.Second, 10*time.Second, sheetName))
	want := "WEBVTT\n\n00:00:00.000 --> 00:00:10.000\nsprite_000.jpg#xywh=0,0,100,50\n" +
		"\n00:00:10.000 --> 00:00:20.000\nsprite_000.jpg#xywh=100,0,100,50\n" +
		"\n00:00:20.000 --> 00:00:30.000\nsprite_000.jpg#xywh=0,50,100,50\n" +
		"\n00:00:30.000 --> 00:00:40.000\nsprite_000.jpg#xywh=100,50,100,50\n" +
		"\n00:00:40.000 --> 00:00:50.000\nsprite_001.jpg#xywh=0,0,100,50\n" +
		"\n00:00:50.000 --> 00:01:00.000\nsprite_001.jpg#xywh=100,0,100,50\n" +
		"\n00:01:00.000 --> 00:01:05.000\nsprite_001.jpg#xywh=0,50,100,50\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestOptionErrors(t *testing.T) {
	for field, opt := range map[string]SpriteOptions{
		"duration:":  {},
		"interval:":  {Duration: time.Minute, Interval: time.Millisecond},
		"tileWidth:": {Duration: time.Minute, TileWidth: 161},
		"columns:":   {Duration: time.Minute, Columns: 51},
		"rows:":      {Duration: time.Minute, Rows: -1},
		"quality:":   {Duration: time.Minute, Quality: 40},
	} {
		_, err := Sprites(t.Context(), "in.m3u8", t.TempDir(), opt)
		if err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("%+v: %v, want an error about %s", opt, err, field)
		}
	}
	if _, err := Sprites(t.Context(), "in.m3u8", t.TempDir(), SpriteOptions{Duration: 1000 * time.Hour, Interval: time.Second}); err == nil ||
		!strings.HasPrefix(err.Error(), "interval:") {
		t.Errorf("too many tiles: %v", err)
	}
	if _, err := Sprites(t.Context(), "in.m3u8", t.TempDir(), SpriteOptions{Duration: time.Minute, Columns: 50, TileWidth: 200}); err == nil ||
		!strings.HasPrefix(err.Error(), "columns:") {
		t.Errorf("sheet too wide: %v", err)
	}
	if _, err := Cover(t.Context(), "in.m3u8", "x.jpg", CoverOptions{Offset: -time.Second}); err == nil || !strings.HasPrefix(err.Error(), "offset:") {
		t.Errorf("negative offset: %v", err)
	}
	testenv.Require(t, testenv.FFmpeg)
	if _, err := Cover(t.Context(), filepath.Join(t.TempDir(), "missing.m3u8"), filepath.Join(t.TempDir(), "x.jpg"), CoverOptions{}); err == nil ||
		!strings.Contains(err.Error(), "ffmpeg") {
		t.Errorf("missing input: %v", err)
	}
}
