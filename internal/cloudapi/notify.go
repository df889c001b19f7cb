package cloudapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/notify"
)

// Callback configuration (Add/Update/Delete/DescribeLiveRecordNotifyConfig) is the
// notify package's per-domain Config; the history (DescribeLiveRecordNotifyRecords) is
// its callback queue.

// notifyError maps an error of notify to the cloud's.
func notifyError(err error) error {
	var ves notify.ValidationErrors
	if errors.As(err, &ves) && len(ves) > 0 {
		e := ves[0]
		field := strings.ToUpper(e.Field[:1]) + e.Field[1:] // notifyUrl → NotifyUrl
		status, msg := http.StatusBadRequest, fmt.Sprintf("Specified %s is invalid: %s.", field, e.Msg)
		if strings.HasPrefix(e.Code, "Missing") {
			msg = fmt.Sprintf("The input parameter %q that is mandatory for processing this request is not supplied.", field)
		}
		return &Error{Status: status, Code: e.Code, Message: msg}
	}
	if errors.Is(err, catalog.ErrNotFound) {
		return configNotFound("no callback configuration for this domain")
	}
	return err
}

// notifyParams applies the parameters present to c.
func notifyParams(p params, c *notify.Config) error {
	if p.has("NotifyUrl") {
		c.NotifyURL = strings.TrimSpace(p.get("NotifyUrl"))
	}
	if p.has("OnDemandUrl") {
		c.OnDemandURL = strings.TrimSpace(p.get("OnDemandUrl"))
	}
	if p.has("NotifyAuthKey") {
		c.NotifyAuthKey = p.get("NotifyAuthKey")
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"NeedStatusNotify", &c.NeedStatusNotify}, {"NotifyReqAuth", &c.NotifyReqAuth}} {
		b, ok, err := p.optBool(f.name)
		if err != nil {
			return err
		}
		if ok {
			*f.dst = b
		}
	}
	return nil
}

func (h *Handler) addNotifyConfig(q *request) (any, error) {
	domain, err := q.p.required("DomainName")
	if err != nil {
		return nil, err
	}
	if _, err := q.p.required("NotifyUrl"); err != nil {
		return nil, err
	}
	if _, err := h.o.Notifier.Get(q.ctx(), domain); err == nil {
		return nil, errorf(http.StatusBadRequest, "CodeConfigAlreadyExists",
			"Code Config Already Exists: domain %q has a callback configuration; use UpdateLiveRecordNotifyConfig.", domain)
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return nil, err
	}
	c := notify.Config{DomainName: domain}
	if err := notifyParams(q.p, &c); err != nil {
		return nil, err
	}
	if err := h.o.Notifier.Put(q.ctx(), c); err != nil {
		return nil, notifyError(err)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) updateNotifyConfig(q *request) (any, error) {
	domain, err := q.p.required("DomainName")
	if err != nil {
		return nil, err
	}
	if _, err := q.p.required("NotifyUrl"); err != nil {
		return nil, err
	}
	old, err := h.o.Notifier.Get(q.ctx(), domain)
	if err != nil {
		return nil, notifyError(err)
	}
	c := *old
	if err := notifyParams(q.p, &c); err != nil {
		return nil, err
	}
	if err := h.o.Notifier.Put(q.ctx(), c); err != nil {
		return nil, notifyError(err)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) deleteNotifyConfig(q *request) (any, error) {
	domain, err := q.p.required("DomainName")
	if err != nil {
		return nil, err
	}
	if err := h.o.Notifier.Delete(q.ctx(), domain); err != nil {
		return nil, notifyError(err)
	}
	return onlyRequestID{q.id}, nil
}

type notifyConfigAnswer struct {
	RequestId              string
	LiveRecordNotifyConfig struct {
		DomainName       string
		NotifyUrl        string
		OnDemandUrl      string
		NeedStatusNotify bool
		NotifyReqAuth    bool
		NotifyAuthKey    string
	}
}

func (h *Handler) describeNotifyConfig(q *request) (any, error) {
	domain, err := q.p.required("DomainName")
	if err != nil {
		return nil, err
	}
	c, err := h.o.Notifier.Get(q.ctx(), domain)
	if err != nil {
		return nil, notifyError(err)
	}
	out := notifyConfigAnswer{RequestId: q.id}
	o := &out.LiveRecordNotifyConfig
	o.DomainName, o.NotifyUrl, o.OnDemandUrl = c.DomainName, c.NotifyURL, c.OnDemandURL
	o.NeedStatusNotify, o.NotifyReqAuth, o.NotifyAuthKey = c.NeedStatusNotify, c.NotifyReqAuth, c.NotifyAuthKey
	return out, nil
}

type (
	notifyRecords struct {
		RequestId    string
		Code         int
		Msg          string
		PageNum      int
		PageSize     int
		TotalNum     int
		TotalPage    int
		CallbackList []notifyRecord
	}
	notifyRecord struct {
		DomainName     string
		AppName        string
		StreamName     string
		NotifyUrl      string
		NotifyType     string
		NotifyTime     string
		NotifyResult   string
		Description    string
		NotifyContent  string
		NotifyHeader   string
		NotifyResponse string
		StorageType    string
	}
)

func (h *Handler) describeNotifyRecords(q *request) (any, error) {
	p := q.p
	domain, err := p.required("DomainName")
	if err != nil {
		return nil, err
	}
	start, err := p.requiredTime("StartTime")
	if err != nil {
		return nil, err
	}
	end, err := p.requiredTime("EndTime")
	if err != nil {
		return nil, err
	}
	if !end.After(start) {
		return nil, invalid("EndTime", "must be after StartTime")
	}
	page, err := p.intIn("PageNumber", 1, 1, 100000)
	if err != nil {
		return nil, err
	}
	size, err := p.intIn("PageSize", 20, 1, 500)
	if err != nil {
		return nil, err
	}
	status := strings.ToLower(strings.TrimSpace(p.get("Status")))
	if status != "" && status != notify.StatusSuccess && status != notify.StatusFailed {
		return nil, invalid("Status", fmt.Sprintf("%q is not success or failed", p.get("Status")))
	}
	nq := notify.Query{Domain: domain, App: strings.TrimSpace(p.get("AppName")), Stream: strings.TrimSpace(p.get("StreamName")),
		Status: status, From: start, To: end, Limit: size, Offset: (page - 1) * size}
	total, err := h.o.Notifier.CountCallbacks(q.ctx(), nq)
	if err != nil {
		return nil, err
	}
	cbs, err := h.o.Notifier.ListCallbacks(q.ctx(), nq)
	if err != nil {
		return nil, err
	}
	out := notifyRecords{RequestId: q.id, Code: 200, Msg: "OK", PageNum: page, PageSize: size, TotalNum: total,
		TotalPage: pageCount(total, size), CallbackList: []notifyRecord{}}
	for _, cb := range cbs {
		rec := notifyRecord{DomainName: cb.Domain, AppName: cb.App, StreamName: cb.Stream, NotifyUrl: cb.URL, NotifyType: cb.Event,
			NotifyTime: cloudTime(cb.CreatedAt), NotifyResult: cb.Status, Description: cb.LastError, NotifyContent: cb.Body}
		if b, err := json.Marshal(cb.Headers); err == nil && len(cb.Headers) > 0 {
			rec.NotifyHeader = string(b)
		}
		if n := len(cb.Attempts); n > 0 {
			last := cb.Attempts[n-1]
			rec.NotifyTime = cloudTime(last.Time)
			rec.NotifyResponse = last.Response
		}
		out.CallbackList = append(out.CallbackList, rec)
	}
	return out, nil
}
