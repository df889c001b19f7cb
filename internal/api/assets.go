package api

// The VOD library over JSON: /api/v1/assets (the library's videos) and
// /api/v1/vod/transcode-groups. Field names are the vod package's (lowerCamelCase); each
// asset carries the URLs a player or an <img> opens (/files/...), so that nobody builds
// them from keys.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/vod"
)

// maxAssetPage bounds page: the library is paged by offset, and an offset past every
// asset answers an empty page anyway.
const maxAssetPage = 1_000_000

// assetJSON is an asset with the URLs of its files. playInfos replaces the embedded
// asset's field of the same name (encoding/json takes the shallower one).
type assetJSON struct {
	vod.Asset
	CoverURL     string   `json:"coverUrl,omitempty"`
	SnapshotURLs []string `json:"snapshotUrls"`
	// ThumbnailsURL is the seek-preview WebVTT track (its cues point at the sprite sheets).
	ThumbnailsURL string         `json:"thumbnailsUrl,omitempty"`
	PlayInfos     []playInfoJSON `json:"playInfos"`
}

// playInfoJSON is a rendition with the URL a player opens.
type playInfoJSON struct {
	vod.PlayInfo
	URL string `json:"url"`
}

// assetList is the body of GET /api/v1/assets.
type assetList struct {
	Assets   []assetJSON `json:"assets"`
	Total    int         `json:"total"` // assets matching the filters
	Page     int         `json:"page"`
	PageSize int         `json:"pageSize"`
}

// assetPatch is the body of PATCH /api/v1/assets/{id}; absent fields are left as they are.
type assetPatch struct {
	Title       *string `json:"title"`
	Description *string `json:"description"`
	// CoverURL is one of the asset's snapshotUrls (or its snapshot key), an http(s) URL,
	// or "" for no cover.
	CoverURL *string `json:"coverUrl"`
}

// transcodeGroupList is the body of GET /api/v1/vod/transcode-groups.
type transcodeGroupList struct {
	Groups []vod.TranscodeGroup `json:"groups"`
}

// fileURL is the URL of a key in livrec's storage; an http(s) URL stays as it is.
func fileURL(keyOrURL string) string {
	if keyOrURL == "" || strings.Contains(keyOrURL, "://") {
		return keyOrURL
	}
	return storage.URLPath(keyOrURL)
}

func newAssetJSON(a *vod.Asset) assetJSON {
	out := assetJSON{Asset: *a, CoverURL: fileURL(a.Cover), ThumbnailsURL: fileURL(a.Thumbnails), SnapshotURLs: make([]string, len(a.Snapshots)),
		PlayInfos: make([]playInfoJSON, len(a.PlayInfos))}
	for i, k := range a.Snapshots {
		out.SnapshotURLs[i] = fileURL(k)
	}
	for i, p := range a.PlayInfos {
		out.PlayInfos[i] = playInfoJSON{PlayInfo: p, URL: fileURL(p.Key)}
	}
	return out
}

func (s *Server) registerAssets(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/assets", s.needLibrary(s.listAssets))
	mux.HandleFunc("GET /api/v1/assets/{id}", s.needLibrary(s.getAsset))
	mux.HandleFunc("PATCH /api/v1/assets/{id}", s.needLibrary(s.patchAsset))
	mux.HandleFunc("DELETE /api/v1/assets/{id}", s.needLibrary(s.deleteAsset))
	mux.HandleFunc("GET /api/v1/vod/transcode-groups", s.listTranscodeGroups)
	mux.HandleFunc("GET /api/v1/vod/transcode-groups/{id}", s.getTranscodeGroup)
}

// needLibrary answers 503 on a server without the VOD library.
func (s *Server) needLibrary(h http.HandlerFunc) http.HandlerFunc {
	return needs(func() bool { return s.Library != nil }, "the VOD library is not configured on this server", h)
}

