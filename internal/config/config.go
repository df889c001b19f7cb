// Package config loads the livrec configuration file (YAML).
//
// Loading is strict: an unknown key is an error naming the key, its path and its line, so
// a typo never silently falls back to a default. Rules are normalized and validated with
// internal/rules; their errors carry paths such as
// "rules[2].recordFormats[0].cycleDuration" and the line of the offending entry.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/notify"
	"github.com/livrec/livrec/internal/pushauth"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/transcode"
	"github.com/livrec/livrec/internal/vod"
	"go.yaml.in/yaml/v3"
)

// Defaults for settings left out of the file.
const (
	DefaultDataDir  = "livrec-data"
	DefaultRTMPAddr = ":1935"
	DefaultHTTPAddr = ":8080"
	DefaultTimeZone = "UTC"
	// DefaultCallbackRetention is how long the callback history is kept.
	DefaultCallbackRetention = notify.DefaultRetention

	DefaultRTMPMaxConns        = 4096
	DefaultRTMPMaxConnsPerAddr = 64
	DefaultRTMPPublishDeadline = 10 // seconds
	DefaultReservedFDs         = 256
	DefaultHTTPMaxConns        = 1024
	DefaultHTTPMaxConnsPerAddr = 64
)

// Allowed range of callbackRetention: the history is pruned hourly, so less than an
// hour would not be honoured; ten years is "keep", without an unbounded table.
const (
	minCallbackRetention = time.Hour
	maxCallbackRetention = 3650 * 24 * time.Hour
)

