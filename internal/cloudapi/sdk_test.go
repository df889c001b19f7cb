package cloudapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	live "github.com/alibabacloud-go/live-20161101/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/livrec/livrec/internal/catalog"
)

func s(v string) *string { return dara.String(v) }
func i32(v int32) *int32 { return dara.Int32(v) }

// TestConfigAppliesToNextPush: without a rule a push is not recorded; after
// AddLiveAppRecordConfig through the SDK the next push is. With allowDeleteFiles,
// DeleteLiveStreamRecordIndexFiles with RemoveFile=true deletes the stored file.
func TestConfigAppliesToNextPush(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AllowDeleteFiles = true })
	c := e.client(false, testKeyID, testSecret)
	const domain, app, stream = "d1.example.com", "live", "cam1"
	ctx := context.Background()
	now := time.Now().UTC()
	window := &live.DescribeLiveStreamRecordIndexFilesRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		StartTime: s(now.Add(-time.Hour).Format(TimeLayout)), EndTime: s(now.Add(time.Hour).Format(TimeLayout))}

	if err := e.push(ctx, domain, app, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RealTimeRecordCommand(&live.RealTimeRecordCommandRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		Command: s("cancel_delay")}); err == nil {
		t.Fatal("cancel_delay without a recording succeeded")
	} else {
		wantSDKError(t, err, 400, "TaskNotStarted")
	}

	_, err := c.AddLiveAppRecordConfig(&live.AddLiveAppRecordConfigRequest{
		DomainName: s(domain), AppName: s(app), OssEndpoint: s("oss-cn-shanghai.aliyuncs.com"), OssBucket: s("rec-bucket"),
		OnDemand: i32(0), DelayTime: i32(15),
		RecordFormat: []*live.AddLiveAppRecordConfigRequestRecordFormat{
			{Format: s("m3u8"), SliceDuration: i32(5), CycleDuration: i32(3600),
				OssObjectPrefix:      s("record/{AppName}/{StreamName}/{EscapedStartTime}_{EscapedEndTime}"),
				SliceOssObjectPrefix: s("record/{AppName}/{StreamName}/{UnixTimestamp}_{Sequence}")},
			{Format: s("flv"), CycleDuration: i32(3600)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.push(ctx, domain, app, stream); err != nil {
		t.Fatal(err)
	}
	// End the stitch window now: the files are generated at once.
	if _, err := c.RealTimeRecordCommand(&live.RealTimeRecordCommandRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		Command: s("cancel_delay")}); err != nil {
		t.Fatal(err)
	}
	e.waitFiles(domain, app, stream, 2)
	res, err := c.DescribeLiveStreamRecordIndexFiles(window)
	if err != nil {
		t.Fatal(err)
	}
	b := res.Body
	if dara.Int32Value(b.TotalNum) != 2 || len(b.RecordIndexInfoList.RecordIndexInfo) != 2 {
		t.Fatalf("index files: %s", b)
	}
	formats := map[string]bool{}
	for _, r := range b.RecordIndexInfoList.RecordIndexInfo {
		formats[dara.StringValue(r.Format)] = true
		if dara.StringValue(r.OssBucket) != "rec-bucket" || dara.Float32Value(r.Duration) < 1 ||
			!strings.HasPrefix(dara.StringValue(r.OssObject), "record/live/cam1/") || dara.Int32Value(r.Width) == 0 {
			t.Errorf("record %s", r)
		}
	}
	if !formats["m3u8"] || !formats["flv"] {
		t.Errorf("formats %v", formats)
	}

	var flv *live.DescribeLiveStreamRecordIndexFilesResponseBodyRecordIndexInfoListRecordIndexInfo
	for _, r := range b.RecordIndexInfoList.RecordIndexInfo {
		if dara.StringValue(r.Format) == "flv" {
			flv = r
		}
	}
	del, err := c.DeleteLiveStreamRecordIndexFiles(&live.DeleteLiveStreamRecordIndexFilesRequest{DomainName: s(domain), AppName: s(app),
		StreamName: s(stream), RecordId: []*string{flv.RecordId}, RemoveFile: s("true")})
	if err != nil {
		t.Fatal(err)
	}
	if l := del.Body.RecordDeleteInfoList.RecordDeleteInfo; len(l) != 1 || dara.StringValue(l[0].Message) != "OK" {
		t.Errorf("delete %s", del.Body)
	}
	resp, err := http.Get(dara.StringValue(flv.RecordUrl))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s after RemoveFile: %s", dara.StringValue(flv.RecordUrl), resp.Status)
	}
	if res, err = c.DescribeLiveStreamRecordIndexFiles(window); err != nil || dara.Int32Value(res.Body.TotalNum) != 1 {
		t.Errorf("after delete: %v %v", res, err)
	}
}

// receiver is a callback receiver answering 200.
func receiver(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestSDKActions drives every action with the official SDK, signed V3 (its default) and V1
// (SignatureAlgorithm "v2"); the SDK must parse every answer.
func TestSDKActions(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		name := "V3"
		if v1 {
			name = "V1"
		}
		t.Run(name, func(t *testing.T) { testSDKActions(t, v1) })
	}
}

func testSDKActions(t *testing.T, v1 bool) {
	e := newEnv(t, nil)
	c := e.client(v1, testKeyID, testSecret)
	const domain, app, stream = "play.example.com", "live", "cam"
	recv, calls := receiver(t)
	ctx := context.Background()

	// Callback configuration.
	if _, err := c.AddLiveRecordNotifyConfig(&live.AddLiveRecordNotifyConfigRequest{DomainName: s(domain), NotifyUrl: s(recv.URL + "/cb")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.AddLiveRecordNotifyConfig(&live.AddLiveRecordNotifyConfigRequest{DomainName: s(domain), NotifyUrl: s(recv.URL)})
	wantSDKError(t, err, 400, "CodeConfigAlreadyExists")
	_, err = c.AddLiveRecordNotifyConfig(&live.AddLiveRecordNotifyConfigRequest{DomainName: s("x.example.com"), NotifyUrl: s("ftp://x")})
	wantSDKError(t, err, 400, "InvalidNotifyUrl.Malformed")
	if _, err := c.UpdateLiveRecordNotifyConfig(&live.UpdateLiveRecordNotifyConfigRequest{DomainName: s(domain), NotifyUrl: s(recv.URL + "/cb2"),
		NeedStatusNotify: dara.Bool(true), NotifyReqAuth: dara.Bool(true), NotifyAuthKey: s("k")}); err != nil {
		t.Fatal(err)
	}
	nc, err := c.DescribeLiveRecordNotifyConfig(&live.DescribeLiveRecordNotifyConfigRequest{DomainName: s(domain)})
	if err != nil {
		t.Fatal(err)
	}
	if got := nc.Body.LiveRecordNotifyConfig; dara.StringValue(got.NotifyUrl) != recv.URL+"/cb2" || !dara.BoolValue(got.NeedStatusNotify) ||
		!dara.BoolValue(got.NotifyReqAuth) || dara.StringValue(got.NotifyAuthKey) != "k" || dara.StringValue(got.DomainName) != domain {
		t.Errorf("notify config %s", nc.Body)
	}

	// Recording configuration: stream level, manual recording.
	add := &live.AddLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		OssEndpoint: s("oss-cn-beijing.aliyuncs.com"), OssBucket: s("bkt"), OnDemand: i32(7),
		RecordFormat: []*live.AddLiveAppRecordConfigRequestRecordFormat{
			{Format: s("m3u8"), SliceDuration: i32(5), CycleDuration: i32(3600)},
			{Format: s("flv"), SliceDuration: i32(30), CycleDuration: i32(3600)},
		}}
	if _, err := c.AddLiveAppRecordConfig(add); err != nil {
		t.Fatal(err)
	}
	_, err = c.AddLiveAppRecordConfig(add)
	wantSDKError(t, err, 400, "CodeConfigAlreadyExists")
	_, err = c.UpdateLiveAppRecordConfig(&live.UpdateLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		OssEndpoint: s("oss-cn-hangzhou.aliyuncs.com")})
	wantSDKError(t, err, 400, "InvalidParameter") // not under s3: in the config
	if _, err := c.UpdateLiveAppRecordConfig(&live.UpdateLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		OssEndpoint: s("oss-cn-beijing.aliyuncs.com"), DelayTime: i32(30),
		RecordFormat: []*live.UpdateLiveAppRecordConfigRequestRecordFormat{
			{Format: s("m3u8"), SliceDuration: i32(6), CycleDuration: i32(1800)},
			{Format: s("flv"), CycleDuration: i32(3600)},
		}}); err != nil {
		t.Fatal(err)
	}
	rc, err := c.DescribeLiveRecordConfig(&live.DescribeLiveRecordConfigRequest{DomainName: s(domain), AppName: s(app)})
	if err != nil {
		t.Fatal(err)
	}
	if b := rc.Body; dara.Int32Value(b.TotalNum) != 1 || dara.Int32Value(b.TotalPage) != 1 || dara.Int32Value(b.PageSize) != 10 ||
		dara.StringValue(b.Order) != "asc" || len(b.LiveAppRecordList.LiveAppRecord) != 1 {
		t.Fatalf("record config %s", b)
	}
	r := rc.Body.LiveAppRecordList.LiveAppRecord[0]
	if dara.StringValue(r.StreamName) != stream || dara.Int32Value(r.OnDemond) != 7 || dara.Int32Value(r.DelayTime) != 30 ||
		dara.StringValue(r.OssBucket) != "bkt" || dara.StringValue(r.OssEndpoint) != "oss-cn-beijing.aliyuncs.com" ||
		len(r.RecordFormatList.RecordFormat) != 2 || len(r.TranscodeTemplates.Templates) != 0 {
		t.Errorf("record config %s", r)
	}
	if ct, err := time.Parse(TimeLayout, dara.StringValue(r.CreateTime)); err != nil || time.Since(ct) > time.Minute {
		t.Errorf("CreateTime %q", dara.StringValue(r.CreateTime))
	}
	if f := r.RecordFormatList.RecordFormat[0]; dara.StringValue(f.Format) != "m3u8" || dara.Int32Value(f.SliceDuration) != 6 ||
		dara.Int32Value(f.CycleDuration) != 1800 || dara.StringValue(f.SliceOssObjectPrefix) == "" {
		t.Errorf("format %s", f)
	}

	// Manual recording of a live push.
	pushed := make(chan error, 1)
	go func() { pushed <- e.push(ctx, domain, app, stream) }()
	e.waitLive(domain, app, stream)
	cmd := func(command string) error {
		_, err := c.RealTimeRecordCommand(&live.RealTimeRecordCommandRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
			Command: s(command)})
		return err
	}
	if err := cmd("start"); err != nil {
		t.Fatal(err)
	}
	wantSDKError(t, cmd("start"), 400, "TaskAlreadyStarted")
	wantSDKError(t, cmd("pause"), 400, "InvalidParameter")
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if err := cmd("cancel_delay"); err != nil {
		t.Fatal(err)
	}
	files := e.waitFiles(domain, app, stream, 2)
	now := time.Now().UTC()
	from, to := s(now.Add(-time.Hour).Format(TimeLayout)), s(now.Add(time.Hour).Format(TimeLayout))

	content, err := c.DescribeLiveStreamRecordContent(&live.DescribeLiveStreamRecordContentRequest{DomainName: s(domain), AppName: s(app),
		StreamName: s(stream), StartTime: from, EndTime: to})
	if err != nil {
		t.Fatal(err)
	}
	if l := content.Body.RecordContentInfoList.RecordContentInfo; len(l) != 1 || dara.StringValue(l[0].OssBucket) != "bkt" ||
		dara.StringValue(l[0].EndTime) == "" || dara.Float32Value(l[0].Duration) <= 0 {
		t.Errorf("content %s", content.Body)
	}
	idx, err := c.DescribeLiveStreamRecordIndexFiles(&live.DescribeLiveStreamRecordIndexFilesRequest{DomainName: s(domain), AppName: s(app),
		StreamName: s(stream), StartTime: from, EndTime: to, PageSize: i32(5), Order: s("desc")})
	if err != nil {
		t.Fatal(err)
	}
	if dara.Int32Value(idx.Body.TotalNum) != 2 || len(idx.Body.RecordIndexInfoList.RecordIndexInfo) != 2 {
		t.Fatalf("index files %s", idx.Body)
	}
	one, err := c.DescribeLiveStreamRecordIndexFile(&live.DescribeLiveStreamRecordIndexFileRequest{DomainName: s(domain), AppName: s(app),
		StreamName: s(stream), RecordId: s(files[0].ID)})
	if err != nil {
		t.Fatal(err)
	}
	if ri := one.Body.RecordIndexInfo; dara.StringValue(ri.RecordId) != files[0].ID || dara.StringValue(ri.OssObject) != files[0].Key {
		t.Errorf("index file %s", one.Body)
	}
	resp, err := http.Get(dara.StringValue(one.Body.RecordIndexInfo.RecordUrl))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET RecordUrl: %s", resp.Status)
	}
	_, err = c.DescribeLiveStreamRecordIndexFile(&live.DescribeLiveStreamRecordIndexFileRequest{DomainName: s(domain), AppName: s(app),
		StreamName: s("other"), RecordId: s(files[0].ID)})
	wantSDKError(t, err, 404, "InvalidRecordId.NotFound")

	created, err := c.CreateLiveStreamRecordIndexFiles(&live.CreateLiveStreamRecordIndexFilesRequest{DomainName: s(domain), AppName: s(app),
		StreamName: s(stream), OssEndpoint: s("oss-cn-beijing.aliyuncs.com"), OssBucket: s("bkt"),
		OssObject: s("index/{AppName}/{StreamName}/{Date}_all"), StartTime: from, EndTime: to, EndTimeIncluded: dara.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	ri := created.Body.RecordInfo
	if !strings.HasPrefix(dara.StringValue(ri.OssObject), "index/live/cam/") || !strings.HasSuffix(dara.StringValue(ri.OssObject), "_all.m3u8") ||
		dara.StringValue(ri.OssBucket) != "bkt" || dara.Float32Value(ri.Duration) <= 0 {
		t.Errorf("created %s", created.Body)
	}
	del, err := c.DeleteLiveStreamRecordIndexFiles(&live.DeleteLiveStreamRecordIndexFilesRequest{DomainName: s(domain), AppName: s(app),
		StreamName: s(stream), RecordId: []*string{ri.RecordId, s("no-such-record")}, RemoveFile: s("false")})
	if err != nil {
		t.Fatal(err)
	}
	if l := del.Body.RecordDeleteInfoList.RecordDeleteInfo; dara.StringValue(del.Body.Code) != "OK" || len(l) != 2 ||
		dara.StringValue(l[0].Message) != "OK" || dara.StringValue(l[1].Message) != "NotFound" {
		t.Errorf("delete %s", del.Body)
	}
	if _, err := e.cat.GetFile(ctx, dara.StringValue(ri.RecordId)); err == nil {
		t.Error("deleted index still in the catalog")
	}
	_, err = c.DeleteLiveStreamRecordIndexFiles(&live.DeleteLiveStreamRecordIndexFilesRequest{DomainName: s(domain), AppName: s(app),
		StreamName: s(stream), RecordId: []*string{s(files[0].ID)}, RemoveFile: s("true")})
	wantSDKError(t, err, 403, "Forbidden.RemoveFile")

	// Callback history: file_created and status events were queued for the domain.
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	hist, err := c.DescribeLiveRecordNotifyRecords(&live.DescribeLiveRecordNotifyRecordsRequest{DomainName: s(domain), StartTime: from, EndTime: to,
		PageNumber: dara.Int64(1), PageSize: dara.Int64(20)})
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, cb := range hist.Body.CallbackList {
		types[dara.StringValue(cb.NotifyType)] = true
		if dara.StringValue(cb.NotifyUrl) != recv.URL+"/cb2" || dara.StringValue(cb.NotifyContent) == "" {
			t.Errorf("callback %s", cb)
		}
	}
	if dara.Int32Value(hist.Body.TotalNum) < 2 || !types["file_created"] || !types["record_started"] {
		t.Errorf("callbacks %s", hist.Body)
	}

	// Deletions.
	if _, err := c.DeleteLiveAppRecordConfig(&live.DeleteLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteLiveAppRecordConfig(&live.DeleteLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream)})
	wantSDKError(t, err, 400, "CodeConfigNotFound")
	rc, err = c.DescribeLiveRecordConfig(&live.DescribeLiveRecordConfigRequest{DomainName: s(domain)})
	if err != nil {
		t.Fatal(err)
	}
	if dara.Int32Value(rc.Body.TotalNum) != 0 || len(rc.Body.LiveAppRecordList.LiveAppRecord) != 0 {
		t.Errorf("after delete: %s", rc.Body)
	}
	if _, err := c.DeleteLiveRecordNotifyConfig(&live.DeleteLiveRecordNotifyConfigRequest{DomainName: s(domain)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeLiveRecordNotifyConfig(&live.DescribeLiveRecordNotifyConfigRequest{DomainName: s(domain)})
	wantSDKError(t, err, 400, "CodeConfigNotFound")

	// Not supported, and refused parameters.
	_, err = c.AddLiveRecordVodConfig(&live.AddLiveRecordVodConfigRequest{DomainName: s(domain), AppName: s(app)})
	wantSDKError(t, err, 404, "InvalidAction.NotFound")
	_, err = c.AddLiveAppRecordConfig(&live.AddLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), OssEndpoint: s("e.example.com"),
		RecordFormat: []*live.AddLiveAppRecordConfigRequestRecordFormat{{Format: s("m3u8")}}})
	wantSDKError(t, err, 400, "MissingParameter")
}

