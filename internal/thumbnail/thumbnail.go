// Package thumbnail makes the pictures of a recorded video with ffmpeg, from the
// recording itself (an m3u8 playlist path or URL, or any file ffmpeg reads):
//
//   - Cover: one JPEG at the stream's resolution from the keyframe at (or just before) an
//     offset near the start (default 1 s; one past the end is moved into the video).
//   - Sprites: a seek-preview sprite sheet (one tile every Interval, tiles TileWidth wide
//     keeping the aspect ratio, at most Columns×Rows tiles per JPEG sheet, so long videos
//     get several sheets) and the WebVTT thumbnails track players read (video.js, Plyr,
//     Vidstack, JW Player): one cue per tile, "sheet.jpg#xywh=x,y,w,h".
//
// Both decode keyframes only (-discard nokey, -skip_frame nokey): a cover costs one decoded picture, a
// sprite sheet one pass over the file in which only the keyframes are decoded; the fps
// filter picks one picture per interval and the tile filter lays them out, so the sheet
// geometry (and the cue coordinates computed here) is fixed: tile i of n = ceil(duration
// / Interval) is at column i mod Columns, row (i / Columns) mod Rows of sheet i / (Columns
// × Rows), every sheet Columns×TileWidth by Rows×TileHeight (the last one padded).
package thumbnail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/livrec/livrec/internal/ffmpeg"
)

// Defaults and limits of the options.
const (
	DefaultCoverOffset = time.Second
	DefaultInterval    = 10 * time.Second
	MinInterval        = time.Second
	MaxInterval        = time.Hour
	DefaultTileWidth   = 160
	MinTileWidth       = 32
	MaxTileWidth       = 1280
	DefaultColumns     = 10
	DefaultRows        = 10
	MaxGrid            = 50     // columns or rows per sheet
	MaxSheetWidth      = 8192   // pixels: Columns × TileWidth
	MaxTiles           = 100000 // tiles of one video (27 h at 1 s)
	DefaultQuality     = 3      // ffmpeg -q:v for JPEG, 2 (best) to 31
)

// Image is a JPEG written.
type Image struct {
	Path          string
	Width, Height int
}

// CoverOptions configures Cover. The zero value is valid.
type CoverOptions struct {
	// FFmpeg is the ffmpeg binary (default "ffmpeg" from PATH).
	FFmpeg string
	// Offset is where the cover is taken (default 1 s): the keyframe at or before it.
	Offset time.Duration
	// Duration is the video's duration, if known: an offset at or past it is moved to the
	// middle. Without it, an offset that finds no picture is retried at 0.
	Duration time.Duration
	// Quality is the JPEG quality as ffmpeg's -q:v, 2 (best) to 31 (default 3).
	Quality int
}

func (o *CoverOptions) validate() error {
	if o.FFmpeg == "" {
		o.FFmpeg = ffmpeg.FFmpeg
	}
	if o.Offset < 0 {
		return fmt.Errorf("offset: %v is negative (0 or more)", o.Offset)
	}
	if o.Offset == 0 {
		o.Offset = DefaultCoverOffset
	}
	if o.Duration < 0 {
		return fmt.Errorf("duration: %v is negative", o.Duration)
	}
	if o.Duration > 0 && o.Offset >= o.Duration {
		// An offset past the end would find no picture: the middle stands for the video.
		o.Offset = o.Duration / 2
	}
	return checkQuality(&o.Quality)
}

func checkQuality(q *int) error {
	if *q == 0 {
		*q = DefaultQuality
	}
	if *q < 2 || *q > 31 {
		return fmt.Errorf("quality: %d is outside 2–31", *q)
	}
	return nil
}

// Cover writes the cover JPEG of input to out (a local path; an existing file is
// replaced) and returns its size, the stream's resolution.
func Cover(ctx context.Context, input, out string, opt CoverOptions) (*Image, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	if input == "" {
		return nil, errors.New("input: required")
	}
	if out == "" {
		return nil, errors.New("out: required")
	}
	for _, off := range []time.Duration{opt.Offset, 0} {
		os.Remove(out)
		// -noaccurate_seek: the keyframe at or before the offset, not a picture decoded
		// from it up to the offset; -skip_frame nokey: no other picture is decoded.
		err := run(ctx, opt.FFmpeg, "-ss", seconds(off), "-noaccurate_seek", "-skip_frame", "nokey", "-i", input,
			"-map", "0:v:0", "-an", "-sn", "-dn", "-frames:v", "1", "-q:v", strconv.Itoa(opt.Quality),
			"-f", "image2", "-update", "1", out)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
			return decodeSize(out)
		}
		if off == 0 {
			break
		}
	}
	return nil, fmt.Errorf("input %s: no video picture found", input)
}