// Config is the configuration file.
type Config struct {
	// DataDir holds the catalog (with SQLite), the spool and (with local storage) the
	// recordings.
	DataDir string `yaml:"dataDir"`
	// Catalog is the catalog database (see CatalogDB).
	Catalog CatalogDB `yaml:"catalog"`
	// Node names this livrec among the nodes sharing a catalog (see Node).
	Node Node `yaml:"node"`
	// RTMPAddr and HTTPAddr are listen addresses.
	RTMPAddr string `yaml:"rtmpAddr"`
	HTTPAddr string `yaml:"httpAddr"`
	// TimeZone is the IANA zone for {StartTime}, {EndTime}, {Date}, ... in object keys.
	TimeZone string `yaml:"timeZone"`
	// Rules are the recording rules. Leaving the key out (or empty, "rules:") gives
	// rules.DefaultRules (record every stream as m3u8); an explicit empty list
	// ("rules: []") records nothing.
	Rules []rules.Rule `yaml:"rules"`
	// AccessKeys authenticate the cloud-compatible API (signed requests on "/"). Without
	// any, that API refuses every request. A key's secret may be left out of the file and
	// given in the environment as LIVREC_ACCESS_KEY_SECRET_<ID> (see AccessKeyEnv).
	AccessKeys []AccessKey `yaml:"accessKeys"`
	// AllowDeleteFiles lets DeleteLiveStreamRecordIndexFiles with RemoveFile=true delete
	// stored files. Off by default: only the catalog entry is deleted, and RemoveFile=true
	// is refused.
	AllowDeleteFiles bool `yaml:"allowDeleteFiles"`
	// PublishAuth lists the domains whose pushes must carry a signed auth_key ("type A"
	// URL signing), with a primary and a secondary key and a validity in seconds.
	PublishAuth []pushauth.DomainKeys `yaml:"publishAuth"`
	// APITokens are bearer tokens for the JSON API (/api/v1); LIVREC_API_TOKEN adds one.
	// With neither tokens nor accessKeys the JSON API answers only loopback clients.
	APITokens []string `yaml:"apiTokens"`
	// CORSAllowedOrigins are the origins (scheme://host[:port], or "*" for any) whose pages
	// may fetch recordings from /files/ and /live/ (players embedded in other sites).
	// Default none.
	CORSAllowedOrigins []string `yaml:"corsAllowedOrigins"`
	// S3 lists the S3-compatible endpoints rules may name with ossEndpoint (matched by
	// the endpoint string). Their files are spooled on local disk under the data
	// directory and uploaded from there.
	S3 []storage.S3Config `yaml:"s3"`
	// SpoolLimitMB raises an alarm (metric livrec_spool_over_limit, log, record_error
	// event) when the upload spool holds more than this many MiB; 0: no limit. Nothing is
	// ever dropped.
	SpoolLimitMB int64 `yaml:"spoolLimitMB"`
	// Finalizers bounds how many recording files are finalized at once (in the
	// background, off the ingest path); 0 means the default (2).
	Finalizers int `yaml:"finalizers"`
	// MinFreeSpace is the free space of the data directory's file system below which
	// livrec raises the low-space alarm (metric livrec_disk_low, log, record_error event
	// low_disk_space): a size ("1GiB", "500MiB", "2GB", bytes) or a percentage of the file
	// system ("5%"). Empty: 1GiB. Parsed into MinFreeBytes or MinFreePercent.
	MinFreeSpace   string  `yaml:"minFreeSpace"`
	MinFreeBytes   uint64  `yaml:"-"`
	MinFreePercent float64 `yaml:"-"`
	// DiskFullHold bounds the recorded media all streams keep in memory while the disk
	// is full (written out in order once space returns), DiskFullHoldPerStream that of
	// one stream (all its formats): sizes ("256MiB", bytes; "0": nothing held, new media
	// is dropped at once). Past either bound new media is dropped and counted. Empty:
	// 256MiB and 16MiB. Parsed into DiskFullHoldBytes and DiskFullHoldStreamBytes
	// (record.Config's convention: 0 the default, negative nothing).
	DiskFullHold            string `yaml:"diskFullHold"`
	DiskFullHoldPerStream   string `yaml:"diskFullHoldPerStream"`
	DiskFullHoldBytes       int64  `yaml:"-"`
	DiskFullHoldStreamBytes int64  `yaml:"-"`
	// SyncWorkers fsync finished segments (m3u8, cmaf) off the publishers' connections;
	// SyncBacklog (a size, "256MiB") bounds the bytes waiting for them: above it the
	// publishers are slowed by TCP backpressure rather than timed out. A backlog older
	// than SyncSlowAfter seconds is reported (record_warning disk_slow). Defaults 16,
	// an eighth of the memory (256MiB to 8GiB, record.DefaultSyncBacklog), 10.
	// SyncBacklog is parsed into SyncBacklogBytes.
	SyncWorkers      int    `yaml:"syncWorkers"`
	SyncBacklog      string `yaml:"syncBacklog"`
	SyncBacklogBytes int64  `yaml:"-"`
	SyncSlowAfter    int    `yaml:"syncSlowAfter"`
	// TranscodeTemplates are the live transcode templates rules may name in
	// transcodeTemplates, besides the built-ins lld, lsd, lhd and lud; each applies to
	// its domainName and appName ("*" or left out: all).
	TranscodeTemplates []transcode.Template `yaml:"transcodeTemplates"`
	// MaxTranscoders bounds the live streams transcoded at once (one ffmpeg each); 0
	// means the number of CPU cores. Past it a stream's original is still recorded and a
	// record_transcode_error event says why its renditions are not.
	MaxTranscoders int `yaml:"maxTranscoders"`
	// CallbackRetention is how long delivered and failed callbacks stay in the callback
	// history (the API's callback list): days ("30", "30d") or a Go duration ("36h").
	// Default 30 days; pending callbacks are never deleted.
	CallbackRetention string `yaml:"callbackRetention"`
	// VODTranscodeGroups are the VOD library's transcode template groups (renditions
	// made after the fact from an asset's original), besides the built-in
	// VOD_NO_TRANSCODE, which keeps the original only.
	VODTranscodeGroups []vod.TranscodeGroup `yaml:"vodTranscodeGroups"`
	// VODJobConcurrency bounds the library's background jobs (transcodes) running at
	// once; 0 means one per two CPU cores (at least one).
	VODJobConcurrency int `yaml:"vodJobConcurrency"`
	// VODCoverOffset is the second of an asset where its cover is taken (the keyframe
	// at or before it; 0: 1 s; past the end: the middle), 0–86400.
	VODCoverOffset float64 `yaml:"vodCoverOffset"`

	// Limits and protections against hostile clients (README "Limits and protections").
	// RTMPMaxConns caps the open RTMP connections and RTMPMaxConnsPerAddr those from one
	// client IP address; RTMPPublishDeadline is the seconds a connection has, from
	// connecting, to get a publish accepted (handshake and commands included).
	RTMPMaxConns        int `yaml:"rtmpMaxConns"`
	RTMPMaxConnsPerAddr int `yaml:"rtmpMaxConnsPerAddr"`
	RTMPPublishDeadline int `yaml:"rtmpPublishDeadline"`
	// ReservedFDs file descriptors are kept for recording, the catalog and the HTTP
	// server: RTMP connections are also capped at the descriptor limit minus these.
	ReservedFDs int `yaml:"reservedFds"`
	// HTTPMaxConns caps the open HTTP connections (API, console, files, live playlists)
	// and HTTPMaxConnsPerAddr those from one client IP address.
	HTTPMaxConns        int `yaml:"httpMaxConns"`
	HTTPMaxConnsPerAddr int `yaml:"httpMaxConnsPerAddr"`
	// AllowPrivateCallbacks lets notifyUrl / onDemandUrl reach loopback, private,
	// link-local (metadata) and other non-public addresses; CallbackAllowList allows
	// only the CIDRs, IP addresses and host names listed.
	AllowPrivateCallbacks bool     `yaml:"allowPrivateCallbacks"`
	CallbackAllowList     []string `yaml:"callbackAllowList"`

	// Vod configures the VOD library's events: callbackUrl receives them, signed with
	// authKey (X-VOD-TIMESTAMP, X-VOD-SIGNATURE) when it is set.
	Vod vod.CallbackConfig `yaml:"vod"`

	// Location is TimeZone loaded and CallbackRetentionPeriod is CallbackRetention
	// parsed; set by LoadConfig and Parse.
	Location                *time.Location `yaml:"-"`
	CallbackRetentionPeriod time.Duration  `yaml:"-"`
	// TranscodeGroups is VODTranscodeGroups validated, with the built-in group.
	TranscodeGroups *vod.TranscodeGroups `yaml:"-"`
}

