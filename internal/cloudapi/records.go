package cloudapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/keytemplate"
	"github.com/livrec/livrec/internal/peer"
	"github.com/livrec/livrec/internal/recindex"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// maxQueryWindow is the longest StartTime–EndTime of the recording queries (the cloud's).
const maxQueryWindow = 4 * 24 * time.Hour

// streamParams reads the required DomainName, AppName and StreamName.
func streamParams(p params) (domain, app, stream string, err error) {
	if domain, app, stream, err = keyParams(p); err != nil {
		return
	}
	if stream == "" {
		return "", "", "", missing("StreamName")
	}
	if domain, err = rules.NormalizeDomain(domain); err != nil {
		return "", "", "", invalid("DomainName", err.Error())
	}
	return domain, app, stream, nil
}

// window reads the required StartTime and EndTime, at most maxQueryWindow apart (0: no limit).
func window(p params, limit time.Duration) (start, end time.Time, err error) {
	if start, err = p.requiredTime("StartTime"); err != nil {
		return
	}
	if end, err = p.requiredTime("EndTime"); err != nil {
		return
	}
	if !end.After(start) {
		return start, end, invalid("EndTime", "must be after StartTime")
	}
	if limit > 0 && end.Sub(start) > limit {
		return start, end, invalid("EndTime", fmt.Sprintf("EndTime - StartTime must be at most %d days", int(limit/(24*time.Hour))))
	}
	return start, end, nil
}

func (h *Handler) realTimeRecordCommand(q *request) (any, error) {
	domain, app, stream, err := streamParams(q.p)
	if err != nil {
		return nil, err
	}
	cmd, err := q.p.required("Command")
	if err != nil {
		return nil, err
	}
	if h.o.Manager == nil {
		return nil, errorf(http.StatusServiceUnavailable, "ServiceUnavailable", "The recorder is not running.")
	}
	run := h.o.Manager.Command
	if h.o.Commands != nil {
		run = h.o.Commands.Command
	}
	err = run(q.ctx(), domain, app, stream, cmd)
	if err == nil {
		return onlyRequestID{q.id}, nil
	}
	var ce *record.CommandError
	var ue *peer.UnreachableError
	if errors.As(err, &ue) {
		return nil, errorf(http.StatusServiceUnavailable, "ServiceUnavailable", "%s.", err.Error())
	}
	if !errors.As(err, &ce) {
		return nil, err
	}
	switch ce.Code {
	case record.CodeInvalidCommand:
		return nil, invalid("Command", fmt.Sprintf("%q is not start, stop, cancel_delay or restart", cmd))
	case record.CodeNoRule:
		return nil, configNotFound("no recording configuration matches the stream " + ruleKey(domain, app, stream))
	default: // TaskAlreadyStarted, TaskNotStarted, StreamNotLive: the cloud's codes
		return nil, &Error{Status: http.StatusBadRequest, Code: ce.Code, Message: ce.Message + "."}
	}
}

// taskRules caches the rules tasks started with, for the Oss* fields of their files.
type taskRules struct {
	h     *Handler
	ctx   context.Context
	cache map[string]*rules.Rule
}

func (h *Handler) taskRules(ctx context.Context) *taskRules {
	return &taskRules{h: h, ctx: ctx, cache: map[string]*rules.Rule{}}
}

// rule returns the rule of a task (an empty rule if unknown).
func (tr *taskRules) rule(taskID string, t *catalog.Task) *rules.Rule {
	if r, ok := tr.cache[taskID]; ok {
		return r
	}
	r := &rules.Rule{}
	if t == nil {
		t, _ = tr.h.o.Catalog.GetTask(tr.ctx, taskID)
	}
	if t != nil {
		_ = json.Unmarshal([]byte(t.Rule), r)
	}
	tr.cache[taskID] = r
	return r
}

type (
	recordContent struct {
		RequestId             string
		RecordContentInfoList struct {
			RecordContentInfo []recordContentInfo
		}
	}
	recordContentInfo struct {
		StartTime       string
		EndTime         string
		Duration        float64
		OssEndpoint     string
		OssBucket       string
		OssObjectPrefix string
	}
)

