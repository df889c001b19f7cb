package cloudapi

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	live "github.com/alibabacloud-go/live-20161101/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/testenv"
)

// wantInvalid checks an SDK call failed with InvalidParameter naming param.
func wantInvalid(t *testing.T, what string, err error, param string) {
	t.Helper()
	wantSDKError(t, err, 400, "InvalidParameter")
	if msg := dara.StringValue(err.(*tea.SDKError).Message); !strings.Contains(msg, `"`+param+`"`) {
		t.Errorf("%s: message %q does not name %s", what, msg, param)
	}
}

// TestSDKTranscodeTemplates: templates through the official SDK's transcode actions,
// a recording configuration with TranscodeTemplates and TranscodeRecordFormat naming
// one, and the next push recorded as {Stream}_{Template} with the API's template. The
// source is 160x120 and the template asks for 240 lines: a rendition is never taller
// than its source, it is recorded at 120.
func TestSDKTranscodeTemplates(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	e := newEnv(t, nil)
	c := e.client(false, testKeyID, testSecret)
	const domain, app = "t.example.com", "live"

	if _, err := c.AddCustomLiveStreamTranscode(&live.AddCustomLiveStreamTranscodeRequest{Domain: s(domain), App: s(app),
		Template: s("my240"), TemplateType: s("h264"), Height: i32(240), FPS: i32(25), VideoBitrate: i32(300), Gop: s("2s"),
		Profile: i32(2), AudioCodec: s("AAC"), AudioBitrate: i32(48), AudioRate: i32(44100), AudioChannelNum: i32(1), Lazy: s("no")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddLiveStreamTranscode(&live.AddLiveStreamTranscodeRequest{Domain: s(domain), App: s(app), Template: s("lsd")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateCustomLiveStreamTranscode(&live.UpdateCustomLiveStreamTranscodeRequest{Domain: s(domain), App: s(app),
		Template: s("my240"), TemplateType: s("h264"), VideoBitrate: i32(250)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateLiveStreamTranscode(&live.UpdateLiveStreamTranscodeRequest{Domain: s(domain), App: s(app), Template: s("lsd"), Lazy: s("no")}); err != nil {
		t.Fatal(err)
	}
	info, err := c.DescribeLiveStreamTranscodeInfo(&live.DescribeLiveStreamTranscodeInfoRequest{DomainTranscodeName: s(domain)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*live.DescribeLiveStreamTranscodeInfoResponseBodyDomainTranscodeListDomainTranscodeInfo{}
	for _, i := range info.Body.DomainTranscodeList.DomainTranscodeInfo {
		got[dara.StringValue(i.TranscodeTemplate)] = i
	}
	if len(got) != 2 || got["lsd"] == nil || got["my240"] == nil {
		t.Fatalf("DescribeLiveStreamTranscodeInfo: %s", info.Body)
	}
	if got["lsd"].CustomTranscodeParameters != nil || dara.BoolValue(got["lsd"].IsLazy) {
		t.Errorf("lsd: %s", got["lsd"])
	}
	cp := got["my240"].CustomTranscodeParameters
	if cp == nil || dara.Int32Value(cp.Height) != 240 || dara.Int32Value(cp.VideoBitrate) != 250 || dara.Int32Value(cp.FPS) != 25 ||
		dara.StringValue(cp.Gop) != "2s" || dara.StringValue(cp.VideoProfile) != "2" || dara.StringValue(cp.AudioCodec) != "AAC" ||
		dara.Int32Value(cp.AudioChannelNum) != 1 || dara.StringValue(got["my240"].TranscodeApp) != app || dara.BoolValue(got["my240"].IsLazy) {
		t.Errorf("my240 (bitrate updated to 250, the rest kept): %s", got["my240"])
	}

	// Bad requests name the parameter.
	_, err = c.AddLiveStreamTranscode(&live.AddLiveStreamTranscodeRequest{Domain: s(domain), App: s(app), Template: s("sd")})
	wantInvalid(t, "narrowband", err, "Template")
	_, err = c.AddLiveStreamTranscode(&live.AddLiveStreamTranscodeRequest{Domain: s(domain), App: s(app), Template: s("my720")})
	wantInvalid(t, "not a system template", err, "Template")
	for _, tc := range []struct {
		name  string
		mod   func(*live.AddCustomLiveStreamTranscodeRequest)
		param string
	}{
		{"id", func(r *live.AddCustomLiveStreamTranscodeRequest) { r.Template = s("a.b") }, "Template"},
		{"system id", func(r *live.AddCustomLiveStreamTranscodeRequest) { r.Template = s("lhd") }, "Template"},
		{"height", func(r *live.AddCustomLiveStreamTranscodeRequest) { r.Height = i32(98) }, "Height"},
		{"fps", func(r *live.AddCustomLiveStreamTranscodeRequest) { r.FPS = i32(61) }, "FPS"},
		{"bitrate", func(r *live.AddCustomLiveStreamTranscodeRequest) { r.VideoBitrate = i32(7000) }, "VideoBitrate"},
		{"gop", func(r *live.AddCustomLiveStreamTranscodeRequest) { r.Gop = s("2m") }, "Gop"},
		{"type", func(r *live.AddCustomLiveStreamTranscodeRequest) { r.TemplateType = s("audio") }, "TemplateType"},
		{"encryption", func(r *live.AddCustomLiveStreamTranscodeRequest) { r.EncryptParameters = s(`{"EncryptType":"aliyun"}`) }, "EncryptParameters"},
	} {
		req := &live.AddCustomLiveStreamTranscodeRequest{Domain: s(domain), App: s(app), Template: s("x480"), TemplateType: s("h264"),
			Height: i32(480), FPS: i32(30), VideoBitrate: i32(800)}
		tc.mod(req)
		_, err := c.AddCustomLiveStreamTranscode(req)
		wantInvalid(t, tc.name, err, tc.param)
	}
	_, err = c.AddLiveStreamTranscode(&live.AddLiveStreamTranscodeRequest{Domain: s(domain), App: s(app), Template: s("lsd")})
	wantSDKError(t, err, 400, "ConfigAlreadyExists")
	_, err = c.DeleteLiveStreamTranscode(&live.DeleteLiveStreamTranscodeRequest{Domain: s(domain), App: s(app), Template: s("nope")})
	wantSDKError(t, err, 400, "ConfigNotFound")

	// A recording configuration naming the template: the original as flv, the
	// rendition as mp4.
	rec := func() *live.AddLiveAppRecordConfigRequest {
		return &live.AddLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), OssEndpoint: s("oss-cn-shanghai.aliyuncs.com"),
			OssBucket: s("bkt"), RecordFormat: []*live.AddLiveAppRecordConfigRequestRecordFormat{{Format: s("flv")}},
			TranscodeTemplates:    []*string{s("my240")},
			TranscodeRecordFormat: []*live.AddLiveAppRecordConfigRequestTranscodeRecordFormat{{Format: s("mp4"), CycleDuration: i32(3600)}}}
	}
	for _, tc := range []struct {
		name  string
		mod   func(*live.AddLiveAppRecordConfigRequest)
		param string
	}{
		{"bad id", func(r *live.AddLiveAppRecordConfigRequest) { r.TranscodeTemplates = []*string{s("a.b")} }, "TranscodeTemplates.1"},
		{"unknown id", func(r *live.AddLiveAppRecordConfigRequest) { r.TranscodeTemplates = []*string{s("my240"), s("my999")} }, "TranscodeTemplates.2"},
		{"eleven", func(r *live.AddLiveAppRecordConfigRequest) {
			r.TranscodeTemplates = nil
			for _, id := range strings.Fields("lld lsd lhd lud my240 a b c d e f") {
				r.TranscodeTemplates = append(r.TranscodeTemplates, s(id))
			}
		}, "TranscodeTemplates"},
		{"format", func(r *live.AddLiveAppRecordConfigRequest) { r.TranscodeRecordFormat[0].Format = s("avi") }, "TranscodeRecordFormat.1.Format"},
		{"no formats", func(r *live.AddLiveAppRecordConfigRequest) { r.TranscodeRecordFormat = nil }, "TranscodeRecordFormat"},
	} {
		req := rec()
		tc.mod(req)
		_, err := c.AddLiveAppRecordConfig(req)
		wantInvalid(t, tc.name, err, tc.param)
	}
	if _, err := c.AddLiveAppRecordConfig(rec()); err != nil {
		t.Fatal(err)
	}
	desc, err := c.DescribeLiveRecordConfig(&live.DescribeLiveRecordConfigRequest{DomainName: s(domain)})
	if err != nil {
		t.Fatal(err)
	}
	r := desc.Body.LiveAppRecordList.LiveAppRecord[0]
	if tt := r.TranscodeTemplates.Templates; len(tt) != 1 || dara.StringValue(tt[0]) != "my240" {
		t.Errorf("TranscodeTemplates %s", r.TranscodeTemplates)
	}
	if f := r.TranscodeRecordFormatList.RecordFormat; len(f) != 1 || dara.StringValue(f[0].Format) != "mp4" ||
		!strings.HasPrefix(dara.StringValue(f[0].OssObjectPrefix), "transcodeRecord/{AppName}/{StreamName}/") {
		t.Errorf("TranscodeRecordFormatList %s", r.TranscodeRecordFormatList)
	}

	ctx := context.Background()
	if err := e.push(ctx, domain, app, "cam"); err != nil {
		t.Fatal(err)
	}
	// End the stitch windows: the rendition's publish ends shortly after the original's
	// (ffmpeg flushes), so its cancel_delay is repeated until its file is there.
	cancel := func(stream string) {
		c.RealTimeRecordCommand(&live.RealTimeRecordCommandRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
			Command: s("cancel_delay")})
	}
	cancel("cam")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		cancel("cam_my240")
		if fs, _ := e.cat.ListFiles(ctx, catalog.FileQuery{Domain: domain, App: app, Stream: "cam_my240", Status: catalog.FileDone}); len(fs) > 0 {
			break
		}
	}
	fs := e.waitFiles(domain, app, "cam_my240", 1)
	if fs[0].Format != "mp4" || !strings.HasPrefix(fs[0].Key, "transcodeRecord/live/cam_my240/") {
		t.Fatalf("rendition file %+v", fs[0])
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=height",
		"-of", "csv=p=0", filepath.Join(e.dir, "files", fs[0].Key)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "120" {
		t.Errorf("rendition height %q (%v), want the source's 120", out, err)
	}
	if fs := e.waitFiles(domain, app, "cam", 1); fs[0].Format != "flv" {
		t.Errorf("original %+v", fs[0])
	}

	if _, err := c.DeleteLiveStreamTranscode(&live.DeleteLiveStreamTranscodeRequest{Domain: s(domain), App: s(app), Template: s("lsd")}); err != nil {
		t.Fatal(err)
	}
	info, err = c.DescribeLiveStreamTranscodeInfo(&live.DescribeLiveStreamTranscodeInfoRequest{DomainTranscodeName: s(domain), AppName: s(app)})
	if err != nil || len(info.Body.DomainTranscodeList.DomainTranscodeInfo) != 1 {
		t.Errorf("after delete: %v %v", info, err)
	}
}
