// Package rules holds recording rules: what to record for a stream key (domain, app,
// stream), their defaults and validation, and the matching of a stream key to the one
// rule that applies.
//
// The model mirrors the cloud recording API's record config (reference §1) with the
// field names in lowerCamelCase. A rule is normalized (defaults filled in) and then
// validated; a Set holds validated rules and answers Match by priority.
package rules

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/keytemplate"
)

// Format is a recording output format.
type Format string

// Supported formats.
const (
	M3U8 Format = "m3u8" // HLS: playlist + MPEG-TS segments
	FLV  Format = "flv"
	MP4  Format = "mp4"
	CMAF Format = "cmaf" // playlist + fragmented-MP4 segments
)

// Formats lists the supported formats in documentation order.
var Formats = []Format{M3U8, FLV, MP4, CMAF}

// Sliced reports whether f is written as a playlist with segments, i.e. whether
// sliceDuration and sliceObjectPrefix apply.
func (f Format) Sliced() bool { return f == M3U8 || f == CMAF }

// Valid reports whether f is a supported format.
func (f Format) Valid() bool { return slices.Contains(Formats, f) }

// Start modes (onDemand).
const (
	OnDemandAuto     = 0 // record every publish
	OnDemandCallback = 1 // ask onDemandUrl over HTTP
	OnDemandPushURL  = 2 // the push URL's record_config decides
	OnDemandManual   = 7 // record only on a manual start command
)

// Wildcard matches every domain, app or stream.
const Wildcard = "*"

// Defaults and ranges, in seconds unless noted.
const (
	DefaultDelayTime = 180
	MinDelayTime     = 15
	MaxDelayTime     = 21600

	DefaultSliceDuration = 30
	MinSliceDuration     = 5
	MaxSliceDuration     = 30

	// The cycle range is a recollection in the reference ([L]); the default is documented.
	DefaultCycleDuration = 21600
	MinCycleDuration     = 900
	MaxCycleDuration     = 21600

	DefaultObjectPrefix      = "record/{AppName}/{StreamName}/{EscapedStartTime}_{EscapedEndTime}"
	DefaultSliceObjectPrefix = "record/{AppName}/{StreamName}/{UnixTimestamp}_{Sequence}"

	// Defaults of transcodeRecordFormats; {StreamName} is the rendition's name,
	// {StreamName}_{TemplateId}, so renditions sharing a prefix never collide.
	DefaultTranscodeObjectPrefix      = "transcodeRecord/{AppName}/{StreamName}/{EscapedStartTime}_{EscapedEndTime}"
	DefaultTranscodeSliceObjectPrefix = "transcodeRecord/{AppName}/{StreamName}/{UnixTimestamp}_{Sequence}"

	// MaxTranscodeTemplates bounds transcodeTemplates; AllTemplates alone means every
	// built-in template (BuiltinTemplates).
	MaxTranscodeTemplates = 10
	AllTemplates          = "all"

	// MaxPrefixLen is the exclusive limit on a prefix: it must be shorter than 256 bytes.
	MaxPrefixLen = 256

	MaxNameLen   = 255 // app and stream names
	MaxDomainLen = 253
)

// BuiltinTemplates are the IDs of the live transcode templates available without
// configuration (the cloud's standard system templates).
var BuiltinTemplates = []string{"lld", "lsd", "lhd", "lud"}

// Variables each kind of prefix may use (reference §6). {EndTime} is not available to
// slice keys: a segment is stored while its file is still open. {Date}, {Hour},
// {Minute} and {Second} are taken from the time the recorder passes as Vars.Start: the
// file start for objectPrefix, the segment start for sliceObjectPrefix.
var (
	objectPrefixVars = []string{
		keytemplate.AppName, keytemplate.StreamName, keytemplate.Sequence,
		keytemplate.StartTime, keytemplate.EndTime, keytemplate.EscapedStartTime, keytemplate.EscapedEndTime,
		keytemplate.Date, keytemplate.Hour, keytemplate.Minute, keytemplate.Second,
	}
	slicePrefixVars = []string{
		keytemplate.AppName, keytemplate.StreamName, keytemplate.UnixTimestamp, keytemplate.Sequence,
		keytemplate.Date, keytemplate.Hour, keytemplate.Minute, keytemplate.Second,
	}
)

