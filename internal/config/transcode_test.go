package config

import (
	"errors"
	"runtime"
	"testing"

	"github.com/livrec/livrec/internal/rules"
)

func TestTranscodeConfig(t *testing.T) {
	c, err := Parse([]byte(`
rules:
  - domainName: "*"
    appName: live
    transcodeTemplates: [lld, my540]
    transcodeRecordFormats: [{format: mp4}]
transcodeTemplates:
  - id: my540
    appName: live
    height: 540
    videoBitrate: 1000
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxTranscoders != runtime.NumCPU() {
		t.Errorf("maxTranscoders default %d, want %d", c.MaxTranscoders, runtime.NumCPU())
	}
	if tt := c.TranscodeTemplates[0]; tt.DomainName != "*" || tt.Codec != "h264" || tt.GOP != 2 || tt.AudioBitrate != 64 {
		t.Errorf("template not normalized: %+v", tt)
	}
	if p := c.Rules[0].TranscodeRecordFormats[0].ObjectPrefix; p != rules.DefaultTranscodeObjectPrefix {
		t.Errorf("transcode prefix %q", p)
	}

	_, err = Parse([]byte(`
rules:
  - domainName: "*"
    appName: other
    transcodeTemplates: [my540]
    transcodeRecordFormats: [{format: mp4}]
transcodeTemplates:
  - id: my540
    appName: live
    height: 541
    videoBitrate: 1000
  - id: ok
    height: 360
    videoBitrate: 9000
maxTranscoders: -1
`))
	var es rules.ValidationErrors
	if !errors.As(err, &es) {
		t.Fatalf("want validation errors, got %v", err)
	}
	want := map[string]int{"transcodeTemplates[0].height": 10, "transcodeTemplates[1].videoBitrate": 14,
		"maxTranscoders": 15}
	for _, e := range es {
		if line, ok := want[e.Field]; ok {
			if e.Line != line {
				t.Errorf("%s: line %d, want %d", e.Field, e.Line, line)
			}
			delete(want, e.Field)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing errors %v in:\n%v", want, err)
	}

	// A template of another app is not available to the rule.
	_, err = Parse([]byte(`
rules:
  - domainName: "*"
    appName: other
    transcodeTemplates: [my540]
    transcodeRecordFormats: [{format: mp4}]
transcodeTemplates:
  - {id: my540, appName: live, height: 540, videoBitrate: 1000}
`))
	if !errors.As(err, &es) || es[0].Field != "rules[0].transcodeTemplates[0]" || es[0].Line != 5 {
		t.Errorf("unknown template for the rule's app: %v", err)
	}
}