// CatalogDB says where the catalog is: driver "sqlite" (DSN, the database file, defaults
// to catalog.db in the data directory) or "postgres" (DSN, a PostgreSQL connection
// string, is required). Without a driver, a postgres:// or postgresql:// DSN means
// postgres, anything else sqlite. LIVREC_CATALOG_DSN (CatalogDSNEnv) gives the DSN and
// wins over the file, so that a password can stay out of it.
type CatalogDB struct {
	Driver string `yaml:"driver"`
	DSN    string `yaml:"dsn"`
}

// Node is this livrec's identity and heartbeat in the catalog (package cluster): ID
// (default the host name), HTTPAddr the host:port other nodes reach its HTTP API at
// (default httpAddr, with the host name when httpAddr names no host), a heartbeat every
// HeartbeatInterval seconds (default 5, 1–3600); a node is dead after MissedBeats
// (default 3, 1–1000) intervals without one. Secret signs the requests nodes make to each
// other (a manual command forwarded to the stream's owner, package peer): the same on
// every node, at least 16 characters, required with a postgres catalog (NodeSecretEnv
// gives it and wins over the file).
type Node struct {
	ID                string `yaml:"id"`
	HTTPAddr          string `yaml:"httpAddr"`
	Secret            string `yaml:"secret"`
	HeartbeatInterval int    `yaml:"heartbeatInterval"`
	MissedBeats       int    `yaml:"missedBeats"`
}

// NodeHTTPAddr is Node.HTTPAddr, or by default HTTPAddr with the host name when it names
// no host (call it after the command line changed HTTPAddr).
func (c *Config) NodeHTTPAddr() string {
	if c.Node.HTTPAddr != "" {
		return c.Node.HTTPAddr
	}
	if h, port, err := net.SplitHostPort(c.HTTPAddr); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
		host, _ := os.Hostname()
		return net.JoinHostPort(host, port)
	}
	return c.HTTPAddr
}

// CatalogDSNEnv is the environment variable of the catalog's DSN.
const CatalogDSNEnv = "LIVREC_CATALOG_DSN"

// NodeSecretEnv is the environment variable of the cluster secret (node.secret).
const NodeSecretEnv = "LIVREC_NODE_SECRET"

// AccessKey is an access key pair of the cloud-compatible API.
type AccessKey struct {
	ID     string `yaml:"id"`
	Secret string `yaml:"secret"`
}