// RecordFormat is one output of a rule.
type RecordFormat struct {
	Format Format `yaml:"format" json:"format"`
	// ObjectPrefix is the key template of the file (playlist or container), without the
	// extension. It must contain {StartTime} and {EndTime}, or {EscapedStartTime} and
	// {EscapedEndTime}.
	ObjectPrefix string `yaml:"objectPrefix" json:"objectPrefix"`
	// SliceObjectPrefix is the key template of a segment (m3u8 and cmaf only). It must
	// contain {UnixTimestamp} and {Sequence}.
	SliceObjectPrefix string `yaml:"sliceObjectPrefix" json:"sliceObjectPrefix"`
	// SliceDuration is the target segment duration in seconds (m3u8 and cmaf only).
	SliceDuration int `yaml:"sliceDuration" json:"sliceDuration"`
	// CycleDuration is the media duration in seconds after which a file is generated and
	// the next one started.
	CycleDuration int `yaml:"cycleDuration" json:"cycleDuration"`
}

// Rule says what to record for the stream keys it matches.
//
// New fields (ossEndpoint, ossBucket, startTime/endTime, ...) go here with their
// defaults in Normalize and their checks in Validate; zero values must mean "default"
// or "unset" so that older config files keep working.
type Rule struct {
	// DomainName is a host name, or "*" for the catch-all. Compared case-insensitively
	// and stored in lower case by Normalize.
	DomainName string `yaml:"domainName" json:"domainName"`
	// AppName is an app name or "*".
	AppName string `yaml:"appName" json:"appName"`
	// StreamName is a stream name or "*"; empty means "*". A specific stream needs a
	// specific app.
	StreamName string `yaml:"streamName" json:"streamName"`
	// DelayTime is the stitch window in seconds: a publish that comes back within it
	// continues the paused task.
	DelayTime int `yaml:"delayTime" json:"delayTime"`
	// OnDemand is the start mode: OnDemandAuto, OnDemandCallback, OnDemandPushURL or
	// OnDemandManual.
	OnDemand int `yaml:"onDemand" json:"onDemand"`
	// RecordFormats are the outputs, at most one per format.
	RecordFormats []RecordFormat `yaml:"recordFormats" json:"recordFormats"`
	// StartTime and EndTime (RFC 3339) restrict a stream-level rule to a time window:
	// a publish is recorded only inside [StartTime, EndTime). At most MaxWindow apart.
	StartTime *time.Time `yaml:"startTime,omitempty" json:"startTime,omitempty"`
	EndTime   *time.Time `yaml:"endTime,omitempty" json:"endTime,omitempty"`
	// OssEndpoint and OssBucket name the object storage the rule's files go to (the
	// cloud API's OssEndpoint and OssBucket): both set or both empty. Empty means the
	// server's own storage (local disk by default). OssEndpoint is a host[:port] or an
	// http(s)://host[:port] URL; OssBucket follows the S3/OSS bucket naming rules.
	OssEndpoint string `yaml:"ossEndpoint,omitempty" json:"ossEndpoint,omitempty"`
	OssBucket   string `yaml:"ossBucket,omitempty" json:"ossBucket,omitempty"`
	// TranscodeTemplates are the live transcode templates (IDs, at most 10, or ["all"])
	// whose renditions are recorded, each as stream {StreamName}_{TemplateId} with
	// TranscodeRecordFormats. RecordFormats may then be empty (renditions only).
	TranscodeTemplates     []string       `yaml:"transcodeTemplates,omitempty" json:"transcodeTemplates,omitempty"`
	TranscodeRecordFormats []RecordFormat `yaml:"transcodeRecordFormats,omitempty" json:"transcodeRecordFormats,omitempty"`
}

// Renders reports whether the rule records the rendition of template id.
func (r *Rule) Renders(id string) bool {
	if len(r.TranscodeTemplates) == 1 && r.TranscodeTemplates[0] == AllTemplates {
		return slices.Contains(BuiltinTemplates, id)
	}
	return slices.Contains(r.TranscodeTemplates, id)
}

// Rendition returns the rule a rendition of r is recorded with: transcodeRecordFormats
// as its formats, and no transcoding of its own.
func (r *Rule) Rendition() *Rule {
	c := r.Clone()
	c.RecordFormats = c.TranscodeRecordFormats
	c.TranscodeRecordFormats, c.TranscodeTemplates = nil, nil
	return c
}

// MaxWindow is the longest recording window of a rule (startTime to endTime).
const MaxWindow = 7 * 24 * time.Hour