func (h *Handler) describeRecordContent(q *request) (any, error) {
	domain, app, stream, err := streamParams(q.p)
	if err != nil {
		return nil, err
	}
	start, end, err := window(q.p, maxQueryWindow)
	if err != nil {
		return nil, err
	}
	tasks, err := h.o.Catalog.ListTasks(q.ctx(), catalog.TaskQuery{Domain: strings.ToLower(domain), App: app, Stream: stream,
		From: start, To: end, Limit: 1000})
	if err != nil {
		return nil, err
	}
	out := recordContent{RequestId: q.id}
	out.RecordContentInfoList.RecordContentInfo = []recordContentInfo{}
	tr := h.taskRules(q.ctx())
	for _, t := range tasks {
		r := tr.rule(t.ID, &t)
		stop := t.EndedAt
		if stop.IsZero() {
			stop = h.o.Now()
		}
		info := recordContentInfo{StartTime: cloudTime(t.StartedAt), EndTime: cloudTime(t.EndedAt),
			Duration: stop.Sub(t.StartedAt).Seconds(), OssEndpoint: r.OssEndpoint, OssBucket: r.OssBucket}
		if len(r.RecordFormats) > 0 {
			info.OssObjectPrefix = r.RecordFormats[0].ObjectPrefix
		}
		out.RecordContentInfoList.RecordContentInfo = append(out.RecordContentInfoList.RecordContentInfo, info)
	}
	return out, nil
}

// recordIndexInfo is RecordIndexInfo; RecordInfo of CreateLiveStreamRecordIndexFiles is
// the same without Format.
type recordIndexInfo struct {
	RecordId    string
	RecordUrl   string
	DomainName  string
	AppName     string
	StreamName  string
	OssEndpoint string
	OssBucket   string
	OssObject   string
	Format      string `json:",omitempty"`
	Duration    float64
	Height      int
	Width       int
	CreateTime  string
	StartTime   string
	EndTime     string
}