// AccessKeyEnv is the environment variable that supplies the secret of the access key id
// when the file has none: LIVREC_ACCESS_KEY_SECRET_ followed by the id in upper case with
// every character other than a letter or digit replaced by "_" (id "ak-test" →
// LIVREC_ACCESS_KEY_SECRET_AK_TEST). The environment wins over the file.
func AccessKeyEnv(id string) string {
	b := []byte(strings.ToUpper(id))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return "LIVREC_ACCESS_KEY_SECRET_" + string(b)
}

// AccessKeySecrets returns the access keys as id → secret.
func (c *Config) AccessKeySecrets() map[string]string {
	m := make(map[string]string, len(c.AccessKeys))
	for _, k := range c.AccessKeys {
		m[k.ID] = k.Secret
	}
	return m
}

// LoadConfig reads, normalizes and validates the configuration file at path. On a
// validation problem the error is a rules.ValidationErrors (each with Field and Line),
// wrapped with the file name.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse is LoadConfig on the file's contents.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("line %d: only one YAML document is allowed", more.Line)
	}

	// Unknown keys first: they would otherwise show up as confusing type errors.
	var es rules.ValidationErrors
	doc := document(&root)
	if doc != nil {
		unknownKeys(doc, reflect.TypeFor[Config](), "", &es)
	}
	if len(es) > 0 {
		return nil, es
	}

	c := &Config{}
	if doc != nil {
		// A second, strict decode as a backstop; type errors come with their line.
		strict := yaml.NewDecoder(bytes.NewReader(data))
		strict.KnownFields(true)
		if err := strict.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	if n := lookup(doc, "rules"); n == nil || n.Tag == "!!null" {
		c.Rules = rules.DefaultRules()
	}
	if c.Rules == nil {
		c.Rules = []rules.Rule{}
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if v := os.Getenv(CatalogDSNEnv); v != "" {
		c.Catalog.DSN = v
	}
	if c.Catalog.Driver == "" {
		c.Catalog.Driver = schema.DriverOf(c.Catalog.DSN)
	}
	if err := schema.CheckDriver(c.Catalog.Driver); err != nil {
		es = append(es, &rules.ValidationError{Field: "catalog.driver", Msg: fmt.Sprintf("%q: want one of %s (default %s)",
			c.Catalog.Driver, strings.Join(schema.Drivers, ", "), schema.SQLite)})
	} else if c.Catalog.Driver == schema.Postgres && c.Catalog.DSN == "" {
		es = append(es, &rules.ValidationError{Field: "catalog.dsn",
			Msg: "is required with driver postgres (in the file, or in the environment variable " + CatalogDSNEnv + ")"})
	} else if err := schema.CheckDSN(c.Catalog.Driver, c.Catalog.DSN); err != nil {
		es = append(es, &rules.ValidationError{Field: "catalog.dsn", Msg: err.Error()})
	}
	if c.RTMPAddr == "" {
		c.RTMPAddr = DefaultRTMPAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.TimeZone == "" {
		c.TimeZone = DefaultTimeZone
	}

	seenKeys := map[string]int{}
	for i := range c.AccessKeys {
		k := &c.AccessKeys[i]
		field := fmt.Sprintf("accessKeys[%d]", i)
		if v, ok := os.LookupEnv(AccessKeyEnv(k.ID)); ok && k.ID != "" {
			k.Secret = v
		}
		switch {
		case k.ID == "":
			es = append(es, &rules.ValidationError{Field: field + ".id", Msg: "is required"})
		case strings.ContainsFunc(k.ID, func(r rune) bool { return r <= ' ' || r > '~' }):
			es = append(es, &rules.ValidationError{Field: field + ".id", Msg: fmt.Sprintf("%q: only printable ASCII without spaces", k.ID)})
		case k.Secret == "":
			es = append(es, &rules.ValidationError{Field: field + ".secret",
				Msg: fmt.Sprintf("is required (in the file, or in the environment variable %s)", AccessKeyEnv(k.ID))})
		}
		if j, dup := seenKeys[k.ID]; dup && k.ID != "" {
			es = append(es, &rules.ValidationError{Field: field + ".id", Msg: fmt.Sprintf("%q is already used by accessKeys[%d]", k.ID, j)})
		} else {
			seenKeys[k.ID] = i
		}
	}

	if tok := os.Getenv("LIVREC_API_TOKEN"); tok != "" {
		c.APITokens = append(c.APITokens, tok)
	}
	for i, tok := range c.APITokens {
		if len(tok) < 16 {
			es = append(es, &rules.ValidationError{Field: fmt.Sprintf("apiTokens[%d]", i), Msg: "too short: use at least 16 random characters"})
		}
	}
	endpoints := map[string]int{}
	for i, e := range c.S3 {
		field := fmt.Sprintf("s3[%d].endpoint", i)
		switch j, dup := endpoints[e.Endpoint]; {
		case e.Endpoint == "":
			es = append(es, &rules.ValidationError{Field: field, Msg: "is required (host:port)"})
		case dup:
			es = append(es, &rules.ValidationError{Field: field, Msg: fmt.Sprintf("%q is already used by s3[%d]", e.Endpoint, j)})
		default:
			endpoints[e.Endpoint] = i
		}
	}
	known := storage.Endpoints(c.S3)
	for i, r := range c.Rules {
		field := fmt.Sprintf("rules[%d].ossEndpoint", i)
		if r.IsVod() { // its storage is derived from vod.storageLocation
			n := r.Clone()
			n.Normalize()
			r, field = *n, fmt.Sprintf("rules[%d].vod.storageLocation", i)
		}
		if err := rules.CheckKnownEndpoint(r.OssEndpoint, known); err != nil {
			es = append(es, &rules.ValidationError{Field: field, Msg: err.Error()})
		}
	}
	if c.Finalizers < 0 || c.Finalizers > 64 {
		es = append(es, &rules.ValidationError{Field: "finalizers", Msg: fmt.Sprintf("%d is out of range (allowed 1–64, or 0 for the default)", c.Finalizers)})
	}
	host, _ := os.Hostname()
	if c.Node.ID == "" {
		c.Node.ID = host
	}
	if c.Node.ID == "" || strings.ContainsFunc(c.Node.ID, func(r rune) bool { return r <= ' ' || r > '~' }) {
		es = append(es, &rules.ValidationError{Field: "node.id", Msg: fmt.Sprintf("%q: want printable ASCII without spaces (default the host name)", c.Node.ID)})
	}
	if v := os.Getenv(NodeSecretEnv); v != "" {
		c.Node.Secret = v
	}
	switch {
	case c.Node.Secret == "" && c.Catalog.Driver == schema.Postgres:
		es = append(es, &rules.ValidationError{Field: "node.secret", Msg: "is required with a postgres catalog (nodes sign their requests to each other with it; " +
			"the same on every node, at least 16 characters, in the file or in the environment variable " + NodeSecretEnv + ")"})
	case c.Node.Secret != "" && len(c.Node.Secret) < 16:
		es = append(es, &rules.ValidationError{Field: "node.secret", Msg: "too short: use at least 16 random characters, the same on every node"})
	}
	if _, _, err := net.SplitHostPort(c.Node.HTTPAddr); err != nil && c.Node.HTTPAddr != "" {
		es = append(es, &rules.ValidationError{Field: "node.httpAddr", Msg: fmt.Sprintf("%q: want host:port (%v)", c.Node.HTTPAddr, err)})
	}
	if c.MinFreeSpace != "" {
		var err error
		if c.MinFreeBytes, c.MinFreePercent, err = ParseSpace(c.MinFreeSpace); err != nil {
			es = append(es, &rules.ValidationError{Field: "minFreeSpace", Msg: err.Error()})
		}
	}
	// Size settings: a size (no percentage) within [min, max]; "" keeps the default (0),
	// and a 0 that the range allows means "none" (record.Config's negative).
	sizes := []struct {
		field    string
		v        string
		out      *int64
		min, max uint64
		want     string // what the field takes, for a value that is not a size
		allowed  string // its range, for a size out of it
	}{
		{"diskFullHold", c.DiskFullHold, &c.DiskFullHoldBytes, 0, MaxDiskFullHold,
			`a size from 0 to 64GiB (e.g. "256MiB", "0" to hold nothing)`, "0 to 64GiB"},
		{"diskFullHoldPerStream", c.DiskFullHoldPerStream, &c.DiskFullHoldStreamBytes, 0, MaxDiskFullHold,
			`a size from 0 to 64GiB (e.g. "256MiB", "0" to hold nothing)`, "0 to 64GiB"},
		{"syncBacklog", c.SyncBacklog, &c.SyncBacklogBytes, 1 << 20, MaxSyncBacklog,
			`a size from 1MiB to 64GiB (e.g. "256MiB")`, "1MiB to 64GiB"},
	}
	for _, z := range sizes {
		if z.v == "" {
			continue
		}
		n, pct, err := ParseSpace(z.v)
		switch {
		case err != nil || pct > 0 || strings.HasSuffix(strings.TrimSpace(z.v), "%"):
			es = append(es, &rules.ValidationError{Field: z.field, Msg: fmt.Sprintf("%q: want %s", z.v, z.want)})
		case n < z.min || n > z.max:
			es = append(es, &rules.ValidationError{Field: z.field, Msg: fmt.Sprintf("%q is out of range (allowed %s)", z.v, z.allowed)})
		case n == 0:
			*z.out = -1
		default:
			*z.out = int64(n)
		}
	}
	if all, one := c.DiskFullHoldBytes, c.DiskFullHoldStreamBytes; all > 0 && one > all {
		es = append(es, &rules.ValidationError{Field: "diskFullHoldPerStream", Msg: fmt.Sprintf("%s is more than diskFullHold (%s)", c.DiskFullHoldPerStream, c.DiskFullHold)})
	}
	limits := []struct {
		field    string
		v        *int
		def      int
		min, max int
		unit     string
	}{
		{"rtmpMaxConns", &c.RTMPMaxConns, DefaultRTMPMaxConns, 1, 1 << 20, "connections"},
		{"rtmpMaxConnsPerAddr", &c.RTMPMaxConnsPerAddr, DefaultRTMPMaxConnsPerAddr, 1, 1 << 20, "connections"},
		{"rtmpPublishDeadline", &c.RTMPPublishDeadline, DefaultRTMPPublishDeadline, 1, 300, "seconds"},
		{"reservedFds", &c.ReservedFDs, DefaultReservedFDs, 0, 1 << 20, "file descriptors"},
		{"node.heartbeatInterval", &c.Node.HeartbeatInterval, 5, 1, 3600, "seconds"},
		{"node.missedBeats", &c.Node.MissedBeats, 3, 1, 1000, "beats"},
		{"httpMaxConns", &c.HTTPMaxConns, DefaultHTTPMaxConns, 1, 1 << 20, "connections"},
		{"httpMaxConnsPerAddr", &c.HTTPMaxConnsPerAddr, DefaultHTTPMaxConnsPerAddr, 1, 1 << 20, "connections"},
		{"syncWorkers", &c.SyncWorkers, record.DefaultSyncWorkers, 1, 64, "workers"},
		{"syncSlowAfter", &c.SyncSlowAfter, int(record.DefaultSyncSlowAfter / time.Second), 1, 3600, "seconds"},
	}
	for _, l := range limits {
		if lookupPath(doc, l.field) == nil {
			*l.v = l.def
		} else if *l.v < l.min || *l.v > l.max {
			es = append(es, &rules.ValidationError{Field: l.field, Msg: fmt.Sprintf("%d: want %d-%d %s (default %d)", *l.v, l.min, l.max, l.unit, l.def)})
		}
	}
	for i, e := range c.CallbackAllowList {
		if _, err := notify.ParseAllowEntry(e); err != nil {
			es = append(es, &rules.ValidationError{Field: fmt.Sprintf("callbackAllowList[%d]", i), Msg: err.Error()})
		}
	}
	if u := c.Vod.URL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		es = append(es, &rules.ValidationError{Field: "vod.callbackUrl", Msg: fmt.Sprintf("%q: want an absolute http:// or https:// URL", u)})
	}
	if len(c.Vod.AuthKey) > 32 {
		es = append(es, &rules.ValidationError{Field: "vod.authKey", Msg: fmt.Sprintf("is %d characters, at most 32", len(c.Vod.AuthKey))})
	}
	if c.SpoolLimitMB < 0 {
		es = append(es, &rules.ValidationError{Field: "spoolLimitMB", Msg: fmt.Sprintf("%d: want 0 (no limit) or more", c.SpoolLimitMB)})
	}

	if c.MaxTranscoders < 0 || c.MaxTranscoders > 1024 {
		es = append(es, &rules.ValidationError{Field: "maxTranscoders", Msg: fmt.Sprintf("%d is out of range (allowed 1–1024, or 0 for the number of cores)", c.MaxTranscoders)})
	}
	if c.MaxTranscoders == 0 {
		c.MaxTranscoders = runtime.NumCPU()
	}
	lib, err := transcode.NewLibrary(c.TranscodeTemplates)
	if err != nil {
		var ves rules.ValidationErrors
		if !errors.As(err, &ves) {
			return nil, err
		}
		es = append(es, ves.Prefix("transcodeTemplates")...)
	}
	for i := range c.TranscodeTemplates {
		c.TranscodeTemplates[i].Normalize()
	}
	for i, r := range c.Rules {
		for j, id := range r.TranscodeTemplates {
			if _, ok := lib.Lookup(r.DomainName, r.AppName, id); lib != nil && !ok && id != rules.AllTemplates {
				es = append(es, &rules.ValidationError{Field: fmt.Sprintf("rules[%d].transcodeTemplates[%d]", i, j),
					Msg: fmt.Sprintf("%q is neither a built-in template (%s) nor one under transcodeTemplates: for this domain and app", id, strings.Join(rules.BuiltinTemplates, ", "))})
			}
		}
	}
	if c.VODJobConcurrency < 0 || c.VODJobConcurrency > jobs.MaxConcurrency {
		es = append(es, &rules.ValidationError{Field: "vodJobConcurrency", Msg: fmt.Sprintf("%d is out of range (allowed 1–%d, or 0 for one per two cores)", c.VODJobConcurrency, jobs.MaxConcurrency)})
	}
	if c.VODCoverOffset < 0 || c.VODCoverOffset > 86400 {
		es = append(es, &rules.ValidationError{Field: "vodCoverOffset", Msg: fmt.Sprintf("%g is out of range (allowed 0–86400 seconds)", c.VODCoverOffset)})
	}
	if c.VODJobConcurrency == 0 {
		c.VODJobConcurrency = jobs.DefaultConcurrency()
	}
	if groups, err := vod.NewTranscodeGroups(c.VODTranscodeGroups); err != nil {
		var ves rules.ValidationErrors
		if !errors.As(err, &ves) {
			return nil, err
		}
		es = append(es, ves.Prefix("vodTranscodeGroups")...)
	} else {
		c.TranscodeGroups = groups
		for i := range c.VODTranscodeGroups {
			for j := range c.VODTranscodeGroups[i].Templates {
				c.VODTranscodeGroups[i].Templates[j].Normalize()
			}
		}
	}
	c.CallbackRetentionPeriod = DefaultCallbackRetention
	if c.CallbackRetention != "" {
		d, err := parseDays(c.CallbackRetention)
		switch {
		case err != nil:
			es = append(es, &rules.ValidationError{Field: "callbackRetention",
				Msg: fmt.Sprintf("%q: want days (\"30\", \"30d\") or a duration (\"36h\")", c.CallbackRetention)})
		case d < minCallbackRetention || d > maxCallbackRetention:
			es = append(es, &rules.ValidationError{Field: "callbackRetention",
				Msg: fmt.Sprintf("%q is out of range (allowed 1h–3650d)", c.CallbackRetention)})
		default:
			c.CallbackRetentionPeriod = d
		}
	}

	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil || c.TimeZone == "Local" {
		es = append(es, &rules.ValidationError{Field: "timeZone",
			Msg: fmt.Sprintf("%q is not an IANA time zone name (e.g. \"UTC\", \"Asia/Shanghai\")", c.TimeZone)})
	}
	c.Location = loc

	// NewSet normalizes copies; keep the normalized rules in the Config too.
	for i := range c.Rules {
		c.Rules[i].Normalize()
	}
	if _, err := rules.NewSet(c.Rules); err != nil {
		var ves rules.ValidationErrors
		if !errors.As(err, &ves) {
			return nil, err
		}
		es = append(es, ves.Prefix("rules")...)
	}
	if len(es) > 0 {
		for _, e := range es {
			e.Line = lineOf(doc, e.Field)
		}
		return nil, es
	}
	return c, nil
}

// parseDays reads a number of days ("30", "30d", "1.5d") or a Go duration ("36h").
func parseDays(s string) (time.Duration, error) {
	days := strings.TrimSuffix(s, "d")
	if f, err := strconv.ParseFloat(days, 64); err == nil && days == strings.TrimSpace(days) {
		switch {
		case math.IsNaN(f):
			return 0, fmt.Errorf("%q is not a number", s)
		case math.Abs(f) > 1e5: // past 1e5 days the nanoseconds overflow: clamp
			return time.Duration(math.Copysign(math.MaxInt64, f)), nil
		}
		return time.Duration(f * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// document returns the top mapping of a parsed file, nil for an empty file.
func document(root *yaml.Node) *yaml.Node {
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		return root.Content[0]
	}
	return nil
}

// lookup returns the value node of key in a mapping node, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// lookupPath is lookup through nested mappings: "node.missedBeats".
func lookupPath(m *yaml.Node, path string) *yaml.Node {
	for _, k := range strings.Split(path, ".") {
		m = lookup(m, k)
	}
	return m
}

// yamlFields maps the yaml key names of a struct type to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default
		}
		fields[name] = f.Type
	}
	return fields
}

