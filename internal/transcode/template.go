// Package transcode re-encodes live publishes into renditions with live transcode
// templates and sends each rendition back into livrec's own RTMP ingest as the stream
// {StreamName}_{TemplateId}, where it is recorded like any publish.
package transcode

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"

	"github.com/livrec/livrec/internal/rules"
)

// Template describes one rendition. Zero values mean "default" (FPS and GOP: the
// source's frame rate, 2 s; audio: aac at 64 kbit/s).
type Template struct {
	// DomainName and AppName say where a configured template applies ("*": everywhere).
	DomainName string `yaml:"domainName" json:"domainName"`
	AppName    string `yaml:"appName" json:"appName"`
	// ID: letters, digits, "_", "-", 1–64 characters; it becomes the stream name suffix.
	ID    string `yaml:"id" json:"id"`
	Codec string `yaml:"codec" json:"codec"` // h264 (default) or h265
	// Width and Height in pixels; with only one given the other follows the source's
	// aspect ratio (rounded to an even number).
	Width        int    `yaml:"width" json:"width"`
	Height       int    `yaml:"height" json:"height"`
	FPS          int    `yaml:"fps" json:"fps"`
	VideoBitrate int    `yaml:"videoBitrate" json:"videoBitrate"` // kbit/s
	GOP          int    `yaml:"gop" json:"gop"`                   // seconds
	Profile      string `yaml:"profile" json:"profile"`           // baseline, main, high ("" = encoder default)
	AudioCodec   string `yaml:"audioCodec" json:"audioCodec"`     // aac (default) or copy
	AudioBitrate int    `yaml:"audioBitrate" json:"audioBitrate"` // kbit/s, aac only
}

// Ranges of template fields.
const (
	MaxIDLen        = 64
	MinSide         = 100
	MaxLongSide     = 2560
	MaxShortSide    = 1440
	MaxFPS          = 60
	MaxVideoBitrate = 6000
	MaxGOP          = 20
	MaxAudioBitrate = 1000

	DefaultGOP          = 2
	DefaultAudioBitrate = 64
)

// Builtin are the cloud's standard system templates (landscape, height fixed, width
// following the source). Their IDs are rules.BuiltinTemplates, so that a rule with
// transcodeTemplates ["all"] and the transcoder agree on what "all" is.
var Builtin = map[string]Template{
	"lld": {ID: "lld", Codec: "h264", Height: 360, VideoBitrate: 470, AudioBitrate: 64},
	"lsd": {ID: "lsd", Codec: "h264", Height: 432, VideoBitrate: 680, AudioBitrate: 64},
	"lhd": {ID: "lhd", Codec: "h264", Height: 648, VideoBitrate: 1500, AudioBitrate: 96},
	"lud": {ID: "lud", Codec: "h264", Height: 1080, VideoBitrate: 2500, AudioBitrate: 128},
}

// Normalize fills in defaults.
func (t *Template) Normalize() {
	if t.DomainName == "" {
		t.DomainName = rules.Wildcard
	}
	t.DomainName = strings.ToLower(t.DomainName)
	if t.AppName == "" {
		t.AppName = rules.Wildcard
	}
	if t.Codec == "" {
		t.Codec = "h264"
	}
	if t.GOP == 0 {
		t.GOP = DefaultGOP
	}
	if t.AudioCodec == "" {
		t.AudioCodec = "aac"
	}
	if t.AudioCodec == "aac" && t.AudioBitrate == 0 {
		t.AudioBitrate = DefaultAudioBitrate
	}
}

var (
	x265Once sync.Once
	x265     bool
)

// HaveH265 reports whether the ffmpeg on PATH has libx265.
func HaveH265() bool {
	x265Once.Do(func() {
		out, err := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output()
		x265 = err == nil && strings.Contains(string(out), "libx265")
	})
	return x265
}

