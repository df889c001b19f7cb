package cloudapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	live "github.com/alibabacloud-go/live-20161101/v2/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/vod"
)

// The VOD SDK (github.com/alibabacloud-go/vod-20170321) is not served by the Go module
// proxy: these are its models' wire names and types (pointers, as the SDK declares
// them), decoded strictly (a wrong JSON type fails the test).
type (
	sdkSnapshots struct{ Snapshot []*string }
	sdkVideo     struct {
		VideoId, Title, Description, CoverURL, Status, CreationTime, ModificationTime, StorageLocation, TemplateGroupId, AppId *string
		Duration                                                                                                               *float32
		Size, CateId                                                                                                           *int64
		Snapshots                                                                                                              *sdkSnapshots
	}
	sdkGetVideoInfo struct {
		RequestId *string
		Video     *sdkVideo
	}
	sdkGetVideoList struct {
		RequestId *string
		Total     *int32
		VideoList *struct{ Video []*sdkVideo }
	}
	sdkPlayInfo struct {
		PlayURL, Definition, Format, Bitrate, Duration, Fps, Status, StreamType, Specification *string
		Width, Height, Size, Encrypt                                                           *int64
	}
	sdkGetPlayInfo struct {
		RequestId *string
		VideoBase *struct {
			VideoId, Title, CoverURL, Duration, Status, MediaType, CreationTime *string
		}
		PlayInfoList *struct{ PlayInfo []*sdkPlayInfo }
	}
	sdkListLiveRecordVideo struct {
		RequestId           *string
		Total               *int32
		LiveRecordVideoList *struct {
			LiveRecordVideo []*struct {
				DomainName, AppName, StreamName, RecordStartTime, RecordEndTime *string
				Video                                                           *struct {
					VideoId, Title, Status, ModifyTime *string
					Duration                           *float32
					Size                               *int64
					CateId                             *int32
				}
			}
		}
	}
	sdkDeleteVideo struct {
		RequestId                           *string
		NonExistVideoIds, ForbiddenVideoIds []*string
	}
)

// vodCall makes a signed call of product vod, version 2017-03-21, as the VOD SDK does
// (RPC, POST, parameters in the query), and decodes the answer strictly into out.
func vodCall(t *testing.T, c *live.Client, action string, query map[string]any, out any) error {
	t.Helper()
	body, err := c.CallApi(&openapiutil.Params{Action: dara.String(action), Version: dara.String("2017-03-21"), Protocol: dara.String("HTTP"),
		Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"), Style: dara.String("RPC"),
		ReqBodyType: dara.String("formData"), BodyType: dara.String("json")},
		&openapiutil.OpenApiRequest{Query: openapiutil.Query(query)}, &dara.RuntimeOptions{})
	if err != nil {
		return err
	}
	b, _ := json.Marshal(body["body"])
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s answer %s does not decode into the SDK's types: %v", action, b, err)
	}
	return nil
}

