package notify

import (
	"github.com/livrec/livrec/internal/schema/schematest"
	"net/http"
	"strconv"
	"testing"
)

// TestSignVODVector: the X-VOD-SIGNATURE of the VOD service's documented example.
func TestSignVODVector(t *testing.T) {
	if got := SignVOD("https://www.example.com/your/callback", 1519375990, "test123"); got != "c72b60894140fa98920f1279219b7ed4" {
		t.Errorf("SignVOD = %s", got)
	}
}

// TestEnqueueVOD: a message signed the VOD way is retried until the receiver answers
// 200, each try with fresh X-VOD-* headers over the whole URL, and no ALI-LIVE-* header.
func TestEnqueueVOD(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		rc := newReceiver(t)
		rc.set(func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		})
		n := newNotifier(t, openDB(t, driver), fastOpts(), true)
		url := rc.URL + "/vod/cb?x=1"
		n.Enqueue(Message{Domain: "D.test", App: "live", Stream: "cam", Event: "AddLiveRecordVideoComplete", URL: url,
			Body: []byte(`{"EventType":"AddLiveRecordVideoComplete"}`), AuthKey: "k3y", Signing: SigningVOD})
		for try := 1; try <= 2; try++ {
			h := rc.next(t)
			ts, err := strconv.ParseInt(h.header.Get(HeaderVODTimestamp), 10, 64)
			if err != nil {
				t.Fatalf("try %d: %s %q", try, HeaderVODTimestamp, h.header.Get(HeaderVODTimestamp))
			}
			if got := h.header.Get(HeaderVODSignature); got != SignVOD(url, ts, "k3y") {
				t.Errorf("try %d: signature %s", try, got)
			}
			if h.header.Get(HeaderSignature) != "" {
				t.Errorf("try %d: a live signature too", try)
			}
			if string(h.body) != `{"EventType":"AddLiveRecordVideoComplete"}` {
				t.Errorf("body %s", h.body)
			}
		}
		waitFor(t, "success", func() bool { return onlyStatus(t, n) == StatusSuccess })
		if cb := onlyCallback(t, n); cb.Event != "AddLiveRecordVideoComplete" || cb.Domain != "d.test" || cb.Tries != 2 {
			t.Errorf("callback %+v", cb)
		}
	})
}
