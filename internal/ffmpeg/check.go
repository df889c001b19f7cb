package ffmpeg

import (
	"fmt"

	"github.com/livrec/livrec/internal/rules"
)

// SizeLimits bound an encode's picture size in pixels.
type SizeLimits struct{ MinSide, MaxLongSide, MaxShortSide int }

// Encoder is ffmpeg's encoder for a codec name of a template ("h264", "h265").
func Encoder(codec string) string {
	if codec == "h265" {
		return "libx265"
	}
	return "libx264"
}

// CheckVideo checks what every encode template has: the codec (h264, or h265 when
// this ffmpeg has libx265), under the field name codecField, and width and height (either
// may be 0 to follow the source's aspect ratio, not both; even; within l).
func CheckVideo(codecField, codec string, width, height int, l SizeLimits) rules.ValidationErrors {
	var es rules.ValidationErrors
	add := func(field, format string, args ...any) {
		es = append(es, &rules.ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch codec {
	case "h264":
	case "h265":
		if !HasEncoder("", "libx265") {
			add(codecField, "h265 needs ffmpeg with libx265, which this ffmpeg lacks (use h264)")
		}
	default:
		add(codecField, "%q is not one of h264, h265", codec)
	}
	if width == 0 && height == 0 {
		add("height", "is required (or width; %d–%d pixels)", l.MinSide, l.MaxLongSide)
	}
	for _, s := range []struct {
		name string
		v    int
	}{{"width", width}, {"height", height}} {
		switch {
		case s.v == 0:
		case s.v < l.MinSide || s.v > l.MaxLongSide:
			add(s.name, "%d is out of range (allowed %d–%d pixels)", s.v, l.MinSide, l.MaxLongSide)
		case s.v%2 != 0:
			add(s.name, "%d is odd (the encoder needs even dimensions)", s.v)
		}
	}
	if width != 0 && height != 0 && min(width, height) > l.MaxShortSide {
		add("height", "%dx%d: the shorter side must be at most %d pixels", width, height, l.MaxShortSide)
	}
	return es
}
