package api

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/record"
)

// StoreStatus is the state of one object store (endpoint + bucket) and its upload spool.
type StoreStatus struct {
	Endpoint string `json:"endpoint"`
	Bucket   string `json:"bucket"`
	// State is "ok" (the last check reached the bucket), "unreachable" (Error says why)
	// or "checking" (no answer yet).
	State        string    `json:"state"`
	Error        string    `json:"error,omitempty"`
	SpoolItems   int       `json:"spoolItems"`
	SpoolBytes   int64     `json:"spoolBytes"`
	Parked       int       `json:"parked"` // items whose key exists in the store with other content
	OldestQueued time.Time `json:"oldestQueued,omitzero"`
	OverLimit    bool      `json:"overLimit"`
}

// DiskStatus is the file system of the data directory.
type DiskStatus struct {
	Path       string `json:"path"`
	FreeBytes  uint64 `json:"freeBytes"`
	TotalBytes uint64 `json:"totalBytes"`
	Error      string `json:"error,omitempty"`
}

// RecentError is a record_error event (storage alarms, writer errors, ...).
type RecentError struct {
	Time    time.Time `json:"time"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Domain  string    `json:"domain,omitempty"`
	App     string    `json:"app,omitempty"`
	Stream  string    `json:"stream,omitempty"`
}

// status is the body of GET /api/v1/status.
type status struct {
	Version     string        `json:"version"`
	Revision    string        `json:"revision,omitempty"`
	GoVersion   string        `json:"goVersion"`
	StartedAt   time.Time     `json:"startedAt"`
	LiveStreams int           `json:"liveStreams"`
	Disk        DiskStatus    `json:"disk"`
	SpoolBytes  int64         `json:"spoolBytes"`
	Storage     []StoreStatus `json:"storage"`
	Errors      []RecentError `json:"errors"`
}

// ErrorLog keeps the error events of the last hour (at most errorLogSize) for the status
// page; Add takes every recorder event and keeps the errors.
type ErrorLog struct {
	mu     sync.Mutex
	events []RecentError
	now    func() time.Time
}

const (
	errorLogSize = 200
	errorLogAge  = time.Hour
)

// Add records ev if it is an error event.
func (l *ErrorLog) Add(ev record.Event) {
	if ev.Type != record.EventError {
		return
	}
	at := ev.Time
	if at.IsZero() {
		at = l.clock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == errorLogSize {
		l.events = slices.Delete(l.events, 0, 1)
	}
	l.events = append(l.events, RecentError{Time: at.UTC(), Code: ev.Code, Message: ev.Message, Domain: ev.Domain, App: ev.App, Stream: ev.Stream})
}

func (l *ErrorLog) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// recent returns the errors of the last hour, newest first.
func (l *ErrorLog) recent() []RecentError {
	out := []RecentError{}
	if l == nil {
		return out
	}
	since := l.clock().Add(-errorLogAge)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.events) - 1; i >= 0 && l.events[i].Time.After(since); i-- {
		out = append(out, l.events[i])
	}
	return out
}

// buildVersion is the module version and VCS revision stamped by the go command.
func buildVersion() (version, revision string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown", ""
	}
	version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				revision += " (modified)"
			}
		}
	}
	return version, revision
}

// GET /api/v1/status: version, disk, object stores and their spools, recent errors.
func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	st := status{GoVersion: runtime.Version(), StartedAt: s.Started.UTC(), Storage: []StoreStatus{}, Errors: s.Errors.recent()}
	st.Version, st.Revision = buildVersion()
	if s.Manager != nil {
		st.LiveStreams = len(s.Manager.Streams())
	}
	if s.DataDir != "" {
		st.Disk = diskStatus(s.DataDir)
	}
	if s.Stores != nil {
		st.Storage = s.Stores()
	}
	for _, ss := range st.Storage {
		st.SpoolBytes += ss.SpoolBytes
	}
	writeJSON(w, http.StatusOK, st)
}