// unknownKeys walks node alongside type t and reports mapping keys that t has no field
// for. Type mismatches are left to the decoder.
func unknownKeys(node *yaml.Node, t reflect.Type, path string, es *rules.ValidationErrors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	switch {
	case t.Kind() == reflect.Struct && node.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("unknown key %q", k.Value)
				if s := suggestKey(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				*es = append(*es, &rules.ValidationError{Field: path, Msg: msg, Line: k.Line})
				continue
			}
			unknownKeys(v, ft, rules.JoinField(path, k.Value), es)
		}
	case t.Kind() == reflect.Slice && node.Kind == yaml.SequenceNode:
		for i, item := range node.Content {
			unknownKeys(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", es)
		}
	}
}

// suggestKey finds a known key that matches key ignoring case, "_", "-" and a plural "s".
func suggestKey(key string, fields map[string]reflect.Type) string {
	squash := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	for name := range fields {
		n, k := squash(name), squash(key)
		if n == k || n == k+"s" || n+"s" == k {
			return name
		}
	}
	return ""
}

// lineOf finds the line of the node that a field path such as
// "rules[2].recordFormats[0].cycleDuration" names. When the field is not in the file (a
// default was applied) it returns the line of the nearest enclosing node; 0 if unknown.
func lineOf(doc *yaml.Node, field string) int {
	node := doc
	if node == nil {
		return 0
	}
	line := 0
	for _, part := range splitField(field) {
		var next *yaml.Node
		if n, err := strconv.Atoi(part); err == nil {
			if node.Kind == yaml.SequenceNode && n >= 0 && n < len(node.Content) {
				next = node.Content[n]
			}
		} else {
			next = lookup(node, part)
			if next != nil && next.Kind == yaml.ScalarNode {
				// Point at the key's line for scalars (same line in block style).
				line = next.Line
				return line
			}
		}
		if next == nil {
			break
		}
		node = next
		line = node.Line
	}
	return line
}

