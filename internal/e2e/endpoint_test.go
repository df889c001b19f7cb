package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// TestRuleStorageMissing: a rule may only name object storage configured under s3:. The
// JSON API refuses another endpoint (400 naming ossEndpoint); a rule whose endpoint was
// later removed from the config is named at start-up, and a push matching it raises a
// record_error callback with the reason instead of passing silently.
func TestRuleStorageMissing(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	endpoint := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens: no upload is needed
	s := startServer(t, t.TempDir(), fmt.Sprintf(`
s3:
  - {endpoint: %q, accessKey: ak, secretKey: sk}
`, endpoint))
	rule := map[string]any{"domainName": "example.com", "appName": "live", "streamName": "gone",
		"ossEndpoint": "x.example.com:9000", "ossBucket": "bkt", "recordFormats": []any{map[string]any{"format": "flv"}}}
	code, body := s.post("/api/v1/rules", rule)
	var eb struct{ Field string }
	json.Unmarshal([]byte(body), &eb)
	if code != 400 || eb.Field != "ossEndpoint" || !strings.Contains(body, endpoint) {
		t.Fatalf("rule with an endpoint not under s3: %d %s", code, body)
	}
	rule["ossEndpoint"] = endpoint
	code, body = s.post("/api/v1/rules", rule)
	var created struct{ ID string }
	json.Unmarshal([]byte(body), &created)
	if code != 201 || created.ID == "" {
		t.Fatalf("rule with a configured endpoint: %d %s", code, body)
	}

	// The endpoint leaves the config; the rule stays in the catalog.
	s.stop()
	if err := os.WriteFile(s.config, []byte("allowPrivateCallbacks: true # the receiver is on loopback\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	logs := s.logs.String()
	if !strings.Contains(logs, "rule names object storage that is not configured") || !strings.Contains(logs, created.ID) {
		t.Fatalf("no start-up warning naming rule %s:\n%s", created.ID, logs)
	}
	rc := newReceiver(t)
	if code, body := s.put("/api/v1/domains/example.com/notify", map[string]any{"notifyUrl": rc.URL + "/cb", "needStatusNotify": true}); code != 200 {
		t.Fatalf("notify config: %d %s", code, body)
	}
	src := makeSource(t, t.TempDir(), 2)
	if out, err := push(t, src, s.rtmpURL("live", "gone")+"?vhost=example.com"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	ev := rc.waitFor(t, "record_error", 10*time.Second)
	if reason, _ := ev["reason"].(string); !strings.Contains(reason, endpoint) || !strings.Contains(reason, "not configured") {
		t.Fatalf("record_error without the reason: %v", ev)
	}
	if n := s.metric(`livrec_errors_total{code="task_not_started"}`); n != 1 {
		t.Fatalf("livrec_errors_total{code=task_not_started} = %v, want 1", n)
	}
}
