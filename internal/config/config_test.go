package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/rules"
)

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "livrec.yaml")
	data := `
dataDir: /var/lib/livrec
rtmpAddr: ":1936"
timeZone: Asia/Shanghai
rules:
  - domainName: Live.Example.com
    appName: live
    delayTime: 60
    recordFormats:
      - format: m3u8
        sliceDuration: 10
      - format: flv
        cycleDuration: 3600
        sliceDuration: 30   # the cloud API default, accepted and cleared for flv
  - domainName: "*"
    appName: "*"
    recordFormats: [{format: mp4}]
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/livrec" || c.RTMPAddr != ":1936" || c.HTTPAddr != DefaultHTTPAddr ||
		c.TimeZone != "Asia/Shanghai" || c.Location == nil || c.Location.String() != "Asia/Shanghai" {
		t.Errorf("config = %+v", c)
	}
	want := []rules.Rule{
		{DomainName: "live.example.com", AppName: "live", StreamName: "*", DelayTime: 60, RecordFormats: []rules.RecordFormat{
			{Format: "m3u8", ObjectPrefix: rules.DefaultObjectPrefix, SliceObjectPrefix: rules.DefaultSliceObjectPrefix, SliceDuration: 10, CycleDuration: 21600},
			{Format: "flv", ObjectPrefix: rules.DefaultObjectPrefix, CycleDuration: 3600},
		}},
		{DomainName: "*", AppName: "*", StreamName: "*", DelayTime: 180, RecordFormats: []rules.RecordFormat{
			{Format: "mp4", ObjectPrefix: rules.DefaultObjectPrefix, CycleDuration: 21600},
		}},
	}
	if !reflect.DeepEqual(c.Rules, want) {
		t.Errorf("rules:\n got %+v\nwant %+v", c.Rules, want)
	}
}

func TestParseDefaults(t *testing.T) {
	for _, data := range []string{"", "# only a comment\n", "dataDir: d\n", "rules:\n"} {
		c, err := Parse([]byte(data))
		if err != nil {
			t.Fatalf("Parse(%q): %v", data, err)
		}
		if c.RTMPAddr != DefaultRTMPAddr || c.TimeZone != "UTC" || c.Location == nil ||
			!reflect.DeepEqual(c.Rules, rules.DefaultRules()) {
			t.Errorf("Parse(%q) = %+v", data, c)
		}
	}
	c, err := Parse([]byte("rules: []\n"))
	if err != nil || c.Rules == nil || len(c.Rules) != 0 {
		t.Errorf("rules: [] gives %+v, %v; want an empty, non-nil list", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string // lines of the error
	}{
		{"unknown top key", "dataDir: x\nhttpAdr: :80\n",
			[]string{`line 2: unknown key "httpAdr"`}},
		{"wrong case", "DataDir: x\n",
			[]string{`line 1: unknown key "DataDir" (did you mean "dataDir"?)`}},
		{"unknown rule key", "rules:\n  - domainName: a.com\n    appName: live\n    recordFormat: []\n",
			[]string{`line 4: rules[0]: unknown key "recordFormat" (did you mean "recordFormats"?)`}},
		{"unknown format key", `
rules:
  - domainName: a.com
    appName: live
    recordFormats:
      - format: m3u8
      - format: flv
        slice_duration: 10
        ossBucket: b
`, []string{
			`line 8: rules[0].recordFormats[1]: unknown key "slice_duration" (did you mean "sliceDuration"?)`,
			`line 9: rules[0].recordFormats[1]: unknown key "ossBucket"`,
		}},
		{"rule validation with lines", `
timeZone: Mars/Base
rules:
  - domainName: a.com
    appName: live
    recordFormats: [{format: m3u8}]
  - domainName: a.com
    appName: li*ve
    recordFormats:
      - format: flv
      - format: mp4
        cycleDuration: 60
  - domainName: A.com
    appName: live
    streamName: "*"
    recordFormats: [{format: mp4}]
`, []string{
			`line 2: timeZone: "Mars/Base" is not an IANA time zone name (e.g. "UTC", "Asia/Shanghai")`,
			`line 8: rules[1].appName: "li*ve": "*" is only allowed alone`,
			`line 12: rules[1].recordFormats[1].cycleDuration: 60 is out of range (allowed 900–21600 seconds)`,
			`line 13: rules[2]: duplicate of [0] (domainName "a.com", appName "live", streamName "*")`,
		}},
		{"default filled field points at its entry", `
