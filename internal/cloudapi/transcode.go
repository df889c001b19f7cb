package cloudapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/templatedb"
	"github.com/livrec/livrec/internal/transcode"
)

// Live transcode templates (AddLiveStreamTranscode, AddCustomLiveStreamTranscode, ...)
// are templatedb's rows keyed by (Domain, App, Template). The system actions bind a
// built-in (lld, lsd, lhd, lud) to a domain and app; the Narrowband HD™ IDs (ld, sd,
// hd, ud) are refused. The custom actions store a template with its own parameters.

// narrowband are the cloud's Narrowband HD™ system IDs, which livrec does not have.
var narrowband = []string{"ld", "sd", "hd", "ud"}

// unsupportedTranscodeParams have no local equivalent; a request setting one is refused
// rather than served without it.
var unsupportedTranscodeParams = []string{"EncryptParameters", "KmsKeyID", "KmsUID", "KmsKeyExpireInterval",
	"BitrateWithSource", "FpsWithSource", "ResWithSource", "ExtWithSource"}

func (h *Handler) templates() (*templatedb.Store, error) {
	if h.o.Templates == nil {
		return nil, errorf(http.StatusNotFound, "InvalidAction.NotFound", "Live transcode templates are not available on this server.")
	}
	return h.o.Templates, nil
}

// templateKey reads Domain, App and Template (all required).
func templateKey(p params) (domain, app, id string, err error) {
	for _, f := range []struct {
		name string
		dst  *string
	}{{"Domain", &domain}, {"App", &app}, {"Template", &id}} {
		if *f.dst, err = p.required(f.name); err != nil {
			return
		}
	}
	return
}

// lazy reads Lazy (yes, the default, or no).
func lazy(p params, def bool) (bool, error) {
	switch v := strings.ToLower(strings.TrimSpace(p.get("Lazy"))); v {
	case "":
		return def, nil
	case "yes":
		return true, nil
	case "no":
		return false, nil
	default:
		return false, invalid("Lazy", fmt.Sprintf("%q is not yes or no", v))
	}
}

func refuseUnsupported(p params) error {
	for _, name := range unsupportedTranscodeParams {
		if strings.TrimSpace(p.get(name)) != "" {
			return invalid(name, "livrec has no equivalent (no stream encryption, no *WithSource rules); leave it out")
		}
	}
	return nil
}

// templateField maps a template field to the cloud parameter.
var templateFields = map[string]string{"domainName": "Domain", "appName": "App", "id": "Template", "codec": "TemplateType",
	"width": "Width", "height": "Height", "fps": "FPS", "videoBitrate": "VideoBitrate", "gop": "Gop", "profile": "Profile",
	"audioCodec": "AudioCodec", "audioBitrate": "AudioBitrate", "audioRate": "AudioRate", "audioChannels": "AudioChannelNum",
	"kind": "Template"}

// templateError maps an error of templatedb to the cloud's.
func templateError(err error) error {
	var ves rules.ValidationErrors
	switch {
	case errors.As(err, &ves) && len(ves) > 0:
		name := templateFields[ves[0].Field]
		if name == "" {
			name = ves[0].Field
		}
		msg := ves[0].Msg
		if len(ves) > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", len(ves)-1)
		}
		return invalid(name, msg)
	case errors.Is(err, templatedb.ErrExists):
		return errorf(http.StatusBadRequest, "ConfigAlreadyExists", "The transcode configuration already exists: %v.", err)
	case errors.Is(err, templatedb.ErrNotFound):
		return errorf(http.StatusBadRequest, "ConfigNotFound", "No transcode configuration found: %v.", err)
	case errors.Is(err, templatedb.ErrConfig):
		return errorf(http.StatusBadRequest, "InvalidParameter", "The specified parameter \"Template\" is not valid: %v.", err)
	}
	return err
}

// systemTemplate reads the parameters of Add/UpdateLiveStreamTranscode.
func systemTemplate(p params, defLazy bool) (templatedb.Stored, error) {
	domain, app, id, err := templateKey(p)
	if err != nil {
		return templatedb.Stored{}, err
	}
	if err := refuseUnsupported(p); err != nil {
		return templatedb.Stored{}, err
	}
	for _, n := range narrowband {
		if id == n {
			return templatedb.Stored{}, invalid("Template", fmt.Sprintf("%q is a Narrowband HD template, which livrec does not have (system templates: %s; or create a custom one)",
				id, strings.Join(rules.BuiltinTemplates, ", ")))
		}
	}
	lz, err := lazy(p, defLazy)
	if err != nil {
		return templatedb.Stored{}, err
	}
	return templatedb.Stored{Template: transcode.Template{DomainName: domain, AppName: app, ID: id}, Kind: templatedb.KindSystem, Lazy: lz}, nil
}

