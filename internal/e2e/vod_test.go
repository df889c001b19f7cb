package e2e

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// TestLongVodCycles: a VOD rule with a 300 s cycle, autoCompose on, and 11 minutes of
// media pushed fast gives three cycle assets (300, 300, ~60 s ± a GOP) and one merged
// asset of the whole duration (± 0.1 s) referencing their segments, all decoding clean,
// each with a cover of the stream's size and seek previews. DeleteVideo of the cycle
// assets removes their playlists but keeps the segments the merged asset plays; deleting
// that one removes them.
func TestLongVodCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	src := makeSource(t, dir, 660)
	s := startServer(t, t.TempDir(), vodKeys+`
rules:
  - domainName: "*"
    appName: live
    streamName: vodcam
    delayTime: 15
    vod:
      cycleDuration: 300
      autoCompose: true
      composeVodTranscodeGroupId: VOD_NO_TRANSCODE
`)
	defer s.stop()
	if out, err := push(t, src, s.rtmpURL("live", "vodcam")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	api := newVodAPI(t, s)
	// The last cycle asset is generated when the 15 s stitch window ends, the merged one
	// right after.
	vs := api.waitVideos("vodcam", 4, 2*time.Minute)
	// Oldest first: the merged asset is made after the cycle assets, and is Uploading
	// (no duration yet) until its playlist is stored.
	api.waitStatus(vs[3].VideoId, "Normal", time.Minute)
	composed := api.video(vs[3].VideoId)
	cycles := vs[:3]
	sort.Slice(cycles, func(i, j int) bool { return cycles[i].Duration < cycles[j].Duration })
	vs = append(cycles, composed)
	var durs []float64
	for _, v := range cycles {
		durs = append(durs, v.Duration)
	}
	sum := durs[0] + durs[1] + durs[2]
	// A cycle ends at the first keyframe after 300 s (GOP 2 s): the tail is 60 s ± a GOP,
	// and the three add up to the 660 s pushed.
	if math.Abs(durs[1]-300) > 2.1 || math.Abs(durs[2]-300) > 2.1 || math.Abs(durs[0]-60) > 2.1 || math.Abs(sum-660) > 0.2 {
		t.Errorf("durations %v, want 300, 300 and 60 (± a GOP), 660 in all", durs)
	}
	if math.Abs(composed.Duration-sum) > 0.1 {
		t.Errorf("merged asset %.3f s, the cycles %.3f s", composed.Duration, sum)
	}
	t.Logf("asset durations %v: %.3f s of the 660 s pushed; merged %.3f s", durs, sum, composed.Duration)
	var keys, urls []string
	for _, v := range vs {
		// The snapshot job of each asset makes its cover.
		deadline := time.Now().Add(2 * time.Minute)
		for v = api.video(v.VideoId); v.CoverURL == "" && time.Now().Before(deadline); v = api.video(v.VideoId) {
			time.Sleep(500 * time.Millisecond)
		}
		checkPictures(t, s, v, 320, 240)
		pis := api.playInfos(v.VideoId)
		if len(pis) != 1 {
			t.Fatalf("play infos of %s: %+v", v.VideoId, pis)
		}
		u := pis[0].PlayURL
		decodeClean(t, u)
		urls = append(urls, u)
		keys = append(keys, strings.TrimPrefix(u, s.url("/files/")))
	}
	merged := urls[3]
	if d := probeDuration(t, merged); math.Abs(d-sum) > 0.2 {
		t.Errorf("ffprobe: merged %.3f s, the cycles %.3f s", d, sum)
	}
	var del struct{ NonExistVideoIds []string }
	api.call("DeleteVideo", map[string]any{"VideoIds": cycles[0].VideoId + "," + cycles[1].VideoId + "," + cycles[2].VideoId}, &del)
	if len(del.NonExistVideoIds) != 0 {
		t.Errorf("delete: %+v", del)
	}
	for _, k := range keys[:3] {
		if _, err := os.Stat(s.filePath(k)); !os.IsNotExist(err) {
			t.Errorf("%s after delete: %v", k, err)
		}
	}
	decodeClean(t, merged) // its segments are kept
	segs := mergedSegments(t, s, keys[3])
	api.call("DeleteVideo", map[string]any{"VideoIds": composed.VideoId}, &del)
	for _, k := range append(segs, keys[3]) {
		if _, err := os.Stat(s.filePath(k)); !os.IsNotExist(err) {
			t.Fatalf("%s after deleting the merged asset: %v", k, err)
		}
	}
	t.Logf("deleting the merged asset removed its playlist and %d segments", len(segs))
}

