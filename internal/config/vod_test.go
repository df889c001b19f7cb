package config

import (
	"strings"
	"testing"

	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/vod"
)

func TestVODTranscodeGroupsConfig(t *testing.T) {
	c, err := Parse([]byte(`
vodJobConcurrency: 2
vodTranscodeGroups:
  - id: g1
    name: small and medium
    templates:
      - {definition: LD, container: mp4, height: 360, videoBitrate: 400}
      - {definition: SD, height: 540, videoBitrate: 800, audioBitrate: 96}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.VODJobConcurrency != 2 {
		t.Errorf("vodJobConcurrency %d", c.VODJobConcurrency)
	}
	g, err := c.TranscodeGroups.Lookup("g1")
	if err != nil {
		t.Fatal(err)
	}
	if tp := g.Templates[1]; tp.Container != "m3u8" || tp.VideoCodec != "h264" || tp.AudioBitrate != 96 || g.Templates[0].AudioBitrate != 64 {
		t.Errorf("templates not normalized: %+v", g.Templates)
	}
	if _, err := c.TranscodeGroups.Lookup(vod.NoTranscodeGroupID); err != nil {
		t.Errorf("built-in group: %v", err)
	}

	c, err = Parse([]byte("{}"))
	if err != nil || c.VODJobConcurrency != jobs.DefaultConcurrency() || c.TranscodeGroups == nil {
		t.Fatalf("defaults: %v %+v", err, c)
	}

	for _, bad := range []struct{ yaml, want string }{
		{"vodJobConcurrency: 65", "vodJobConcurrency: 65 is out of range (allowed 1–64, or 0 for one per two cores)"},
		{"vodJobConcurrency: -1", "vodJobConcurrency: -1 is out of range"},
		{"vodCoverOffset: -1", "vodCoverOffset: -1 is out of range (allowed 0–86400 seconds)"},
		{"vodCoverOffset: 90000", "vodCoverOffset: 90000 is out of range"},
		{"vodTranscodeGroups: [{id: g, templates: [{definition: HD, width: 100000, height: 720, videoBitrate: 800}]}]",
			"vodTranscodeGroups[0].templates[0].width: 100000 is out of range (allowed 128–4096 pixels)"},
		{"vodTranscodeGroups: [{id: g, templates: [{definition: HD, heigth: 720}]}]", "heigth"},
	} {
		_, err := Parse([]byte(bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err %v, want %q", bad.yaml, err, bad.want)
		}
	}
}
