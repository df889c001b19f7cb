package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

func (s *server) post(path string, body any) (int, string) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(s.url(path), "application/json", bytes.NewReader(b))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestManualCommandsAPI: with onDemand 7 nothing is recorded until a start command; a
// second start is TaskAlreadyStarted; cancel_delay generates the file at once.
func TestManualCommandsAPI(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 8)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: "*"
    onDemand: 7
    recordFormats:
      - format: m3u8
        sliceDuration: 5
`)
	cmd := func(c string) (int, string) {
		return s.post("/api/v1/streams/127.0.0.1/live/manual/record", map[string]string{"command": c})
	}
	if code, body := cmd("start"); code != http.StatusConflict || !strings.Contains(body, "StreamNotLive") {
		t.Fatalf("start before the push: %d %s", code, body)
	}
	done := make(chan struct{})
	go func() { push(t, src, s.rtmpURL("live", "manual"), "-re"); close(done) }()
	time.Sleep(2 * time.Second)
	if recs := s.recordings("stream=manual"); len(recs) != 0 {
		t.Fatalf("onDemand 7 recorded without a command: %+v", recs)
	}
	if code, body := cmd("start"); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, body := cmd("start"); code != http.StatusConflict || !strings.Contains(body, "TaskAlreadyStarted") {
		t.Fatalf("second start: %d %s", code, body)
	}
	if code, body := cmd("bogus"); code != http.StatusBadRequest || !strings.Contains(body, `"field": "command"`) {
		t.Fatalf("bogus command: %d %s", code, body)
	}
	time.Sleep(1500 * time.Millisecond)
	if code, body := cmd("restart"); code != 200 {
		t.Fatalf("restart: %d %s", code, body)
	}
	first := s.waitDone("stream=manual", 1, 3*time.Second)
	time.Sleep(2500 * time.Millisecond)
	if code, body := cmd("cancel_delay"); code != 200 {
		t.Fatalf("cancel_delay: %d %s", code, body)
	}
	recs := s.waitDone("stream=manual", 2, 3*time.Second)
	// Started at the keyframe before the command (t≈2 s, GOP 2 s), restarted at t≈3.5 s
	// (the next file opens at the next keyframe, t=4 s), ended at t≈6 s.
	if d := first[0].Duration; d < 1.4 || d > 3.6 {
		t.Fatalf("first manual file lasts %.2f s, want about 1.5–3.5 s", d)
	}
	var total float64
	for _, r := range recs {
		total += r.Duration
		decodeClean(t, s.filePath(r.Key))
	}
	if recs[0].TaskID != recs[1].TaskID || recs[1].Sequence != 1 || total < 3 || total > 6.5 {
		t.Fatalf("restart should continue the task with file 1: %+v", recs)
	}
	if code, body := cmd("stop"); code != http.StatusConflict || !strings.Contains(body, "TaskNotStarted") {
		t.Fatalf("stop with no task: %d %s", code, body)
	}
	<-done
}

// TestRecordIndexAndContent: the recording sessions of a stream are listed, and a new
// index playlist over a window is built from the stored segments.
func TestRecordIndexAndContent(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 12)
	s := startServer(t, t.TempDir(), hlsConfig)
	if out, err := push(t, src, s.rtmpURL("live", "idx")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	s.stop()
	s.start()
	r := s.waitDone("stream=idx", 1, 5*time.Second)[0]
	resp, err := http.Get(s.url("/api/v1/recording-content?app=live&stream=idx"))
	if err != nil {
		t.Fatal(err)
	}
	var content struct {
		Content []struct {
			ID        string    `json:"id"`
			StartTime time.Time `json:"startTime"`
			EndTime   time.Time `json:"endTime"`
		}
	}
	json.NewDecoder(resp.Body).Decode(&content)
	resp.Body.Close()
	if len(content.Content) != 1 || content.Content[0].ID != r.TaskID || content.Content[0].EndTime.IsZero() {
		t.Fatalf("recording content: %+v", content)
	}
	var rec struct {
		StartTime time.Time `json:"startTime"`
	}
	resp, _ = http.Get(s.url("/api/v1/recordings/" + r.ID))
	json.NewDecoder(resp.Body).Decode(&rec)
	resp.Body.Close()
	start := rec.StartTime
	// Segments (5 s slices, 2 s GOP): [0, 6) and [6, 12). The window [1, 7] holds the
	// first one completed; endTimeIncluded adds the second.
	for _, c := range []struct {
		included bool
		segs     int
	}{{false, 1}, {true, 2}} {
		code, body := s.post("/api/v1/streams/127.0.0.1/live/idx/index", map[string]any{
			"startTime": start.Add(time.Second), "endTime": start.Add(7 * time.Second), "endTimeIncluded": c.included,
			"objectKey": fmt.Sprintf("index/idx-%v", c.included)})
		if code != http.StatusCreated {
			t.Fatalf("create index: %d %s", code, body)
		}
		var f recording
		json.Unmarshal([]byte(body), &f)
		if f.Segments != c.segs || f.Key != fmt.Sprintf("index/idx-%v.m3u8", c.included) {
			t.Fatalf("index (endTimeIncluded=%v): %+v", c.included, f)
		}
		decodeClean(t, s.filePath(f.Key))
	}
	code, body := s.post("/api/v1/streams/127.0.0.1/live/idx/index", map[string]any{
		"startTime": start.Add(time.Second), "endTime": start.Add(7 * time.Second), "objectKey": "index/idx-false"})
	if code != http.StatusConflict {
		t.Fatalf("an index over an existing key must be refused, got %d %s", code, body)
	}
}

// TestOnDemandPushURL: onDemand 2 records only pushes whose URL says record_config
// {"NeedRecord":true}.
func TestOnDemandPushURL(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 2)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: "*"
    onDemand: 2
    recordFormats:
      - format: m3u8
`)
	for stream, q := range map[string]string{"yes": `{"NeedRecord":true}`, "no": `{"NeedRecord":false}`, "none": ""} {
		u := s.rtmpURL("live", stream)
		if q != "" {
			u += "?record_config=" + url.QueryEscape(q)
		}
		if out, err := push(t, src, u); err != nil {
			t.Fatalf("push: %v\n%s", err, out)
		}
	}
	s.waitIdle()
	s.stop()
	s.start()
	if recs := s.recordings(""); len(recs) != 1 || recs[0].Status != "done" || !strings.Contains(recs[0].Key, "/yes/") {
		t.Fatalf("want only the record_config NeedRecord:true push recorded, got %+v", recs)
	}
}
