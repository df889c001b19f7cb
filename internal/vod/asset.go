// Package vod is livrec's VOD library: recordings of VOD-mode rules (rules.Rule.Vod)
// kept as assets (videos) in the library's own storage, with their status, cover,
// snapshots and renditions (play infos), listed, updated and deleted through the APIs,
// and the VOD service's events (AddLiveRecordVideoComplete, ...), signed as it signs
// them.
//
// The library follows the recorder's events off the ingest path (Library.OnEvent only
// queues them): each generated m3u8 of a VOD-rule task becomes an asset, and the end of
// a task is reported with the task's cycle assets. Work done after the fact (covers,
// transcodes, merges) hooks in through Hooks and the setters (SetStatus, SetCover,
// AddSnapshots, AddPlayInfo, Create for a merged asset).
package vod

import (
	"errors"
	"fmt"
	"time"
)

// Status is an asset's status, with the VOD service's values.
type Status string

// Statuses.
const (
	StatusUploading     Status = "Uploading"
	StatusUploadFail    Status = "UploadFail"
	StatusUploadSucc    Status = "UploadSucc"
	StatusTranscoding   Status = "Transcoding"
	StatusTranscodeFail Status = "TranscodeFail"
	StatusChecking      Status = "Checking"
	StatusBlocked       Status = "Blocked"
	StatusNormal        Status = "Normal"
	StatusProduceFail   Status = "ProduceFail"
)

// Statuses lists every status.
var Statuses = []Status{StatusUploading, StatusUploadFail, StatusUploadSucc, StatusTranscoding, StatusTranscodeFail,
	StatusChecking, StatusBlocked, StatusNormal, StatusProduceFail}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Kinds of asset.
const (
	KindCycle    = "cycle"    // one cycle file of a task
	KindComposed = "composed" // the merge of a task's cycle assets
)

// DefinitionOriginal is the definition of the original recording's play info.
const DefinitionOriginal = "OD"

// PlayInfo is one rendition of an asset.
type PlayInfo struct {
	Definition string  `json:"definition"` // OD for the original; FD, LD, SD, HD, 2K, 4K ...
	Format     string  `json:"format"`     // m3u8, mp4
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	Fps        float64 `json:"fps"`
	Bitrate    int64   `json:"bitrate"`  // bit/s
	Duration   float64 `json:"duration"` // seconds
	Size       int64   `json:"size"`     // bytes (a playlist's segments included)
	// Key is the object key of the file (the playlist of an m3u8) in the library's
	// storage; a rendition's segments are listed in its playlist. Deleting the asset
	// deletes them.
	Key        string    `json:"key"`
	Status     string    `json:"status"`          // Normal
	JobID      string    `json:"jobId,omitempty"` // the transcode job
	CreatedAt  time.Time `json:"createdAt"`
	ModifiedAt time.Time `json:"modifiedAt"`
}

// Asset is one video of the library.
type Asset struct {
	ID          string  `json:"id"` // 32 lowercase hex digits
	Title       string  `json:"title"`
	Description string  `json:"description"`
	Duration    float64 `json:"duration"` // seconds
	Size        int64   `json:"size"`     // bytes of the original
	Status      Status  `json:"status"`
	// Error says why the last job failed (TranscodeFail, ProduceFail), "" otherwise.
	Error      string    `json:"error,omitempty"`
	Kind       string    `json:"kind"` // KindCycle or KindComposed
	CreatedAt  time.Time `json:"createdAt"`
	ModifiedAt time.Time `json:"modifiedAt"`
	Domain     string    `json:"domainName"`
	App        string    `json:"appName"`
	Stream     string    `json:"streamName"`
	TaskID     string    `json:"taskId"`
	FileID     string    `json:"fileId,omitempty"` // the catalog file of a cycle asset
	// RecordStart and RecordEnd are the wall-clock times of the recorded media.
	RecordStart time.Time `json:"recordStartTime"`
	RecordEnd   time.Time `json:"recordEndTime"`
	// Cover is the chosen cover: a key in the library's storage (made by livrec) or an
	// http(s) URL set through the API; "" for none. Snapshots are keys of images.
	Cover     string   `json:"cover,omitempty"`
	Snapshots []string `json:"snapshots"`
	// Thumbnails is the seek-preview track: a WebVTT key whose cues show tiles of the
	// sprite sheets among the snapshots ("" for none).
	Thumbnails string `json:"thumbnails,omitempty"`
	// PlayInfos are the renditions, the original first.
	PlayInfos []PlayInfo `json:"playInfos"`
	// Where the files are: empty for the server's own storage.
	OssEndpoint string `json:"ossEndpoint,omitempty"`
	OssBucket   string `json:"ossBucket,omitempty"`
	// The rule's transcode groups when the asset was made (rules.VodSettings).
	TranscodeGroupID        string `json:"vodTranscodeGroupId"`
	AutoCompose             bool   `json:"autoCompose"`
	ComposeTranscodeGroupID string `json:"composeVodTranscodeGroupId,omitempty"`
	// Sources are the cycle assets a composed asset was merged from.
	Sources []string `json:"sources,omitempty"`
}

// StorageLocation is the asset's storage as the VOD API shows it: "local", or the
// bucket and endpoint as "<bucket>.<endpoint>".
func (a *Asset) StorageLocation() string {
	if a.OssBucket == "" {
		return "local"
	}
	return a.OssBucket + "." + a.OssEndpoint
}

// Errors of the library.
var (
	ErrNotFound = errors.New("asset not found")
	// ErrBusy: the asset is being worked on (Transcoding) and cannot be deleted.
	ErrBusy = errors.New("asset is busy")
)

// FieldError is a bad field of an update.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// BusyError is a refused delete of an asset in a working status.
type BusyError struct {
	ID     string
	Status Status
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("asset %s is %s: it cannot be deleted until its job ends", e.ID, e.Status)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }
