package rules

import (
	"strings"
	"testing"
)

func TestTranscodeRule(t *testing.T) {
	r := Rule{DomainName: "*", AppName: "live", TranscodeTemplates: []string{"lld", "my540"},
		TranscodeRecordFormats: []RecordFormat{{Format: M3U8}, {Format: MP4}}}
	r.Normalize()
	if err := r.Validate(); err != nil {
		t.Fatalf("renditions only: %v", err)
	}
	if got := r.TranscodeRecordFormats[0].ObjectPrefix; got != DefaultTranscodeObjectPrefix {
		t.Errorf("objectPrefix default %q", got)
	}
	if got := r.TranscodeRecordFormats[0].SliceObjectPrefix; got != DefaultTranscodeSliceObjectPrefix {
		t.Errorf("sliceObjectPrefix default %q", got)
	}
	s, err := NewSet([]Rule{r, {DomainName: "*", AppName: "live", StreamName: "x_lld", RecordFormats: []RecordFormat{{Format: FLV}}}})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := s.Match("a.com", "live", "cam_my540")
	if !ok || len(got.RecordFormats) != 2 || got.RecordFormats[1].Format != MP4 || got.TranscodeTemplates != nil {
		t.Fatalf("rendition rule: %+v", got)
	}
	if got, _ := s.Match("a.com", "live", "cam"); len(got.RecordFormats) != 0 || len(got.TranscodeTemplates) != 2 {
		t.Fatalf("original rule: %+v", got)
	}
	// A stream-level rule for the exact name wins; an unlisted suffix is an ordinary stream.
	if got, _ := s.Match("a.com", "live", "x_lld"); got.RecordFormats[0].Format != FLV {
		t.Fatalf("stream-level rule: %+v", got)
	}
	if _, _, ok := s.RenditionOf("a.com", "live", "cam_lhd"); ok {
		t.Fatal("cam_lhd taken as a rendition of an unlisted template")
	}
	all := Rule{DomainName: "*", AppName: "*", RecordFormats: []RecordFormat{{Format: M3U8}}, TranscodeTemplates: []string{"all"},
		TranscodeRecordFormats: []RecordFormat{{Format: FLV}}}
	s, err = NewSet([]Rule{all})
	if err != nil {
		t.Fatal(err)
	}
	if _, tpl, ok := s.RenditionOf("d", "a", "s_lud"); !ok || tpl != "lud" {
		t.Fatal("all: s_lud is a rendition")
	}
	if _, _, ok := s.RenditionOf("d", "a", "my_stream"); ok {
		t.Fatal("all: my_stream is not a rendition")
	}
}

func TestTranscodeRuleErrors(t *testing.T) {
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = "t" + strings.Repeat("x", i)
	}
	for _, c := range []struct {
		r     Rule
		field string
	}{
		{Rule{TranscodeTemplates: []string{"lld"}}, "transcodeRecordFormats"},
		{Rule{TranscodeRecordFormats: []RecordFormat{{Format: FLV}}}, "transcodeTemplates"},
		{Rule{TranscodeTemplates: eleven, TranscodeRecordFormats: []RecordFormat{{Format: FLV}}}, "transcodeTemplates"},
		{Rule{TranscodeTemplates: []string{"a b"}, TranscodeRecordFormats: []RecordFormat{{Format: FLV}}}, "transcodeTemplates[0]"},
		{Rule{TranscodeTemplates: []string{"lld", "all"}, TranscodeRecordFormats: []RecordFormat{{Format: FLV}}}, "transcodeTemplates[1]"},
		{Rule{TranscodeTemplates: []string{"lld", "lld"}, TranscodeRecordFormats: []RecordFormat{{Format: FLV}}}, "transcodeTemplates[1]"},
		{Rule{TranscodeTemplates: []string{"lld"}, TranscodeRecordFormats: []RecordFormat{{Format: M3U8, SliceDuration: 99}}}, "transcodeRecordFormats[0].sliceDuration"},
		{Rule{TranscodeTemplates: []string{"lld"}, TranscodeRecordFormats: []RecordFormat{{Format: M3U8}, {Format: CMAF}}}, "transcodeRecordFormats"},
		{Rule{}, "recordFormats"},
	} {
		c.r.DomainName, c.r.AppName = "*", "*"
		c.r.Normalize()
		err := c.r.Validate()
		if err == nil || !hasField(err.(ValidationErrors), c.field) {
			t.Errorf("%+v: want an error on %s, got %v", c.r, c.field, err)
		}
	}
}

func hasField(es ValidationErrors, f string) bool {
	for _, e := range es {
		if e.Field == f {
			return true
		}
	}
	return false
}
