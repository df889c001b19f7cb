// This file holds the transcode template groups and the after-the-fact transcode.

package vod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/ffmpeg"
	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/rules"
)

// NoTranscodeGroupID is the built-in group that keeps the original only (the VOD
// service's system id for it). It is every rule's default.
const NoTranscodeGroupID = rules.NoTranscodeGroup

// TranscodeGroup is a named set of renditions made after the fact from an asset's
// original, one transcode job per template.
type TranscodeGroup struct {
	ID        string              `yaml:"id" json:"id"`
	Name      string              `yaml:"name" json:"name"`
	Templates []TranscodeTemplate `yaml:"templates" json:"templates"`
}

// TranscodeTemplate is one rendition of a group.
type TranscodeTemplate struct {
	// Definition names the rendition in play infos: FD, LD, SD, HD, FHD, 2K, 4K or a
	// free id (letters, digits, "_", "-", 1–32 characters).
	Definition string `yaml:"definition" json:"definition"`
	Container  string `yaml:"container" json:"container"`   // m3u8 (TS segments, default) or mp4
	VideoCodec string `yaml:"videoCodec" json:"videoCodec"` // h264 (default) or h265 (with libx265)
	// Width and Height in pixels, even; with one of them the other follows the source's
	// aspect ratio (rounded to even).
	Width        int `yaml:"width,omitempty" json:"width,omitempty"`
	Height       int `yaml:"height,omitempty" json:"height,omitempty"`
	FPS          int `yaml:"fps,omitempty" json:"fps,omitempty"`                   // 0: the source's
	VideoBitrate int `yaml:"videoBitrate" json:"videoBitrate"`                     // kbit/s
	AudioBitrate int `yaml:"audioBitrate,omitempty" json:"audioBitrate,omitempty"` // kbit/s AAC (0: 64)
}

// Ranges of groups and templates.
const (
	MaxGroupIDLen         = 64
	MaxGroupNameLen       = 128
	MaxGroupTemplates     = 20
	MaxDefinitionLen      = 32
	MinTranscodeSide      = 128
	MaxTranscodeLongSide  = 4096
	MaxTranscodeShortSide = 2160
	MaxTranscodeFPS       = 60
	MinTranscodeVideoKbps = 50
	MaxTranscodeVideoKbps = 50000
	MinTranscodeAudioKbps = 8
	MaxTranscodeAudioKbps = 512

	DefaultTranscodeAudioKbps = 64
	ContainerM3U8             = "m3u8"
	ContainerMP4              = "mp4"
)

// Definitions are the definition names the VOD service knows (OD, the original, is
// not a transcode's).
var Definitions = []string{"FD", "LD", "SD", "HD", "FHD", "2K", "4K"}