rules:
  - domainName: a.com
    appName: live
    recordFormats:
      - format: flv
        sliceObjectPrefix: "x/{UnixTimestamp}_{Sequence}"
      - format: m3u8
        sliceDuration: 31
`, []string{
			`line 7: rules[0].recordFormats[0].sliceObjectPrefix: is only for m3u8 and cmaf, not flv`,
			`line 9: rules[0].recordFormats[1].sliceDuration: 31 is out of range (allowed 5–30 seconds)`,
		}},
		{"ossEndpoint not under s3", `
s3:
  - {endpoint: "s3.example.com:9000", accessKey: a, secretKey: b}
  - {endpoint: "minio.local:9000", accessKey: a, secretKey: b}
rules:
  - domainName: a.com
    appName: live
    ossEndpoint: "s3.example.com:9000"
    ossBucket: rec
    recordFormats: [{format: flv}]
  - domainName: a.com
    appName: other
    ossEndpoint: "x:9000"
    ossBucket: rec
    recordFormats: [{format: flv}]
`, []string{
			`line 13: rules[1].ossEndpoint: "x:9000" is not one of the s3 endpoints (s3.example.com:9000, minio.local:9000)`,
		}},
		{"ossEndpoint without s3", "rules:\n  - {domainName: a.com, appName: live, ossEndpoint: \"x:9000\", ossBucket: rec, recordFormats: [{format: flv}]}\n",
			[]string{`line 2: rules[0].ossEndpoint: "x:9000" is not one of the s3 endpoints (none is configured: add it under s3: in the config file, with its keys)`}},
		{"missing formats", "rules:\n  - domainName: a.com\n    appName: live\n",
			[]string{`line 2: rules[0].recordFormats: at least one format is required`}},
		{"local zone", "timeZone: Local\n",
			[]string{`line 1: timeZone: "Local" is not an IANA time zone name (e.g. "UTC", "Asia/Shanghai")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("error:\n got %q\nwant %q", got, tt.want)
			}
			var es rules.ValidationErrors
			if !errors.As(err, &es) {
				t.Errorf("error is not rules.ValidationErrors: %T", err)
			}
		})
	}
}

func TestParseYAMLErrors(t *testing.T) {
	tests := map[string]string{
		"type":       "rules:\n  - domainName: a.com\n    delayTime: soon\n",
		"duplicate":  "dataDir: a\ndataDir: b\n",
		"two docs":   "dataDir: a\n---\ndataDir: b\n",
		"not a map":  "- a\n- b\n",
		"bad syntax": "dataDir: [\n",
	}
	for name, data := range tests {
		_, err := Parse([]byte(data))
		if err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%s: error %v, want one naming a line", name, err)
		}
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("bogus: 1\n"), 0o600)
	_, err := LoadConfig(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": line 1: unknown key \"bogus\"") {
		t.Errorf("error %v, want it prefixed with the path", err)
	}
}

