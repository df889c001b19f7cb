// Package cloudapi is livrec's cloud-compatible API: the RPC protocol of Alibaba Cloud
// ApsaraVideo Live (product "live", version 2016-11-01) for the recording actions, so that
// programs written against the official SDKs only change their endpoint.
//
// One handler serves "/" (GET or POST). Action and Version come from the query or the
// x-acs-action / x-acs-version headers; parameters from the query string and an
// application/x-www-form-urlencoded body, merged; lists are flattened as Name.N and
// Name.N.Field (1-based). Requests are signed with an access key of the configuration,
// either V1 (HMAC-SHA1, Signature parameter) or V3 (ACS3-HMAC-SHA256, Authorization
// header); the timestamp must be within 15 minutes of the server's clock and a signature
// nonce is accepted once. Answers are JSON with the cloud's field names and types; errors
// are an HTTP status with {RequestId, HostId, Code, Message, Recommend}.
//
// Every action maps onto the code behind the JSON API: rules through ruledb (applied to the
// recorder from the next push), commands through record.Manager.Command, callback
// configuration and history through notify, live transcode templates through templatedb, recordings through the catalog, index
// playlists through recindex.
package cloudapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/notify"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/ruledb"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/templatedb"
	"github.com/livrec/livrec/internal/vod"
)

// Version is the API version served.
const Version = "2016-11-01"

// TimeLayout is the cloud API's time format (UTC).
const TimeLayout = "2006-01-02T15:04:05Z"

// Limits.
const (
	maxBody         = 1 << 20          // bytes of a form body
	timestampWindow = 15 * time.Minute // allowed clock difference of a signed request
)

// Options configure a Handler.
type Options struct {
	Catalog *catalog.Catalog
	Store   storage.Store
	Manager *record.Manager // RealTimeRecordCommand; rule changes are applied to it
	// Commands, if set, runs RealTimeRecordCommand instead of Manager: on the node that
	// owns the stream (peer.Router). An error wrapping *peer.UnreachableError is 503.
	Commands interface {
		Command(ctx context.Context, domain, app, stream, cmd string) error
	}
	Notifier *notify.Notifier
	// Templates holds the live transcode templates (the *LiveStreamTranscode actions);
	// nil: those actions answer InvalidAction.NotFound-like errors and every valid
	// TranscodeTemplates ID is accepted.
	Templates *templatedb.Store
	// WorkDir is scratch space for index playlists (as api.Server.WorkDir).
	WorkDir string
	// AccessKeys maps access key ids to secrets. Empty: every request is refused.
	AccessKeys map[string]string
	// AllowDeleteFiles lets DeleteLiveStreamRecordIndexFiles with RemoveFile=true delete
	// the stored objects; otherwise such a request is refused.
	AllowDeleteFiles bool
	// S3Endpoints are the OssEndpoint values a rule may name (the config's s3: entries);
	// a rule naming another one is refused with InvalidParameter.
	S3Endpoints []string
	// ObjectURL gives the URL of an object in a bucket (RecordUrl of a file stored there);
	// nil or "" means livrec's own /files/ URL.
	ObjectURL func(endpoint, bucket, key string) string
	// Library is the VOD library (the vod product's actions); nil: they are refused.
	Library *vod.Library
	// TranscodeGroups tells the transcode group ids a VOD rule may name (nil: only
	// rules.NoTranscodeGroup).
	TranscodeGroups func(id string) bool
	// Location is the zone of time variables in an OssObject template ({Date}, ...);
	// nil means UTC.
	Location *time.Location
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now
}

// Handler serves the cloud-compatible API.
type Handler struct {
	o     Options
	rules *ruledb.Store
}

// New returns a Handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	var onChange func(*rules.Set)
	if o.Manager != nil {
		onChange = o.Manager.SetRules
	}
	store := ruledb.New(o.Catalog, onChange, o.Logger).Endpoints(o.S3Endpoints).TranscodeGroups(o.TranscodeGroups)
	if o.Templates != nil {
		store.Templates(o.Templates.Defined)
	}
	return &Handler{o: o, rules: store}
}

// Error is an error answer: HTTP status, code and message.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func missing(name string) *Error {
	return errorf(http.StatusBadRequest, "MissingParameter",
		"The input parameter %q that is mandatory for processing this request is not supplied.", name)
}

func invalid(name, why string) *Error {
	msg := fmt.Sprintf("The specified parameter %q is not valid", name)
	if why != "" {
		msg += ": " + why
	}
	return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: msg + "."}
}

func internal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "InternalError",
		Message: "The request processing has failed due to some unknown error: " + err.Error()}
}

// errorBody is the cloud's error answer.
type errorBody struct {
	RequestId string
	HostId    string
	Code      string
	Message   string
	Recommend string
}

// request is one call being served.
type request struct {
	r      *http.Request
	id     string // RequestId
	action string
	p      params
}

// ctx returns the request's context.
func (q *request) ctx() context.Context { return q.r.Context() }

// action serves one action; the answer gets RequestId added.
type action func(h *Handler, q *request) (any, error)