// TestSDKOutOfRange: values outside the documented ranges are InvalidParameter, naming
// the cloud parameter.
func TestSDKOutOfRange(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(false, testKeyID, testSecret)
	base := func() *live.AddLiveAppRecordConfigRequest {
		return &live.AddLiveAppRecordConfigRequest{DomainName: s("a.example.com"), AppName: s("live"), OssEndpoint: s("oss-cn-beijing.aliyuncs.com"),
			OssBucket: s("bkt"), RecordFormat: []*live.AddLiveAppRecordConfigRequestRecordFormat{{Format: s("flv")}, {Format: s("m3u8")}}}
	}
	for _, tc := range []struct {
		name  string
		mod   func(*live.AddLiveAppRecordConfigRequest)
		param string
	}{
		{"slice duration", func(r *live.AddLiveAppRecordConfigRequest) { r.RecordFormat[1].SliceDuration = i32(40) }, "RecordFormat.2.SliceDuration"},
		{"delay time", func(r *live.AddLiveAppRecordConfigRequest) { r.DelayTime = i32(5) }, "DelayTime"},
		{"on demand", func(r *live.AddLiveAppRecordConfigRequest) { r.OnDemand = i32(3) }, "OnDemand"},
		{"format", func(r *live.AddLiveAppRecordConfigRequest) { r.RecordFormat[0].Format = s("avi") }, "RecordFormat.1.Format"},
		{"bucket", func(r *live.AddLiveAppRecordConfigRequest) { r.OssBucket = s("Bad_Bucket") }, "OssBucket"},
		{"prefix", func(r *live.AddLiveAppRecordConfigRequest) { r.RecordFormat[0].OssObjectPrefix = s("rec/{AppName}") }, "RecordFormat.1.OssObjectPrefix"},
		{"transcode", func(r *live.AddLiveAppRecordConfigRequest) { r.TranscodeTemplates = []*string{s("sd")} }, "TranscodeTemplates.1"},
		// Storage that is not configured: its pushes would have nowhere to go.
		{"endpoint", func(r *live.AddLiveAppRecordConfigRequest) { r.OssEndpoint = s("oss-cn-hangzhou.aliyuncs.com") }, "OssEndpoint"},
	} {
		req := base()
		tc.mod(req)
		_, err := c.AddLiveAppRecordConfig(req)
		wantSDKError(t, err, 400, "InvalidParameter")
		var msg string
		if se, ok := err.(*tea.SDKError); ok {
			msg = dara.StringValue(se.Message)
		}
		if !strings.Contains(msg, `"`+tc.param+`"`) {
			t.Errorf("%s: message %q does not name %s", tc.name, msg, tc.param)
		}
	}
	_, err := c.DescribeLiveRecordConfig(&live.DescribeLiveRecordConfigRequest{DomainName: s("a.example.com"), PageSize: i32(31)})
	wantSDKError(t, err, 400, "InvalidParameter")
	now := time.Now().UTC()
	_, err = c.DescribeLiveStreamRecordContent(&live.DescribeLiveStreamRecordContentRequest{DomainName: s("a.example.com"), AppName: s("live"),
		StreamName: s("x"), StartTime: s(now.Add(-5 * 24 * time.Hour).Format(TimeLayout)), EndTime: s(now.Format(TimeLayout))})
	wantSDKError(t, err, 400, "InvalidParameter")
}

