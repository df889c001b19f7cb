package cloudapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/rules"
)

// VOD-mode configurations (AddLiveRecordVodConfig, ...) are livrec's VOD rules
// (rules.Rule.Vod), keyed like the recording configurations. A storage configuration
// and a VOD configuration for one key are refused (CodeConfigAlreadyExists naming the
// mode of the configuration there).

// vodParams applies the VOD parameters that were sent to r (creating r.Vod).
func vodParams(p params, r *rules.Rule, add bool) error {
	if r.Vod == nil {
		r.Vod = &rules.VodSettings{}
	}
	v := r.Vod
	for _, k := range []string{"RecordFormat.", "TranscodeTemplates."} {
		for name, vs := range p {
			if strings.HasPrefix(name, k) && len(vs) > 0 && vs[0] != "" {
				return invalid(name, "livrec's VOD library records one m3u8 per cycle of the source stream; renditions come from VodTranscodeGroupId")
			}
		}
	}
	for _, name := range []string{"FormatConfig", "RecordContent", "SpaceId"} {
		if v := strings.TrimSpace(p.get(name)); v != "" && v != "false" {
			return invalid(name, "not supported by livrec's VOD library")
		}
	}
	if n, ok, err := p.optInt("CycleDuration"); err != nil {
		return err
	} else if ok {
		v.CycleDuration = n
	}
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
	if p.has("VodTranscodeGroupId") {
		v.TranscodeGroupID = strings.TrimSpace(p.get("VodTranscodeGroupId"))
	}
	if p.has("ComposeVodTranscodeGroupId") {
		v.ComposeTranscodeGroupID = strings.TrimSpace(p.get("ComposeVodTranscodeGroupId"))
	}
	if p.has("AutoCompose") {
		switch ac := strings.ToUpper(strings.TrimSpace(p.get("AutoCompose"))); ac {
		case "ON":
			v.AutoCompose = true
		case "OFF", "":
			v.AutoCompose = false
		default:
			return invalid("AutoCompose", fmt.Sprintf("%q is not ON or OFF", p.get("AutoCompose")))
		}
	}
	if add && p.has("StorageLocation") {
		v.StorageLocation = strings.TrimSpace(p.get("StorageLocation"))
	}
	return nil
}

// vodField maps a rules field path of a VOD rule to the cloud parameter name.
func vodField(field string) string {
	switch field {
	case "vod.cycleDuration":
		return "CycleDuration"
	case "vod.storageLocation":
		return "StorageLocation"
	case "vod.vodTranscodeGroupId":
		return "VodTranscodeGroupId"
	case "vod.composeVodTranscodeGroupId":
		return "ComposeVodTranscodeGroupId"
	}
	return cloudField(field, nil)
}

// vodRuleError maps an error of ruledb on a VOD rule to the cloud's.
func vodRuleError(err error) error {
	var ves rules.ValidationErrors
	if errors.As(err, &ves) && len(ves) > 0 {
		msg := fmt.Sprintf("The specified parameter %q is not valid: %s", vodField(ves[0].Field), ves[0].Msg)
		if len(ves) > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", len(ves)-1)
		}
		return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: msg + "."}
	}
	return ruleError(err, nil)
}

// findRule finds the rule of a stream key in the mode an action manages: a VOD action
// never sees a storage rule of the key, nor a storage action a VOD rule (a delete would
// remove the other kind).
func (h *Handler) findRule(q *request, domain, app, stream string, vod bool) (*catalog.StoredRule, error) {
	old, err := h.rules.Find(q.ctx(), domain, app, stream)
	if errors.Is(err, catalog.ErrNotFound) || err == nil && old.IsVod() != vod {
		what := "recording"
		if vod {
			what = "VOD recording"
		}
		return nil, configNotFound("no " + what + " configuration for " + ruleKey(domain, app, stream))
	}
	return old, err
}

