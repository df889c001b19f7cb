package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// VOD mode. A rule with Vod set records into livrec's VOD library instead of the user's
// storage: one m3u8 per cycle under library keys (VodObjectPrefix), each generated file
// becoming an asset. Its recordFormats are derived from the VOD settings (Normalize). A
// stream key has one rule, so it is recorded either to storage or to the library, never
// both: a storage rule and a VOD rule with the same key are refused like any two rules
// with one key, with an error naming the mode of the rule already there.

// VOD defaults and ranges (the cloud's AddLiveRecordVodConfig).
const (
	DefaultVodCycleDuration = 3600
	MinVodCycleDuration     = 300
	MaxVodCycleDuration     = 21600

	// LocalStorage is the storageLocation of the server's own storage (the default).
	LocalStorage = "local"

	// DefaultVodTitle is the title template of a new asset.
	DefaultVodTitle = "{AppName}/{StreamName} {StartTime}"
	// MaxTitleLen is the longest title in bytes of UTF-8 (the VOD API's limit), and
	// MaxDescriptionLen the longest description.
	MaxTitleLen       = 128
	MaxDescriptionLen = 1024

	// Library keys of the recorded playlists and segments.
	VodObjectPrefix      = "vod/{AppName}/{StreamName}/{EscapedStartTime}_{EscapedEndTime}"
	VodSliceObjectPrefix = "vod/{AppName}/{StreamName}/{UnixTimestamp}_{Sequence}"

	// MaxGroupIDLen bounds a transcode group id.
	MaxGroupIDLen = 64
)

// NoTranscodeGroup is the built-in transcode group that keeps the original only.
const NoTranscodeGroup = "VOD_NO_TRANSCODE"

// VodSettings are the VOD-mode settings of a rule (the cloud's LiveRecordVodConfig).
// delayTime and onDemand are the rule's own fields; a VOD rule allows onDemand 0 or 1.
type VodSettings struct {
	// StorageLocation is where the library keeps the rule's files: "local" (the server's
	// own storage, the default) or "<bucket>.<endpoint>" with one of the configured s3
	// endpoints, as the cloud writes a VOD storage address
	// ("vod-media.127.0.0.1:9000"). The bucket name has no ".".
	StorageLocation string `yaml:"storageLocation,omitempty" json:"storageLocation,omitempty"`
	// CycleDuration is the media seconds of one asset, 300–21600 (default 3600).
	CycleDuration int `yaml:"cycleDuration,omitempty" json:"cycleDuration,omitempty"`
	// TranscodeGroupID is the transcode group run on each asset (default: none,
	// NoTranscodeGroup).
	TranscodeGroupID string `yaml:"vodTranscodeGroupId,omitempty" json:"vodTranscodeGroupId,omitempty"`
	// AutoCompose merges a task's cycle assets into one more asset when the task ends;
	// ComposeTranscodeGroupID is the group run on the merged asset.
	AutoCompose             bool   `yaml:"autoCompose,omitempty" json:"autoCompose,omitempty"`
	ComposeTranscodeGroupID string `yaml:"composeVodTranscodeGroupId,omitempty" json:"composeVodTranscodeGroupId,omitempty"`
	// TitleTemplate makes the title of a new asset; variables {DomainName}, {AppName},
	// {StreamName}, {StartTime}, {EndTime} (default DefaultVodTitle).
	TitleTemplate string `yaml:"titleTemplate,omitempty" json:"titleTemplate,omitempty"`
}

// IsVod reports whether the rule records into the VOD library.
func (r *Rule) IsVod() bool { return r.Vod != nil }

// Mode names the rule's mode for messages: "storage" or "VOD".
func (r *Rule) Mode() string {
	if r.IsVod() {
		return "VOD"
	}
	return "storage"
}

// SplitStorageLocation returns the endpoint and bucket of a storageLocation, both empty
// for the server's own storage.
func SplitStorageLocation(loc string) (endpoint, bucket string) {
	if loc == "" || loc == LocalStorage {
		return "", ""
	}
	bucket, endpoint, _ = strings.Cut(loc, ".")
	return endpoint, bucket
}

// normalizeVod fills in the VOD defaults and derives the rule's storage and formats.
func (r *Rule) normalizeVod() {
	v := r.Vod
	if v.StorageLocation == "" {
		v.StorageLocation = LocalStorage
	}
	if v.CycleDuration == 0 {
		v.CycleDuration = DefaultVodCycleDuration
	}
	if v.TranscodeGroupID == "" {
		v.TranscodeGroupID = NoTranscodeGroup
	}
	if v.TitleTemplate == "" {
		v.TitleTemplate = DefaultVodTitle
	}
	r.OssEndpoint, r.OssBucket = SplitStorageLocation(v.StorageLocation)
	// Derived: one m3u8 per cycle under library keys. Formats other than one m3u8 are
	// left for Validate to refuse.
	if len(r.RecordFormats) == 0 || len(r.RecordFormats) == 1 && r.RecordFormats[0].Format == M3U8 {
		slice := DefaultSliceDuration
		if len(r.RecordFormats) == 1 && r.RecordFormats[0].SliceDuration != 0 {
			slice = r.RecordFormats[0].SliceDuration
		}
		r.RecordFormats = []RecordFormat{{Format: M3U8, ObjectPrefix: VodObjectPrefix, SliceObjectPrefix: VodSliceObjectPrefix,
			SliceDuration: slice, CycleDuration: v.CycleDuration}}
	}
}

