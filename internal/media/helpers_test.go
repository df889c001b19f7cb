package media

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/livrec/livrec/internal/flv"
)

// readFixture returns the tags of an FLV fixture (bodies copied).
func readFixture(tb testing.TB, name string) []flv.Tag {
	tb.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := flv.NewReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	var tags []flv.Tag
	for {
		t, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		t.Body = bytes.Clone(t.Body)
		tags = append(tags, t)
	}
	if r.Truncated() {
		tb.Fatalf("%s truncated", name)
	}
	return tags
}

type trackEvent struct{ video, audio *Track }
type warning struct{ code, msg string }

// capture runs tags through a fresh Demuxer and records everything it reports.
type capture struct {
	d        *Demuxer
	tracks   []trackEvent
	aus      []*AccessUnit
	warnings []warning
	// auBeforeTracks is set if an AU arrived whose track was not in the last OnTracks.
	auBeforeTracks bool
}

func newCapture() *capture {
	c := &capture{d: &Demuxer{}}
	c.d.OnTracks = func(v, a *Track) { c.tracks = append(c.tracks, trackEvent{v, a}) }
	c.d.OnAccessUnit = func(au *AccessUnit) {
		if len(c.tracks) == 0 {
			c.auBeforeTracks = true
		} else {
			last := c.tracks[len(c.tracks)-1]
			if au.Track != last.video && au.Track != last.audio {
				c.auBeforeTracks = true
			}
		}
		c.aus = append(c.aus, au)
	}
	c.d.OnWarning = func(code, msg string) { c.warnings = append(c.warnings, warning{code, msg}) }
	return c
}

func (c *capture) write(tb testing.TB, tags ...flv.Tag) *capture {
	tb.Helper()
	for _, t := range tags {
		if err := c.d.WriteTag(t); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

func (c *capture) count(codec Codec) int {
	n := 0
	for _, au := range c.aus {
		if au.Track.Codec == codec {
			n++
		}
	}
	return n
}

func (c *capture) warned(code string) int {
	n := 0
	for _, w := range c.warnings {
		if w.code == code {
			n++
		}
	}
	return n
}