func (h *Handler) addTranscode(q *request) (any, error) {
	ts, err := h.templates()
	if err != nil {
		return nil, err
	}
	st, err := systemTemplate(q.p, true)
	if err != nil {
		return nil, err
	}
	if _, err := ts.Create(q.ctx(), st); err != nil {
		return nil, templateError(err)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) updateTranscode(q *request) (any, error) {
	ts, err := h.templates()
	if err != nil {
		return nil, err
	}
	st, err := systemTemplate(q.p, true)
	if err != nil {
		return nil, err
	}
	old, err := ts.Get(q.ctx(), st.DomainName, st.AppName, st.ID)
	if err != nil {
		return nil, templateError(err)
	}
	if st.Lazy, err = lazy(q.p, old.Lazy); err != nil {
		return nil, err
	}
	if _, err := ts.Update(q.ctx(), st); err != nil {
		return nil, templateError(err)
	}
	return onlyRequestID{q.id}, nil
}

// customTemplate reads the parameters of Add/UpdateCustomLiveStreamTranscode over old
// (Update: absent parameters keep the stored values).
func customTemplate(p params, old *templatedb.Stored) (templatedb.Stored, error) {
	domain, app, id, err := templateKey(p)
	if err != nil {
		return templatedb.Stored{}, err
	}
	if err := refuseUnsupported(p); err != nil {
		return templatedb.Stored{}, err
	}
	st := templatedb.Stored{Kind: templatedb.KindCustom, Lazy: true}
	if old != nil {
		st = *old
	}
	st.DomainName, st.AppName, st.ID = domain, app, id
	typ, err := p.required("TemplateType")
	if err != nil {
		return st, err
	}
	switch strings.ToLower(typ) {
	case "h264", "h265":
		st.Codec = strings.ToLower(typ)
	default:
		return st, invalid("TemplateType", fmt.Sprintf("%q is not supported by livrec (h264, h265; no Narrowband HD™, no audio-only templates)", typ))
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"Width", &st.Width}, {"Height", &st.Height}, {"FPS", &st.FPS}, {"VideoBitrate", &st.VideoBitrate},
		{"AudioBitrate", &st.AudioBitrate}, {"AudioRate", &st.AudioRate}, {"AudioChannelNum", &st.AudioChannels}} {
		if n, ok, err := p.optInt(f.name); err != nil {
			return st, err
		} else if ok {
			*f.dst = n
		}
	}
	if v := strings.TrimSpace(p.get("Gop")); v != "" {
		// "{n}s" is seconds; "{n}" is frames, turned into seconds with the template's FPS
		// (livrec's GOP is in seconds), rounded up.
		sec, isSec := strings.CutSuffix(v, "s")
		n, err := strconv.Atoi(sec)
		if err != nil || n < 1 {
			return st, invalid("Gop", fmt.Sprintf("%q is neither frames (1–3000) nor seconds (\"2s\", 1–20)", v))
		}
		if !isSec {
			if n > 3000 {
				return st, invalid("Gop", fmt.Sprintf("%d frames is out of range (1–3000)", n))
			}
			fps := st.FPS
			if fps <= 0 {
				fps = 25
			}
			n = (n + fps - 1) / fps
		}
		st.GOP = n
	}
	if v := strings.TrimSpace(p.get("Profile")); v != "" {
		pr, ok := map[string]string{"1": "baseline", "2": "main", "3": "high"}[v]
		if !ok {
			return st, invalid("Profile", fmt.Sprintf("%q is not 1 (baseline), 2 (main) or 3 (high)", v))
		}
		st.Profile = pr
	}
	if v := strings.TrimSpace(p.get("AudioCodec")); v != "" {
		if !strings.EqualFold(v, "aac") {
			return st, invalid("AudioCodec", fmt.Sprintf("%q is not supported by livrec (AAC)", v))
		}
		st.AudioCodec = "aac"
	}
	if v := strings.TrimSpace(p.get("AudioProfile")); v != "" && v != "aac_low" {
		return st, invalid("AudioProfile", fmt.Sprintf("%q is not supported by livrec (aac_low)", v))
	}
	if st.Lazy, err = lazy(p, st.Lazy); err != nil {
		return st, err
	}
	return st, nil
}

