// Package remux runs the recording pipeline offline: the tags of an FLV file go through
// the same record.Manager as a live publish (demuxer, timestamp repair, one writer per
// format, local storage, catalog), as fast as the disk and CPU allow. `livrec remux`
// converts FLV archives with it, and it is the cleanest throughput benchmark of the
// recorder: no network, no pacing.
//
// Unlike live recording, a remux fsyncs nothing (record.Config.NoSync, storage.Local
// NoSync): the input remains on disk, so a crash (or power loss) only means running the
// conversion again. The page cache writes the files back in its own time, as ffmpeg's
// output is.
//
// A regular input file is mapped into memory and the tag bodies are handed to the demuxer
// as parts of the mapping, without a copy. Truncating the input while it is remuxed
// therefore kills the process (SIGBUS), as with any reader of a mapped file.
package remux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// Defaults of Options.
const (
	DefaultApp               = "remux"
	DefaultDomain            = "remux"
	DefaultObjectPrefix      = "{StreamName}/{EscapedStartTime}_{EscapedEndTime}"
	DefaultSliceObjectPrefix = "{StreamName}/{UnixTimestamp}_{Sequence}"
)

// Options configures Run. Zero values select the defaults.
type Options struct {
	// Formats to write (default m3u8). m3u8 and cmaf cannot be combined (rules.Validate).
	Formats []rules.Format
	// SliceDuration (s) of m3u8/cmaf segments, 5–30 (default 30).
	SliceDuration int
	// CycleDuration (s): a new file is started after this much media, 900–21600
	// (default 21600).
	CycleDuration int
	// Stream is the {StreamName} of the keys (default: the input's base name without the
	// extension, reduced to letters, digits, "-" and "_").
	Stream string
	// ObjectPrefix and SliceObjectPrefix are the key templates (defaults above: the files
	// land in OUTDIR/{StreamName}/).
	ObjectPrefix, SliceObjectPrefix string
	// StateDir holds the working files (default: a temporary directory
	// OUTDIR/.livrec-remux-*, removed at the end; inside OUTDIR so finished files are
	// hard-linked into place, not copied).
	StateDir string
	// Progress, if set, is called with the input bytes read so far and the input size
	// (0 if unknown), at most every 256 KiB, and once at the end.
	Progress func(done, total int64)
	// Logger receives the recorder's log (default: discarded).
	Logger *slog.Logger
}

// File is one generated recording.
type File struct {
	Format   string  `json:"format"`
	Key      string  `json:"key"`
	Path     string  `json:"path"`
	Duration float64 `json:"duration"` // media seconds
	Bytes    int64   `json:"bytes"`
	Segments int     `json:"segments,omitempty"`
}

// Result summarises a run.
type Result struct {
	Input      string `json:"input"`
	InputBytes int64  `json:"inputBytes"`
	Tags       int    `json:"tags"`
	VideoTags  int    `json:"videoTags"`
	AudioTags  int    `json:"audioTags"`
	// VideoFrames and AudioFrames count the tags that carry coded frames (not the
	// decoder configuration or end-of-sequence tags).
	VideoFrames   int           `json:"videoFrames"`
	AudioFrames   int           `json:"audioFrames"`
	MediaDuration time.Duration `json:"mediaDurationNs"`
	Elapsed       time.Duration `json:"elapsedNs"`
	Files         []File        `json:"files"`
	// Errors are the recorder's record_error events (a failed file, a taken key, ...).
	Errors []string `json:"errors,omitempty"`
}

// MBps is the input throughput in MB/s (10^6 bytes).
func (r *Result) MBps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.InputBytes) / 1e6 / r.Elapsed.Seconds()
}

// Speed is media duration over elapsed time ("x real time").
func (r *Result) Speed() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return r.MediaDuration.Seconds() / r.Elapsed.Seconds()
}