func TestAccessKeys(t *testing.T) {
	t.Setenv(AccessKeyEnv("ak-env"), "from-env")
	if got := AccessKeyEnv("ak-env"); got != "LIVREC_ACCESS_KEY_SECRET_AK_ENV" {
		t.Errorf("AccessKeyEnv = %q", got)
	}
	c, err := Parse([]byte("allowDeleteFiles: true\naccessKeys:\n  - {id: ak1, secret: s1}\n  - id: ak-env\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"ak1": "s1", "ak-env": "from-env"}; !reflect.DeepEqual(c.AccessKeySecrets(), want) || !c.AllowDeleteFiles {
		t.Errorf("keys %v, allowDeleteFiles %v", c.AccessKeySecrets(), c.AllowDeleteFiles)
	}
	_, err = Parse([]byte("accessKeys:\n  - {id: ak1}\n  - {id: ak1, secret: x}\n  - {secret: y}\n"))
	want := []string{
		"line 2: accessKeys[0].secret: is required (in the file, or in the environment variable LIVREC_ACCESS_KEY_SECRET_AK1)",
		`line 3: accessKeys[1].id: "ak1" is already used by accessKeys[0]`,
		"line 4: accessKeys[2].id: is required",
	}
	if err == nil || !reflect.DeepEqual(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("error:\n got %v\nwant %q", err, want)
	}
}

func TestMinFreeSpace(t *testing.T) {
	for in, want := range map[string][2]float64{
		"1GiB": {1 << 30, 0}, "500 MiB": {500 << 20, 0}, "2gb": {2e9, 0}, "4096": {4096, 0}, "5%": {0, 5}, "0.5 %": {0, 0.5},
	} {
		c, err := Parse([]byte("minFreeSpace: " + strconv.Quote(in) + "\n"))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if float64(c.MinFreeBytes) != want[0] || c.MinFreePercent != want[1] {
			t.Errorf("%q: %d bytes, %g %%; want %v", in, c.MinFreeBytes, c.MinFreePercent, want)
		}
	}
	for _, in := range []string{"1 GiBs", "-1GiB", "100%", "lots", "%"} {
		_, err := Parse([]byte("minFreeSpace: " + strconv.Quote(in) + "\n"))
		if err == nil || !strings.Contains(err.Error(), "minFreeSpace") {
			t.Errorf("%q: error %v, want one naming minFreeSpace", in, err)
		}
	}
}

func TestDiskFullHold(t *testing.T) {
	for in, want := range map[string][2]int64{
		"":                            {0, 0},
		"diskFullHold: 1GiB":          {1 << 30, 0},
		"diskFullHold: \"0\"":         {-1, 0},
		"diskFullHoldPerStream: 4MiB": {0, 4 << 20},
		"diskFullHold: 64MiB\ndiskFullHoldPerStream: 0": {64 << 20, -1},
	} {
		c, err := Parse([]byte(in + "\n"))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := [2]int64{c.DiskFullHoldBytes, c.DiskFullHoldStreamBytes}; got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
	for in, field := range map[string]string{
		"diskFullHold: 5%":                                 "diskFullHold",
		"diskFullHold: -1MiB":                              "diskFullHold",
		"diskFullHold: 65GiB":                              "diskFullHold",
		"diskFullHoldPerStream: lots":                      "diskFullHoldPerStream",
		"diskFullHold: 8MiB\ndiskFullHoldPerStream: 16MiB": "diskFullHoldPerStream",
	} {
		_, err := Parse([]byte(in + "\n"))
		if err == nil || !strings.Contains(err.Error(), field+": ") {
			t.Errorf("%q: error %v, want one naming %s", in, err, field)
		}
	}
}

// TestSyncPool: the sync pool's settings reach the config with record's defaults when
// left out, and out-of-range values are refused naming the field.
func TestSyncPool(t *testing.T) {
	type pool struct {
		workers int
		backlog int64
		slow    int
	}
	for in, want := range map[string]pool{
		"":                  {16, 0, 10},
		"syncWorkers: 16":   {16, 0, 10},
		"syncBacklog: 1GiB": {16, 1 << 30, 10},
		"syncSlowAfter: 60": {16, 0, 60},
	} {
		c, err := Parse([]byte(in + "\n"))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := (pool{c.SyncWorkers, c.SyncBacklogBytes, c.SyncSlowAfter}); got != want {
			t.Errorf("%q: %+v, want %+v", in, got, want)
		}
	}
	for in, field := range map[string]string{
		"syncWorkers: 0":      "syncWorkers",
		"syncWorkers: 65":     "syncWorkers",
		"syncBacklog: 10KiB":  "syncBacklog",
		"syncBacklog: 50%":    "syncBacklog",
		"syncBacklog: 65GiB":  "syncBacklog",
		"syncSlowAfter: 0":    "syncSlowAfter",
		"syncSlowAfter: 3601": "syncSlowAfter",
	} {
		_, err := Parse([]byte(in + "\n"))
		if err == nil || !strings.Contains(err.Error(), field+": ") {
			t.Errorf("%q: error %v, want one naming %s", in, err, field)
		}
	}
}

func TestCallbackRetention(t *testing.T) {
	day := 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"":                          DefaultCallbackRetention,
		"callbackRetention: 7\n":    7 * day,
		"callbackRetention: 7d\n":   7 * day,
		"callbackRetention: 1.5d\n": 36 * time.Hour,
		"callbackRetention: 36h\n":  36 * time.Hour,
		"callbackRetention: 1h\n":   time.Hour,
		"callbackRetention: 3650\n": 3650 * day,
	} {
		c, err := Parse([]byte(in))
		if err != nil || c.CallbackRetentionPeriod != want {
			t.Errorf("Parse(%q): %v, %v; want %v", in, c.CallbackRetentionPeriod, err, want)
		}
	}
	const shape = `want days ("30", "30d") or a duration ("36h")`
	for in, want := range map[string]string{
		"callbackRetention: 59m\n":    `line 1: callbackRetention: "59m" is out of range (allowed 1h–3650d)`,
		"callbackRetention: 0\n":      `line 1: callbackRetention: "0" is out of range (allowed 1h–3650d)`,
		"callbackRetention: -3d\n":    `line 1: callbackRetention: "-3d" is out of range (allowed 1h–3650d)`,
		"callbackRetention: 3651d\n":  `line 1: callbackRetention: "3651d" is out of range (allowed 1h–3650d)`,
		"callbackRetention: 1e300\n":  `line 1: callbackRetention: "1e300" is out of range (allowed 1h–3650d)`,
		"callbackRetention: month\n":  `line 1: callbackRetention: "month": ` + shape,
		"callbackRetention: nan\n":    `line 1: callbackRetention: "nan": ` + shape,
		"callbackRetention: \" 3\"\n": `line 1: callbackRetention: " 3": ` + shape,
	} {
		_, err := Parse([]byte(in))
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q): %v, want %s", in, err, want)
		}
	}
}