// titleVars are the variables of a title template.
var titleVars = []string{"DomainName", "AppName", "StreamName", "StartTime", "EndTime"}

var titleVarRE = regexp.MustCompile(`\{[^{}]*\}`)

// RenderTitle fills a title template: times in the cloud's UTC format
// (yyyy-MM-ddTHH:mm:ssZ), the result cut to MaxTitleLen bytes on a character boundary.
func RenderTitle(tmpl, domain, app, stream string, start, end time.Time) string {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02T15:04:05Z")
	}
	s := strings.NewReplacer("{DomainName}", domain, "{AppName}", app, "{StreamName}", stream,
		"{StartTime}", ts(start), "{EndTime}", ts(end)).Replace(tmpl)
	for len(s) > MaxTitleLen {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// validateVod checks the VOD settings of a normalized rule; paths start with "vod.".
func (r *Rule) validateVod(es *ValidationErrors) {
	v := r.Vod
	checkRange(es, "vod.cycleDuration", v.CycleDuration, MinVodCycleDuration, MaxVodCycleDuration)
	if r.OnDemand != OnDemandAuto && r.OnDemand != OnDemandCallback {
		es.add("onDemand", fmt.Sprintf("%d: a VOD rule allows 0 (record every publish) or 1 (ask onDemandUrl)", r.OnDemand))
	}
	if v.StorageLocation != LocalStorage {
		endpoint, bucket := SplitStorageLocation(v.StorageLocation)
		if err := CheckOssBucket(bucket); err != nil || endpoint == "" {
			es.add("vod.storageLocation", fmt.Sprintf("%q: want %q or <bucket>.<endpoint> (a bucket name without \".\", then one of the s3 endpoints)", v.StorageLocation, LocalStorage))
		} else if err := CheckOssEndpoint(endpoint); err != nil {
			es.add("vod.storageLocation", "endpoint "+err.Error())
		}
	}
	if err := ValidGroupID(v.TranscodeGroupID); err != nil {
		es.add("vod.vodTranscodeGroupId", err.Error())
	}
	if v.ComposeTranscodeGroupID != "" {
		if err := ValidGroupID(v.ComposeTranscodeGroupID); err != nil {
			es.add("vod.composeVodTranscodeGroupId", err.Error())
		}
	} else if v.AutoCompose {
		es.add("vod.composeVodTranscodeGroupId", fmt.Sprintf("is required with autoCompose (%q for no transcoding)", NoTranscodeGroup))
	}
	if msg := checkTitle(v.TitleTemplate); msg != "" {
		es.add("vod.titleTemplate", msg)
	}
	// What the library derives or does not do.
	if f := r.RecordFormats; len(f) != 1 || f[0].Format != M3U8 || f[0].ObjectPrefix != VodObjectPrefix ||
		f[0].SliceObjectPrefix != VodSliceObjectPrefix || f[0].CycleDuration != v.CycleDuration {
		es.add("recordFormats", "a VOD rule records one m3u8 under library keys: leave recordFormats out (the cycle is vod.cycleDuration)")
	} else {
		checkRange(es, "recordFormats[0].sliceDuration", f[0].SliceDuration, MinSliceDuration, MaxSliceDuration)
	}
	if len(r.TranscodeTemplates) > 0 || len(r.TranscodeRecordFormats) > 0 {
		es.add("transcodeTemplates", "a VOD rule records the source stream; renditions come from vod.vodTranscodeGroupId")
	}
	if r.StartTime != nil || r.EndTime != nil {
		es.add("startTime", "a VOD rule has no time window")
	}
}

// checkTitle validates a title template, "" when fine.
func checkTitle(tmpl string) string {
	if !utf8.ValidString(tmpl) || len(tmpl) > MaxTitleLen || strings.TrimSpace(tmpl) == "" {
		return fmt.Sprintf("is %d bytes: want 1–%d bytes of UTF-8", len(tmpl), MaxTitleLen)
	}
	for _, v := range titleVarRE.FindAllString(tmpl, -1) {
		if !slices.Contains(titleVars, v[1:len(v)-1]) {
			return fmt.Sprintf("%q: %s is not a variable (allowed: %s)", tmpl, v, braced(titleVars))
		}
	}
	return ""
}

// ValidGroupID checks a transcode group id: 1–64 letters, digits, "_", "-".
func ValidGroupID(id string) error {
	if id == "" || len(id) > MaxGroupIDLen {
		return fmt.Errorf("%.70q: a transcode group id has 1–%d characters", id, MaxGroupIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isNameChar(id[i]) {
			return fmt.Errorf("%q: character %s at %d is not allowed (letters, digits, \"-\", \"_\")", id, quoteByte(id[i]), i)
		}
	}
	return nil
}

// CheckTitle checks an asset title: valid UTF-8, 1–MaxTitleLen bytes.
func CheckTitle(s string) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("is not valid UTF-8")
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("is empty (1–%d bytes of UTF-8 allowed)", MaxTitleLen)
	case len(s) > MaxTitleLen:
		return fmt.Errorf("is %d bytes, at most %d bytes of UTF-8 allowed", len(s), MaxTitleLen)
	}
	return nil
}

// CheckDescription checks an asset description: valid UTF-8, at most MaxDescriptionLen bytes.
func CheckDescription(s string) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("is not valid UTF-8")
	case len(s) > MaxDescriptionLen:
		return fmt.Errorf("is %d bytes, at most %d bytes of UTF-8 allowed", len(s), MaxDescriptionLen)
	}
	return nil
}
