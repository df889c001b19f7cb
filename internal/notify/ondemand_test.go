package notify

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAskOnDemand(t *testing.T) {
	rc := newReceiver(t)
	n := newNotifier(t, openDB(t), Options{Logger: quiet, AllowPrivateCallbacks: true, OnDemandTimeout: 300 * time.Millisecond}, false)
	q := OnDemandQuery{Domain: "demo.example.com", App: "seq_all", Stream: "ondemand8", Codec: "HEVC", VideoBitrate: 2000}
	answer := func(status int, body string) {
		rc.set(func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		})
	}

	t.Run("yes with intervals and formats", func(t *testing.T) {
		answer(200, `{"ApiVersion":"1.0","NeedRecord":true,"Interval":{"Mp4":300,"Flv":120,"M3U8":180},"Format":["MP4","flv"]}`)
		d, err := n.AskOnDemand(context.Background(), rc.URL+"/ondemand?token=abc", q)
		if err != nil {
			t.Fatal(err)
		}
		want := Decision{NeedRecord: true, Formats: []string{"mp4", "flv"}, Intervals: map[string]int{"mp4": 300, "flv": 120, "m3u8": 180}}
		if !reflect.DeepEqual(d, want) {
			t.Fatalf("got %+v, want %+v", d, want)
		}
		h := rc.next(t)
		if h.method != http.MethodGet || len(h.body) != 0 {
			t.Fatalf("request %s with body %q", h.method, h.body)
		}
		u, _ := url.Parse(h.url)
		wantQ := url.Values{"token": {"abc"}, "domain": {"demo.example.com"}, "app": {"seq_all"}, "stream": {"ondemand8"},
			"codec": {"h265"}, "vbitrate": {"2000"}}
		if u.Path != "/ondemand" || !reflect.DeepEqual(u.Query(), wantQ) {
			t.Fatalf("request %s, want path /ondemand and query %v", h.url, wantQ)
		}
	})
	t.Run("no", func(t *testing.T) {
		answer(200, `{"NeedRecord":false}`)
		d, err := n.AskOnDemand(context.Background(), rc.URL, q)
		if err != nil || !reflect.DeepEqual(d, Decision{}) {
			t.Fatalf("got %+v, %v", d, err)
		}
		rc.next(t)
	})
	t.Run("empty format list is kept", func(t *testing.T) {
		answer(200, `{"NeedRecord":true,"Format":[]}`)
		d, err := n.AskOnDemand(context.Background(), rc.URL, q)
		if err != nil || d.Formats == nil || len(d.Formats) != 0 || d.Intervals != nil {
			t.Fatalf("got %+v, %v", d, err)
		}
		rc.next(t)
	})
	t.Run("padding after the object within 2048 bytes read", func(t *testing.T) {
		answer(200, `{"NeedRecord":true}`+strings.Repeat(" ", 5000))
		if d, err := n.AskOnDemand(context.Background(), rc.URL, q); err != nil || !d.NeedRecord {
			t.Fatalf("got %+v, %v", d, err)
		}
		rc.next(t)
	})

	fails := []struct {
		name   string
		status int
		body   string
		reason string
	}{
		{"non-200", 500, `{"NeedRecord":true}`, "HTTP status 500"},
		{"204", 204, ``, "HTTP status 204"},
		{"malformed", 200, `{"NeedRecord":tru`, "not a JSON object"},
		{"not an object", 200, `[true]`, "not a JSON object"},
		{"trailing data", 200, `{"NeedRecord":true} {}`, "data after"},
		{"missing NeedRecord", 200, `{"ApiVersion":"1.0","Format":["mp4"]}`, "no NeedRecord"},
		{"NeedRecord string", 200, `{"NeedRecord":"true"}`, "NeedRecord is"},
		{"interval too small", 200, `{"NeedRecord":true,"Interval":{"Mp4":4}}`, "Interval.Mp4 is 4"},
		{"interval too big", 200, `{"NeedRecord":true,"Interval":{"Flv":21601}}`, "Interval.Flv is 21601"},
		{"interval fraction", 200, `{"NeedRecord":true,"Interval":{"Flv":30.5}}`, "Interval.Flv is 30.5"},
		{"bad format", 200, `{"NeedRecord":true,"Format":"mp4"}`, "Format is"},
		{"longer than 2048", 200, `{"NeedRecord":true,"Format":["` + strings.Repeat("x", 3000) + `"]}`, "longer than 2048 bytes"},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			answer(tc.status, tc.body)
			d, err := n.AskOnDemand(context.Background(), rc.URL, q)
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %+v, %v; want an error containing %q", d, err, tc.reason)
			}
			if d.NeedRecord {
				t.Fatal("NeedRecord true with an error")
			}
			rc.next(t)
		})
	}

	t.Run("timeout", func(t *testing.T) {
		rc.set(func(_ int, _ http.ResponseWriter, r *http.Request) { hang(r) })
		start := time.Now()
		_, err := n.AskOnDemand(context.Background(), rc.URL, q)
		if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
			t.Fatalf("got %v", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("took %v with a 300ms timeout", el)
		}
		rc.next(t)
	})
	t.Run("bad url", func(t *testing.T) {
		if _, err := n.AskOnDemand(context.Background(), "ftp://x/", q); err == nil || !strings.Contains(err.Error(), "bad onDemandUrl") {
			t.Fatalf("got %v", err)
		}
	})
}