// TestRecordUrl: RecordUrl is where a player opens the file: for a file in a bucket the
// object's URL, for livrec's own storage its /files/ URL on the host the request named.
func TestRecordUrl(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.ObjectURL = func(endpoint, bucket, key string) string { return "https://" + bucket + "." + endpoint + "/" + key }
	})
	ctx := context.Background()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, f := range []*catalog.File{
		{ID: "3f1d3c5e-0000-4000-8000-000000000001", Key: "record/live/u/a.mp4"},
		{ID: "3f1d3c5e-0000-4000-8000-000000000002", Key: "record/live/u/b.mp4", OssEndpoint: "oss-cn-shanghai.aliyuncs.com", OssBucket: "bkt"},
	} {
		f.TaskID, f.Domain, f.App, f.Stream, f.Format, f.Status = "t", "a.example.com", "live", "u", "mp4", catalog.FileDone
		f.Start, f.End, f.Duration = start, start.Add(time.Minute), 60
		if err := e.cat.CreateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client(false, testKeyID, testSecret)
	for id, want := range map[string]string{
		"3f1d3c5e-0000-4000-8000-000000000001": e.srv.URL + "/files/record/live/u/a.mp4",
		"3f1d3c5e-0000-4000-8000-000000000002": "https://bkt.oss-cn-shanghai.aliyuncs.com/record/live/u/b.mp4",
	} {
		one, err := c.DescribeLiveStreamRecordIndexFile(&live.DescribeLiveStreamRecordIndexFileRequest{DomainName: s("a.example.com"),
			AppName: s("live"), StreamName: s("u"), RecordId: s(id)})
		if err != nil {
			t.Fatal(err)
		}
		if got := dara.StringValue(one.Body.RecordIndexInfo.RecordUrl); got != want {
			t.Errorf("RecordUrl %q, want %q", got, want)
		}
	}
	// Without a Host (an HTTP/1.0 request), the path.
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = ""
	if got := e.cloud.recordURL(req, &catalog.File{Key: "k/x.flv"}); got != "/files/k/x.flv" {
		t.Errorf("without a Host: %q", got)
	}
}