// TestVodConfigSDK: the live SDK's VOD-config actions work against livrec by changing
// only the endpoint; a storage configuration for the same key is refused, and the
// recording becomes an asset that the vod actions show, update and delete.
func TestVodConfigSDK(t *testing.T) {
	var lib *vod.Library
	e := newEnv(t, func(o *Options) {
		l, err := vod.New(vod.Options{Catalog: o.Catalog, StoreFor: func(string, string) (storage.Store, error) { return o.Store, nil }})
		if err != nil {
			t.Fatal(err)
		}
		lib, o.Library = l, l
	})
	c := e.client(false, testKeyID, testSecret)
	const domain, app, stream = "vod.example.com", "live", "cam9"

	_, err := c.AddLiveRecordVodConfig(&live.AddLiveRecordVodConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		CycleDuration: i32(300), AutoCompose: s("ON")})
	wantSDKError(t, err, 400, "InvalidParameter")
	if !strings.Contains(err.Error(), "ComposeVodTranscodeGroupId") {
		t.Errorf("error does not name ComposeVodTranscodeGroupId: %v", err)
	}
	_, err = c.AddLiveRecordVodConfig(&live.AddLiveRecordVodConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		CycleDuration: i32(299)})
	wantSDKError(t, err, 400, "InvalidParameter")
	if !strings.Contains(err.Error(), "CycleDuration") || !strings.Contains(err.Error(), "300–21600") {
		t.Errorf("error %v", err)
	}
	_, err = c.AddLiveRecordVodConfig(&live.AddLiveRecordVodConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		VodTranscodeGroupId: s("nosuchgroup")})
	wantSDKError(t, err, 400, "InvalidParameter")
	if !strings.Contains(err.Error(), "VodTranscodeGroupId") {
		t.Errorf("error %v", err)
	}
	if _, err := c.AddLiveRecordVodConfig(&live.AddLiveRecordVodConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		CycleDuration: i32(300), DelayTime: i32(15), OnDemand: i32(0), AutoCompose: s("ON"), ComposeVodTranscodeGroupId: s("VOD_NO_TRANSCODE")}); err != nil {
		t.Fatal(err)
	}
	// Storage mode for the same key: refused, naming the VOD configuration.
	_, err = c.AddLiveAppRecordConfig(&live.AddLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		OssEndpoint: s("oss-cn-shanghai.aliyuncs.com"), OssBucket: s("rec-bucket"),
		RecordFormat: []*live.AddLiveAppRecordConfigRequestRecordFormat{{Format: s("flv"), CycleDuration: i32(3600)}}})
	wantSDKError(t, err, 400, "CodeConfigAlreadyExists")
	if !strings.Contains(err.Error(), "a VOD rule") {
		t.Errorf("error does not name the VOD rule: %v", err)
	}
	if _, err := c.UpdateLiveRecordVodConfig(&live.UpdateLiveRecordVodConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		CycleDuration: i32(600)}); err != nil {
		t.Fatal(err)
	}
	res, err := c.DescribeLiveRecordVodConfigs(&live.DescribeLiveRecordVodConfigsRequest{DomainName: s(domain)})
	if err != nil {
		t.Fatal(err)
	}
	b := res.Body
	if dara.StringValue(b.Total) != "1" || len(b.LiveRecordVodConfigs.LiveRecordVodConfig) != 1 {
		t.Fatalf("describe %s", b)
	}
	cfg := b.LiveRecordVodConfigs.LiveRecordVodConfig[0]
	if dara.Int32Value(cfg.CycleDuration) != 600 || dara.StringValue(cfg.AutoCompose) != "ON" || dara.Int32Value(cfg.DelayTime) != 15 ||
		dara.StringValue(cfg.StorageLocation) != "local" || dara.StringValue(cfg.VodTranscodeGroupId) != "VOD_NO_TRANSCODE" || cfg.TranscodeTemplates == nil {
		t.Errorf("config %s", cfg)
	}
	// The storage configurations do not list it.
	if rc, err := c.DescribeLiveRecordConfig(&live.DescribeLiveRecordConfigRequest{DomainName: s(domain)}); err != nil || dara.Int32Value(rc.Body.TotalNum) != 0 {
		t.Errorf("DescribeLiveRecordConfig %v %v", rc, err)
	}
	// Nor do the storage actions touch it: they answer not-found and the VOD rule stays.
	_, err = c.DeleteLiveAppRecordConfig(&live.DeleteLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream)})
	wantSDKError(t, err, 400, "CodeConfigNotFound")
	_, err = c.UpdateLiveAppRecordConfig(&live.UpdateLiveAppRecordConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		OssEndpoint: s("oss-cn-shanghai.aliyuncs.com")})
	wantSDKError(t, err, 400, "CodeConfigNotFound")
	if res, err := c.DescribeLiveRecordVodConfigs(&live.DescribeLiveRecordVodConfigsRequest{DomainName: s(domain)}); err != nil || dara.StringValue(res.Body.Total) != "1" {
		t.Fatalf("the VOD configuration is gone after storage actions: %v %v", res, err)
	}

	// A recording of the VOD rule becomes an asset.
	if err := e.push(context.Background(), domain, app, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RealTimeRecordCommand(&live.RealTimeRecordCommandRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream),
		Command: s("cancel_delay")}); err != nil {
		t.Fatal(err)
	}
	fs := e.waitFiles(domain, app, stream, 1)
	lib.Start(context.Background()) // catches up with the generated file
	defer lib.Close()
	var list sdkGetVideoList
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := vodCall(t, c, "GetVideoList", map[string]any{"Status": "Normal"}, &list); err != nil {
			t.Fatal(err)
		}
		if dara.Int32Value(list.Total) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if dara.Int32Value(list.Total) != 1 {
		t.Fatalf("video list %+v", list)
	}
	id := dara.StringValue(list.VideoList.Video[0].VideoId)
	var info sdkGetVideoInfo
	if err := vodCall(t, c, "GetVideoInfo", map[string]any{"VideoId": id}, &info); err != nil {
		t.Fatal(err)
	}
	if v := info.Video; dara.StringValue(v.Title) != app+"/"+stream+" "+fs[0].Start.UTC().Format(TimeLayout) ||
		dara.Float32Value(v.Duration) < 1 || dara.StringValue(v.Status) != "Normal" || dara.Int64Value(v.Size) == 0 {
		t.Errorf("video info %+v", *v)
	}
	var play sdkGetPlayInfo
	if err := vodCall(t, c, "GetPlayInfo", map[string]any{"VideoId": id, "Formats": "m3u8"}, &play); err != nil {
		t.Fatal(err)
	}
	if len(play.PlayInfoList.PlayInfo) != 1 {
		t.Fatalf("play infos %+v", play)
	}
	pi := play.PlayInfoList.PlayInfo[0]
	resp, err := http.Get(dara.StringValue(pi.PlayURL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || dara.StringValue(pi.Definition) != "OD" || dara.Int64Value(pi.Width) == 0 || dara.StringValue(pi.Duration) == "" {
		t.Errorf("play URL %s: %s; %+v", dara.StringValue(pi.PlayURL), resp.Status, *pi)
	}
	err = vodCall(t, c, "GetPlayInfo", map[string]any{"VideoId": id, "Formats": "mp4"}, &play)
	wantSDKError(t, err, 404, "InvalidVideo.NoneStream")
	var rec sdkListLiveRecordVideo
	if err := vodCall(t, c, "ListLiveRecordVideo", map[string]any{"DomainName": domain, "AppName": app, "StreamName": stream}, &rec); err != nil {
		t.Fatal(err)
	}
	if dara.Int32Value(rec.Total) != 1 || dara.StringValue(rec.LiveRecordVideoList.LiveRecordVideo[0].Video.VideoId) != id {
		t.Errorf("live record videos %+v", rec)
	}

	// Update: a 10 000-character title is refused naming Title; a good one is kept.
	err = vodCall(t, c, "UpdateVideoInfo", map[string]any{"VideoId": id, "Title": strings.Repeat("t", 10000)}, &struct{}{})
	wantSDKError(t, err, 400, "InvalidParameter")
	if !strings.Contains(err.Error(), `"Title"`) {
		t.Errorf("error %v", err)
	}
	if err := vodCall(t, c, "UpdateVideoInfo", map[string]any{"VideoId": id, "Title": "Final", "Description": "d"}, &struct{}{}); err != nil {
		t.Fatal(err)
	}
	if vodCall(t, c, "GetVideoInfo", map[string]any{"VideoId": id}, &info); dara.StringValue(info.Video.Title) != "Final" {
		t.Errorf("title after update %q", dara.StringValue(info.Video.Title))
	}

	// Delete: refused while transcoding; then deletes the files, naming the missing id.
	if err := lib.SetStatus(context.Background(), id, vod.StatusTranscoding, ""); err != nil {
		t.Fatal(err)
	}
	err = vodCall(t, c, "DeleteVideo", map[string]any{"VideoIds": id}, &struct{}{})
	wantSDKError(t, err, 403, "Forbidden.IllegalStatus")
	lib.SetStatus(context.Background(), id, vod.StatusNormal, "")
	var del sdkDeleteVideo
	if err := vodCall(t, c, "DeleteVideo", map[string]any{"VideoIds": id + ",0123456789abcdef0123456789abcdef"}, &del); err != nil {
		t.Fatal(err)
	}
	if len(del.NonExistVideoIds) != 1 || dara.StringValue(del.NonExistVideoIds[0]) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("delete %+v", del)
	}
	if resp, err := http.Get(dara.StringValue(pi.PlayURL)); err != nil || resp.StatusCode != 404 {
		t.Errorf("play URL after delete: %v %v", resp, err)
	}
	err = vodCall(t, c, "GetVideoInfo", map[string]any{"VideoId": id}, &info)
	wantSDKError(t, err, 404, "InvalidVideo.NotFound")

	if _, err := c.DeleteLiveRecordVodConfig(&live.DeleteLiveRecordVodConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteLiveRecordVodConfig(&live.DeleteLiveRecordVodConfigRequest{DomainName: s(domain), AppName: s(app), StreamName: s(stream)})
	wantSDKError(t, err, 400, "CodeConfigNotFound")
}
