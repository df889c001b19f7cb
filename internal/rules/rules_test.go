package rules

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// valid returns a rule that passes validation; tests change one thing at a time.
func valid() Rule {
	return Rule{
		DomainName: "example.com", AppName: "live", StreamName: "cam1",
		RecordFormats: []RecordFormat{{Format: M3U8}, {Format: FLV}},
	}
}

func TestNormalize(t *testing.T) {
	r := Rule{
		DomainName: "Example.COM", AppName: "live",
		RecordFormats: []RecordFormat{
			{Format: M3U8},
			{Format: FLV, SliceDuration: 30, SliceObjectPrefix: DefaultSliceObjectPrefix},
			{Format: MP4, SliceDuration: 10, CycleDuration: 3600},
		},
	}
	r.Normalize()
	want := Rule{
		DomainName: "example.com", AppName: "live", StreamName: "*", DelayTime: 180,
		RecordFormats: []RecordFormat{
			{Format: M3U8, ObjectPrefix: DefaultObjectPrefix, SliceObjectPrefix: DefaultSliceObjectPrefix, SliceDuration: 30, CycleDuration: 21600},
			{Format: FLV, ObjectPrefix: DefaultObjectPrefix, CycleDuration: 21600},
			{Format: MP4, ObjectPrefix: DefaultObjectPrefix, SliceDuration: 10, CycleDuration: 3600},
		},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("Normalize:\n got %+v\nwant %+v", r, want)
	}
	again := *r.Clone()
	again.Normalize()
	if !reflect.DeepEqual(again, r) {
		t.Errorf("Normalize is not idempotent")
	}
}

func TestValidateOK(t *testing.T) {
	cases := map[string]func(*Rule){
		"as is":           func(r *Rule) {},
		"catch-all":       func(r *Rule) { r.DomainName, r.AppName, r.StreamName = "*", "*", "*" },
		"app level":       func(r *Rule) { r.StreamName = "" },
		"domain level":    func(r *Rule) { r.AppName, r.StreamName = "*", "*" },
		"catch-all app":   func(r *Rule) { r.DomainName = "*" },
		"delay low edge":  func(r *Rule) { r.DelayTime = 15 },
		"delay high edge": func(r *Rule) { r.DelayTime = 21600 },
		"slice low edge":  func(r *Rule) { r.RecordFormats[0].SliceDuration = 5 },
		"cycle low edge":  func(r *Rule) { r.RecordFormats[1].CycleDuration = 900 },
		"cycle high edge": func(r *Rule) { r.RecordFormats[1].CycleDuration = 21600 },
		"onDemand 7":      func(r *Rule) { r.OnDemand = 7 },
		"all of cmaf flv mp4": func(r *Rule) {
			r.RecordFormats = []RecordFormat{{Format: CMAF}, {Format: FLV}, {Format: MP4}}
		},
		"plain time pair": func(r *Rule) {
			r.RecordFormats[1].ObjectPrefix = "{AppName}/{StreamName}/{Sequence}_{StartTime}_{EndTime}"
		},
		"date vars": func(r *Rule) {
			r.RecordFormats[0].SliceObjectPrefix = "record/{Date}/{Hour}/{UnixTimestamp}_{Sequence}"
		},
		"name edges": func(r *Rule) { r.AppName, r.StreamName = "A-z_09", strings.Repeat("s", 255) },
		"ip domain":  func(r *Rule) { r.DomainName = "192.168.1.10" },
		"oss host":   func(r *Rule) { r.OssEndpoint, r.OssBucket = "oss-cn-shanghai.aliyuncs.com", "my-bucket.2" },
		"oss url":    func(r *Rule) { r.OssEndpoint, r.OssBucket = "http://127.0.0.1:7070/", "abc" },
		"prefix 255": func(r *Rule) {
			p := "{StartTime}{EndTime}"
			r.RecordFormats[1].ObjectPrefix = strings.Repeat("x/", (255-len(p))/2) + "x" + p
		},
	}
	for name, mod := range cases {
		r := valid()
		mod(&r)
		r.Normalize()
		if err := r.Validate(); err != nil {
			t.Errorf("%s: unexpected error:\n%v", name, err)
		}
	}
}

