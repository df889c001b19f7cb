package cloudapi

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/rules"
)

// Recording configurations (AddLiveAppRecordConfig, ...) are livrec's rules, keyed by
// (DomainName, AppName, StreamName); an empty StreamName is an app-level rule ("*").

type onlyRequestID struct {
	RequestId string
}

// configNotFound is the cloud's answer for a missing configuration.
func configNotFound(what string) *Error {
	return errorf(http.StatusBadRequest, "CodeConfigNotFound", "No config found: %s.", what)
}

func ruleKey(domain, app, stream string) string {
	if stream == "" {
		stream = rules.Wildcard
	}
	return fmt.Sprintf("DomainName %q, AppName %q, StreamName %q", domain, app, stream)
}

// listNs are the N sent for each element of the cloud's lists, keyed by the rule's
// field (recordFormats, transcodeRecordFormats, transcodeTemplates), so that an error on
// "recordFormats[1]" names the parameter the client sent ("RecordFormat.2").
type listNs map[string][]int

// cloudLists maps the rule's list fields to the cloud's parameter names.
var cloudLists = map[string]string{"recordFormats": "RecordFormat", "transcodeRecordFormats": "TranscodeRecordFormat",
	"transcodeTemplates": "TranscodeTemplates"}

// recordFormats reads list.N.* (RecordFormat or TranscodeRecordFormat) into rule
// formats; old (may be nil) supplies the prefixes a format leaves out
// (UpdateLiveAppRecordConfig has no prefix parameters). ns are the N of each format.
func recordFormats(p params, list string, old []rules.RecordFormat) ([]rules.RecordFormat, []int, error) {
	items, err := p.list(list)
	if err != nil {
		return nil, nil, err
	}
	var out []rules.RecordFormat
	var ns []int
	for _, it := range items {
		name := func(f string) string { return list + "." + strconv.Itoa(it.N) + "." + f }
		format := strings.ToLower(strings.TrimSpace(it.Fields["Format"]))
		if format == "" {
			return nil, nil, missing(name("Format"))
		}
		rf := rules.RecordFormat{Format: rules.Format(format), ObjectPrefix: it.Fields["OssObjectPrefix"],
			SliceObjectPrefix: it.Fields["SliceOssObjectPrefix"]}
		for _, f := range []struct {
			field string
			dst   *int
		}{{"SliceDuration", &rf.SliceDuration}, {"CycleDuration", &rf.CycleDuration}} {
			if v := strings.TrimSpace(it.Fields[f.field]); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil {
					return nil, nil, invalid(name(f.field), fmt.Sprintf("%q is not an integer", v))
				}
				*f.dst = n
			}
		}
		for _, o := range old {
			if o.Format == rf.Format {
				if _, sent := it.Fields["OssObjectPrefix"]; !sent {
					rf.ObjectPrefix = o.ObjectPrefix
				}
				if _, sent := it.Fields["SliceOssObjectPrefix"]; !sent {
					rf.SliceObjectPrefix = o.SliceObjectPrefix
				}
			}
		}
		out = append(out, rf)
		ns = append(ns, it.N)
	}
	return out, ns, nil
}

// transcoding reads TranscodeTemplates.N and TranscodeRecordFormat.N.* into r; absent
// lists keep r's (Update). The lists are validated with the rule (rules.Rule.Validate,
// ruledb's template check).
func transcoding(p params, r *rules.Rule, ns listNs) error {
	items, err := p.list("TranscodeTemplates")
	if err != nil {
		return err
	}
	if len(items) > 0 {
		r.TranscodeTemplates = nil
		ns["transcodeTemplates"] = nil
		for _, it := range items {
			r.TranscodeTemplates = append(r.TranscodeTemplates, strings.TrimSpace(it.Value))
			ns["transcodeTemplates"] = append(ns["transcodeTemplates"], it.N)
		}
	}
	formats, fns, err := recordFormats(p, "TranscodeRecordFormat", r.TranscodeRecordFormats)
	if err != nil {
		return err
	}
	if len(formats) > 0 {
		r.TranscodeRecordFormats, ns["transcodeRecordFormats"] = formats, fns
	}
	return nil
}

// applyCommon sets the optional scalar parameters that are present.
func applyCommon(p params, r *rules.Rule) error {
	if n, ok, err := p.optInt("DelayTime"); err != nil {
		return err
	} else if ok {
		r.DelayTime = n
	}
	if n, ok, err := p.optInt("OnDemand"); err != nil {
		return err
	} else if ok {
		r.OnDemand = n
	}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{{"StartTime", &r.StartTime}, {"EndTime", &r.EndTime}} {
		if !p.has(f.name) {
			continue
		}
		t, err := p.optTime(f.name)
		if err != nil {
			return err
		}
		if t.IsZero() {
			*f.dst = nil
		} else {
			*f.dst = &t
		}
	}
	// The cloud clamps a window longer than 7 days to 7 days.
	if r.StartTime != nil && r.EndTime != nil && r.EndTime.Sub(*r.StartTime) > rules.MaxWindow {
		end := r.StartTime.Add(rules.MaxWindow)
		r.EndTime = &end
	}
	if p.has("OssBucket") {
		r.OssBucket = strings.TrimSpace(p.get("OssBucket"))
	}
	return nil
}