var (
	freeDefinition = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	groupID        = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// Normalize fills in defaults.
func (t *TranscodeTemplate) Normalize() {
	if t.Container == "" {
		t.Container = ContainerM3U8
	}
	t.Container = strings.ToLower(t.Container)
	if t.VideoCodec == "" {
		t.VideoCodec = "h264"
	}
	t.VideoCodec = strings.ToLower(t.VideoCodec)
	if t.AudioBitrate == 0 {
		t.AudioBitrate = DefaultTranscodeAudioKbps
	}
}

// Validate checks a normalized template; field paths are relative to it ("height").
func (t *TranscodeTemplate) Validate() rules.ValidationErrors {
	var es rules.ValidationErrors
	add := func(field, format string, args ...any) {
		es = append(es, &rules.ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case t.Definition == "":
		add("definition", "is required (%s or an id of letters, digits, _ and -, 1–%d characters)", strings.Join(Definitions, ", "), MaxDefinitionLen)
	case strings.EqualFold(t.Definition, "OD"):
		add("definition", "OD is the original's definition; a transcode needs another (%s or an id of your own)", strings.Join(Definitions, ", "))
	case !freeDefinition.MatchString(t.Definition):
		add("definition", "%q is not one of %s nor an id of letters, digits, _ and -, 1–%d characters", t.Definition, strings.Join(Definitions, ", "), MaxDefinitionLen)
	}
	switch t.Container {
	case ContainerM3U8, ContainerMP4:
	default:
		add("container", "%q is not one of m3u8, mp4", t.Container)
	}
	es = append(es, ffmpeg.CheckVideo("videoCodec", t.VideoCodec, t.Width, t.Height,
		ffmpeg.SizeLimits{MinSide: MinTranscodeSide, MaxLongSide: MaxTranscodeLongSide, MaxShortSide: MaxTranscodeShortSide})...)
	if t.FPS < 0 || t.FPS > MaxTranscodeFPS {
		add("fps", "%d is out of range (allowed 1–%d, or 0 for the source's)", t.FPS, MaxTranscodeFPS)
	}
	if t.VideoBitrate < MinTranscodeVideoKbps || t.VideoBitrate > MaxTranscodeVideoKbps {
		add("videoBitrate", "%d is out of range (allowed %d–%d kbit/s)", t.VideoBitrate, MinTranscodeVideoKbps, MaxTranscodeVideoKbps)
	}
	if t.AudioBitrate < MinTranscodeAudioKbps || t.AudioBitrate > MaxTranscodeAudioKbps {
		add("audioBitrate", "%d is out of range (allowed %d–%d kbit/s)", t.AudioBitrate, MinTranscodeAudioKbps, MaxTranscodeAudioKbps)
	}
	return es
}

// Size is the output size for a source of srcW×srcH: the template's, the missing side
// following the source's aspect ratio, rounded to even. An error says why no size fits.
func (t *TranscodeTemplate) Size(srcW, srcH int) (w, h int, err error) {
	w, h = t.Width, t.Height
	switch {
	case w != 0 && h != 0:
		return w, h, nil
	case srcW <= 0 || srcH <= 0:
		return 0, 0, fmt.Errorf("the source has no video size to keep the aspect ratio of (give width and height)")
	case h != 0:
		w = (h*srcW/srcH + 1) &^ 1
	default:
		h = (w*srcH/srcW + 1) &^ 1
	}
	if min(w, h) < 2 || max(w, h) > 2*MaxTranscodeLongSide {
		return 0, 0, fmt.Errorf("%dx%d from a %dx%d source is not a size ffmpeg can encode", w, h, srcW, srcH)
	}
	return w, h, nil
}

// Validate checks a group with normalized templates; paths are relative to it.
func (g *TranscodeGroup) Validate() rules.ValidationErrors {
	var es rules.ValidationErrors
	add := func(field, format string, args ...any) {
		es = append(es, &rules.ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case g.ID == NoTranscodeGroupID:
		add("id", "%s is the built-in no-transcode group", NoTranscodeGroupID)
	case !groupID.MatchString(g.ID):
		add("id", "%q: want 1–%d letters, digits, _ or -", g.ID, MaxGroupIDLen)
	}
	if n := len([]rune(g.Name)); n > MaxGroupNameLen {
		add("name", "%d characters: at most %d", n, MaxGroupNameLen)
	}
	if len(g.Templates) == 0 || len(g.Templates) > MaxGroupTemplates {
		add("templates", "%d templates: want 1–%d (the built-in %s keeps the original only)", len(g.Templates), MaxGroupTemplates, NoTranscodeGroupID)
	}
	seen := map[[2]string]int{}
	for i, t := range g.Templates {
		idx := fmt.Sprintf("templates[%d]", i)
		es = append(es, t.Validate().Prefix(idx)...)
		k := [2]string{strings.ToUpper(t.Definition), t.Container}
		if j, dup := seen[k]; dup {
			add(idx+".definition", "%s %s is already templates[%d]: a rendition is one definition per container", t.Definition, t.Container, j)
		}
		seen[k] = i
	}
	return es
}

// TranscodeGroups holds the configured groups and the built-in one.
type TranscodeGroups struct{ groups []TranscodeGroup }

// NewTranscodeGroups normalizes and validates copies of gs. Errors carry paths starting
// with the group's index ("[1].templates[0].height"); two groups with one id are an error.
func NewTranscodeGroups(gs []TranscodeGroup) (*TranscodeGroups, error) {
	l := &TranscodeGroups{groups: []TranscodeGroup{{ID: NoTranscodeGroupID, Name: "No transcoding"}}}
	var es rules.ValidationErrors
	seen := map[string]int{}
	for i, g := range gs {
		g.Templates = slices.Clone(g.Templates)
		for j := range g.Templates {
			g.Templates[j].Normalize()
		}
		idx := fmt.Sprintf("[%d]", i)
		if ves := g.Validate(); len(ves) > 0 {
			es = append(es, ves.Prefix(idx)...)
			continue
		}
		if j, dup := seen[g.ID]; dup {
			es = append(es, &rules.ValidationError{Field: idx + ".id", Msg: fmt.Sprintf("%q is already used by [%d]", g.ID, j)})
			continue
		}
		seen[g.ID] = i
		l.groups = append(l.groups, g)
	}
	if len(es) > 0 {
		return nil, es
	}
	return l, nil
}

// ErrUnknownGroup: no transcode group has the id.
var ErrUnknownGroup = errors.New("unknown transcode group")

// Lookup returns the group id ("" is the no-transcode group).
func (l *TranscodeGroups) Lookup(id string) (TranscodeGroup, error) {
	if id == "" {
		id = NoTranscodeGroupID
	}
	ids := make([]string, 0, len(l.groups))
	for _, g := range l.groups {
		if g.ID == id {
			return g, nil
		}
		ids = append(ids, g.ID)
	}
	return TranscodeGroup{}, fmt.Errorf("%w %q (defined: %s)", ErrUnknownGroup, id, strings.Join(ids, ", "))
}

// List returns every group, the built-in first.
func (l *TranscodeGroups) List() []TranscodeGroup { return slices.Clone(l.groups) }

// Rendition is what one template made, measured with ffprobe: an asset's play info.
type Rendition struct {
	Definition string        `json:"definition"`
	Format     string        `json:"format"` // m3u8 or mp4
	Path       string        `json:"path"`   // the mp4 file or the m3u8 playlist
	Files      []string      `json:"files"`  // every file written, relative to the output directory
	Width      int           `json:"width"`
	Height     int           `json:"height"`
	FPS        float64       `json:"fps"`
	Bitrate    int64         `json:"bitrate"`      // bit/s of all files over the duration
	VideoRate  int64         `json:"videoBitrate"` // bit/s of the video stream alone
	Duration   time.Duration `json:"duration"`
	Size       int64         `json:"size"` // bytes of all files
	VideoCodec string        `json:"videoCodec"`
}

// TranscodeOptions of Transcode.
type TranscodeOptions struct {
	FFmpeg, FFprobe string // binaries ("" for the ones on PATH)
	Progress        func(percent float64)
	// SegmentSeconds of m3u8 renditions (0: 6).
	SegmentSeconds int
}

// Transcode makes one template's rendition of input (an m3u8 or any file ffmpeg reads,
// a local path or a URL) in outDir, which it creates or replaces; the input is only read.
// The rendition is written beside outDir first and renamed into place when complete, so
// outDir holds either nothing or a whole rendition, and a retried job starts clean.
func Transcode(ctx context.Context, t TranscodeTemplate, input, outDir string, o TranscodeOptions) (Rendition, error) {
	t.Normalize()
	if es := t.Validate(); len(es) > 0 {
		return Rendition{}, es
	}
	if !strings.Contains(input, "://") {
		abs, err := filepath.Abs(input)
		if err != nil {
			return Rendition{}, err
		}
		out, err := filepath.Abs(outDir)
		if err != nil {
			return Rendition{}, err
		}
		if rel, err := filepath.Rel(out, abs); err == nil && !strings.HasPrefix(rel, "..") {
			return Rendition{}, fmt.Errorf("transcode: the input %s is inside the output directory %s, which is replaced", input, outDir)
		}
	}
	src, err := ffmpeg.Probe(ctx, o.FFprobe, input)
	if err != nil {
		return Rendition{}, fmt.Errorf("transcode: input: %w", err)
	}
	if src.VideoCodec == "" {
		return Rendition{}, fmt.Errorf("transcode: input %s has no video stream", input)
	}
	w, h, err := t.Size(src.Width, src.Height)
	if err != nil {
		return Rendition{}, fmt.Errorf("transcode %s: %w", t.Definition, err)
	}
	tmp := outDir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return Rendition{}, err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Rendition{}, err
	}
	defer os.RemoveAll(tmp)
	name := strings.ToLower(t.Definition) + "." + t.Container
	if err := ffmpeg.Run(ctx, transcodeArgs(t, w, h, src, input, tmp, name, o), ffmpeg.Options{
		Bin: o.FFmpeg, Duration: src.Duration, Progress: o.Progress}); err != nil {
		return Rendition{}, fmt.Errorf("transcode %s: %w", t.Definition, err)
	}
	if err := os.RemoveAll(outDir); err != nil {
		return Rendition{}, err
	}
	if err := os.Rename(tmp, outDir); err != nil {
		return Rendition{}, err
	}
	return measure(ctx, o.FFprobe, t, outDir, name)
}

func transcodeArgs(t TranscodeTemplate, w, h int, src ffmpeg.Info, input, dir, name string, o TranscodeOptions) []string {
	a := []string{"-v", "error", "-i", input, "-map", "0:v:0", "-map", "0:a:0?",
		"-vf", fmt.Sprintf("scale=%d:%d,setsar=1", w, h), "-pix_fmt", "yuv420p"}
	fps := float64(t.FPS)
	if t.FPS > 0 {
		a = append(a, "-r", strconv.Itoa(t.FPS))
	} else if fps = src.FPS; fps <= 0 || fps > 120 {
		fps = 25
	}
	kb := strconv.Itoa(t.VideoBitrate) + "k"
	enc := ffmpeg.Encoder(t.VideoCodec)
	// Key frames every 2 s: HLS segments cut on them, and seeking stays cheap.
	a = append(a, "-c:v", enc, "-preset", "veryfast", "-b:v", kb, "-maxrate", kb, "-bufsize", strconv.Itoa(2*t.VideoBitrate)+"k",
		"-force_key_frames", "expr:gte(t,n_forced*2)", "-c:a", "aac", "-b:a", strconv.Itoa(t.AudioBitrate)+"k")
	if t.VideoCodec == "h265" {
		a = append(a, "-tag:v", "hvc1", "-x265-params", "log-level=error")
	}
	seg := o.SegmentSeconds
	if seg <= 0 {
		seg = 6
	}
	out := filepath.Join(dir, name)
	if t.Container == ContainerMP4 {
		return append(a, "-movflags", "+faststart", "-f", "mp4", "-y", out)
	}
	base := strings.TrimSuffix(name, ".m3u8")
	return append(a, "-f", "hls", "-hls_time", strconv.Itoa(seg), "-hls_playlist_type", "vod", "-hls_list_size", "0",
		"-hls_segment_filename", filepath.Join(dir, base+"-%05d.ts"), "-y", out)
}

func measure(ctx context.Context, ffprobe string, t TranscodeTemplate, dir, name string) (Rendition, error) {
	r := Rendition{Definition: t.Definition, Format: t.Container, Path: filepath.Join(dir, name)}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return r, err
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		r.Files = append(r.Files, e.Name())
		r.Size += fi.Size()
	}
	in, err := ffmpeg.Probe(ctx, ffprobe, r.Path)
	if err != nil {
		return r, fmt.Errorf("transcode %s: output: %w", t.Definition, err)
	}
	r.Width, r.Height, r.FPS, r.Duration, r.VideoCodec = in.Width, in.Height, in.FPS, in.Duration, in.VideoCodec
	if s := r.Duration.Seconds(); s > 0 {
		r.Bitrate = int64(float64(r.Size) * 8 / s)
		vb, err := ffmpeg.PacketBytes(ctx, ffprobe, r.Path, "v:0")
		if err != nil {
			return r, fmt.Errorf("transcode %s: output: %w", t.Definition, err)
		}
		r.VideoRate = int64(float64(vb) * 8 / s)
	}
	return r, nil
}

// TranscodeKind is the job kind of a transcode.
const TranscodeKind = "vod.transcode"

// TranscodeJob is a transcode job's arguments. The template is a copy taken when the
// job is enqueued: changing the group later does not change a queued job.
type TranscodeJob struct {
	AssetID  string            `json:"assetId,omitempty"`
	GroupID  string            `json:"groupId,omitempty"`
	Template TranscodeTemplate `json:"template"`
	Input    string            `json:"input"`
	OutDir   string            `json:"outDir"`
}

// Kind implements jobs.Args.
func (TranscodeJob) Kind() string { return TranscodeKind }

// UniqueKey makes one job per asset and rendition.
func (a TranscodeJob) UniqueKey() string {
	return "vod.transcode/" + a.AssetID + "/" + a.GroupID + "/" + a.Template.Definition + "/" + a.Template.Container
}

// TranscodeWorker returns the worker of TranscodeKind jobs for jobs.Register: it runs
// the template with progress reported to the job and hands the rendition to done (which
// records it on the asset). A template that cannot be valid fails the job for good;
// ffmpeg's failures are retried, and the last one's stderr lines are the job's error.
func TranscodeWorker(o TranscodeOptions, done func(ctx context.Context, a TranscodeJob, r Rendition) error) func(context.Context, *jobs.Job, TranscodeJob) error {
	return func(ctx context.Context, j *jobs.Job, a TranscodeJob) error {
		a.Template.Normalize()
		if es := a.Template.Validate(); len(es) > 0 {
			return jobs.Permanent(es)
		}
		oo := o
		oo.Progress = func(p float64) {
			j.Progress(p)
			if o.Progress != nil {
				o.Progress(p)
			}
		}
		j.Logf("attempt %d: %s %s %dx%d %d kbit/s from %s", j.Attempt, a.Template.Definition, a.Template.Container,
			a.Template.Width, a.Template.Height, a.Template.VideoBitrate, a.Input)
		r, err := Transcode(ctx, a.Template, a.Input, a.OutDir, oo)
		if err != nil {
			return err
		}
		j.Logf("made %s: %dx%d %.2f fps %d kbit/s %.3f s %d bytes", r.Path, r.Width, r.Height, r.FPS, r.Bitrate/1000, r.Duration.Seconds(), r.Size)
		if done != nil {
			return done(ctx, a, r)
		}
		return nil
	}
}