// mergedSegments lists the segment keys of a stored playlist.
func mergedSegments(t *testing.T, s *server, key string) []string {
	t.Helper()
	b, err := os.ReadFile(s.filePath(key))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, path.Clean(path.Join(path.Dir(key), l)))
		}
	}
	if len(out) < 10 {
		t.Fatalf("%s lists %d segments", key, len(out))
	}
	return out
}

// TestVodJSONAPI: an asset recorded by a VOD rule is listed by /api/v1/assets with a
// play info a player opens (it decodes clean), renamed by PATCH (a 10 000-character
// title refused naming the field), and DELETE removes the library's files of it.
func TestVodJSONAPI(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 12)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: live
    streamName: vodjson
    delayTime: 15
    vod:
      cycleDuration: 300
`)
	defer s.stop()
	if out, err := push(t, src, s.rtmpURL("live", "vodjson")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	type asset struct {
		ID, Title, Status, StreamName string
		Duration                      float64
		PlayInfos                     []struct{ Definition, Key, URL string }
	}
	send := func(method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, s.url(path), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	// The asset is made when the 15 s stitch window ends.
	var list struct {
		Assets []asset
		Total  int
	}
	deadline := time.Now().Add(60 * time.Second)
	for list.Total == 0 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if st := send("GET", "/api/v1/assets?streamName=vodjson&status=Normal", "", &list); st != 200 {
			t.Fatalf("list: %d", st)
		}
	}
	if list.Total != 1 || len(list.Assets) != 1 {
		t.Fatalf("assets %+v, want 1", list)
	}
	a := list.Assets[0]
	if math.Abs(a.Duration-12) > 2.1 || len(a.PlayInfos) != 1 || a.PlayInfos[0].Definition != "OD" || a.PlayInfos[0].URL == "" {
		t.Fatalf("asset %+v", a)
	}
	decodeClean(t, s.url(a.PlayInfos[0].URL))

	var fe struct{ Error, Field string }
	if st := send("PATCH", "/api/v1/assets/"+a.ID, `{"title":"`+strings.Repeat("x", 10000)+`"}`, &fe); st != 400 || fe.Field != "title" {
		t.Errorf("10 000-character title: %d %+v", st, fe)
	}
	var got asset
	if st := send("PATCH", "/api/v1/assets/"+a.ID, `{"title":"Match day"}`, &got); st != 200 || got.Title != "Match day" {
		t.Errorf("patch: %d %+v", st, got)
	}
	if st := send("DELETE", "/api/v1/assets/"+a.ID, "", nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if _, err := os.Stat(s.filePath(a.PlayInfos[0].Key)); !os.IsNotExist(err) {
		t.Errorf("%s after delete: %v", a.PlayInfos[0].Key, err)
	}
	if st := send("GET", "/api/v1/assets/"+a.ID, "", nil); st != 404 {
		t.Errorf("get after delete: %d", st)
	}
	var jobs struct{ Error string }
	if st := send("GET", "/api/v1/jobs", "", &jobs); st != 200 && (st != 503 || !strings.Contains(jobs.Error, "job queue")) {
		t.Errorf("jobs: %d %+v", st, jobs)
	}
}
