package api

// The background job queue over JSON: /api/v1/jobs (transcodes and other work done after
// the fact), with each job's progress in percent and its log lines.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/livrec/livrec/internal/jobs"
)

// JobQueue is what the API needs of the job queue (*jobs.Queue).
type JobQueue interface {
	Get(ctx context.Context, id int64) (jobs.Info, error)
	List(ctx context.Context, f jobs.Filter) ([]jobs.Info, error)
	Cancel(ctx context.Context, id int64) error
}

// Limits of the jobs API.
const (
	defaultJobLimit = 100
	maxJobLimit     = 1000
	// scanJobs bounds the jobs read to filter them by assetId (the queue filters kind and
	// state itself, not arguments).
	scanJobs = 10000
)

// jobStates are the queue's states, in the order of a job's life.
var jobStates = []string{jobs.StateAvailable, jobs.StateScheduled, jobs.StateRunning, jobs.StateRetryable,
	jobs.StateCompleted, jobs.StateCancelled, jobs.StateDiscarded}

// finished are the states Cancel leaves as they are.
var finished = []string{jobs.StateCompleted, jobs.StateCancelled, jobs.StateDiscarded}

// jobList is the body of GET /api/v1/jobs.
type jobList struct {
	Jobs  []jobs.Info `json:"jobs"`
	Limit int         `json:"limit"`
}

func (s *Server) registerJobs(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/jobs", s.needJobs(s.listJobs))
	mux.HandleFunc("GET /api/v1/jobs/{id}", s.needJobs(s.getJob))
	mux.HandleFunc("POST /api/v1/jobs/{id}/cancel", s.needJobs(s.cancelJob))
}

// needJobs answers 503 on a server without a job queue.
func (s *Server) needJobs(h http.HandlerFunc) http.HandlerFunc {
	return needs(func() bool { return s.Jobs != nil }, "the job queue is not configured on this server", h)
}

// GET /api/v1/jobs?kind=&state=&assetId=&limit=: newest first, each with its last log lines.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := jobs.Filter{Kind: q.Get("kind")}
	if v := q.Get("state"); v != "" {
		for _, st := range strings.Split(v, ",") {
			st = strings.TrimSpace(st)
			if !slices.Contains(jobStates, st) {
				writeError(w, http.StatusBadRequest, "state", fmt.Sprintf("state: %q is not one of %s (several may be given, comma-separated)", st, strings.Join(jobStates, ", ")))
				return
			}
			f.States = append(f.States, st)
		}
	}
	limit := defaultJobLimit
	if !intParam(w, r, "limit", &limit, 1, maxJobLimit) {
		return
	}
	asset := strings.ToLower(q.Get("assetId"))
	f.Limit = limit
	if asset != "" {
		f.Limit = scanJobs
	}
	js, err := s.Jobs.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	if asset != "" {
		js = slices.DeleteFunc(js, func(in jobs.Info) bool { return jobAsset(in) != asset })
		js = js[:min(len(js), limit)]
	}
	if js == nil {
		js = []jobs.Info{}
	}
	writeJSON(w, http.StatusOK, jobList{Jobs: js, Limit: limit})
}

// jobAsset is the assetId of a job's arguments ("" for a job of no asset).
func jobAsset(in jobs.Info) string {
	var a struct {
		AssetID string `json:"assetId"`
	}
	json.Unmarshal(in.Args, &a)
	return strings.ToLower(a.AssetID)
}

// jobID returns the path's job id, or writes 404 for one that cannot exist.
func jobID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusNotFound, "id", fmt.Sprintf("id: no job with id %.80q (ids are positive integers)", v))
		return 0, false
	}
	return id, true
}

func writeJobError(w http.ResponseWriter, id int64, err error) {
	if errors.Is(err, jobs.ErrNotFound) {
		writeError(w, http.StatusNotFound, "id", fmt.Sprintf("id: no job with id %d (finished jobs are kept 30 days)", id))
		return
	}
	writeError(w, http.StatusInternalServerError, "", err.Error())
}

// GET /api/v1/jobs/{id}: the job with its whole kept log.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	in, err := s.Jobs.Get(r.Context(), id)
	if err != nil {
		writeJobError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

// POST /api/v1/jobs/{id}/cancel: a queued job never runs, a running one is stopped.
// A finished job is 409.
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	in, err := s.Jobs.Get(r.Context(), id)
	if err != nil {
		writeJobError(w, id, err)
		return
	}
	if slices.Contains(finished, in.State) {
		writeError(w, http.StatusConflict, "", fmt.Sprintf("job %d is already %s: there is nothing to cancel", id, in.State))
		return
	}
	if err := s.Jobs.Cancel(r.Context(), id); err != nil {
		writeJobError(w, id, err)
		return
	}
	if in, err = s.Jobs.Get(r.Context(), id); err != nil {
		writeJobError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}