// cloudField maps a rules field path to the cloud parameter name.
var fieldRE = regexp.MustCompile(`^(recordFormats|transcodeRecordFormats|transcodeTemplates)\[(\d+)\](?:\.(\w+))?$`)

func cloudField(field string, ns listNs) string {
	if m := fieldRE.FindStringSubmatch(field); m != nil {
		list := cloudLists[m[1]]
		i, _ := strconv.Atoi(m[2])
		n := i + 1
		if i < len(ns[m[1]]) {
			n = ns[m[1]][i]
		}
		sub := map[string]string{"format": "Format", "objectPrefix": "OssObjectPrefix", "sliceObjectPrefix": "SliceOssObjectPrefix",
			"sliceDuration": "SliceDuration", "cycleDuration": "CycleDuration"}[m[3]]
		if sub == "" {
			return list + "." + strconv.Itoa(n)
		}
		return list + "." + strconv.Itoa(n) + "." + sub
	}
	if list, ok := cloudLists[field]; ok {
		return list
	}
	if field == "" {
		return ""
	}
	return strings.ToUpper(field[:1]) + field[1:] // domainName → DomainName, ossBucket → OssBucket
}

// ruleError maps an error of ruledb to the cloud's.
func ruleError(err error, ns listNs) error {
	var ves rules.ValidationErrors
	var exists *catalog.RuleExistsError
	switch {
	case errors.As(err, &ves) && len(ves) > 0:
		e := ves[0]
		msg := fmt.Sprintf("The specified parameter %q is not valid: %s", cloudField(e.Field, ns), e.Msg)
		if len(ves) > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", len(ves)-1)
		}
		return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: msg + "."}
	case errors.As(err, &exists) && exists.Mode != "":
		return errorf(http.StatusBadRequest, "CodeConfigAlreadyExists", "Code Config Already Exists: %s.", exists.Error())
	case errors.As(err, &exists):
		return errorf(http.StatusBadRequest, "CodeConfigAlreadyExists", "Code Config Already Exists: a recording configuration for %s exists.",
			ruleKey(exists.DomainName, exists.AppName, exists.StreamName))
	case errors.Is(err, catalog.ErrNotFound):
		return configNotFound(err.Error())
	}
	return err
}

// keyParams reads DomainName and AppName (required) and StreamName.
func keyParams(p params) (domain, app, stream string, err error) {
	if domain, err = p.required("DomainName"); err != nil {
		return
	}
	if app, err = p.required("AppName"); err != nil {
		return
	}
	return domain, app, strings.TrimSpace(p.get("StreamName")), nil
}