// InWindow reports whether t is inside the rule's time window (always, without one),
// and the next window edge after t (zero if none): the start if t is before it, else
// the end.
func (r *Rule) InWindow(t time.Time) (bool, time.Time) {
	if r.StartTime != nil && t.Before(*r.StartTime) {
		return false, *r.StartTime
	}
	if r.EndTime != nil {
		if !t.Before(*r.EndTime) {
			return false, time.Time{}
		}
		return true, *r.EndTime
	}
	return true, time.Time{}
}

// Clone returns a deep copy of r.
func (r *Rule) Clone() *Rule {
	c := *r
	c.RecordFormats = slices.Clone(r.RecordFormats)
	c.TranscodeRecordFormats = slices.Clone(r.TranscodeRecordFormats)
	c.TranscodeTemplates = slices.Clone(r.TranscodeTemplates)
	if r.StartTime != nil {
		st := *r.StartTime
		c.StartTime = &st
	}
	if r.EndTime != nil {
		et := *r.EndTime
		c.EndTime = &et
	}
	return &c
}

// Normalize fills in defaults: an empty streamName becomes "*", the domain is lower-cased,
// zero durations and empty prefixes get their defaults. For flv and mp4, a sliceDuration
// or sliceObjectPrefix equal to the default is cleared (clients of the cloud API often
// send the defaults for every format); any other value is left for Validate to reject.
// Normalize is idempotent.
func (r *Rule) Normalize() {
	r.DomainName = strings.ToLower(r.DomainName)
	if r.StreamName == "" {
		r.StreamName = Wildcard
	}
	if r.DelayTime == 0 {
		r.DelayTime = DefaultDelayTime
	}
	normalizeFormats(r.RecordFormats, DefaultObjectPrefix, DefaultSliceObjectPrefix)
	normalizeFormats(r.TranscodeRecordFormats, DefaultTranscodeObjectPrefix, DefaultTranscodeSliceObjectPrefix)
}

// normalizeFormats fills in the defaults of a list of record formats.
func normalizeFormats(fs []RecordFormat, objectPrefix, slicePrefix string) {
	for i := range fs {
		f := &fs[i]
		if f.ObjectPrefix == "" {
			f.ObjectPrefix = objectPrefix
		}
		if f.CycleDuration == 0 {
			f.CycleDuration = DefaultCycleDuration
		}
		if f.Format.Sliced() {
			if f.SliceObjectPrefix == "" {
				f.SliceObjectPrefix = slicePrefix
			}
			if f.SliceDuration == 0 {
				f.SliceDuration = DefaultSliceDuration
			}
		} else if f.Format.Valid() {
			if f.SliceObjectPrefix == slicePrefix {
				f.SliceObjectPrefix = ""
			}
			if f.SliceDuration == DefaultSliceDuration {
				f.SliceDuration = 0
			}
		}
	}
}