func (h *Handler) addVodConfig(q *request) (any, error) {
	domain, app, stream, err := keyParams(q.p)
	if err != nil {
		return nil, err
	}
	r := rules.Rule{DomainName: domain, AppName: app, StreamName: stream}
	if err := vodParams(q.p, &r, true); err != nil {
		return nil, err
	}
	if _, err := h.rules.Create(q.ctx(), &r); err != nil {
		return nil, vodRuleError(err)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) updateVodConfig(q *request) (any, error) {
	domain, app, stream, err := keyParams(q.p)
	if err != nil {
		return nil, err
	}
	old, err := h.findRule(q, domain, app, stream, true)
	if err != nil {
		return nil, err
	}
	r := old.Rule.Clone()
	if err := vodParams(q.p, r, false); err != nil {
		return nil, err
	}
	if _, err := h.rules.Update(q.ctx(), old.ID, r); err != nil {
		return nil, vodRuleError(err)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) deleteVodConfig(q *request) (any, error) {
	domain, app, stream, err := keyParams(q.p)
	if err != nil {
		return nil, err
	}
	old, err := h.findRule(q, domain, app, stream, true)
	if err != nil {
		return nil, err
	}
	if err := h.rules.Delete(q.ctx(), old.ID); err != nil {
		return nil, ruleError(err, nil)
	}
	return onlyRequestID{q.id}, nil
}

// Answer of DescribeLiveRecordVodConfigs: Total and TranscodeTemplates are strings.
type (
	vodConfigList struct {
		RequestId            string
		PageNum              int
		PageSize             int
		Total                string
		LiveRecordVodConfigs struct {
			LiveRecordVodConfig []liveRecordVodConfig
		}
	}
	liveRecordVodConfig struct {
		DomainName                 string
		AppName                    string
		StreamName                 string
		CreateTime                 string
		VodTranscodeGroupId        string
		CycleDuration              int
		AutoCompose                string
		ComposeVodTranscodeGroupId string
		StorageLocation            string
		OnDemand                   int
		DelayTime                  int
		FormatConfig               bool
		RecordContent              string
		SpaceId                    string
		TranscodeTemplates         string
		RecordFormatList           struct {
			RecordFormat []vodRecordFormat
		}
	}
	vodRecordFormat struct {
		Format            string
		SliceDuration     int
		AutoCompose       string
		ProcessMethod     string
		ProcessTemplateId string
		Tags              string
		VideoProcess      string
	}
)

func (h *Handler) describeVodConfigs(q *request) (any, error) {
	p := q.p
	domain, err := p.required("DomainName")
	if err != nil {
		return nil, err
	}
	page, err := p.intIn("PageNum", 1, 1, 1_000_000)
	if err != nil {
		return nil, err
	}
	size, err := p.intIn("PageSize", 10, 5, 100)
	if err != nil {
		return nil, err
	}
	rs, total, err := h.rules.List(q.ctx(), catalog.RuleQuery{Domain: domain, App: strings.TrimSpace(p.get("AppName")),
		Stream: strings.TrimSpace(p.get("StreamName")), Vod: catalog.OnlyVod, Offset: (page - 1) * size, Limit: size})
	if err != nil {
		return nil, err
	}
	out := vodConfigList{RequestId: q.id, PageNum: page, PageSize: size, Total: fmt.Sprint(total)}
	out.LiveRecordVodConfigs.LiveRecordVodConfig = []liveRecordVodConfig{}
	for _, sr := range rs {
		v := sr.Vod
		stream := sr.StreamName
		if stream == rules.Wildcard {
			stream = ""
		}
		ac := "OFF"
		if v.AutoCompose {
			ac = "ON"
		}
		c := liveRecordVodConfig{DomainName: sr.DomainName, AppName: sr.AppName, StreamName: stream, CreateTime: cloudTime(sr.CreatedAt),
			VodTranscodeGroupId: v.TranscodeGroupID, CycleDuration: v.CycleDuration, AutoCompose: ac,
			ComposeVodTranscodeGroupId: v.ComposeTranscodeGroupID, StorageLocation: v.StorageLocation, OnDemand: sr.OnDemand, DelayTime: sr.DelayTime}
		c.RecordFormatList.RecordFormat = []vodRecordFormat{}
		for _, f := range sr.RecordFormats {
			c.RecordFormatList.RecordFormat = append(c.RecordFormatList.RecordFormat, vodRecordFormat{Format: string(f.Format), SliceDuration: f.SliceDuration})
		}
		out.LiveRecordVodConfigs.LiveRecordVodConfig = append(out.LiveRecordVodConfigs.LiveRecordVodConfig, c)
	}
	return out, nil
}