func (h *Handler) addRecordConfig(q *request) (any, error) {
	p := q.p
	domain, app, stream, err := keyParams(p)
	if err != nil {
		return nil, err
	}
	endpoint, err := p.required("OssEndpoint")
	if err != nil {
		return nil, err
	}
	if _, err := p.required("OssBucket"); err != nil {
		return nil, err
	}
	formats, fns, err := recordFormats(p, "RecordFormat", nil)
	if err != nil {
		return nil, err
	}
	ns := listNs{"recordFormats": fns}
	r := rules.Rule{DomainName: domain, AppName: app, StreamName: stream, OssEndpoint: endpoint, RecordFormats: formats}
	if err := transcoding(p, &r, ns); err != nil {
		return nil, err
	}
	// At least one of RecordFormat and TranscodeRecordFormat: a configuration may record
	// the renditions only.
	if len(formats) == 0 && len(r.TranscodeRecordFormats) == 0 {
		return nil, missing("RecordFormat.1.Format")
	}
	if err := applyCommon(p, &r); err != nil {
		return nil, err
	}
	if _, err := h.rules.Create(q.ctx(), &r); err != nil {
		return nil, ruleError(err, ns)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) updateRecordConfig(q *request) (any, error) {
	p := q.p
	domain, app, stream, err := keyParams(p)
	if err != nil {
		return nil, err
	}
	endpoint, err := p.required("OssEndpoint")
	if err != nil {
		return nil, err
	}
	old, err := h.findRule(q, domain, app, stream, false)
	if err != nil {
		return nil, err
	}
	r := old.Rule.Clone()
	r.OssEndpoint = endpoint
	ns := listNs{}
	if formats, fns, err := recordFormats(p, "RecordFormat", old.RecordFormats); err != nil {
		return nil, err
	} else if len(formats) > 0 {
		r.RecordFormats, ns["recordFormats"] = formats, fns
	}
	if err := transcoding(p, r, ns); err != nil {
		return nil, err
	}
	if err := applyCommon(p, r); err != nil {
		return nil, err
	}
	if _, err := h.rules.Update(q.ctx(), old.ID, r); err != nil {
		return nil, ruleError(err, ns)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) deleteRecordConfig(q *request) (any, error) {
	domain, app, stream, err := keyParams(q.p)
	if err != nil {
		return nil, err
	}
	old, err := h.findRule(q, domain, app, stream, false)
	if err != nil {
		return nil, err
	}
	if err := h.rules.Delete(q.ctx(), old.ID); err != nil {
		return nil, ruleError(err, nil)
	}
	return onlyRequestID{q.id}, nil
}

// Answer of DescribeLiveRecordConfig (note the cloud's spelling OnDemond).
type (
	recordConfigList struct {
		RequestId         string
		PageNum           int
		PageSize          int
		Order             string
		TotalNum          int
		TotalPage         int
		LiveAppRecordList struct {
			LiveAppRecord []liveAppRecord
		}
	}
	liveAppRecord struct {
		DomainName       string
		AppName          string
		StreamName       string
		OssEndpoint      string
		OssBucket        string
		CreateTime       string
		StartTime        string
		EndTime          string
		OnDemond         int
		DelayTime        int
		RecordFormatList struct {
			RecordFormat []cloudRecordFormat
		}
		TranscodeRecordFormatList struct {
			RecordFormat []cloudRecordFormat
		}
		TranscodeTemplates struct {
			Templates []string
		}
	}
	cloudRecordFormat struct {
		Format               string
		OssObjectPrefix      string
		SliceOssObjectPrefix string
		SliceDuration        int
		CycleDuration        int
	}
)

func (h *Handler) describeRecordConfig(q *request) (any, error) {
	p := q.p
	domain, err := p.required("DomainName")
	if err != nil {
		return nil, err
	}
	page, size, order, err := paging(p)
	if err != nil {
		return nil, err
	}
	rs, total, err := h.rules.List(q.ctx(), catalog.RuleQuery{Domain: domain, App: strings.TrimSpace(p.get("AppName")),
		Stream: strings.TrimSpace(p.get("StreamName")), Vod: catalog.OnlyStorage, Offset: (page - 1) * size, Limit: size, Desc: order == "desc"})
	if err != nil {
		return nil, err
	}
	out := recordConfigList{RequestId: q.id, PageNum: page, PageSize: size, Order: order, TotalNum: total, TotalPage: pageCount(total, size)}
	out.LiveAppRecordList.LiveAppRecord = []liveAppRecord{}
	for _, sr := range rs {
		out.LiveAppRecordList.LiveAppRecord = append(out.LiveAppRecordList.LiveAppRecord, toLiveAppRecord(&sr))
	}
	return out, nil
}

func toLiveAppRecord(sr *catalog.StoredRule) liveAppRecord {
	stream := sr.StreamName
	if stream == rules.Wildcard {
		stream = "" // an app-level configuration, as the cloud shows it
	}
	rec := liveAppRecord{DomainName: sr.DomainName, AppName: sr.AppName, StreamName: stream, OssEndpoint: sr.OssEndpoint,
		OssBucket: sr.OssBucket, CreateTime: cloudTime(sr.CreatedAt), OnDemond: sr.OnDemand, DelayTime: sr.DelayTime}
	if sr.StartTime != nil {
		rec.StartTime = cloudTime(*sr.StartTime)
	}
	if sr.EndTime != nil {
		rec.EndTime = cloudTime(*sr.EndTime)
	}
	rec.RecordFormatList.RecordFormat = cloudFormats(sr.RecordFormats)
	rec.TranscodeRecordFormatList.RecordFormat = cloudFormats(sr.TranscodeRecordFormats)
	rec.TranscodeTemplates.Templates = append([]string{}, sr.TranscodeTemplates...)
	return rec
}

// cloudFormats is a format list as the cloud shows it (never null).
func cloudFormats(fs []rules.RecordFormat) []cloudRecordFormat {
	out := []cloudRecordFormat{}
	for _, f := range fs {
		out = append(out, cloudRecordFormat{Format: string(f.Format), OssObjectPrefix: f.ObjectPrefix,
			SliceOssObjectPrefix: f.SliceObjectPrefix, SliceDuration: f.SliceDuration, CycleDuration: f.CycleDuration})
	}
	return out
}
