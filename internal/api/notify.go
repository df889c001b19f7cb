package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/notify"
)

// GET /api/v1/domains/{domain}/notify: the domain's callback configuration.
func (s *Server) getNotify(w http.ResponseWriter, r *http.Request) {
	cfg, err := s.Notifier.Get(r.Context(), r.PathValue("domain"))
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "domainName", "no callback configuration for this domain")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, cfg)
}

// PUT /api/v1/domains/{domain}/notify {notifyUrl, onDemandUrl, needStatusNotify, notifyReqAuth, notifyAuthKey}.
func (s *Server) putNotify(w http.ResponseWriter, r *http.Request) {
	var cfg notify.Config
	if !decodeJSON(w, r, &cfg) {
		return
	}
	domain := r.PathValue("domain")
	if cfg.DomainName != "" && !strings.EqualFold(cfg.DomainName, domain) {
		writeError(w, http.StatusBadRequest, "domainName", "domainName: "+strconv.Quote(cfg.DomainName)+" differs from the URL's "+strconv.Quote(domain))
		return
	}
	cfg.DomainName = domain
	if cfg.NotifyReqAuth && cfg.NotifyAuthKey == "" {
		writeError(w, http.StatusBadRequest, "notifyAuthKey", "notifyAuthKey: required when notifyReqAuth is true")
		return
	}
	if err := s.Notifier.Put(r.Context(), cfg); err != nil {
		var ves notify.ValidationErrors
		if errors.As(err, &ves) && len(ves) > 0 {
			writeError(w, http.StatusBadRequest, ves[0].Field, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	got, _ := s.Notifier.Get(r.Context(), domain)
	writeJSON(w, http.StatusOK, got)
}

// DELETE /api/v1/domains/{domain}/notify.
func (s *Server) deleteNotify(w http.ResponseWriter, r *http.Request) {
	err := s.Notifier.Delete(r.Context(), r.PathValue("domain"))
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "domainName", "no callback configuration for this domain")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// GET /api/v1/callbacks?domain=&app=&stream=&event=&status=&from=&to=&limit=&offset=&order=:
// delivered, pending and failed callbacks with every try.
func (s *Server) listCallbacks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	nq := notify.Query{Domain: q.Get("domain"), App: q.Get("app"), Stream: q.Get("stream"), Event: q.Get("event"),
		Status: q.Get("status"), Desc: q.Get("order") == "desc", Limit: 100}
	var err error
	if nq.From, err = parseTime(q.Get("from")); err != nil {
		writeError(w, http.StatusBadRequest, "from", "from: want RFC 3339 time or Unix seconds")
		return
	}
	if nq.To, err = parseTime(q.Get("to")); err != nil {
		writeError(w, http.StatusBadRequest, "to", "to: want RFC 3339 time or Unix seconds")
		return
	}
	if v := q.Get("limit"); v != "" {
		if nq.Limit, err = strconv.Atoi(v); err != nil || nq.Limit < 1 || nq.Limit > 500 {
			writeError(w, http.StatusBadRequest, "limit", "limit: want an integer 1–500")
			return
		}
	}
	if v := q.Get("offset"); v != "" {
		if nq.Offset, err = strconv.Atoi(v); err != nil || nq.Offset < 0 {
			writeError(w, http.StatusBadRequest, "offset", "offset: want an integer ≥ 0")
			return
		}
	}
	cbs, err := s.Notifier.ListCallbacks(r.Context(), nq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"callbacks": cbs})
}

// decodeJSON reads a JSON body strictly (unknown fields, wrong types, data after the
// object and oversized bodies are 4xx naming the problem); false means an error was
// written.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// A second value (or garbage) after the object: refuse rather than guess which
		// one the client meant.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			var mbe *http.MaxBytesError
			if errors.As(terr, &mbe) {
				err = terr
			} else {
				writeError(w, http.StatusBadRequest, "",
					fmt.Sprintf("malformed JSON: unexpected data after the object at byte %d", dec.InputOffset()))
				return false
			}
		}
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, "", "body larger than 1 MiB")
		case errors.As(err, &te):
			writeError(w, http.StatusBadRequest, te.Field, te.Field+": want "+te.Type.String()+", got "+te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			writeError(w, http.StatusBadRequest, f, f+": unknown field")
		default:
			writeError(w, http.StatusBadRequest, "", "body: "+err.Error())
		}
		return false
	}
	return true
}

// POST /api/v1/callbacks/{id}/retry: one more try of a failed callback, now.
func (s *Server) retryCallback(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.Notifier.Retry(r.Context(), id)
	switch {
	case err == nil:
		cb, err := s.Notifier.GetCallback(r.Context(), id)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		writeJSON(w, http.StatusAccepted, cb)
	case errors.Is(err, notify.ErrNotFound):
		writeError(w, http.StatusNotFound, "id", "id: no callback with this id")
	case errors.Is(err, notify.ErrNotFailed):
		writeError(w, http.StatusConflict, "id", "id: only a failed callback can be retried; this one is pending or delivered")
	default:
		writeError(w, http.StatusInternalServerError, "", err.Error())
	}
}