var winStart = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Rule)
		want []string // every line of the error, in order
	}{
		{"window on a wildcard stream", func(r *Rule) { st := winStart; r.StreamName = "*"; r.StartTime = &st },
			[]string{"startTime: a time window is only allowed on a stream-level rule (a specific streamName)"}},
		{"window end before start", func(r *Rule) {
			st, et := winStart, winStart.Add(-time.Hour)
			r.StreamName, r.StartTime, r.EndTime = "s1", &st, &et
		},
			[]string{"endTime: 2026-11-30T23:00:00Z is not after startTime 2026-12-01T00:00:00Z"}},
		{"window over 7 days", func(r *Rule) {
			st, et := winStart, winStart.Add(7*24*time.Hour+time.Second)
			r.StreamName, r.StartTime, r.EndTime = "s1", &st, &et
		},
			[]string{"endTime: the window 2026-12-01T00:00:00Z–2026-12-08T00:00:01Z is longer than 7 days"}},
		{"bucket without endpoint", func(r *Rule) { r.OssBucket = "bkt" },
			[]string{"ossEndpoint: is required when ossBucket is set (set both or neither)"}},
		{"endpoint without bucket", func(r *Rule) { r.OssEndpoint = "oss-cn-shanghai.aliyuncs.com" },
			[]string{"ossBucket: is required when ossEndpoint is set (set both or neither)"}},
		{"bad bucket name", func(r *Rule) { r.OssEndpoint, r.OssBucket = "127.0.0.1:7070", "My_Bucket" },
			[]string{`ossBucket: "My_Bucket": character 'M' at 0 is not allowed in a bucket name (lower-case letters, digits, "-", ".")`}},
		{"short bucket name", func(r *Rule) { r.OssEndpoint, r.OssBucket = "https://s3.example.com", "ab" },
			[]string{`ossBucket: "ab": a bucket name has 3–63 characters, not 2`}},
		{"bucket with dots", func(r *Rule) { r.OssEndpoint, r.OssBucket = "s3.example.com", "a..b" },
			[]string{`ossBucket: "a..b": ".." is not allowed in a bucket name`}},
		{"endpoint with path", func(r *Rule) { r.OssEndpoint, r.OssBucket = "http://s3.example.com/x", "bkt" },
			[]string{`ossEndpoint: "http://s3.example.com/x": want host[:port] or http(s)://host[:port], without a path`}},
		{"endpoint bad port", func(r *Rule) { r.OssEndpoint, r.OssBucket = "s3.example.com:0", "bkt" },
			[]string{`ossEndpoint: "s3.example.com:0": port "0" is not a number 1–65535`}},
		{"endpoint bad scheme", func(r *Rule) { r.OssEndpoint, r.OssBucket = "ftp://s3.example.com", "bkt" },
			[]string{`ossEndpoint: "ftp://s3.example.com": scheme must be http or https`}},
		{"delay below", func(r *Rule) { r.DelayTime = 14 },
			[]string{"delayTime: 14 is out of range (allowed 15–21600 seconds)"}},
		{"delay above", func(r *Rule) { r.DelayTime = 21601 },
			[]string{"delayTime: 21601 is out of range (allowed 15–21600 seconds)"}},
		{"delay negative", func(r *Rule) { r.DelayTime = -1 },
			[]string{"delayTime: -1 is out of range (allowed 15–21600 seconds)"}},
		{"slice below", func(r *Rule) { r.RecordFormats[0].SliceDuration = 4 },
			[]string{"recordFormats[0].sliceDuration: 4 is out of range (allowed 5–30 seconds)"}},
		{"slice above", func(r *Rule) {
			r.RecordFormats = append(r.RecordFormats, RecordFormat{Format: CMAF})
			r.RecordFormats = r.RecordFormats[1:]
			r.RecordFormats[1].SliceDuration = 40
		},
			[]string{"recordFormats[1].sliceDuration: 40 is out of range (allowed 5–30 seconds)"}},
		{"cycle below", func(r *Rule) { r.RecordFormats[1].CycleDuration = 899 },
			[]string{"recordFormats[1].cycleDuration: 899 is out of range (allowed 900–21600 seconds)"}},
		{"cycle above", func(r *Rule) { r.RecordFormats[0].CycleDuration = 21601 },
			[]string{"recordFormats[0].cycleDuration: 21601 is out of range (allowed 900–21600 seconds)"}},
		{"star in app", func(r *Rule) { r.AppName = "li*ve" },
			[]string{`appName: "li*ve": "*" is only allowed alone`}},
		{"star in stream", func(r *Rule) { r.StreamName = "*cam" },
			[]string{`streamName: "*cam": "*" is only allowed alone`}},
		{"star in domain", func(r *Rule) { r.DomainName = "*.example.com" },
			[]string{`domainName: "*.example.com": "*" is only allowed alone`}},
		{"empty app", func(r *Rule) { r.AppName = "" },
			[]string{`appName: is empty (1–255 characters allowed)`}},
		{"bad char in app", func(r *Rule) { r.AppName = "a.b" },
			[]string{`appName: "a.b": character '.' at 1 is not allowed (letters, digits, "-", "_")`}},
		{"long stream", func(r *Rule) { r.StreamName = strings.Repeat("s", 256) },
			[]string{`streamName: is 256 characters, more than 255`}},
		{"stream under star app", func(r *Rule) { r.AppName = "*" },
			[]string{`streamName: "cam1" needs a specific appName (appName is "*")`}},
		{"no domain", func(r *Rule) { r.DomainName = "" },
			[]string{`domainName: is required (a host name, or "*" for all domains)`}},
		{"domain with port", func(r *Rule) { r.DomainName = "example.com:1935" },
			[]string{`domainName: "example.com:1935": character ':' at 11 is not allowed in a host name (letters, digits, "-", ".")`}},
		{"domain empty label", func(r *Rule) { r.DomainName = "example..com" },
			[]string{`domainName: "example..com": empty label (leading, trailing or doubled ".")`}},
		{"domain too long", func(r *Rule) { r.DomainName = strings.Repeat("a.", 127) },
			[]string{`domainName: is 254 characters, more than 253`}},
		{"onDemand", func(r *Rule) { r.OnDemand = 3 },
			[]string{"onDemand: 3 is not one of 0, 1, 2, 7"}},
		{"unknown format", func(r *Rule) { r.RecordFormats[0].Format = "avi" },
			[]string{`recordFormats[0].format: "avi" is not one of m3u8, flv, mp4, cmaf`}},
		{"format case", func(r *Rule) { r.RecordFormats[1].Format = "FLV" },
			[]string{`recordFormats[1].format: "FLV" is not one of m3u8, flv, mp4, cmaf`}},
		{"no formats", func(r *Rule) { r.RecordFormats = nil },
			[]string{"recordFormats: at least one format is required"}},
		{"cmaf and m3u8", func(r *Rule) { r.RecordFormats[1].Format = CMAF },
			[]string{"recordFormats: cmaf and m3u8 cannot be used together"}},
		{"duplicate format", func(r *Rule) { r.RecordFormats = append(r.RecordFormats, RecordFormat{Format: M3U8}) },
			[]string{`recordFormats[2].format: "m3u8" is already used by recordFormats[0]`}},
		{"slice on flv", func(r *Rule) { r.RecordFormats[1].SliceDuration = 10 },
			[]string{"recordFormats[1].sliceDuration: is only for m3u8 and cmaf, not flv"}},
		{"slice prefix on mp4", func(r *Rule) {
			r.RecordFormats[1] = RecordFormat{Format: MP4, SliceObjectPrefix: "s/{UnixTimestamp}_{Sequence}"}
		}, []string{"recordFormats[1].sliceObjectPrefix: is only for m3u8 and cmaf, not mp4"}},
		{"prefix without time pair", func(r *Rule) { r.RecordFormats[1].ObjectPrefix = "record/{AppName}/{Sequence}" },
			[]string{`recordFormats[1].objectPrefix: "record/{AppName}/{Sequence}": must contain {StartTime} and {EndTime}, or {EscapedStartTime} and {EscapedEndTime}`}},
		{"prefix mixed pair", func(r *Rule) { r.RecordFormats[1].ObjectPrefix = "{StartTime}_{EscapedEndTime}" },
			[]string{`recordFormats[1].objectPrefix: "{StartTime}_{EscapedEndTime}": must contain {StartTime} and {EndTime}, or {EscapedStartTime} and {EscapedEndTime}`}},
		{"slice prefix without sequence", func(r *Rule) { r.RecordFormats[0].SliceObjectPrefix = "s/{UnixTimestamp}" },
			[]string{`recordFormats[0].sliceObjectPrefix: "s/{UnixTimestamp}": must contain {UnixTimestamp} and {Sequence}`}},
		{"unknown variable", func(r *Rule) { r.RecordFormats[1].ObjectPrefix = "{Foo}/{StartTime}{EndTime}" },
			[]string{`recordFormats[1].objectPrefix: "{Foo}/{StartTime}{EndTime}": unknown variable: {Foo} (allowed: {AppName}, {StreamName}, {Sequence}, {StartTime}, {EndTime}, {EscapedStartTime}, {EscapedEndTime}, {Date}, {Hour}, {Minute}, {Second})`}},
		{"variable not allowed in slice", func(r *Rule) { r.RecordFormats[0].SliceObjectPrefix = "{EndTime}/{UnixTimestamp}_{Sequence}" },
			[]string{`recordFormats[0].sliceObjectPrefix: "{EndTime}/{UnixTimestamp}_{Sequence}": {EndTime} not allowed here (allowed: {AppName}, {StreamName}, {UnixTimestamp}, {Sequence}, {Date}, {Hour}, {Minute}, {Second})`}},
		{"unbalanced brace", func(r *Rule) { r.RecordFormats[1].ObjectPrefix = "{StartTime}{EndTime" },
			[]string{`recordFormats[1].objectPrefix: "{StartTime}{EndTime": template syntax: unclosed "{" at byte 11`}},
		{"prefix escapes root", func(r *Rule) { r.RecordFormats[1].ObjectPrefix = "../{StartTime}{EndTime}" },
			[]string{`recordFormats[1].objectPrefix: "../{StartTime}{EndTime}": unsafe key: path element ".." is not allowed`}},
		{"absolute prefix", func(r *Rule) { r.RecordFormats[0].SliceObjectPrefix = "/s/{UnixTimestamp}_{Sequence}" },
			[]string{`recordFormats[0].sliceObjectPrefix: "/s/{UnixTimestamp}_{Sequence}": unsafe key: must not start with "/"`}},
		{"prefix 256 bytes", func(r *Rule) {
			p := "{StartTime}{EndTime}"
			r.RecordFormats[1].ObjectPrefix = strings.Repeat("x/", (256-len(p))/2) + p
		}, []string{"recordFormats[1].objectPrefix: is 256 bytes, must be shorter than 256"}},
		{"several at once", func(r *Rule) {
			r.AppName, r.OnDemand = "", 5
			r.RecordFormats[0].SliceDuration = 31
		}, []string{
			"appName: is empty (1–255 characters allowed)",
			"onDemand: 5 is not one of 0, 1, 2, 7",
			"recordFormats[0].sliceDuration: 31 is out of range (allowed 5–30 seconds)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid()
			tt.mod(&r)
			r.Normalize()
			err := r.Validate()
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("error:\n got %q\nwant %q", got, tt.want)
			}
			var es ValidationErrors
			if !errors.As(err, &es) || len(es) != len(tt.want) {
				t.Fatalf("error is not ValidationErrors of %d: %#v", len(tt.want), err)
			}
			var one *ValidationError
			if !errors.As(err, &one) || one.Field == "" || !strings.HasPrefix(tt.want[0], one.Field+": ") {
				t.Errorf("first ValidationError = %+v", one)
			}
		})
	}
}