var actions = map[string]action{
	"AddLiveAppRecordConfig":             (*Handler).addRecordConfig,
	"UpdateLiveAppRecordConfig":          (*Handler).updateRecordConfig,
	"DeleteLiveAppRecordConfig":          (*Handler).deleteRecordConfig,
	"DescribeLiveRecordConfig":           (*Handler).describeRecordConfig,
	"RealTimeRecordCommand":              (*Handler).realTimeRecordCommand,
	"AddLiveRecordNotifyConfig":          (*Handler).addNotifyConfig,
	"UpdateLiveRecordNotifyConfig":       (*Handler).updateNotifyConfig,
	"DeleteLiveRecordNotifyConfig":       (*Handler).deleteNotifyConfig,
	"DescribeLiveRecordNotifyConfig":     (*Handler).describeNotifyConfig,
	"DescribeLiveRecordNotifyRecords":    (*Handler).describeNotifyRecords,
	"DescribeLiveStreamRecordContent":    (*Handler).describeRecordContent,
	"DescribeLiveStreamRecordIndexFiles": (*Handler).describeIndexFiles,
	"DescribeLiveStreamRecordIndexFile":  (*Handler).describeIndexFile,
	"CreateLiveStreamRecordIndexFiles":   (*Handler).createIndexFiles,
	"DeleteLiveStreamRecordIndexFiles":   (*Handler).deleteIndexFiles,
	"AddLiveRecordVodConfig":             (*Handler).addVodConfig,
	"UpdateLiveRecordVodConfig":          (*Handler).updateVodConfig,
	"DeleteLiveRecordVodConfig":          (*Handler).deleteVodConfig,
	"DescribeLiveRecordVodConfigs":       (*Handler).describeVodConfigs,
	"AddLiveStreamTranscode":             (*Handler).addTranscode,
	"UpdateLiveStreamTranscode":          (*Handler).updateTranscode,
	"AddCustomLiveStreamTranscode":       (*Handler).addCustomTranscode,
	"UpdateCustomLiveStreamTranscode":    (*Handler).updateCustomTranscode,
	"DeleteLiveStreamTranscode":          (*Handler).deleteTranscode,
	"DescribeLiveStreamTranscodeInfo":    (*Handler).describeTranscodeInfo,
}

// unsupported are cloud recording actions livrec does not implement, with the reason.
var unsupported = map[string]string{}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := &request{r: r, id: strings.ToUpper(uuid.NewString())}
	w.Header().Set("x-acs-request-id", q.id)
	started := h.o.Now()
	body, err := h.serve(q)
	status := http.StatusOK
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = internal(err)
		}
		status = e.Status
		if status >= 500 {
			h.o.Logger.Error("cloud API: request failed", "requestId", q.id, "action", q.action, "code", e.Code, "err", e.Message)
		}
		body = errorBody{RequestId: q.id, HostId: r.Host, Code: e.Code, Message: e.Message,
			Recommend: "See the \"Cloud-compatible API\" section of the livrec README."}
	}
	h.o.Logger.Debug("cloud API", "requestId", q.id, "action", q.action, "status", status, "took", h.o.Now().Sub(started))
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"Code":"InternalError","Message":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// serve authenticates and dispatches a request and returns the answer (with RequestId).
func (h *Handler) serve(q *request) (any, error) {
	r := q.r
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, errorf(http.StatusMethodNotAllowed, "UnsupportedHTTPMethod", "The HTTP method %s is not supported; use GET or POST.", r.Method)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, errorf(http.StatusRequestEntityTooLarge, "InvalidParameter", "The request body is larger than %d bytes or unreadable.", maxBody)
	}
	vals := url.Values{}
	for k, v := range r.URL.Query() {
		vals[k] = append(vals[k], v...)
	}
	if len(body) > 0 {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "InvalidParameter", "The form body is malformed: %v.", err)
			}
			for k, v := range form {
				vals[k] = append(vals[k], v...)
			}
		}
	}
	q.p = params(vals)

	q.action = q.p.get("Action")
	if q.action == "" {
		q.action = r.Header.Get("x-acs-action")
	}
	version := q.p.get("Version")
	if version == "" {
		version = r.Header.Get("x-acs-version")
	}
	if q.action == "" {
		return nil, missing("Action")
	}
	if err := h.authenticate(q, body); err != nil {
		return nil, err
	}
	if version == "" {
		return nil, missing("Version")
	}
	table := actions
	switch version {
	case Version:
	case VodVersion:
		table = vodActions
	default:
		return nil, errorf(http.StatusBadRequest, "InvalidVersion", "Specified version %q is not valid; this service answers versions %s (live) and %s (vod).", version, Version, VodVersion)
	}
	if f := strings.ToUpper(q.p.get("Format")); f != "" && f != "JSON" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameter", "The specified parameter \"Format\" is not valid: only JSON answers are supported.")
	}
	act, ok := table[q.action]
	if !ok {
		msg := "Specified api is not found, please check your url and method."
		if why, known := unsupported[q.action]; known {
			msg = fmt.Sprintf("Specified api %s is not supported: %s.", q.action, why)
		}
		return nil, &Error{Status: http.StatusNotFound, Code: "InvalidAction.NotFound", Message: msg}
	}
	return act(h, q)
}

// cloudTime formats a time as the cloud API does, "" for the zero time.
func cloudTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

// pageCount is the number of pages of size n for total items.
func pageCount(total, n int) int {
	if n <= 0 {
		return 0
	}
	return (total + n - 1) / n
}