// Validate checks a normalized template; field paths are relative to it ("height").
func (t *Template) Validate() error {
	var es rules.ValidationErrors
	add := func(field, format string, args ...any) {
		es = append(es, &rules.ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if err := rules.ValidTemplateID(t.ID); err != nil {
		add("id", "%v", err)
	} else if _, ok := Builtin[t.ID]; ok {
		add("id", "%q is a built-in template name (built-ins: %s)", t.ID, strings.Join(rules.BuiltinTemplates, ", "))
	}
	switch t.Codec {
	case "h264":
	case "h265":
		if !HaveH265() {
			add("codec", "h265 needs ffmpeg with libx265, which this ffmpeg lacks (use h264)")
		}
	default:
		add("codec", "%q is not one of h264, h265", t.Codec)
	}
	if t.Width == 0 && t.Height == 0 {
		add("height", "is required (or width; %d–%d pixels)", MinSide, MaxLongSide)
	}
	for _, s := range []struct {
		name string
		v    int
	}{{"width", t.Width}, {"height", t.Height}} {
		switch {
		case s.v == 0:
		case s.v < MinSide || s.v > MaxLongSide:
			add(s.name, "%d is out of range (allowed %d–%d pixels)", s.v, MinSide, MaxLongSide)
		case s.v%2 != 0:
			add(s.name, "%d is odd (the encoder needs even dimensions)", s.v)
		}
	}
	if t.Width != 0 && t.Height != 0 && min(t.Width, t.Height) > MaxShortSide {
		add("height", "%dx%d: the shorter side must be at most %d pixels", t.Width, t.Height, MaxShortSide)
	}
	if t.FPS < 0 || t.FPS > MaxFPS {
		add("fps", "%d is out of range (allowed 1–%d, or 0 for the source's)", t.FPS, MaxFPS)
	}
	if t.VideoBitrate < 1 || t.VideoBitrate > MaxVideoBitrate {
		add("videoBitrate", "%d is out of range (allowed 1–%d kbit/s)", t.VideoBitrate, MaxVideoBitrate)
	}
	if t.GOP < 1 || t.GOP > MaxGOP {
		add("gop", "%d is out of range (allowed 1–%d seconds)", t.GOP, MaxGOP)
	}
	switch t.Profile {
	case "", "baseline", "main", "high":
	default:
		add("profile", "%q is not one of baseline, main, high", t.Profile)
	}
	switch t.AudioCodec {
	case "aac":
		if t.AudioBitrate < 1 || t.AudioBitrate > MaxAudioBitrate {
			add("audioBitrate", "%d is out of range (allowed 1–%d kbit/s)", t.AudioBitrate, MaxAudioBitrate)
		}
	case "copy":
		if t.AudioBitrate != 0 {
			add("audioBitrate", "is only for aac, not copy")
		}
	default:
		add("audioCodec", "%q is not one of aac, copy", t.AudioCodec)
	}
	if len(es) == 0 {
		return nil
	}
	return es
}

// Library holds the configured templates and answers which ones apply to a stream.
type Library struct{ custom []Template }

// NewLibrary normalizes and validates copies of ts. Errors carry paths starting with the
// template's index ("[1].height"); two templates with one (domain, app, id) are an error.
func NewLibrary(ts []Template) (*Library, error) {
	l := &Library{}
	var es rules.ValidationErrors
	seen := map[[3]string]int{}
	for i, t := range ts {
		t.Normalize()
		idx := fmt.Sprintf("[%d]", i)
		if err := t.Validate(); err != nil {
			es = append(es, err.(rules.ValidationErrors).Prefix(idx)...)
			continue
		}
		k := [3]string{t.DomainName, t.AppName, t.ID}
		if j, dup := seen[k]; dup {
			es = append(es, &rules.ValidationError{Field: idx + ".id", Msg: fmt.Sprintf("%q is already used by [%d] for the same domainName and appName", t.ID, j)})
			continue
		}
		seen[k] = i
		l.custom = append(l.custom, t)
	}
	if len(es) > 0 {
		return nil, es
	}
	return l, nil
}

// Lookup returns the template id for a stream's domain and app: a configured one (the
// most specific of domain+app, domain+"*", "*"+app, "*"+"*") or a built-in.
func (l *Library) Lookup(domain, app, id string) (Template, bool) {
	domain = strings.ToLower(domain)
	if l != nil {
		for _, k := range [...][2]string{{domain, app}, {domain, rules.Wildcard}, {rules.Wildcard, app}, {rules.Wildcard, rules.Wildcard}} {
			for _, t := range l.custom {
				if t.DomainName == k[0] && t.AppName == k[1] && t.ID == id {
					return t, true
				}
			}
		}
	}
	t, ok := Builtin[id]
	if ok {
		t.Normalize()
	}
	return t, ok
}

// Resolve turns a rule's transcodeTemplates into templates; "all" is the built-ins.
// Unknown IDs are returned in missing.
func (l *Library) Resolve(domain, app string, ids []string) (ts []Template, missing []string) {
	if len(ids) == 1 && ids[0] == rules.AllTemplates {
		ids = rules.BuiltinTemplates
	}
	for _, id := range ids {
		if t, ok := l.Lookup(domain, app, id); ok {
			ts = append(ts, t)
		} else {
			missing = append(missing, id)
		}
	}
	return ts, missing
}

// Size returns the output size for a source of srcW×srcH: the template's, the missing
// side following the source's aspect ratio, rounded to even.
func (t *Template) Size(srcW, srcH int) (w, h int) {
	w, h = t.Width, t.Height
	switch {
	case w != 0 && h != 0:
	case srcW <= 0 || srcH <= 0:
	case h != 0:
		w = (h*srcW/srcH + 1) &^ 1
	default:
		h = (w*srcH/srcW + 1) &^ 1
	}
	return w, h
}