func TestValidationErrorJSON(t *testing.T) {
	r := valid()
	r.OnDemand = 3
	r.Normalize()
	b, err := json.Marshal(r.Validate())
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"field":"onDemand","message":"3 is not one of 0, 1, 2, 7"}]`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "Live-1_x", strings.Repeat("9", 255)} {
		if err := ValidName(s); err != nil {
			t.Errorf("ValidName(%q) = %v", s, err)
		}
	}
	bad := map[string]string{
		"":                       "is empty",
		strings.Repeat("a", 256): "more than 255",
		"*":                      `character '*' at 0`,
		"a b":                    `character ' ' at 1`,
		"a/b":                    `character '/' at 1`,
		"..":                     `character '.' at 0`,
		"a\x00":                  `character 0x00 at 1`,
		"é":                      `character 0xc3 at 0`,
	}
	for s, want := range bad {
		if err := ValidName(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidName(%q) = %v, want error containing %q", s, err, want)
		}
	}
}

func TestSetMatch(t *testing.T) {
	mk := func(d, a, s string, delay int) Rule {
		return Rule{DomainName: d, AppName: a, StreamName: s, DelayTime: delay, RecordFormats: []RecordFormat{{Format: FLV}}}
	}
	set, err := NewSet([]Rule{
		mk("*", "*", "*", 100),
		mk("*", "live", "", 101),
		mk("*", "live", "special", 102),
		mk("Example.com", "*", "*", 200),
		mk("example.com", "live", "*", 201),
		mk("example.com", "live", "cam1", 202),
		mk("other.org", "app", "s", 300),
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		domain, app, stream string
		want                int
	}{
		{"example.com", "live", "cam1", 202},    // stream level
		{"EXAMPLE.COM", "live", "cam1", 202},    // domain is case-insensitive
		{"example.com", "live", "cam2", 201},    // app level
		{"example.com", "Live", "cam1", 200},    // app names are case-sensitive
		{"example.com", "vod", "cam1", 200},     // domain level
		{"example.com", "live", "special", 201}, // a domain rule beats the catch-all's stream rule
		{"other.org", "app", "s", 300},
		{"other.org", "app", "t", 100},          // no domain or app rule: catch-all
		{"nowhere.net", "live", "special", 102}, // catch-all stream level
		{"nowhere.net", "live", "x", 101},       // catch-all app level
		{"", "x", "y", 100},
	}
	for _, tt := range tests {
		r, ok := set.Match(tt.domain, tt.app, tt.stream)
		if !ok || r.DelayTime != tt.want {
			t.Errorf("Match(%q, %q, %q) = %v, %v; want delay %d", tt.domain, tt.app, tt.stream, r, ok, tt.want)
		}
	}

	// The result is a copy.
	r, _ := set.Match("example.com", "live", "cam1")
	r.RecordFormats[0].Format = MP4
	r.DelayTime = 1
	if r2, _ := set.Match("example.com", "live", "cam1"); r2.DelayTime != 202 || r2.RecordFormats[0].Format != FLV {
		t.Errorf("Match result shares memory with the set")
	}
	if n := set.Len(); n != 7 || len(set.Rules()) != 7 || set.Rules()[0].StreamName != "*" {
		t.Errorf("Len/Rules = %d, %+v", n, set.Rules())
	}

	// Without a catch-all, unknown domains match nothing.
	set2, err := NewSet([]Rule{mk("example.com", "live", "*", 15)})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := set2.Match("other.com", "live", "x"); ok {
		t.Errorf("Match without catch-all = %+v", r)
	}
	var empty *Set
	if _, ok := empty.Match("a", "b", "c"); ok || empty.Len() != 0 || empty.Rules() != nil {
		t.Errorf("nil Set matches")
	}
}

func TestNewSetErrors(t *testing.T) {
	f := []RecordFormat{{Format: MP4}}
	_, err := NewSet([]Rule{
		{DomainName: "example.com", AppName: "live", RecordFormats: f},
		{DomainName: "EXAMPLE.com", AppName: "live", StreamName: "*", RecordFormats: f},
		{DomainName: "example.com", AppName: "live", RecordFormats: []RecordFormat{{Format: MP4, CycleDuration: 10}}},
	})
	want := []string{
		`[1]: duplicate of [0] (domainName "example.com", appName "live", streamName "*")`,
		`[2].recordFormats[0].cycleDuration: 10 is out of range (allowed 900–21600 seconds)`,
	}
	if err == nil || !reflect.DeepEqual(strings.Split(err.Error(), "\n"), want) {
		t.Fatalf("NewSet error:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	var es ValidationErrors
	errors.As(err, &es)
	if got := es.Prefix("rules")[1].Field; got != "rules[2].recordFormats[0].cycleDuration" {
		t.Errorf("Prefix: %q", got)
	}
}

func TestDefaultRules(t *testing.T) {
	rs := DefaultRules()
	if len(rs) != 1 {
		t.Fatalf("DefaultRules = %+v", rs)
	}
	r := rs[0]
	if r.DomainName != "*" || r.AppName != "*" || r.StreamName != "*" || r.DelayTime != 180 || r.OnDemand != 0 {
		t.Errorf("DefaultRules = %+v", r)
	}
	want := []RecordFormat{{Format: M3U8, ObjectPrefix: DefaultObjectPrefix, SliceObjectPrefix: DefaultSliceObjectPrefix, SliceDuration: 30, CycleDuration: 21600}}
	if !reflect.DeepEqual(r.RecordFormats, want) {
		t.Errorf("formats = %+v", r.RecordFormats)
	}
	if err := r.Validate(); err != nil {
		t.Error(err)
	}
	set, err := NewSet(rs)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.Match("any.host", "a", "b"); !ok {
		t.Error("catch-all does not match")
	}
}

func TestNormalizeDomain(t *testing.T) {
	for in, want := range map[string]string{
		"a.test": "a.test", "A.Test.": "a.test", "a.test:1935": "a.test", " a.test": "a.test",
		"A.TEST.:1935": "a.test", "": DefaultDomain, "  ": DefaultDomain, "127.0.0.1": "127.0.0.1",
		"::1": "::1", "[::1]:1935": "::1", "localhost": "localhost", "x-1.example.com": "x-1.example.com",
	} {
		got, err := NormalizeDomain(in)
		if err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"a..b", strings.Repeat("a", 300), strings.Repeat("a", 64) + ".test", "a b", "a_b.test",
		"a.test:99999", "a.test:x", "a.test:", "*", ".", "a/b", "a\x00b", "é.test"} {
		if got, err := NormalizeDomain(in); err == nil {
			t.Errorf("NormalizeDomain(%.50q) = %q, want an error", in, got)
		} else if len(err.Error()) > 200 {
			t.Errorf("NormalizeDomain(%.50q): error of %d bytes", in, len(err.Error()))
		}
	}
}
