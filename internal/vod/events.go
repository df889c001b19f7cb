package vod

import (
	"encoding/json"
	"time"

	"github.com/livrec/livrec/internal/notify"
)

// Event types of the library, with the VOD service's names.
const (
	EventAddLiveRecordVideoComplete  = "AddLiveRecordVideoComplete"
	EventLiveRecordVideoComposeStart = "LiveRecordVideoComposeStart"
	EventTranscodeComplete           = "TranscodeComplete"
	EventSnapshotComplete            = "SnapshotComplete"
)

// Outbox delivers callbacks at least once (notify.Notifier).
type Outbox interface {
	Enqueue(notify.Message)
}

// CallbackConfig is where the library's events go (config file `vod:`): URL is the
// receiver ("" sends none); with AuthKey each try carries X-VOD-TIMESTAMP and
// X-VOD-SIGNATURE = md5 of "URL|timestamp|AuthKey".
type CallbackConfig struct {
	URL     string `yaml:"callbackUrl" json:"callbackUrl"`
	AuthKey string `yaml:"authKey" json:"-"`
}

// eventTime is the events' time format (UTC).
const eventTime = "2006-01-02T15:04:05Z"

func evTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(eventTime)
}

// AddLiveRecordVideoComplete is the body of the event of a new cycle asset.
type AddLiveRecordVideoComplete struct {
	EventTime       string
	EventType       string
	VideoId         string
	Status          string // success
	DomainName      string
	AppName         string
	StreamName      string
	RecordStartTime string
	RecordEndTime   string
}

func addLiveRecordVideoComplete(a *Asset, at time.Time) AddLiveRecordVideoComplete {
	return AddLiveRecordVideoComplete{EventTime: evTime(at), EventType: EventAddLiveRecordVideoComplete, VideoId: a.ID,
		Status: "success", DomainName: a.Domain, AppName: a.App, StreamName: a.Stream,
		RecordStartTime: evTime(a.RecordStart), RecordEndTime: evTime(a.RecordEnd)}
}

// ComposeStart is the body of LiveRecordVideoComposeStart: VideoId is the merged asset.
type ComposeStart struct {
	EventTime, EventType, VideoId, Status string
	DomainName, AppName, StreamName       string
}

// StreamInfo is one rendition in TranscodeComplete.
type StreamInfo struct {
	Status       string // success or fail
	Bitrate      string // kbit/s
	Definition   string
	Duration     float64
	Encrypt      bool
	ErrorCode    string `json:",omitempty"`
	ErrorMessage string `json:",omitempty"`
	FileUrl      string
	Format       string
	Fps          string
	Height       int
	Width        int
	Size         int64
	JobId        string
	IsAudio      bool
	StartTime    string
	FinishTime   string
}

// TranscodeComplete is the body of the event of an asset's transcode (Status success
// when at least one rendition succeeded).
type TranscodeComplete struct {
	EventTime, EventType, VideoId, Status string
	Extend                                string
	StreamInfos                           []StreamInfo
}

// SnapshotComplete is the body of the event of an asset's cover and snapshots.
type SnapshotComplete struct {
	EventTime, EventType, VideoId, Status string
	SubType                               string
	ErrorCode                             string `json:",omitempty"`
	ErrorMessage                          string `json:",omitempty"`
	CoverUrl                              string
	SnapshotInfos                         []SnapshotInfo
	Extend                                string
}

// SnapshotInfo is one set of snapshots in SnapshotComplete.
type SnapshotInfo struct {
	Status          string
	SnapshotFormat  string // jpg
	SnapshotRegular string // URL pattern
	SnapshotCount   int
	JobId           string
}

// EmitComposeStart sends LiveRecordVideoComposeStart for a merged asset.
func (l *Library) EmitComposeStart(a *Asset) {
	l.emit(EventLiveRecordVideoComposeStart, a, ComposeStart{EventTime: evTime(l.now()), EventType: EventLiveRecordVideoComposeStart,
		VideoId: a.ID, Status: "success", DomainName: a.Domain, AppName: a.App, StreamName: a.Stream})
}

// EmitTranscodeComplete sends TranscodeComplete; Status is derived from the streams.
func (l *Library) EmitTranscodeComplete(a *Asset, streams []StreamInfo) {
	ev := TranscodeComplete{EventTime: evTime(l.now()), EventType: EventTranscodeComplete, VideoId: a.ID, Status: "fail",
		StreamInfos: streams}
	for _, s := range streams {
		if s.Status == "success" {
			ev.Status = "success"
		}
	}
	if ev.StreamInfos == nil {
		ev.StreamInfos = []StreamInfo{}
	}
	l.emit(EventTranscodeComplete, a, ev)
}

// EmitSnapshotComplete sends SnapshotComplete (EventTime, EventType and VideoId are
// filled in).
func (l *Library) EmitSnapshotComplete(a *Asset, ev SnapshotComplete) {
	ev.EventTime, ev.EventType, ev.VideoId = evTime(l.now()), EventSnapshotComplete, a.ID
	if ev.SnapshotInfos == nil {
		ev.SnapshotInfos = []SnapshotInfo{}
	}
	l.emit(EventSnapshotComplete, a, ev)
}

// emit queues an event for the configured callback.
func (l *Library) emit(typ string, a *Asset, body any) {
	cb := l.o.Callback
	if l.o.Outbox == nil || cb.URL == "" {
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		l.log.Error("vod: event body", "err", err)
		return
	}
	m := notify.Message{Domain: a.Domain, App: a.App, Stream: a.Stream, TaskID: a.TaskID, Event: typ, URL: cb.URL, Body: b}
	if cb.AuthKey != "" {
		m.AuthKey, m.Signing = cb.AuthKey, notify.SigningVOD
	}
	l.o.Outbox.Enqueue(m)
}