// splitField splits "a[2].b" into "a", "2", "b".
func splitField(field string) []string {
	field = strings.NewReplacer("[", ".", "]", "").Replace(field)
	var parts []string
	for _, p := range strings.Split(field, ".") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

// spaceUnits are the size suffixes ParseSpace accepts (case-insensitive).
var spaceUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
}

// MaxDiskFullHold is the largest diskFullHold and diskFullHoldPerStream.
const MaxDiskFullHold = 64 << 30

// MaxSyncBacklog is the largest syncBacklog.
const MaxSyncBacklog = 64 << 30

// ParseSpace parses a free-space threshold: a size with an optional unit (B, KB, MB, GB,
// TB, KiB, MiB, GiB, TiB) or a percentage ("5%", of the file system's size).
func ParseSpace(v string) (bytes uint64, percent float64, err error) {
	s := strings.ToLower(strings.TrimSpace(v))
	bad := fmt.Errorf("%q: want a size (e.g. \"1GiB\", \"500MiB\") or a percentage of the file system from 0 to 99 (e.g. \"5%%\")", v)
	if num, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || p < 0 || p >= 100 {
			return 0, 0, bad
		}
		return 0, p, nil
	}
	mult := 1.0
	for _, u := range spaceUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 || n*mult >= 1<<63 {
		return 0, 0, bad
	}
	return uint64(n * mult), 0, nil
}