// SpriteOptions configures Sprites.
type SpriteOptions struct {
	// FFmpeg is the ffmpeg binary (default "ffmpeg" from PATH).
	FFmpeg string
	// Duration of the video (required): the number of tiles is ceil(Duration / Interval)
	// and the last cue ends at Duration.
	Duration time.Duration
	// Interval between tiles (default 10 s, 1 s–1 h).
	Interval time.Duration
	// TileWidth in pixels (default 160, 32–1280, even); the height keeps the aspect ratio
	// (rounded to even).
	TileWidth int
	// Columns and Rows of tiles per sheet (default 10×10, 1–50 each; Columns×TileWidth at
	// most 8192).
	Columns, Rows int
	// Quality is the JPEG quality as ffmpeg's -q:v, 2 (best) to 31 (default 3).
	Quality int
	// SheetURL is how the VTT cues name sheet i (default "sprite_000.jpg" ...: the file
	// names, relative to the VTT).
	SheetURL func(i int) string
}

func (o *SpriteOptions) validate() error {
	if o.FFmpeg == "" {
		o.FFmpeg = ffmpeg.FFmpeg
	}
	if o.Duration <= 0 {
		return errors.New("duration: required (the video's duration, more than 0)")
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Interval < MinInterval || o.Interval > MaxInterval {
		return fmt.Errorf("interval: %v is outside %v–%v", o.Interval, MinInterval, MaxInterval)
	}
	if o.TileWidth == 0 {
		o.TileWidth = DefaultTileWidth
	}
	if o.TileWidth < MinTileWidth || o.TileWidth > MaxTileWidth || o.TileWidth%2 != 0 {
		return fmt.Errorf("tileWidth: %d is not an even number in %d–%d", o.TileWidth, MinTileWidth, MaxTileWidth)
	}
	if o.Columns == 0 {
		o.Columns = DefaultColumns
	}
	if o.Rows == 0 {
		o.Rows = DefaultRows
	}
	if o.Columns < 1 || o.Columns > MaxGrid {
		return fmt.Errorf("columns: %d is outside 1–%d", o.Columns, MaxGrid)
	}
	if o.Rows < 1 || o.Rows > MaxGrid {
		return fmt.Errorf("rows: %d is outside 1–%d", o.Rows, MaxGrid)
	}
	if o.Columns*o.TileWidth > MaxSheetWidth {
		return fmt.Errorf("columns: %d tiles of %d px make a sheet wider than %d px", o.Columns, o.TileWidth, MaxSheetWidth)
	}
	if n := tileCount(o.Duration, o.Interval); n > MaxTiles {
		return fmt.Errorf("interval: %v over %v makes %d tiles, at most %d", o.Interval, o.Duration, n, MaxTiles)
	}
	if o.SheetURL == nil {
		o.SheetURL = sheetName
	}
	return checkQuality(&o.Quality)
}

func sheetName(i int) string { return fmt.Sprintf("sprite_%03d.jpg", i) }

func tileCount(d, interval time.Duration) int {
	return int((d + interval - 1) / interval)
}

// Sprite describes the sheets and the track written.
type Sprite struct {
	Sheets                []string // paths, sheet i = SheetURL(i) in the cues
	VTT                   string   // path of thumbnails.vtt
	Tiles                 int      // = cues
	TileWidth, TileHeight int
	Columns, Rows         int
	SheetWidth            int
	SheetHeight           int
}

// Sprites writes the sprite sheets of input (sprite_000.jpg, ...) and thumbnails.vtt into
// outDir (an existing directory; files of the same names are replaced).
func Sprites(ctx context.Context, input, outDir string, opt SpriteOptions) (*Sprite, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	if input == "" {
		return nil, errors.New("input: required")
	}
	if fi, err := os.Stat(outDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("outDir: %q is not a directory", outDir)
	}
	n := tileCount(opt.Duration, opt.Interval)
	per := opt.Columns * opt.Rows
	sheets := (n + per - 1) / per
	iv := seconds(opt.Interval)
	// Keyframes only. round=up puts each picture into the first slot at or after it, and
	// the fps filter keeps the newest picture of a slot: tile i is the keyframe at or just
	// before i×interval, the cue's start. The last keyframe is held for one more interval
	// (tpad) so that every slot up to the end has a picture; trim keeps exactly n tiles.
	vf := fmt.Sprintf("tpad=stop_mode=clone:stop_duration=%s,fps=fps=1/%s:start_time=0:round=up,trim=end_frame=%d,"+
		"scale=%d:-2:flags=bilinear,setsar=1,tile=%dx%d", iv, iv, n, opt.TileWidth, opt.Columns, opt.Rows)
	tmp, err := os.MkdirTemp(outDir, ".sprite-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// -discard nokey drops the other packets in the demuxer, before parser and decoder
	// (a third less time than -skip_frame alone; decoding the keyframes is the cost).
	err = run(ctx, opt.FFmpeg, "-discard", "nokey", "-skip_frame", "nokey", "-i", input, "-map", "0:v:0", "-an", "-sn", "-dn",
		"-vf", vf, "-fps_mode", "passthrough", "-q:v", strconv.Itoa(opt.Quality),
		"-f", "image2", "-start_number", "0", filepath.Join(tmp, "s%06d.jpg"))
	if err != nil {
		return nil, err
	}
	sp := &Sprite{Tiles: n, TileWidth: opt.TileWidth, Columns: opt.Columns, Rows: opt.Rows}
	for i := range sheets {
		src := filepath.Join(tmp, fmt.Sprintf("s%06d.jpg", i))
		img, err := decodeSize(src)
		if err != nil {
			return nil, fmt.Errorf("input %s: ffmpeg made %d of %d sprite sheets: %w", input, i, sheets, err)
		}
		if i == 0 {
			sp.SheetWidth, sp.SheetHeight = img.Width, img.Height
			sp.TileHeight = img.Height / opt.Rows
		}
		if img.Width != opt.Columns*opt.TileWidth || img.Height != sp.SheetHeight || img.Height%opt.Rows != 0 {
			return nil, fmt.Errorf("input %s: sprite sheet %d is %dx%d, not %d×%d tiles of width %d", input, i,
				img.Width, img.Height, opt.Columns, opt.Rows, opt.TileWidth)
		}
		dst := filepath.Join(outDir, sheetName(i))
		if err := os.Rename(src, dst); err != nil {
			return nil, err
		}
		sp.Sheets = append(sp.Sheets, dst)
	}
	sp.VTT = filepath.Join(outDir, "thumbnails.vtt")
	if err := os.WriteFile(sp.VTT, VTT(sp, opt.Duration, opt.Interval, opt.SheetURL), 0o644); err != nil {
		return nil, err
	}
	return sp, nil
}

// VTT returns the WebVTT thumbnails track of sp: cue i covers [i×interval,
// min((i+1)×interval, duration)) and shows tile i.
func VTT(sp *Sprite, duration, interval time.Duration, sheetURL func(int) string) []byte {
	var b bytes.Buffer
	b.WriteString("WEBVTT\n")
	per := sp.Columns * sp.Rows
	for i := range sp.Tiles {
		start := time.Duration(i) * interval
		end := min(start+interval, duration)
		in := i % per
		x, y := (in%sp.Columns)*sp.TileWidth, (in/sp.Columns)*sp.TileHeight
		fmt.Fprintf(&b, "\n%s --> %s\n%s#xywh=%d,%d,%d,%d\n", vttTime(start), vttTime(end), sheetURL(i/per),
			x, y, sp.TileWidth, sp.TileHeight)
	}
	return b.Bytes()
}

// vttTime formats hh:mm:ss.mmm.
func vttTime(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// seconds formats d for ffmpeg.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// decodeSize reads a JPEG's dimensions (and checks it is one).
func decodeSize(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := jpeg.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not a JPEG: %w", path, err)
	}
	return &Image{Path: path, Width: cfg.Width, Height: cfg.Height}, nil
}

// run runs ffmpeg with args; a failure carries its last stderr lines (ffmpeg.Error).
func run(ctx context.Context, bin string, args ...string) error {
	return ffmpeg.Run(ctx, append([]string{"-v", "error", "-y"}, args...), ffmpeg.Options{Bin: bin})
}