// TestCORSAllowedOrigins: the list is read as is (api.NewCORS checks each origin when
// the service starts, naming corsAllowedOrigins[i]); absent means none.
func TestCORSAllowedOrigins(t *testing.T) {
	c, err := Parse([]byte("corsAllowedOrigins: [\"https://www.example.com\", \"*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.CORSAllowedOrigins, []string{"https://www.example.com", "*"}) {
		t.Errorf("corsAllowedOrigins = %q", c.CORSAllowedOrigins)
	}
	if c, err := Parse(nil); err != nil || c.CORSAllowedOrigins != nil {
		t.Errorf("default: %q, %v", c.CORSAllowedOrigins, err)
	}
	if _, err := Parse([]byte("corsAllowedOrigin: [\"*\"]\n")); err == nil || !strings.Contains(err.Error(), `did you mean "corsAllowedOrigins"`) {
		t.Errorf("misspelt key: %v", err)
	}
}

// TestLimits: the limits take their defaults when left out, and values out of range or
// allow-list entries that are neither CIDR, IP address nor host name are errors naming
// the field.
func TestLimits(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RTMPMaxConns != DefaultRTMPMaxConns || c.RTMPMaxConnsPerAddr != DefaultRTMPMaxConnsPerAddr ||
		c.RTMPPublishDeadline != DefaultRTMPPublishDeadline || c.ReservedFDs != DefaultReservedFDs || c.AllowPrivateCallbacks ||
		c.HTTPMaxConns != DefaultHTTPMaxConns || c.HTTPMaxConnsPerAddr != DefaultHTTPMaxConnsPerAddr {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Parse([]byte("rtmpMaxConns: 100\nrtmpMaxConnsPerAddr: 5\nrtmpPublishDeadline: 3\nreservedFds: 0\nhttpMaxConns: 50\nhttpMaxConnsPerAddr: 4\n" +
		"allowPrivateCallbacks: true\ncallbackAllowList: [10.0.0.0/8, 192.168.1.7, hooks.internal]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RTMPMaxConns != 100 || c.RTMPMaxConnsPerAddr != 5 || c.RTMPPublishDeadline != 3 || c.ReservedFDs != 0 ||
		c.HTTPMaxConns != 50 || c.HTTPMaxConnsPerAddr != 4 || !c.AllowPrivateCallbacks || len(c.CallbackAllowList) != 3 {
		t.Errorf("set: %+v", c)
	}
	for data, field := range map[string]string{
		"rtmpMaxConns: 0\n":                      "rtmpMaxConns",
		"rtmpMaxConnsPerAddr: -1\n":              "rtmpMaxConnsPerAddr",
		"rtmpPublishDeadline: 301\n":             "rtmpPublishDeadline",
		"reservedFds: -5\n":                      "reservedFds",
		"httpMaxConns: 0\n":                      "httpMaxConns",
		"httpMaxConnsPerAddr: 2000000\n":         "httpMaxConnsPerAddr",
		"callbackAllowList: [ok, 10.0.0.0/33]\n": "callbackAllowList[1]",
		"callbackAllowList: ['http://x/']\n":     "callbackAllowList[0]",
	} {
		_, err := Parse([]byte(data))
		var ves rules.ValidationErrors
		if !errors.As(err, &ves) || len(ves) != 1 || ves[0].Field != field || ves[0].Line != 1 {
			t.Errorf("%q: got %v, want one error on %s, line 1", data, err, field)
		}
	}
}

func TestCatalog(t *testing.T) {
	c, err := Parse(nil)
	if err != nil || c.Catalog != (CatalogDB{Driver: "sqlite"}) {
		t.Fatalf("default catalog %+v, %v", c.Catalog, err)
	}
	t.Setenv(NodeSecretEnv, "a-cluster-secret-of-the-test") // required with postgres (TestNode)
	c, err = Parse([]byte("catalog: {driver: postgres, dsn: \"postgres://livrec@db.internal/livrec\"}\n"))
	if err != nil || c.Catalog.Driver != "postgres" || c.Catalog.DSN != "postgres://livrec@db.internal/livrec" {
		t.Fatalf("postgres catalog %+v, %v", c.Catalog, err)
	}
	t.Setenv(CatalogDSNEnv, "host=db2.internal user=livrec password=secret")
	c, err = Parse([]byte("catalog: {driver: postgres, dsn: \"postgres://livrec@db.internal/livrec\"}\n"))
	if err != nil || c.Catalog.DSN != "host=db2.internal user=livrec password=secret" {
		t.Fatalf("the environment does not win: %+v, %v", c.Catalog, err)
	}
	t.Setenv(CatalogDSNEnv, "postgresql://livrec@db3.internal/livrec")
	if c, err = Parse(nil); err != nil || c.Catalog.Driver != "postgres" {
		t.Fatalf("a postgres URL alone does not select postgres: %+v, %v", c.Catalog, err)
	}
	if _, err = Parse([]byte("catalog: {driver: sqlite}\n")); err == nil || !strings.Contains(err.Error(), "catalog.dsn: a PostgreSQL URL with driver sqlite") {
		t.Fatalf("sqlite with a postgres URL: %v", err)
	}
	t.Setenv(CatalogDSNEnv, "")
	for data, want := range map[string]string{
		"catalog: {driver: mysql}\n":                  `line 1: catalog.driver: "mysql": want one of sqlite, postgres (default sqlite)`,
		"catalog:\n  driver: postgres\n":              "catalog.dsn: is required with driver postgres (in the file, or in the environment variable LIVREC_CATALOG_DSN)",
		"catalog: {driver: postgres, dsn: \"::x\"}\n": "catalog.dsn: ",
	} {
		if _, err := Parse([]byte(data)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want %q", data, err, want)
		}
	}
}

func TestNode(t *testing.T) {
	host, _ := os.Hostname()
	c, err := Parse([]byte("httpAddr: \":9090\"\n"))
	if err != nil || c.Node != (Node{ID: host, HeartbeatInterval: 5, MissedBeats: 3}) || c.NodeHTTPAddr() != net.JoinHostPort(host, "9090") {
		t.Fatalf("default node %+v, %v", c.Node, err)
	}
	c, err = Parse([]byte("node: {id: rec-1, httpAddr: \"10.0.0.1:8080\", heartbeatInterval: 2, missedBeats: 5}\n"))
	if err != nil || c.Node != (Node{ID: "rec-1", HTTPAddr: "10.0.0.1:8080", HeartbeatInterval: 2, MissedBeats: 5}) || c.NodeHTTPAddr() != "10.0.0.1:8080" {
		t.Fatalf("node %+v, %v", c.Node, err)
	}
	_, err = Parse([]byte("node:\n  id: \"a b\"\n  httpAddr: nowhere\n  heartbeatInterval: 0\n  missedBeats: 2000\n"))
	for _, want := range []string{`line 2: node.id: "a b": want printable ASCII`, `line 3: node.httpAddr: "nowhere": want host:port`,
		"node.heartbeatInterval: 0: want 1-3600 seconds (default 5)", "node.missedBeats: 2000: want 1-1000 beats (default 3)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}

	// The cluster secret: required with postgres, at least 16 characters, the
	// environment wins over the file.
	pg := "catalog: {driver: postgres, dsn: \"postgres://livrec@db.internal/livrec\"}\n"
	if _, err = Parse([]byte(pg)); err == nil || !strings.Contains(err.Error(), "node.secret: is required with a postgres catalog") ||
		!strings.Contains(err.Error(), NodeSecretEnv) {
		t.Errorf("postgres without node.secret: %v", err)
	}
	if _, err = Parse([]byte(pg + "node: {secret: short}\n")); err == nil || !strings.Contains(err.Error(), "node.secret: too short") {
		t.Errorf("short node.secret: %v", err)
	}
	if c, err = Parse([]byte(pg + "node: {secret: file-secret-0123456789}\n")); err != nil || c.Node.Secret != "file-secret-0123456789" {
		t.Errorf("node.secret from the file: %+v, %v", c.Node, err)
	}
	t.Setenv(NodeSecretEnv, "env-secret-0123456789")
	if c, err = Parse([]byte(pg + "node: {secret: file-secret-0123456789}\n")); err != nil || c.Node.Secret != "env-secret-0123456789" {
		t.Errorf("%s does not win: %+v, %v", NodeSecretEnv, c.Node, err)
	}
}