// StreamName reduces a file's base name to a valid stream name.
func StreamName(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	b := make([]byte, 0, len(base))
	for i := 0; i < len(base) && len(b) < rules.MaxNameLen; i++ {
		c := base[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	if len(b) == 0 {
		return "stream"
	}
	return string(b)
}

// Rule returns the catch-all rule Run records with.
func (o *Options) Rule() (rules.Rule, error) {
	formats := o.Formats
	if len(formats) == 0 {
		formats = []rules.Format{rules.M3U8}
	}
	objPrefix, slicePrefix := o.ObjectPrefix, o.SliceObjectPrefix
	if objPrefix == "" {
		objPrefix = DefaultObjectPrefix
	}
	if slicePrefix == "" {
		slicePrefix = DefaultSliceObjectPrefix
	}
	r := rules.Rule{DomainName: rules.Wildcard, AppName: rules.Wildcard, StreamName: rules.Wildcard}
	for _, f := range formats {
		rf := rules.RecordFormat{Format: f, ObjectPrefix: objPrefix, CycleDuration: o.CycleDuration}
		if f.Sliced() {
			rf.SliceObjectPrefix, rf.SliceDuration = slicePrefix, o.SliceDuration
		}
		r.RecordFormats = append(r.RecordFormats, rf)
	}
	r.Normalize()
	if err := r.Validate(); err != nil {
		return rules.Rule{}, err
	}
	return r, nil
}

const progressStep = 256 << 10

// Run records the FLV file in as one publish into outDir (a local storage root) and
// returns the generated files. Every file is finalized before Run returns. The error is
// about the run as a whole (input, set-up); failures of single files are in
// Result.Errors.
func Run(ctx context.Context, in, outDir string, opt Options) (*Result, error) {
	rule, err := opt.Rule()
	if err != nil {
		return nil, fmt.Errorf("remux: %w", err)
	}
	stream := opt.Stream
	if stream == "" {
		stream = StreamName(in)
	}
	if err := rules.ValidName(stream); err != nil {
		return nil, fmt.Errorf("remux: stream name %w", err)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	// The tag bodies are handed over to the demuxer (record.Config.TakeTagBodies): parts of
	// the mapped file (no read copies, no buffers), or, if it cannot be mapped (not a
	// regular file), of fresh blocks read from it.
	var fr *flv.Reader
	if m := mapFile(f, size); m != nil {
		defer unmapFile(m) // runs after mgr.Shutdown below: no access unit is in use then
		fr, err = flv.NewBytesReader(m)
	} else {
		fr, err = flv.NewReader(f)
		if fr != nil {
			fr.FreshBodies = true
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	var nextProgress int64

	store, err := storage.NewLocal(outDir)
	if err != nil {
		return nil, err
	}
	store.NoSync = true // offline conversion: the input remains; a crash means rerun
	stateDir := opt.StateDir
	if stateDir == "" {
		stateDir, err = os.MkdirTemp(store.Root, ".livrec-remux-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(stateDir)
	} else if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	set, err := rules.NewSet([]rules.Rule{rule})
	if err != nil {
		return nil, err
	}

	res := &Result{Input: in}
	var mu sync.Mutex
	mgr := record.NewManager(record.Config{
		Rules: set,
		// The rows live as long as the run: the files' outcome is reported in Result.
		Catalog: &record.MemoryCatalog{},
		Store:   store,
		WorkDir: filepath.Join(stateDir, "work"),
		Logger:  log,
		NoSync:  true,
		// Every tag body is fresh (FreshBodies): the demuxer keeps it without a copy.
		TakeTagBodies: true,
		OnEvent: func(ev record.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ev.Type == record.EventFileCreated && ev.File != nil:
				p, _ := store.Path(ev.File.Key)
				res.Files = append(res.Files, File{Format: ev.File.Format, Key: ev.File.Key, Path: p,
					Duration: ev.File.Duration, Bytes: ev.File.Bytes, Segments: ev.File.Segments})
			case ev.Type == record.EventError:
				res.Errors = append(res.Errors, ev.Code+": "+ev.Message)
			}
		},
	})

	start := time.Now()
	sess, err := mgr.Publish(&rtmp.PublishRequest{App: DefaultApp, Stream: stream, Domain: DefaultDomain,
		TcURL: "file://" + in, Args: url.Values{}, PublishType: "record"})
	if err != nil {
		return nil, err
	}
	var first, maxOff uint32
	var runErr error
	for {
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		t, err := fr.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			runErr = fmt.Errorf("%s: %w", in, err)
			break
		}
		switch t.Type {
		case flv.TagVideo:
			res.VideoTags++
			if h, err := flv.ParseVideoTagHeader(t.Body); err == nil && h.Kind == flv.PacketFrame {
				res.VideoFrames++
			}
		case flv.TagAudio:
			res.AudioTags++
			if h, err := flv.ParseAudioTagHeader(t.Body); err == nil && h.Kind == flv.PacketFrame {
				res.AudioFrames++
			}
		}
		if t.Type == flv.TagVideo || t.Type == flv.TagAudio {
			if res.VideoTags+res.AudioTags == 1 {
				first = t.Timestamp
			} else if off := t.Timestamp - first; int32(off) > int32(maxOff) {
				maxOff = off
			}
		}
		res.Tags++
		if opt.Progress != nil && fr.Offset() >= nextProgress {
			opt.Progress(fr.Offset(), size)
			nextProgress = fr.Offset() + progressStep
		}
		if err := sess.Tag(t); err != nil {
			runErr = fmt.Errorf("%s: tag %d: %w", in, res.Tags, err)
			break
		}
	}
	sess.Close(runErr)
	// Shutdown ends the (paused) task now: every open file is finalized and stored.
	mgr.Shutdown(context.WithoutCancel(ctx))
	res.Elapsed = time.Since(start)
	res.InputBytes = fr.Offset()
	res.MediaDuration = time.Duration(maxOff) * time.Millisecond
	if opt.Progress != nil {
		opt.Progress(fr.Offset(), size)
	}
	if fr.Truncated() {
		res.Errors = append(res.Errors, "input: truncated FLV file (the complete tags were recorded)")
	}
	sort.SliceStable(res.Files, func(i, j int) bool {
		if res.Files[i].Format != res.Files[j].Format {
			return res.Files[i].Format < res.Files[j].Format
		}
		return res.Files[i].Key < res.Files[j].Key
	})
	return res, runErr
}
