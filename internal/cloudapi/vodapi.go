package cloudapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/vod"
)

// VodVersion is the version of product vod served: the VOD library's actions, on the
// same endpoint and with the same signatures as the live actions.
const VodVersion = "2017-03-21"

var vodActions = map[string]action{
	"GetVideoInfo":        (*Handler).getVideoInfo,
	"GetVideoList":        (*Handler).getVideoList,
	"GetPlayInfo":         (*Handler).getPlayInfo,
	"UpdateVideoInfo":     (*Handler).updateVideoInfo,
	"DeleteVideo":         (*Handler).deleteVideo,
	"ListLiveRecordVideo": (*Handler).listLiveRecordVideo,
}

// Field types follow the VOD SDK's models: Duration is a number in the video lists and
// GetVideoInfo, a string in GetPlayInfo; Bitrate and Fps are strings; Total a number.
type (
	snapshots struct {
		Snapshot []string
	}
	videoJSON struct {
		VideoId, Title, Description string
		Duration                    float64
		CoverURL, Status            string
		CreationTime                string
		ModificationTime            string
		Size                        int64
		CateId                      int64
		CateName, Tags              string
		TemplateGroupId             string
		StorageLocation             string
		RegionId, AppId             string
		Snapshots                   snapshots
	}
	videoBase struct {
		VideoId, Title, CoverURL, Duration, Status, MediaType, CreationTime string
	}
	playInfoJSON struct {
		PlayURL, Definition, Format, Bitrate, Duration, Fps string
		Width, Height, Size, Encrypt                        int64
		Status, StreamType, Specification, NarrowBandType   string
		JobId, CreationTime, ModificationTime               string
	}
	playInfoList struct {
		PlayInfo []playInfoJSON
	}
	liveRecordVideoJSON struct {
		DomainName, AppName, StreamName string
		RecordStartTime, RecordEndTime  string
		PlaylistId                      string
		Video                           struct {
			VideoId, Title           string
			Duration                 float64
			Size                     int64
			Status, CoverURL         string
			CreationTime, ModifyTime string
			CateId                   int32
			Snapshots                snapshots
		}
		PlayInfoList playInfoList
	}
)

const appID = "app-1000000"

func videoNotFound() *Error {
	return errorf(http.StatusNotFound, "InvalidVideo.NotFound", "The video does not exist.")
}

// library returns the library or refuses the action.
func (h *Handler) library() (*vod.Library, error) {
	if h.o.Library == nil {
		return nil, errorf(http.StatusForbidden, "OperationDenied", "The VOD library is not enabled on this server.")
	}
	return h.o.Library, nil
}

// url is the absolute URL a player opens for a key or URL of an asset.
func (q *request) url(keyOrURL string) string {
	if keyOrURL == "" || strings.Contains(keyOrURL, "://") {
		return keyOrURL
	}
	scheme := "http"
	if q.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + q.r.Host + storage.URLPath(keyOrURL)
}

func (q *request) video(a *vod.Asset) videoJSON {
	v := videoJSON{VideoId: a.ID, Title: a.Title, Description: a.Description, Duration: a.Duration, CoverURL: q.url(a.Cover),
		Status: string(a.Status), CreationTime: cloudTime(a.CreatedAt), ModificationTime: cloudTime(a.ModifiedAt), Size: a.Size,
		TemplateGroupId: a.TranscodeGroupID, StorageLocation: a.StorageLocation(), AppId: appID, Snapshots: q.snapshots(a)}
	return v
}

