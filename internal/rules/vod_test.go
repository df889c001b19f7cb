package rules

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func vodRule() Rule {
	return Rule{DomainName: "example.com", AppName: "live", StreamName: "cam1", Vod: &VodSettings{}}
}

func TestVodNormalize(t *testing.T) {
	r := vodRule()
	r.Vod.CycleDuration = 300
	r.Vod.StorageLocation = "vod-media.127.0.0.1:9000"
	r.Normalize()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.OssEndpoint != "127.0.0.1:9000" || r.OssBucket != "vod-media" {
		t.Errorf("storage %q %q", r.OssEndpoint, r.OssBucket)
	}
	f := r.RecordFormats
	if len(f) != 1 || f[0].Format != M3U8 || f[0].CycleDuration != 300 || f[0].ObjectPrefix != VodObjectPrefix || f[0].SliceDuration != DefaultSliceDuration {
		t.Errorf("formats %+v", f)
	}
	if r.Vod.TranscodeGroupID != NoTranscodeGroup || r.Vod.TitleTemplate != DefaultVodTitle {
		t.Errorf("defaults %+v", r.Vod)
	}
	// Idempotent, and a changed cycle reaches the derived format.
	r.Vod.CycleDuration = 600
	r.Normalize()
	if r.RecordFormats[0].CycleDuration != 600 || r.Validate() != nil {
		t.Errorf("after a cycle change: %+v %v", r.RecordFormats, r.Validate())
	}
	d := vodRule()
	d.Normalize()
	if d.Vod.CycleDuration != DefaultVodCycleDuration || d.OssEndpoint != "" || d.Vod.StorageLocation != LocalStorage {
		t.Errorf("default VOD rule %+v %+v", d, d.Vod)
	}
}

// TestVodValidate: each bad field is named.
func TestVodValidate(t *testing.T) {
	for _, c := range []struct {
		field string
		mod   func(*Rule)
	}{
		{"vod.cycleDuration", func(r *Rule) { r.Vod.CycleDuration = 299 }},
		{"vod.cycleDuration", func(r *Rule) { r.Vod.CycleDuration = 21601 }},
		{"onDemand", func(r *Rule) { r.OnDemand = 2 }},
		{"onDemand", func(r *Rule) { r.OnDemand = 7 }},
		{"delayTime", func(r *Rule) { r.DelayTime = 5 }},
		{"vod.storageLocation", func(r *Rule) { r.Vod.StorageLocation = "nodot" }},
		{"vod.storageLocation", func(r *Rule) { r.Vod.StorageLocation = "UPPER.127.0.0.1:9000" }},
		{"vod.storageLocation", func(r *Rule) { r.Vod.StorageLocation = "b1.host:99999" }},
		{"vod.vodTranscodeGroupId", func(r *Rule) { r.Vod.TranscodeGroupID = "bad id" }},
		{"vod.vodTranscodeGroupId", func(r *Rule) { r.Vod.TranscodeGroupID = strings.Repeat("g", 65) }},
		{"vod.composeVodTranscodeGroupId", func(r *Rule) { r.Vod.AutoCompose = true }},
		{"vod.composeVodTranscodeGroupId", func(r *Rule) { r.Vod.ComposeTranscodeGroupID = "a/b" }},
		{"vod.titleTemplate", func(r *Rule) { r.Vod.TitleTemplate = "{Nope} x" }},
		{"vod.titleTemplate", func(r *Rule) { r.Vod.TitleTemplate = strings.Repeat("t", 10000) }},
		{"recordFormats", func(r *Rule) { r.RecordFormats = []RecordFormat{{Format: FLV}} }},
		{"recordFormats[0].sliceDuration", func(r *Rule) { r.RecordFormats = []RecordFormat{{Format: M3U8, SliceDuration: 31}} }},
		{"transcodeTemplates", func(r *Rule) { r.TranscodeTemplates = []string{"lld"} }},
		{"startTime", func(r *Rule) { st := time.Now(); r.StartTime = &st }},
	} {
		r := vodRule()
		c.mod(&r)
		r.Normalize()
		err := r.Validate()
		var ves ValidationErrors
		if !errors.As(err, &ves) {
			t.Errorf("%s: no error", c.field)
			continue
		}
		found := false
		for _, e := range ves {
			found = found || e.Field == c.field
		}
		if !found {
			t.Errorf("want an error on %s, got %v", c.field, err)
		}
	}
}

// TestVodAndStorageClash: one stream key, two modes: refused, naming both modes and
// the rule already there.
func TestVodAndStorageClash(t *testing.T) {
	_, err := NewSet([]Rule{valid(), vodRule()})
	if err == nil || !strings.Contains(err.Error(), "[1]: a VOD rule for the stream key of the storage rule [0]") {
		t.Fatalf("err %v", err)
	}
	// A VOD rule for the app and a storage rule for one stream of it: the stream's rule wins.
	app := vodRule()
	app.StreamName = "*"
	s, err := NewSet([]Rule{valid(), app})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Match("example.com", "live", "cam1"); r.IsVod() {
		t.Error("cam1 matched the VOD rule")
	}
	if r, _ := s.Match("example.com", "live", "cam2"); !r.IsVod() {
		t.Error("cam2 did not match the VOD rule")
	}
}

func TestRenderTitle(t *testing.T) {
	st := time.Date(2024, 5, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))
	if got := RenderTitle(DefaultVodTitle, "d", "live", "cam1", st, time.Time{}); got != "live/cam1 2024-05-01T09:00:00Z" {
		t.Errorf("title %q", got)
	}
	if got := RenderTitle(strings.Repeat("é", 100), "", "", "", st, st); len(got) != 128 || CheckTitle(got) != nil {
		t.Errorf("long title %d bytes", len(got))
	}
	if err := CheckTitle(strings.Repeat("x", 10000)); err == nil || !strings.Contains(err.Error(), "10000 bytes") {
		t.Errorf("10000-byte title: %v", err)
	}
}
