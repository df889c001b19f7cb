package api

import (
	"errors"
	"net/http"

	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/templatedb"
)

// Live transcode templates: /api/v1/transcode/templates, keyed by (domainName, appName,
// id) in the path of one template ("*" for any domain or app). Changes go through
// templatedb.Store and apply from the next publish.

// templateList is the body of GET /api/v1/transcode/templates.
type templateList struct {
	Templates []templatedb.Stored `json:"templates"`
}

func (s *Server) registerTemplates(mux *http.ServeMux) {
	a := &templateAPI{store: s.Templates}
	mux.HandleFunc("GET /api/v1/transcode/templates", a.need(a.list))
	mux.HandleFunc("POST /api/v1/transcode/templates", a.need(a.create))
	mux.HandleFunc("GET /api/v1/transcode/templates/{domainName}/{appName}/{id}", a.need(a.get))
	mux.HandleFunc("PUT /api/v1/transcode/templates/{domainName}/{appName}/{id}", a.need(a.update))
	mux.HandleFunc("DELETE /api/v1/transcode/templates/{domainName}/{appName}/{id}", a.need(a.delete))
}

// need answers 503 on a server without a template store.
func (a *templateAPI) need(h http.HandlerFunc) http.HandlerFunc {
	return needs(func() bool { return a.store != nil }, "live transcode templates are not available on this server", h)
}

type templateAPI struct{ store *templatedb.Store }

func (a *templateAPI) list(w http.ResponseWriter, r *http.Request) {
	ts, err := a.store.List(r.Context(), r.URL.Query().Get("domain"), r.URL.Query().Get("app"))
	if err != nil {
		writeTemplateError(w, err)
		return
	}
	if ts == nil {
		ts = []templatedb.Stored{}
	}
	writeJSON(w, http.StatusOK, templateList{Templates: ts})
}

func (a *templateAPI) create(w http.ResponseWriter, r *http.Request) {
	var st templatedb.Stored
	if !decodeJSON(w, r, &st) {
		return
	}
	out, err := a.store.Create(r.Context(), st)
	if err != nil {
		writeTemplateError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (a *templateAPI) get(w http.ResponseWriter, r *http.Request) {
	st, err := a.store.Get(r.Context(), r.PathValue("domainName"), r.PathValue("appName"), r.PathValue("id"))
	if err != nil {
		writeTemplateError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// update replaces a template; the body's key fields may be left out, and must match the
// path when given.
func (a *templateAPI) update(w http.ResponseWriter, r *http.Request) {
	var st templatedb.Stored
	if !decodeJSON(w, r, &st) {
		return
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"domainName", &st.DomainName}, {"appName", &st.AppName}, {"id", &st.ID}} {
		if *f.dst != "" && *f.dst != r.PathValue(f.name) {
			writeError(w, http.StatusBadRequest, f.name, f.name+": "+*f.dst+" differs from the path's "+r.PathValue(f.name)+" (the key cannot change)")
			return
		}
		*f.dst = r.PathValue(f.name)
	}
	out, err := a.store.Update(r.Context(), st)
	if err != nil {
		writeTemplateError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *templateAPI) delete(w http.ResponseWriter, r *http.Request) {
	if err := a.store.Delete(r.Context(), r.PathValue("domainName"), r.PathValue("appName"), r.PathValue("id")); err != nil {
		writeTemplateError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeTemplateError maps an error of templatedb.Store to a response.
func writeTemplateError(w http.ResponseWriter, err error) {
	var ves rules.ValidationErrors
	switch {
	case errors.As(err, &ves):
		writeProblems(w, http.StatusBadRequest, ves)
	case errors.Is(err, templatedb.ErrNotFound):
		writeError(w, http.StatusNotFound, "id", err.Error())
	case errors.Is(err, templatedb.ErrExists):
		writeError(w, http.StatusConflict, "id", err.Error())
	case errors.Is(err, templatedb.ErrConfig):
		writeError(w, http.StatusConflict, "id", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "", err.Error())
	}
}