// Validate checks a normalized rule and returns every problem as ValidationErrors, or nil.
// Field paths are relative to the rule: "appName", "recordFormats[1].sliceDuration".
func (r *Rule) Validate() error {
	var es ValidationErrors

	if err := validDomain(r.DomainName); err != nil {
		es.add("domainName", err.Error())
	}
	if err := validPattern(r.AppName); err != nil {
		es.add("appName", err.Error())
	}
	if err := validPattern(r.StreamName); err != nil {
		es.add("streamName", err.Error())
	} else if r.StreamName != Wildcard && r.AppName == Wildcard {
		es.add("streamName", fmt.Sprintf("%q needs a specific appName (appName is %q)", r.StreamName, Wildcard))
	}
	checkRange(&es, "delayTime", r.DelayTime, MinDelayTime, MaxDelayTime)
	switch r.OnDemand {
	case OnDemandAuto, OnDemandCallback, OnDemandPushURL, OnDemandManual:
	default:
		es.add("onDemand", fmt.Sprintf("%d is not one of 0, 1, 2, 7", r.OnDemand))
	}

	if r.StartTime != nil || r.EndTime != nil {
		field := "startTime"
		if r.StartTime == nil {
			field = "endTime"
		}
		switch {
		case r.StreamName == Wildcard:
			es.add(field, "a time window is only allowed on a stream-level rule (a specific streamName)")
		case r.StartTime != nil && r.EndTime != nil && !r.EndTime.After(*r.StartTime):
			es.add("endTime", fmt.Sprintf("%s is not after startTime %s", r.EndTime.Format(time.RFC3339), r.StartTime.Format(time.RFC3339)))
		case r.StartTime != nil && r.EndTime != nil && r.EndTime.Sub(*r.StartTime) > MaxWindow:
			es.add("endTime", fmt.Sprintf("the window %s–%s is longer than 7 days", r.StartTime.Format(time.RFC3339), r.EndTime.Format(time.RFC3339)))
		}
	}
	switch {
	case r.OssEndpoint != "" && r.OssBucket == "":
		es.add("ossBucket", "is required when ossEndpoint is set (set both or neither)")
	case r.OssEndpoint == "" && r.OssBucket != "":
		es.add("ossEndpoint", "is required when ossBucket is set (set both or neither)")
	}
	if r.OssEndpoint != "" {
		if err := CheckOssEndpoint(r.OssEndpoint); err != nil {
			es.add("ossEndpoint", err.Error())
		}
	}
	if r.OssBucket != "" {
		if err := CheckOssBucket(r.OssBucket); err != nil {
			es.add("ossBucket", err.Error())
		}
	}
	if len(r.RecordFormats) == 0 && len(r.TranscodeRecordFormats) == 0 {
		es.add("recordFormats", "at least one format is required")
	}
	validateFormats(&es, "recordFormats", r.RecordFormats)
	validateFormats(&es, "transcodeRecordFormats", r.TranscodeRecordFormats)
	switch n := len(r.TranscodeTemplates); {
	case n == 0 && len(r.TranscodeRecordFormats) > 0:
		es.add("transcodeTemplates", "is required with transcodeRecordFormats (template IDs, or [\"all\"])")
	case n > 0 && len(r.TranscodeRecordFormats) == 0:
		es.add("transcodeRecordFormats", "at least one format is required with transcodeTemplates")
	case n > MaxTranscodeTemplates:
		es.add("transcodeTemplates", fmt.Sprintf("%d templates, at most %d allowed", n, MaxTranscodeTemplates))
	}
	seenTpl := map[string]int{}
	for i, id := range r.TranscodeTemplates {
		path := fmt.Sprintf("transcodeTemplates[%d]", i)
		if id == AllTemplates {
			if len(r.TranscodeTemplates) > 1 {
				es.add(path, fmt.Sprintf("%q is only allowed alone", AllTemplates))
			}
			continue
		}
		if err := ValidTemplateID(id); err != nil {
			es.add(path, err.Error())
		} else if j, dup := seenTpl[id]; dup {
			es.add(path, fmt.Sprintf("%q is already used by transcodeTemplates[%d]", id, j))
		} else {
			seenTpl[id] = i
		}
	}
	return es.err()
}

// validateFormats checks a list of record formats (field path name): each format at
// most once, cmaf and m3u8 not together.
func validateFormats(es *ValidationErrors, name string, fs []RecordFormat) {
	seen := map[Format]int{}
	for i, f := range fs {
		path := fmt.Sprintf("%s[%d]", name, i)
		if j, dup := seen[f.Format]; dup {
			es.add(path+".format", fmt.Sprintf("%q is already used by %s[%d]", f.Format, name, j))
		} else if f.Format.Valid() {
			seen[f.Format] = i
		}
		validateFormat(es, path, &f)
	}
	if _, ok := seen[CMAF]; ok {
		if _, ok := seen[M3U8]; ok {
			es.add(name, "cmaf and m3u8 cannot be used together")
		}
	}
}

// ValidTemplateID checks a live transcode template ID: 1–64 letters, digits, "_", "-".
func ValidTemplateID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%q: a template ID has 1–64 characters", id)
	}
	for i := 0; i < len(id); i++ {
		if !isNameChar(id[i]) {
			return fmt.Errorf("%q: character %s at %d is not allowed (letters, digits, \"-\", \"_\")", id, quoteByte(id[i]), i)
		}
	}
	return nil
}

// validateFormat checks one record format; path is its field path.
func validateFormat(es *ValidationErrors, path string, f *RecordFormat) {
	if !f.Format.Valid() {
		es.add(path+".format", fmt.Sprintf("%q is not one of m3u8, flv, mp4, cmaf", f.Format))
	}
	checkRange(es, path+".cycleDuration", f.CycleDuration, MinCycleDuration, MaxCycleDuration)
	if msg := checkPrefix(f.ObjectPrefix, objectPrefixVars, [][2]string{
		{keytemplate.StartTime, keytemplate.EndTime},
		{keytemplate.EscapedStartTime, keytemplate.EscapedEndTime},
	}); msg != "" {
		es.add(path+".objectPrefix", msg)
	}

	switch {
	case f.Format.Sliced():
		checkRange(es, path+".sliceDuration", f.SliceDuration, MinSliceDuration, MaxSliceDuration)
		if msg := checkPrefix(f.SliceObjectPrefix, slicePrefixVars, [][2]string{
			{keytemplate.UnixTimestamp, keytemplate.Sequence},
		}); msg != "" {
			es.add(path+".sliceObjectPrefix", msg)
		}
	case f.Format.Valid():
		// flv, mp4: Normalize cleared default values; anything left was set on purpose.
		if f.SliceDuration != 0 {
			es.add(path+".sliceDuration", fmt.Sprintf("is only for m3u8 and cmaf, not %s", f.Format))
		}
		if f.SliceObjectPrefix != "" {
			es.add(path+".sliceObjectPrefix", fmt.Sprintf("is only for m3u8 and cmaf, not %s", f.Format))
		}
	}
}

