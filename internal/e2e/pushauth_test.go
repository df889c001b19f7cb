package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/pushauth"
	"github.com/livrec/livrec/internal/testenv"
)

// TestPushAuth: a domain with publish authentication refuses pushes with a missing, bad
// or expired auth_key before any media is accepted, and accepts the secondary key.
func TestPushAuth(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 2)
	s := startServer(t, t.TempDir(), `
publishAuth:
  - domainName: secure.example.com
    primaryKey: primary-key-0001
    secondaryKey: secondary-key-02
rules:
  - domainName: "*"
    appName: "*"
    recordFormats: [{format: flv}]
`)
	url := func(stream, key string) string {
		u := s.rtmpURL("live", stream) + "?vhost=secure.example.com"
		if key != "" {
			u += "&auth_key=" + key
		}
		return u
	}
	later := time.Now().Add(time.Hour)
	for _, c := range []struct{ stream, key string }{
		{"missing", ""},
		{"bad", pushauth.Sign("live", "bad", "wrong-key", later, "r1", "0")},
		{"expired", pushauth.Sign("live", "expired", "primary-key-0001", time.Now().Add(-time.Minute), "r2", "0")},
	} {
		if out, err := push(t, src, url(c.stream, c.key)); err == nil {
			t.Fatalf("%s auth_key: push accepted\n%s", c.stream, out)
		}
	}
	if out, err := push(t, src, url("good", pushauth.Sign("live", "good", "secondary-key-02", later, "r3", "0"))); err != nil {
		t.Fatalf("push signed with the secondary key refused: %v\n%s", err, out)
	}
	s.waitIdle()
	if logs := s.logs.String(); strings.Contains(logs, "primary-key-0001") || strings.Contains(logs, "secondary-key-02") {
		t.Fatal("a key appears in the log")
	}
	s.stop()
	s.start()
	recs := s.waitDone("", 1, 5*time.Second)
	if len(recs) != 1 || !strings.Contains(recs[0].Key, "/good/") {
		t.Fatalf("only the signed push may be recorded: %+v", recs)
	}
}