// needs answers 503 with msg while present reports false: a route of an optional
// dependency.
func needs(present func() bool, msg string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !present() {
			writeError(w, http.StatusServiceUnavailable, "", msg)
			return
		}
		h(w, r)
	}
}

// intParam reads an optional integer query parameter in [min, max]; false means a 400
// was written.
func intParam(w http.ResponseWriter, r *http.Request, name string, dst *int, min, max int) bool {
	q := r.URL.Query()
	if !q.Has(name) {
		return true
	}
	v := q.Get(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		writeError(w, http.StatusBadRequest, name, fmt.Sprintf("%s: want an integer %d–%d, got %q", name, min, max, v))
		return false
	}
	*dst = n
	return true
}

// GET /api/v1/assets?domainName=&appName=&streamName=&status=&kind=&from=&to=&timeField=&order=&page=&pageSize=
func (s *Server) listAssets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	vq := vod.Query{App: q.Get("appName"), Stream: q.Get("streamName")}
	if d := q.Get("domainName"); d != "" {
		nd, err := rules.NormalizeDomain(d)
		if err != nil {
			writeError(w, http.StatusBadRequest, "domainName", "domainName: "+err.Error())
			return
		}
		vq.Domain = nd
	}
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			st := vod.Status(strings.TrimSpace(st))
			if !st.Valid() {
				writeError(w, http.StatusBadRequest, "status", fmt.Sprintf("status: %q is not one of %s (several may be given, comma-separated)", st, joinStatuses()))
				return
			}
			vq.Statuses = append(vq.Statuses, st)
		}
	}
	switch k := q.Get("kind"); k {
	case "", vod.KindCycle, vod.KindComposed:
		vq.Kind = k
	default:
		writeError(w, http.StatusBadRequest, "kind", fmt.Sprintf("kind: %q is not %s or %s", k, vod.KindCycle, vod.KindComposed))
		return
	}
	var from, to time.Time
	for _, tf := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		var err error
		if *tf.dst, err = parseTime(q.Get(tf.name)); err != nil {
			writeError(w, http.StatusBadRequest, tf.name, tf.name+": want an RFC 3339 time or Unix seconds, got "+strconv.Quote(q.Get(tf.name)))
			return
		}
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		writeError(w, http.StatusBadRequest, "to", "to: must be after from")
		return
	}
	switch tf := q.Get("timeField"); tf {
	case "", "creationTime":
		vq.CreatedFrom, vq.CreatedTo = from, to
	case "recordTime":
		vq.RecordFrom, vq.RecordTo = from, to
	default:
		writeError(w, http.StatusBadRequest, "timeField", fmt.Sprintf("timeField: %q is not creationTime or recordTime", tf))
		return
	}
	switch o := q.Get("order"); o {
	case "", "desc":
	case "asc":
		vq.Asc = true
	default:
		writeError(w, http.StatusBadRequest, "order", fmt.Sprintf("order: %q is not asc or desc", o))
		return
	}
	page, pageSize := 1, vod.DefaultPageSize
	if !intParam(w, r, "page", &page, 1, maxAssetPage) || !intParam(w, r, "pageSize", &pageSize, 1, vod.MaxPageSize) {
		return
	}
	vq.Limit, vq.Offset = pageSize, (page-1)*pageSize
	as, total, err := s.Library.List(r.Context(), vq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	out := assetList{Assets: make([]assetJSON, len(as)), Total: total, Page: page, PageSize: pageSize}
	for i := range as {
		out.Assets[i] = newAssetJSON(&as[i])
	}
	writeJSON(w, http.StatusOK, out)
}

func joinStatuses() string {
	ss := make([]string, len(vod.Statuses))
	for i, s := range vod.Statuses {
		ss[i] = string(s)
	}
	return strings.Join(ss, ", ")
}

var assetIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// assetID returns the path's asset id, or writes 404 for one that cannot exist.
func assetID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := strings.ToLower(r.PathValue("id"))
	if !assetIDRe.MatchString(id) {
		writeError(w, http.StatusNotFound, "id", fmt.Sprintf("id: no asset with id %.80q (ids are 32 hex digits)", r.PathValue("id")))
		return "", false
	}
	return id, true
}

// writeAssetError maps an error of the library to a response.
func writeAssetError(w http.ResponseWriter, id string, err error) {
	var fe *vod.FieldError
	var be *vod.BusyError
	switch {
	case errors.Is(err, vod.ErrNotFound):
		writeError(w, http.StatusNotFound, "id", fmt.Sprintf("id: no asset with id %q", id))
	case errors.As(err, &be):
		writeError(w, http.StatusConflict, "", err.Error())
	case errors.As(err, &fe):
		field := fe.Field
		if field == "cover" {
			field = "coverUrl" // the API's name of the field
		}
		writeError(w, http.StatusBadRequest, field, field+": "+fe.Msg)
	default:
		writeError(w, http.StatusInternalServerError, "", err.Error())
	}
}

func (s *Server) getAsset(w http.ResponseWriter, r *http.Request) {
	id, ok := assetID(w, r)
	if !ok {
		return
	}
	a, err := s.Library.Get(r.Context(), id)
	if err != nil {
		writeAssetError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, newAssetJSON(a))
}

// PATCH /api/v1/assets/{id} {"title", "description", "coverUrl"}.
func (s *Server) patchAsset(w http.ResponseWriter, r *http.Request) {
	id, ok := assetID(w, r)
	if !ok {
		return
	}
	var in assetPatch
	if !decodeJSON(w, r, &in) {
		return
	}
	if in.Title == nil && in.Description == nil && in.CoverURL == nil {
		writeError(w, http.StatusBadRequest, "", "nothing to change: give title, description or coverUrl")
		return
	}
	p := vod.Patch{Title: in.Title, Description: in.Description}
	if in.CoverURL != nil {
		cover := coverKey(*in.CoverURL)
		p.Cover = &cover
	}
	a, err := s.Library.Update(r.Context(), id, p)
	if err != nil {
		writeAssetError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, newAssetJSON(a))
}

// coverKey turns a snapshot URL as the API shows it (/files/<key>) back into its key;
// anything else is passed on for the library to check.
func coverKey(v string) string {
	if rest, ok := strings.CutPrefix(v, "/files/"); ok {
		if k, err := url.PathUnescape(rest); err == nil {
			return k
		}
	}
	return v
}

// DELETE /api/v1/assets/{id}: the asset and the library's files of it; 409 while a job
// writes them.
func (s *Server) deleteAsset(w http.ResponseWriter, r *http.Request) {
	id, ok := assetID(w, r)
	if !ok {
		return
	}
	if err := s.Library.Delete(r.Context(), id); err != nil {
		writeAssetError(w, id, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// transcodeGroups are the configured groups, or the built-in one alone.
func (s *Server) transcodeGroups() *vod.TranscodeGroups {
	if s.TranscodeGroups != nil {
		return s.TranscodeGroups
	}
	g, _ := vod.NewTranscodeGroups(nil)
	return g
}

// GET /api/v1/vod/transcode-groups: the built-in no-transcode group first, then the
// configuration file's (read-only here).
func (s *Server) listTranscodeGroups(w http.ResponseWriter, r *http.Request) {
	gs := s.transcodeGroups().List()
	for i := range gs {
		if gs[i].Templates == nil {
			gs[i].Templates = []vod.TranscodeTemplate{}
		}
	}
	writeJSON(w, http.StatusOK, transcodeGroupList{Groups: gs})
}

func (s *Server) getTranscodeGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.transcodeGroups().Lookup(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "id", "id: "+err.Error())
		return
	}
	if g.Templates == nil {
		g.Templates = []vod.TranscodeTemplate{}
	}
	writeJSON(w, http.StatusOK, g)
}
