package e2e

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	live "github.com/alibabacloud-go/live-20161101/v2/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/livrec/livrec/internal/testenv"
)

// TestLongVodCycles: a VOD rule with a 300 s cycle and 11 minutes of media pushed fast
// gives three assets (300, 300, ~60 s ± a GOP) that decode clean, listed by the vod
// API; DeleteVideo removes their files.
func TestLongVodCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	src := makeSource(t, dir, 660)
	s := startServer(t, t.TempDir(), `
accessKeys:
  - id: ak-e2e
    secret: e2e-secret-0123456789
rules:
  - domainName: "*"
    appName: live
    streamName: vodcam
    delayTime: 15
    vod:
      cycleDuration: 300
`)
	defer s.stop()
	if out, err := push(t, src, s.rtmpURL("live", "vodcam")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	// The last asset is generated when the 15 s stitch window ends.
	c, err := live.NewClient(&openapiutil.Config{AccessKeyId: dara.String("ak-e2e"), AccessKeySecret: dara.String("e2e-secret-0123456789"),
		Endpoint: dara.String(strings.TrimPrefix(s.url(""), "http://")), Protocol: dara.String("http"), RegionId: dara.String("cn-shanghai")})
	if err != nil {
		t.Fatal(err)
	}
	call := func(action string, q map[string]any, out any) {
		t.Helper()
		body, err := c.CallApi(&openapiutil.Params{Action: dara.String(action), Version: dara.String("2017-03-21"), Protocol: dara.String("HTTP"),
			Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"), Style: dara.String("RPC"),
			ReqBodyType: dara.String("formData"), BodyType: dara.String("json")}, &openapiutil.OpenApiRequest{Query: openapiutil.Query(q)}, &dara.RuntimeOptions{})
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		b, _ := json.Marshal(body["body"])
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %s: %v", action, b, err)
		}
	}
	type video struct {
		VideoId  string
		Duration float64
	}
	var list struct {
		Total               int32
		LiveRecordVideoList struct {
			LiveRecordVideo []struct {
				StreamName string
				Video      video
			}
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		call("ListLiveRecordVideo", map[string]any{"AppName": "live", "StreamName": "vodcam", "SortBy": "CreationTime:Asc"}, &list)
		if list.Total >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if list.Total != 3 {
		t.Fatalf("%d assets, want 3: %+v", list.Total, list)
	}
	var durs []float64
	var ids []string
	for _, v := range list.LiveRecordVideoList.LiveRecordVideo {
		durs = append(durs, v.Video.Duration)
		ids = append(ids, v.Video.VideoId)
	}
	sorted := append([]float64(nil), durs...)
	sort.Float64s(sorted)
	// A cycle ends at the first keyframe after 300 s (GOP 2 s): the tail is 60 s ± a GOP,
	// and the three add up to the 660 s pushed.
	if math.Abs(sorted[1]-300) > 2.1 || math.Abs(sorted[2]-300) > 2.1 || math.Abs(sorted[0]-60) > 2.1 ||
		math.Abs(sorted[0]+sorted[1]+sorted[2]-660) > 0.2 {
		t.Errorf("durations %v, want 300, 300 and 60 (± a GOP), 660 in all", durs)
	}
	t.Logf("asset durations %v: %.1f s of the 660 s pushed", durs, sorted[0]+sorted[1]+sorted[2])
	var keys []string
	for _, id := range ids {
		var play struct {
			PlayInfoList struct {
				PlayInfo []struct{ PlayURL, Duration string }
			}
		}
		call("GetPlayInfo", map[string]any{"VideoId": id}, &play)
		if len(play.PlayInfoList.PlayInfo) != 1 {
			t.Fatalf("play infos of %s: %+v", id, play)
		}
		u := play.PlayInfoList.PlayInfo[0].PlayURL
		decodeClean(t, u)
		keys = append(keys, strings.TrimPrefix(u, s.url("/files/")))
	}
	var del struct{ NonExistVideoIds []string }
	call("DeleteVideo", map[string]any{"VideoIds": strings.Join(ids, ",")}, &del)
	if len(del.NonExistVideoIds) != 0 {
		t.Errorf("delete: %+v", del)
	}
	for _, k := range keys {
		if _, err := os.Stat(s.filePath(k)); !os.IsNotExist(err) {
			t.Errorf("%s after delete: %v", k, err)
		}
	}
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