// recordURL is the playable URL of a file (RecordUrl): in a bucket, the object's URL
// (as the cloud gives it); on livrec's own storage, its /files/ URL, absolute with the
// request's scheme and Host, or the path when the request named no Host.
func (h *Handler) recordURL(r *http.Request, f *catalog.File) string {
	if f.OssBucket != "" && h.o.ObjectURL != nil {
		if u := h.o.ObjectURL(f.OssEndpoint, f.OssBucket, f.Key); u != "" {
			return u
		}
	}
	p := storage.URLPath(f.Key)
	if r.Host == "" {
		return p
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + p
}

func (h *Handler) indexInfo(q *request, tr *taskRules, f *catalog.File) recordIndexInfo {
	info := recordIndexInfo{RecordId: f.ID, RecordUrl: h.recordURL(q.r, f), DomainName: f.Domain, AppName: f.App, StreamName: f.Stream,
		OssObject: f.Key, Format: f.Format, Duration: f.Duration, Height: f.Height, Width: f.Width,
		CreateTime: cloudTime(f.End), StartTime: cloudTime(f.Start), EndTime: cloudTime(f.End)}
	if f.TaskID != recindex.IndexTaskID {
		r := tr.rule(f.TaskID, nil)
		info.OssEndpoint, info.OssBucket = r.OssEndpoint, r.OssBucket
	}
	return info
}

type indexFiles struct {
	RequestId           string
	PageNum             int
	PageSize            int
	Order               string
	TotalNum            int
	TotalPage           int
	RecordIndexInfoList struct {
		RecordIndexInfo []recordIndexInfo
	}
}

func (h *Handler) describeIndexFiles(q *request) (any, error) {
	p := q.p
	domain, app, stream, err := streamParams(p)
	if err != nil {
		return nil, err
	}
	start, end, err := window(p, maxQueryWindow)
	if err != nil {
		return nil, err
	}
	page, size, order, err := paging(p)
	if err != nil {
		return nil, err
	}
	fq := catalog.FileQuery{Domain: strings.ToLower(domain), App: app, Stream: stream, Status: catalog.FileDone, From: start, To: end,
		Limit: size, Offset: (page - 1) * size, Desc: order == "desc"}
	total, err := h.o.Catalog.CountFiles(q.ctx(), fq)
	if err != nil {
		return nil, err
	}
	files, err := h.o.Catalog.ListFiles(q.ctx(), fq)
	if err != nil {
		return nil, err
	}
	out := indexFiles{RequestId: q.id, PageNum: page, PageSize: size, Order: order, TotalNum: total, TotalPage: pageCount(total, size)}
	out.RecordIndexInfoList.RecordIndexInfo = []recordIndexInfo{}
	tr := h.taskRules(q.ctx())
	for i := range files {
		out.RecordIndexInfoList.RecordIndexInfo = append(out.RecordIndexInfoList.RecordIndexInfo, h.indexInfo(q, tr, &files[i]))
	}
	return out, nil
}

// streamFile returns a generated file of the stream, or nil.
func (h *Handler) streamFile(ctx context.Context, id, domain, app, stream string) (*catalog.File, error) {
	f, err := h.o.Catalog.GetFile(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(f.Domain, domain) || f.App != app || f.Stream != stream {
		return nil, nil
	}
	return f, nil
}

func recordNotFound(id string) *Error {
	return errorf(http.StatusNotFound, "InvalidRecordId.NotFound", "Specified record %q is not found for this stream.", id)
}

func (h *Handler) describeIndexFile(q *request) (any, error) {
	domain, app, stream, err := streamParams(q.p)
	if err != nil {
		return nil, err
	}
	id, err := q.p.required("RecordId")
	if err != nil {
		return nil, err
	}
	f, err := h.streamFile(q.ctx(), id, domain, app, stream)
	if err != nil {
		return nil, err
	}
	if f == nil || f.Status != catalog.FileDone {
		return nil, recordNotFound(id)
	}
	return struct {
		RequestId       string
		RecordIndexInfo recordIndexInfo
	}{q.id, h.indexInfo(q, h.taskRules(q.ctx()), f)}, nil
}

func (h *Handler) createIndexFiles(q *request) (any, error) {
	p := q.p
	domain, app, stream, err := streamParams(p)
	if err != nil {
		return nil, err
	}
	var endpoint, bucket, object string
	for _, f := range []struct {
		name string
		dst  *string
	}{{"OssEndpoint", &endpoint}, {"OssBucket", &bucket}, {"OssObject", &object}} {
		if *f.dst, err = p.required(f.name); err != nil {
			return nil, err
		}
	}
	if err := rules.CheckOssEndpoint(endpoint); err != nil {
		return nil, invalid("OssEndpoint", err.Error())
	}
	if err := rules.CheckOssBucket(bucket); err != nil {
		return nil, invalid("OssBucket", err.Error())
	}
	start, end, err := window(p, recindex.MaxWindow)
	if err != nil {
		return nil, err
	}
	included, _, err := p.optBool("EndTimeIncluded")
	if err != nil {
		return nil, err
	}
	key := object
	if strings.Contains(object, "{") {
		if key, err = keytemplate.Render(object, keytemplate.Vars{AppName: app, StreamName: stream, Start: start, End: end,
			Location: h.o.Location}); err != nil {
			return nil, invalid("OssObject", err.Error())
		}
	}
	f, err := recindex.Create(q.ctx(), h.o.Catalog, h.o.Store, h.o.WorkDir, recindex.Request{Domain: strings.ToLower(domain), App: app,
		Stream: stream, Start: start, End: end, Key: key, EndTimeIncluded: included})
	switch {
	case err == nil:
	case errors.Is(err, recindex.ErrNoSegments):
		return nil, errorf(http.StatusBadRequest, "InvalidParameter.NoRecord", "No recorded segment of the stream in %s–%s.", cloudTime(start), cloudTime(end))
	case errors.Is(err, storage.ErrExists):
		return nil, errorf(http.StatusBadRequest, "InvalidOssObject.AlreadyExists", "An object already exists under %q (livrec never overwrites).", key)
	case strings.HasPrefix(err.Error(), "endTime"):
		return nil, invalid("EndTime", err.Error())
	case strings.HasPrefix(err.Error(), "objectKey"):
		return nil, invalid("OssObject", err.Error())
	default:
		return nil, err
	}
	info := h.indexInfo(q, h.taskRules(q.ctx()), f)
	info.OssEndpoint, info.OssBucket, info.Format = endpoint, bucket, ""
	info.CreateTime = cloudTime(h.o.Now())
	return struct {
		RequestId  string
		RecordInfo recordIndexInfo
	}{q.id, info}, nil
}

type (
	deleteAnswer struct {
		RequestId            string
		Code                 string
		Message              string
		RecordDeleteInfoList struct {
			RecordDeleteInfo []recordDeleteInfo
		}
	}
	recordDeleteInfo struct {
		RecordId string
		Message  string
	}
)

// deleter is a storage that can delete objects.
type deleter interface {
	Delete(ctx context.Context, key string) error
}

// localPather is local storage: objects are files.
type localPather interface {
	Path(key string) (string, error)
}

// removeObject deletes a stored object.
func (h *Handler) removeObject(ctx context.Context, key string) error {
	switch s := h.o.Store.(type) {
	case deleter:
		return s.Delete(ctx, key)
	case localPather:
		p, err := s.Path(key)
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return fmt.Errorf("the storage %s cannot delete objects", h.o.Store.Describe())
}

func (h *Handler) deleteIndexFiles(q *request) (any, error) {
	p := q.p
	domain, app, stream, err := streamParams(p)
	if err != nil {
		return nil, err
	}
	items, err := p.list("RecordId")
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, missing("RecordId.1")
	}
	if _, err := p.required("RemoveFile"); err != nil {
		return nil, err
	}
	remove, _, err := p.optBool("RemoveFile")
	if err != nil {
		return nil, err
	}
	if remove && !h.o.AllowDeleteFiles {
		return nil, errorf(http.StatusForbidden, "Forbidden.RemoveFile",
			"RemoveFile=true is refused: deleting stored files is disabled on this server (allowDeleteFiles: false). Send RemoveFile=false to delete the index entries only.")
	}
	out := deleteAnswer{RequestId: q.id, Code: "OK", Message: "OK"}
	out.RecordDeleteInfoList.RecordDeleteInfo = []recordDeleteInfo{}
	for _, it := range items {
		id := strings.TrimSpace(it.Value)
		msg, err := h.deleteIndexFile(q.ctx(), id, domain, app, stream, remove)
		if err != nil {
			return nil, err
		}
		out.RecordDeleteInfoList.RecordDeleteInfo = append(out.RecordDeleteInfoList.RecordDeleteInfo, recordDeleteInfo{RecordId: id, Message: msg})
	}
	return out, nil
}

// deleteIndexFile deletes one catalog entry (and with remove its stored object) and
// returns the per-record message.
func (h *Handler) deleteIndexFile(ctx context.Context, id, domain, app, stream string, remove bool) (string, error) {
	f, err := h.streamFile(ctx, id, domain, app, stream)
	if err != nil {
		return "", err
	}
	if f == nil {
		return "NotFound", nil
	}
	if f.Status == catalog.FileRecording {
		return "Recording: the file is still being recorded", nil
	}
	if remove && f.Key != "" {
		if err := h.removeObject(ctx, f.Key); err != nil {
			h.o.Logger.Error("cloud API: deleting a stored file", "id", id, "key", f.Key, "err", err)
			return "DeleteFileFailed: " + err.Error(), nil
		}
	}
	if err := h.o.Catalog.DeleteFile(ctx, id); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return "", err
	}
	h.o.Logger.Info("cloud API: recording deleted from the catalog", "id", id, "key", f.Key, "fileRemoved", remove)
	return "OK", nil
}

// paging reads PageNum (default 1), PageSize (5–30, default 10) and Order (asc, the
// default, or desc) of the Describe actions that page.
func paging(p params) (page, size int, order string, err error) {
	if page, err = p.intIn("PageNum", 1, 1, 1_000_000); err != nil {
		return 0, 0, "", err
	}
	if size, err = p.intIn("PageSize", 10, 5, 30); err != nil {
		return 0, 0, "", err
	}
	order = strings.ToLower(strings.TrimSpace(p.get("Order")))
	switch order {
	case "":
		order = "asc"
	case "asc", "desc":
	default:
		return 0, 0, "", invalid("Order", fmt.Sprintf("%q is not asc or desc", p.get("Order")))
	}
	return page, size, order, nil
}