func (q *request) snapshots(a *vod.Asset) snapshots {
	s := snapshots{Snapshot: []string{}}
	for _, k := range a.Snapshots {
		s.Snapshot = append(s.Snapshot, q.url(k))
	}
	return s
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func (q *request) playInfo(p vod.PlayInfo) playInfoJSON {
	return playInfoJSON{PlayURL: q.url(p.Key), Definition: p.Definition, Format: p.Format,
		Bitrate: num(float64(p.Bitrate) / 1000), Duration: num(p.Duration), Fps: num(p.Fps),
		Width: int64(p.Width), Height: int64(p.Height), Size: p.Size, Status: p.Status, StreamType: "video",
		Specification: specification(p), NarrowBandType: "0", JobId: p.JobID,
		CreationTime: cloudTime(p.CreatedAt), ModificationTime: cloudTime(p.ModifiedAt)}
}

// specification bands a rendition by resolution, as the VOD service names them.
func specification(p vod.PlayInfo) string {
	long, short := max(p.Width, p.Height), min(p.Width, p.Height)
	for _, b := range []struct {
		name        string
		long, short int
	}{{"LD", 640, 480}, {"SD", 1280, 720}, {"HD", 1920, 1080}, {"2K", 2560, 1440}, {"4K", 3840, 2160}} {
		if long <= b.long && short <= b.short {
			return "H264." + b.name
		}
	}
	return "H264.4K"
}

func (h *Handler) getVideoInfo(q *request) (any, error) {
	l, err := h.library()
	if err != nil {
		return nil, err
	}
	id, err := q.p.required("VideoId")
	if err != nil {
		return nil, err
	}
	a, err := l.Get(q.ctx(), id)
	if errors.Is(err, vod.ErrNotFound) {
		return nil, videoNotFound()
	}
	if err != nil {
		return nil, err
	}
	return struct {
		RequestId string
		Video     videoJSON
	}{q.id, q.video(a)}, nil
}

// vodPaging reads PageNo (default 1) and PageSize (1–100, default 10) and SortBy; at most
// the first 5000 matches are reachable, as in the cloud.
func vodPaging(p params) (offset, size int, asc bool, err error) {
	page, err := p.intIn("PageNo", 1, 1, 5000)
	if err != nil {
		return 0, 0, false, err
	}
	if size, err = p.intIn("PageSize", vod.DefaultPageSize, 1, vod.MaxPageSize); err != nil {
		return 0, 0, false, err
	}
	switch s := strings.TrimSpace(p.get("SortBy")); s {
	case "", "CreationTime:Desc":
	case "CreationTime:Asc":
		asc = true
	default:
		return 0, 0, false, invalid("SortBy", fmt.Sprintf("%q is not CreationTime:Desc or CreationTime:Asc", s))
	}
	if (page-1)*size >= 5000 {
		return 0, 0, false, errorf(http.StatusBadRequest, "VideoListExceededMax", "The video list exceeded maximum: only the first 5000 results can be paged.")
	}
	return (page - 1) * size, size, asc, nil
}

// timeRange reads StartTime and EndTime (End after Start).
func timeRange(p params, q *vod.Query, record bool) error {
	from, err := p.optTime("StartTime")
	if err != nil {
		return err
	}
	to, err := p.optTime("EndTime")
	if err != nil {
		return err
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return invalid("EndTime", "must be after StartTime")
	}
	if record {
		q.RecordFrom, q.RecordTo = from, to
	} else {
		q.CreatedFrom, q.CreatedTo = from, to
	}
	return nil
}

func (h *Handler) getVideoList(q *request) (any, error) {
	l, err := h.library()
	if err != nil {
		return nil, err
	}
	var vq vod.Query
	if s := strings.TrimSpace(q.p.get("Status")); s != "" {
		for _, v := range strings.Split(s, ",") {
			st := vod.Status(strings.TrimSpace(v))
			if strings.EqualFold(string(st), "checking") {
				st = vod.StatusChecking
			}
			if !st.Valid() {
				return nil, invalid("Status", fmt.Sprintf("%q is not one of %v", v, vod.Statuses))
			}
			vq.Statuses = append(vq.Statuses, st)
		}
	}
	if err := timeRange(q.p, &vq, false); err != nil {
		return nil, err
	}
	if vq.Offset, vq.Limit, vq.Asc, err = vodPaging(q.p); err != nil {
		return nil, err
	}
	as, total, err := l.List(q.ctx(), vq)
	if err != nil {
		return nil, err
	}
	out := struct {
		RequestId string
		Total     int32
		VideoList struct{ Video []videoJSON }
	}{RequestId: q.id, Total: int32(total)}
	out.VideoList.Video = []videoJSON{}
	for i := range as {
		out.VideoList.Video = append(out.VideoList.Video, q.video(&as[i]))
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (h *Handler) getPlayInfo(q *request) (any, error) {
	l, err := h.library()
	if err != nil {
		return nil, err
	}
	id, err := q.p.required("VideoId")
	if err != nil {
		return nil, err
	}
	if ot := strings.TrimSpace(q.p.get("OutputType")); ot != "" && ot != "oss" && ot != "cdn" {
		return nil, invalid("OutputType", fmt.Sprintf("%q is not oss or cdn", ot))
	}
	if _, err := q.p.intIn("AuthTimeout", 3600, 1, 2592000); err != nil {
		return nil, err
	}
	a, err := l.Get(q.ctx(), id)
	if errors.Is(err, vod.ErrNotFound) {
		return nil, videoNotFound()
	}
	if err != nil {
		return nil, err
	}
	if a.Status != vod.StatusNormal {
		return nil, errorf(http.StatusForbidden, "Forbidden.IllegalStatus", "Status of the video is illegal. Current Status is %s.", a.Status)
	}
	formats, defs := splitList(strings.ToLower(q.p.get("Formats"))), splitList(strings.ToUpper(q.p.get("Definition")))
	if st := strings.TrimSpace(q.p.get("StreamType")); st == "audio" {
		formats = []string{"-"} // the library keeps video renditions only
	}
	out := struct {
		RequestId    string
		VideoBase    videoBase
		PlayInfoList playInfoList
	}{RequestId: q.id, VideoBase: videoBase{VideoId: a.ID, Title: a.Title, CoverURL: q.url(a.Cover), Duration: num(a.Duration),
		Status: string(a.Status), MediaType: "video", CreationTime: cloudTime(a.CreatedAt)}}
	out.PlayInfoList.PlayInfo = []playInfoJSON{}
	for _, p := range a.PlayInfos {
		if len(formats) > 0 && !slices.Contains(formats, p.Format) || len(defs) > 0 && !slices.Contains(defs, p.Definition) {
			continue
		}
		out.PlayInfoList.PlayInfo = append(out.PlayInfoList.PlayInfo, q.playInfo(p))
	}
	if len(out.PlayInfoList.PlayInfo) == 0 {
		return nil, errorf(http.StatusNotFound, "InvalidVideo.NoneStream", "The video has no stream to play for the request parameter 'Formats: %s, Definition: %s, StreamType: %s'.",
			q.p.get("Formats"), q.p.get("Definition"), q.p.get("StreamType"))
	}
	return out, nil
}

func (h *Handler) updateVideoInfo(q *request) (any, error) {
	l, err := h.library()
	if err != nil {
		return nil, err
	}
	id, err := q.p.required("VideoId")
	if err != nil {
		return nil, err
	}
	var p vod.Patch
	for _, f := range []struct {
		name string
		dst  **string
	}{{"Title", &p.Title}, {"Description", &p.Description}, {"CoverURL", &p.Cover}} {
		if q.p.has(f.name) {
			v := q.p.get(f.name)
			*f.dst = &v
		}
	}
	for _, name := range []string{"Tags", "CateId", "UserData", "ReferenceId"} {
		if strings.TrimSpace(q.p.get(name)) != "" {
			return nil, invalid(name, "not supported by livrec's VOD library (Title, Description and CoverURL are)")
		}
	}
	if _, err := l.Update(q.ctx(), id, p); err != nil {
		var fe *vod.FieldError
		switch {
		case errors.Is(err, vod.ErrNotFound):
			return nil, videoNotFound()
		case errors.As(err, &fe):
			name := map[string]string{"title": "Title", "description": "Description", "cover": "CoverURL"}[fe.Field]
			return nil, invalid(name, fe.Msg)
		}
		return nil, err
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) deleteVideo(q *request) (any, error) {
	l, err := h.library()
	if err != nil {
		return nil, err
	}
	raw, err := q.p.required("VideoIds")
	if err != nil {
		return nil, err
	}
	ids := splitList(raw)
	if len(ids) > 20 {
		return nil, invalid("VideoIds", fmt.Sprintf("%d ids, at most 20", len(ids)))
	}
	out := struct {
		RequestId            string
		NonExistVideoIds     []string
		ForbiddenVideoIds    []string
		NonExistReferenceIds []string
	}{RequestId: q.id, NonExistVideoIds: []string{}, ForbiddenVideoIds: []string{}, NonExistReferenceIds: []string{}}
	// Every id is checked before any is deleted: a busy asset refuses the whole request.
	var present []string
	for _, id := range ids {
		a, err := l.Get(q.ctx(), id)
		switch {
		case errors.Is(err, vod.ErrNotFound):
			out.NonExistVideoIds = append(out.NonExistVideoIds, id)
			continue
		case err != nil:
			return nil, err
		case a.Status == vod.StatusTranscoding || a.Status == vod.StatusUploading:
			return nil, errorf(http.StatusForbidden, "Forbidden.IllegalStatus",
				"Status of the video is illegal. Current Status is %s: video %s cannot be deleted until its job ends (nothing was deleted).", a.Status, id)
		}
		present = append(present, id)
	}
	if len(present) == 0 {
		return nil, videoNotFound()
	}
	for _, id := range present {
		if err := l.Delete(q.ctx(), id); err != nil && !errors.Is(err, vod.ErrNotFound) {
			return nil, err
		}
	}
	return out, nil
}

func (h *Handler) listLiveRecordVideo(q *request) (any, error) {
	l, err := h.library()
	if err != nil {
		return nil, err
	}
	vq := vod.Query{Domain: strings.TrimSpace(q.p.get("DomainName")), App: strings.TrimSpace(q.p.get("AppName")),
		Stream: strings.TrimSpace(q.p.get("StreamName"))}
	if err := timeRange(q.p, &vq, true); err != nil {
		return nil, err
	}
	if vq.Offset, vq.Limit, vq.Asc, err = vodPaging(q.p); err != nil {
		return nil, err
	}
	as, total, err := l.List(q.ctx(), vq)
	if err != nil {
		return nil, err
	}
	out := struct {
		RequestId           string
		Total               int32
		LiveRecordVideoList struct{ LiveRecordVideo []liveRecordVideoJSON }
	}{RequestId: q.id, Total: int32(total)}
	out.LiveRecordVideoList.LiveRecordVideo = []liveRecordVideoJSON{}
	for i := range as {
		a := &as[i]
		v := liveRecordVideoJSON{DomainName: a.Domain, AppName: a.App, StreamName: a.Stream,
			RecordStartTime: cloudTime(a.RecordStart), RecordEndTime: cloudTime(a.RecordEnd)}
		v.Video.VideoId, v.Video.Title, v.Video.Duration, v.Video.Size = a.ID, a.Title, a.Duration, a.Size
		v.Video.Status, v.Video.CoverURL = string(a.Status), q.url(a.Cover)
		v.Video.CreationTime, v.Video.ModifyTime, v.Video.Snapshots = cloudTime(a.CreatedAt), cloudTime(a.ModifiedAt), q.snapshots(a)
		v.PlayInfoList.PlayInfo = []playInfoJSON{}
		for _, p := range a.PlayInfos {
			v.PlayInfoList.PlayInfo = append(v.PlayInfoList.PlayInfo, q.playInfo(p))
		}
		out.LiveRecordVideoList.LiveRecordVideo = append(out.LiveRecordVideoList.LiveRecordVideo, v)
	}
	return out, nil
}
