package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	live "github.com/alibabacloud-go/live-20161101/v2/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/testenv"
)

const vodKeys = `
accessKeys:
  - id: ak-e2e
    secret: e2e-secret-0123456789
`

// vodAPI calls the VOD actions of the cloud-compatible API (2017-03-21).
type vodAPI struct {
	t *testing.T
	c *live.Client
}

func newVodAPI(t *testing.T, s *server) *vodAPI {
	t.Helper()
	c, err := live.NewClient(&openapiutil.Config{AccessKeyId: dara.String("ak-e2e"), AccessKeySecret: dara.String("e2e-secret-0123456789"),
		Endpoint: dara.String(strings.TrimPrefix(s.url(""), "http://")), Protocol: dara.String("http"), RegionId: dara.String("cn-shanghai")})
	if err != nil {
		t.Fatal(err)
	}
	return &vodAPI{t: t, c: c}
}

// try calls an action and decodes its answer into out.
func (v *vodAPI) try(action string, q map[string]any, out any) error {
	body, err := v.c.CallApi(&openapiutil.Params{Action: dara.String(action), Version: dara.String("2017-03-21"), Protocol: dara.String("HTTP"),
		Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"), Style: dara.String("RPC"),
		ReqBodyType: dara.String("formData"), BodyType: dara.String("json")}, &openapiutil.OpenApiRequest{Query: openapiutil.Query(q)}, &dara.RuntimeOptions{})
	if err != nil {
		return err
	}
	b, _ := json.Marshal(body["body"])
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: %s: %v", action, b, err)
	}
	return nil
}

func (v *vodAPI) call(action string, q map[string]any, out any) {
	v.t.Helper()
	if err := v.try(action, q, out); err != nil {
		v.t.Fatalf("%s: %v", action, err)
	}
}

type vodVideo struct {
	VideoId, Status, CoverURL, TemplateGroupId string
	Duration                                   float64
	Snapshots                                  struct{ Snapshot []string }
}

func (v *vodAPI) video(id string) vodVideo {
	v.t.Helper()
	var out struct{ Video vodVideo }
	v.call("GetVideoInfo", map[string]any{"VideoId": id}, &out)
	return out.Video
}

// videos lists the assets of a stream, oldest first.
func (v *vodAPI) videos(stream string) []vodVideo {
	v.t.Helper()
	var out struct{ VideoList struct{ Video []vodVideo } }
	v.call("GetVideoList", map[string]any{"SortBy": "CreationTime:Asc", "PageSize": 100}, &out)
	return out.VideoList.Video
}

type vodPlayInfo struct {
	PlayURL, Definition, Format, Duration, Bitrate string
	Width, Height                                  int64
	JobId                                          string
}

func (v *vodAPI) playInfos(id string) []vodPlayInfo {
	v.t.Helper()
	var out struct {
		PlayInfoList struct{ PlayInfo []vodPlayInfo }
	}
	v.call("GetPlayInfo", map[string]any{"VideoId": id}, &out)
	return out.PlayInfoList.PlayInfo
}

