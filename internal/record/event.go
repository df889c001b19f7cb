package record

import (
	"time"

	"github.com/livrec/livrec/internal/catalog"
)

// Event types. The status events carry the names of the cloud service's callbacks.
const (
	EventStarted     = "record_started"
	EventPaused      = "record_paused"
	EventResumed     = "record_resumed"
	EventFileCreated = "file_created"
	// EventEnded: the task ended and every file_created of its files came before.
	EventEnded           = "record_ended"
	EventError           = "record_error"
	EventWarning         = "record_warning"
	EventTimestampRepair = "timestamp_repair"
)

// Event is something that happened to a recording. Every event goes through
// Manager.emit, which logs it, counts it and hands it to Config.OnEvent (callbacks).
type Event struct {
	Type   string
	Time   time.Time
	TaskID string
	Domain string
	App    string
	Stream string
	// File is set for file_created (and for errors about one file).
	File *catalog.File
	// Code and Message describe errors and warnings ("unsupported_codec", ...).
	Code    string
	Message string
	// PushArgs are the push URL's query arguments of the publish concerned.
	PushArgs map[string][]string
}