func (h *Handler) addCustomTranscode(q *request) (any, error) {
	ts, err := h.templates()
	if err != nil {
		return nil, err
	}
	st, err := customTemplate(q.p, nil)
	if err != nil {
		return nil, err
	}
	// The cloud requires the four video parameters; livrec keeps the aspect ratio when
	// only one side is given, so only the size is checked (by the template).
	for _, name := range []string{"FPS", "VideoBitrate"} {
		if _, err := q.p.required(name); err != nil {
			return nil, err
		}
	}
	if _, err := ts.Create(q.ctx(), st); err != nil {
		return nil, templateError(err)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) updateCustomTranscode(q *request) (any, error) {
	ts, err := h.templates()
	if err != nil {
		return nil, err
	}
	domain, app, id, err := templateKey(q.p)
	if err != nil {
		return nil, err
	}
	old, err := ts.Get(q.ctx(), domain, app, id)
	if err != nil {
		return nil, templateError(err)
	}
	st, err := customTemplate(q.p, old)
	if err != nil {
		return nil, err
	}
	if _, err := ts.Update(q.ctx(), st); err != nil {
		return nil, templateError(err)
	}
	return onlyRequestID{q.id}, nil
}

func (h *Handler) deleteTranscode(q *request) (any, error) {
	ts, err := h.templates()
	if err != nil {
		return nil, err
	}
	domain, app, id, err := templateKey(q.p)
	if err != nil {
		return nil, err
	}
	if err := ts.Delete(q.ctx(), domain, app, id); err != nil {
		return nil, templateError(err)
	}
	return onlyRequestID{q.id}, nil
}

// Answer of DescribeLiveStreamTranscodeInfo. CustomTranscodeParameters is an object and
// only for custom templates; TranscodeName and TranscodeTemplate both hold the ID.
type (
	transcodeInfoList struct {
		RequestId           string
		DomainTranscodeList struct {
			DomainTranscodeInfo []transcodeInfo
		}
	}
	transcodeInfo struct {
		TranscodeApp              string
		TranscodeName             string
		TranscodeTemplate         string
		IsLazy                    bool
		CustomTranscodeParameters *customParams `json:",omitempty"`
	}
	customParams struct {
		TemplateType    string
		Height          int
		Width           int
		FPS             int
		VideoBitrate    int
		Gop             string
		VideoProfile    string
		AudioCodec      string
		AudioProfile    string
		AudioBitrate    int
		AudioRate       int
		AudioChannelNum int
	}
)

func (h *Handler) describeTranscodeInfo(q *request) (any, error) {
	ts, err := h.templates()
	if err != nil {
		return nil, err
	}
	domain, err := q.p.required("DomainTranscodeName")
	if err != nil {
		return nil, err
	}
	list, err := ts.List(q.ctx(), domain, strings.TrimSpace(q.p.get("AppName")))
	if err != nil {
		return nil, err
	}
	out := transcodeInfoList{RequestId: q.id}
	out.DomainTranscodeList.DomainTranscodeInfo = []transcodeInfo{}
	for _, st := range list {
		if st.Source == templatedb.SourceBuiltin {
			continue // built-ins apply everywhere; the cloud lists bindings only
		}
		info := transcodeInfo{TranscodeApp: st.AppName, TranscodeName: st.ID, TranscodeTemplate: st.ID, IsLazy: st.Lazy}
		if st.Kind == templatedb.KindCustom {
			c := &customParams{TemplateType: st.Codec, Height: st.Height, Width: st.Width, FPS: st.FPS, VideoBitrate: st.VideoBitrate,
				Gop: strconv.Itoa(st.GOP) + "s", AudioCodec: strings.ToUpper(st.AudioCodec), AudioBitrate: st.AudioBitrate,
				AudioRate: st.AudioRate, AudioChannelNum: st.AudioChannels}
			c.VideoProfile = map[string]string{"baseline": "1", "main": "2", "high": "3"}[st.Profile]
			if st.AudioCodec == "aac" {
				c.AudioProfile = "aac_low"
			} else {
				c.AudioCodec = "copy"
			}
			info.CustomTranscodeParameters = c
		}
		out.DomainTranscodeList.DomainTranscodeInfo = append(out.DomainTranscodeList.DomainTranscodeInfo, info)
	}
	return out, nil
}