// waitVideos waits for n assets of a stream.
func (v *vodAPI) waitVideos(stream string, n int, timeout time.Duration) []vodVideo {
	v.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		vs := v.videos(stream)
		if len(vs) >= n || time.Now().After(deadline) {
			if len(vs) != n {
				v.t.Fatalf("%d assets, want %d: %+v", len(vs), n, vs)
			}
			return vs
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitStatus polls an asset until its status is want and returns the statuses seen.
func (v *vodAPI) waitStatus(id, want string, timeout time.Duration) []string {
	v.t.Helper()
	var seen []string
	deadline := time.Now().Add(timeout)
	for {
		st := v.video(id).Status
		if len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
		}
		if st == want {
			return seen
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("asset %s: statuses %v, want %s", id, seen, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ffprobeField(t *testing.T, in, stream, entry string) string {
	t.Helper()
	args := []string{"-v", "error"}
	if stream != "" {
		args = append(args, "-select_streams", stream)
	}
	return strings.TrimSpace(mustRun(t, "ffprobe", append(args, "-show_entries", entry, "-of", "csv=p=0", in)...))
}

// videoKbps is the video stream's bitrate from its packet sizes.
func videoKbps(t *testing.T, in string, dur float64) float64 {
	t.Helper()
	var total int64
	for _, l := range strings.Split(ffprobeField(t, in, "v:0", "packet=size"), "\n") {
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(l, ",")), 10, 64)
		total += n
	}
	return float64(total) * 8 / dur / 1000
}

// TestVodTranscodeGroup: a 720p push to a VOD rule whose group has a 360p 400 kbit/s
// mp4 and a 540p 800 kbit/s m3u8 template gives an asset that goes Transcoding →
// Normal with three play infos, the renditions at the asked size and bitrate (± 20 %),
// as long as the original (± 0.2 s), decoding clean. A delete while it is transcoding is
// refused and loses nothing. The cover is a JPEG of the stream's size; the sprite
// sheet and the WebVTT track agree.
func TestVodTranscodeGroup(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 20, "-vf", "scale=1280:720", "-b:v", "2500k")
	s := startServer(t, t.TempDir(), vodKeys+`
vodJobConcurrency: 1
vodCoverOffset: 3
vodTranscodeGroups:
  - id: two
    templates:
      - {definition: LD, container: mp4, height: 360, videoBitrate: 400}
      - {definition: SD, container: m3u8, height: 540, videoBitrate: 800}
rules:
  - domainName: "*"
    appName: live
    streamName: tc
    delayTime: 15
    vod:
      cycleDuration: 300
      vodTranscodeGroupId: two
`)
	defer s.stop()
	if out, err := push(t, src, s.rtmpURL("live", "tc")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	api := newVodAPI(t, s)
	v := api.waitVideos("tc", 1, 60*time.Second)[0]
	// Refused while transcoding, with the reason; the asset and its files stay.
	for st := api.video(v.VideoId).Status; st == "Normal"; st = api.video(v.VideoId).Status {
		time.Sleep(50 * time.Millisecond)
	}
	var del struct{ NonExistVideoIds []string }
	err := api.try("DeleteVideo", map[string]any{"VideoIds": v.VideoId}, &del)
	if err == nil || !strings.Contains(err.Error(), "Forbidden.IllegalStatus") || !strings.Contains(err.Error(), "Transcoding") {
		t.Fatalf("delete while transcoding: %v, want Forbidden.IllegalStatus naming Transcoding", err)
	}
	t.Logf("delete while transcoding: %v", err)
	seen := api.waitStatus(v.VideoId, "Normal", 3*time.Minute)
	if seen[0] != "Transcoding" {
		t.Errorf("statuses %v, want Transcoding then Normal", seen)
	}
	v = api.video(v.VideoId)
	pis := api.playInfos(v.VideoId)
	if len(pis) != 3 {
		t.Fatalf("play infos %+v, want 3", pis)
	}
	want := map[string]struct {
		h    int64
		kbps float64
	}{"LD/mp4": {360, 400}, "SD/m3u8": {540, 800}, "OD/m3u8": {720, 0}}
	for _, p := range pis {
		w, ok := want[p.Definition+"/"+p.Format]
		if !ok {
			t.Errorf("unexpected play info %+v", p)
			continue
		}
		delete(want, p.Definition+"/"+p.Format)
		decodeClean(t, p.PlayURL)
		d := probeDuration(t, p.PlayURL)
		// An HLS input lists its streams twice (program, streams): the first line.
		size, _, _ := strings.Cut(ffprobeField(t, p.PlayURL, "v:0", "stream=width,height"), "\n")
		var wd, h int
		fmt.Sscanf(size, "%d,%d", &wd, &h)
		if int64(h) != w.h || p.Height != w.h || wd != int(w.h)*16/9 {
			t.Errorf("%s %s: %dx%d (play info %dx%d), want height %d", p.Definition, p.Format, wd, h, p.Width, p.Height, w.h)
		}
		if math.Abs(d-v.Duration) > 0.2 {
			t.Errorf("%s %s: %.3f s, the original %.3f s", p.Definition, p.Format, d, v.Duration)
		}
		if w.kbps > 0 {
			kb := videoKbps(t, p.PlayURL, d)
			if math.Abs(kb-w.kbps) > 0.2*w.kbps {
				t.Errorf("%s %s: video %.0f kbit/s, want %.0f ± 20 %%", p.Definition, p.Format, kb, w.kbps)
			}
			t.Logf("%s %s: %dx%d %.0f kbit/s video, %.3f s (original %.3f s), job %s", p.Definition, p.Format, wd, h, kb, d, v.Duration, p.JobId)
		}
	}
	checkPictures(t, s, v, 1280, 720)
}

// checkPictures checks an asset's cover (a JPEG of the stream's size), its sprite sheet
// and WebVTT track (one cue per 10 s tile, inside the sheet).
func checkPictures(t *testing.T, s *server, v vodVideo, w, h int) {
	t.Helper()
	if v.CoverURL == "" {
		t.Fatalf("asset %s has no cover", v.VideoId)
	}
	cw, ch := jpegSize(t, v.CoverURL)
	if cw != w || ch != h {
		t.Errorf("cover %dx%d, want %dx%d", cw, ch, w, h)
	}
	var sheet string
	for _, u := range v.Snapshots.Snapshot {
		if strings.Contains(u, "sprite_000.jpg") {
			sheet = u
		}
	}
	if sheet == "" {
		t.Fatalf("no sprite sheet among the snapshots %v", v.Snapshots.Snapshot)
	}
	sw, sh := jpegSize(t, sheet)
	resp, err := http.Get(strings.Replace(sheet, "sprite_000.jpg", "thumbnails.vtt", 1))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	vtt := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(vtt, "WEBVTT") {
		t.Fatalf("thumbnails.vtt: %d %.100q", resp.StatusCode, vtt)
	}
	cues := strings.Count(vtt, "-->")
	if want := int(math.Ceil(v.Duration / 10)); cues != want {
		t.Errorf("%d cues, want %d (one per 10 s of %.1f s)", cues, want, v.Duration)
	}
	for _, l := range strings.Split(vtt, "\n") {
		_, xywh, ok := strings.Cut(l, "#xywh=")
		if !ok {
			continue
		}
		var x, y, tw, th int
		fmt.Sscanf(xywh, "%d,%d,%d,%d", &x, &y, &tw, &th)
		if !strings.HasPrefix(l, "sprite_") || x+tw > sw || y+th > sh || tw != 160 || th != 160*h/w {
			t.Errorf("cue %q outside the %dx%d sheet or not a 160 px tile", l, sw, sh)
		}
	}
	t.Logf("cover %dx%d, sprite sheet %dx%d, %d cues", cw, ch, sw, sh, cues)
}

func jpegSize(t *testing.T, u string) (int, int) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cfg, err := jpeg.DecodeConfig(resp.Body)
	if err != nil {
		t.Fatalf("%s: not a JPEG: %v", u, err)
	}
	return cfg.Width, cfg.Height
}

// TestLongVodTranscodeKill: livrec killed (-9) in the middle of a transcode job retries
// the job after the restart; it completes once and the asset becomes Normal.
func TestLongVodTranscodeKill(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 40, "-vf", "scale=1280:720", "-b:v", "2500k")
	dataDir := t.TempDir()
	s := startServer(t, dataDir, vodKeys+`
vodJobConcurrency: 1
vodTranscodeGroups:
  - id: one
    templates:
      - {definition: SD, container: m3u8, height: 540, videoBitrate: 800}
rules:
  - domainName: "*"
    appName: live
    streamName: kill
    delayTime: 15
    vod:
      cycleDuration: 300
      vodTranscodeGroupId: one
`)
	if out, err := push(t, src, s.rtmpURL("live", "kill")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	api := newVodAPI(t, s)
	v := api.waitVideos("kill", 1, 60*time.Second)[0]
	// In the middle: the rendition's partial directory holds segments.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		segs, _ := filepath.Glob(filepath.Join(dataDir, "work", "vod", v.VideoId, "*.partial", "*.ts"))
		if len(segs) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no transcode in progress: status %s", api.video(v.VideoId).Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.kill()
	t.Logf("killed in the middle of the transcode")
	s.start()
	seen := api.waitStatus(v.VideoId, "Normal", 4*time.Minute)
	pis := api.playInfos(v.VideoId)
	if len(pis) != 2 {
		t.Fatalf("play infos %+v, want the original and SD", pis)
	}
	for _, p := range pis {
		decodeClean(t, p.PlayURL)
	}
	s.stop()
	// The job queue is in the catalog's database, whichever driver the suite runs on.
	driver, dsn := catalogDSN(t, dataDir)
	db, err := schema.Open(context.Background(), driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var state string
	var attempt, n int
	if err := db.QueryRow(`SELECT count(*), max(state), max(attempt) FROM river_job WHERE kind='vod.transcode'`).Scan(&n, &state, &attempt); err != nil {
		t.Fatal(err)
	}
	if n != 1 || state != "completed" || attempt != 2 {
		t.Errorf("transcode jobs: %d, state %s, attempt %d; want 1 completed at attempt 2", n, state, attempt)
	}
	if c := strings.Count(s.logs.String(), "vod: transcodes done"); c != 1 {
		t.Errorf("the transcode completed %d times", c)
	}
	t.Logf("statuses after the restart %v; job completed at attempt %d", seen, attempt)
}