// checkRange adds an error if v is outside [lo, hi].
func checkRange(es *ValidationErrors, field string, v, lo, hi int) {
	if v < lo || v > hi {
		es.add(field, fmt.Sprintf("%d is out of range (allowed %d–%d seconds)", v, lo, hi))
	}
}

// checkPrefix validates a key template: length, syntax and path safety (keytemplate.Check),
// the variables allowed for this kind of prefix, and that one of the required pairs of
// variables is present. It returns "" when the prefix is fine.
func checkPrefix(tmpl string, allowed []string, need [][2]string) string {
	if len(tmpl) >= MaxPrefixLen {
		return fmt.Sprintf("is %d bytes, must be shorter than %d", len(tmpl), MaxPrefixLen)
	}
	vars, err := keytemplate.Check(tmpl)
	if err != nil {
		return fmt.Sprintf("%q: %v", tmpl, err) + allowedSuffix(err, allowed)
	}
	var notHere []string
	for _, v := range vars {
		if !slices.Contains(allowed, v) {
			notHere = append(notHere, "{"+v+"}")
		}
	}
	if len(notHere) > 0 {
		return fmt.Sprintf("%q: %s not allowed here (allowed: %s)", tmpl, strings.Join(notHere, ", "), braced(allowed))
	}
	for _, pair := range need {
		if slices.Contains(vars, pair[0]) && slices.Contains(vars, pair[1]) {
			return ""
		}
	}
	alts := make([]string, len(need))
	for i, pair := range need {
		alts[i] = "{" + pair[0] + "} and {" + pair[1] + "}"
	}
	return fmt.Sprintf("%q: must contain %s", tmpl, strings.Join(alts, ", or "))
}

// allowedSuffix lists the allowed variables after an unknown-variable error.
func allowedSuffix(err error, allowed []string) string {
	if !errors.Is(err, keytemplate.ErrUnknownVariable) {
		return ""
	}
	return " (allowed: " + braced(allowed) + ")"
}

func braced(names []string) string {
	b := make([]string, len(names))
	for i, n := range names {
		b[i] = "{" + n + "}"
	}
	return strings.Join(b, ", ")
}

// ValidName checks an app or stream name: 1–255 characters, each a letter, digit, "-"
// or "_". The ingest uses it to refuse a push; the error says what is wrong without
// naming the field.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("is empty (1–%d characters allowed)", MaxNameLen)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("is %d characters, more than %d", len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isNameChar(c) {
			return fmt.Errorf("%q: character %s at %d is not allowed (letters, digits, \"-\", \"_\")", s, quoteByte(c), i)
		}
	}
	return nil
}

// validPattern checks an app or stream name in a rule, where "*" alone is also allowed.
func validPattern(s string) error {
	if s == Wildcard {
		return nil
	}
	if strings.Contains(s, Wildcard) {
		return fmt.Errorf("%q: %q is only allowed alone", s, Wildcard)
	}
	return ValidName(s)
}

// DefaultDomain is the domain of a publish that names none (no vhost, no host in tcUrl).
const DefaultDomain = "default"

// NormalizeDomain returns the canonical form of the domain a client names (an RTMP
// vhost or tcUrl host, a domain in an API path): trimmed, lower case, without a port or
// a trailing dot; an IP address in its usual text form. Everything that addresses a
// stream goes through it, so "A.Test.", "a.test:1935" and "a.test" are one stream. Any
// other form of host name is refused: letters, digits, "-" and "." only, at most 253
// characters, labels of 1–63 ("_" is no DNS host character, and a rule could not name
// it). An empty domain is DefaultDomain.
func NormalizeDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSpace(s))
	if h, p, err := net.SplitHostPort(d); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port %q is not a number 1–65535", s, p)
		}
		d = h
	}
	d = strings.TrimSuffix(strings.TrimPrefix(d, "["), "]")
	if ip := net.ParseIP(d); ip != nil {
		return ip.String(), nil
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		if strings.TrimSpace(s) == "" {
			return DefaultDomain, nil
		}
		return "", fmt.Errorf("%q: no host name", s)
	}
	if d == Wildcard {
		return "", fmt.Errorf("%q: not a host name", s)
	}
	if err := validDomain(d); err != nil {
		if strings.HasPrefix(err.Error(), "is ") { // the messages without the value
			return "", fmt.Errorf("%.40q... %v", s, err)
		}
		return "", err
	}
	return d, nil
}

// validDomain checks a rule's domain: "*" or a host name of letters, digits, "-" and ".",
// at most 253 characters, with non-empty labels of at most 63.
func validDomain(s string) error {
	switch {
	case s == Wildcard:
		return nil
	case s == "":
		return fmt.Errorf("is required (a host name, or %q for all domains)", Wildcard)
	case strings.Contains(s, Wildcard):
		return fmt.Errorf("%q: %q is only allowed alone", s, Wildcard)
	case len(s) > MaxDomainLen:
		return fmt.Errorf("is %d characters, more than %d", len(s), MaxDomainLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && c != '-' && !isAlnum(c) {
			return fmt.Errorf("%q: character %s at %d is not allowed in a host name (letters, digits, \"-\", \".\")", s, quoteByte(c), i)
		}
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return fmt.Errorf("%q: empty label (leading, trailing or doubled \".\")", s)
		}
		if len(label) > 63 {
			return fmt.Errorf("%q: label %q is longer than 63 characters", s, label)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isNameChar(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

// quoteByte shows a byte for an error message: printable ASCII as '%c', others in hex.
func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("0x%02x", c)
}

// CheckKnownEndpoint checks that a rule's ossEndpoint (empty: the server's own storage)
// is one of the object-storage endpoints configured under s3: (known). A rule naming
// another one would record nothing: its pushes have nowhere to go.
func CheckKnownEndpoint(endpoint string, known []string) error {
	switch {
	case endpoint == "" || slices.Contains(known, endpoint):
		return nil
	case len(known) == 0:
		return fmt.Errorf("%q is not one of the s3 endpoints (none is configured: add it under s3: in the config file, with its keys)", endpoint)
	}
	return fmt.Errorf("%q is not one of the s3 endpoints (%s)", endpoint, strings.Join(known, ", "))
}

// MaxEndpointLen bounds ossEndpoint.
const MaxEndpointLen = 255

// CheckOssEndpoint checks an object storage endpoint: a host name or IP address with an
// optional port ("oss-cn-shanghai.aliyuncs.com", "127.0.0.1:7070"), or the same as an
// http:// or https:// URL without a path.
func CheckOssEndpoint(s string) error {
	if len(s) > MaxEndpointLen {
		return fmt.Errorf("is %d characters, more than %d", len(s), MaxEndpointLen)
	}
	hostport := s
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return fmt.Errorf("%q: scheme must be http or https", s)
		}
		hostport = strings.TrimSuffix(rest, "/")
	}
	if strings.ContainsAny(hostport, "/?#@") {
		return fmt.Errorf("%q: want host[:port] or http(s)://host[:port], without a path", s)
	}
	host := hostport
	if h, port, ok := strings.Cut(hostport, ":"); ok {
		host = h
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not a number 1–65535", s, port)
		}
	}
	if host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	if err := validDomain(strings.ToLower(host)); err != nil {
		return fmt.Errorf("host %v", err)
	}
	return nil
}

// CheckOssBucket checks a bucket name with the rules OSS and S3 share: 3–63 characters,
// lower-case letters, digits, "-" and ".", starting and ending with a letter or digit,
// without "..".
func CheckOssBucket(s string) error {
	if len(s) < 3 || len(s) > 63 {
		return fmt.Errorf("%q: a bucket name has 3–63 characters, not %d", s, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%q: character %s at %d is not allowed in a bucket name (lower-case letters, digits, \"-\", \".\")", s, quoteByte(c), i)
		}
	}
	if first, last := s[0], s[len(s)-1]; first == '-' || first == '.' || last == '-' || last == '.' {
		return fmt.Errorf("%q: a bucket name starts and ends with a letter or digit", s)
	}
	if strings.Contains(s, "..") {
		return fmt.Errorf("%q: \"..\" is not allowed in a bucket name", s)
	}
	return nil
}
