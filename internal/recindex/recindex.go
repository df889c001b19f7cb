// Package recindex creates new HLS index files ("create index", the cloud API's
// CreateLiveStreamRecordIndexFiles): a VOD playlist over a wall-clock window, built from
// the MPEG-TS segments of the m3u8 recordings already stored. No media is copied or
// changed; the new playlist references the stored segments.
package recindex

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/google/uuid"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/keytemplate"
	"github.com/livrec/livrec/internal/storage"
)

// Request asks for an index over [Start, End] of one stream.
type Request struct {
	Domain, App, Stream string
	Start, End          time.Time
	// Key is the object key of the new playlist (".m3u8" appended if missing). Empty:
	// record/{App}/{Stream}/index_{EscapedStart}_{EscapedEnd}.m3u8.
	Key string
	// EndTimeIncluded adds the segment that contains End, so the window is fully covered;
	// without it only segments completed inside the window are listed.
	EndTimeIncluded bool
}

// IndexTaskID is the task id of the catalog rows of created indexes.
const IndexTaskID = "index"

// ErrNoSegments means no stored segment falls in the window.
var ErrNoSegments = errors.New("no recorded segment in the time window")

// MaxWindow bounds the window of one index.
const MaxWindow = 7 * 24 * time.Hour

type seg struct {
	key           string
	start         time.Time
	dur           time.Duration
	discontinuity bool
}

// Create builds the playlist, stores it (create-only) and records it in the catalog as a
// generated m3u8 file.
func Create(ctx context.Context, cat *catalog.Catalog, store storage.Store, workDir string, req Request) (*catalog.File, error) {
	if !req.End.After(req.Start) {
		return nil, fmt.Errorf("endTime: must be after startTime")
	}
	if req.End.Sub(req.Start) > MaxWindow {
		return nil, fmt.Errorf("endTime: the window is longer than 7 days")
	}
	key := req.Key
	if key == "" {
		var err error
		key, err = keytemplate.Render("record/{AppName}/{StreamName}/index_{EscapedStartTime}_{EscapedEndTime}",
			keytemplate.Vars{AppName: req.App, StreamName: req.Stream, Start: req.Start, End: req.End})
		if err != nil {
			return nil, err
		}
	}
	if !strings.HasSuffix(key, ".m3u8") {
		key += ".m3u8"
	}
	if _, err := keytemplate.CleanKey(key); err != nil {
		return nil, fmt.Errorf("objectKey: %w", err)
	}
	files, err := cat.ListFiles(ctx, catalog.FileQuery{Domain: req.Domain, App: req.App, Stream: req.Stream, Format: "m3u8",
		Status: catalog.FileDone, From: req.Start, To: req.End, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var picked []seg
	for _, f := range files {
		if f.TaskID == IndexTaskID {
			continue // an index made earlier lists the same segments
		}
		segs, err := segmentsOf(ctx, store, f)
		if err != nil {
			return nil, fmt.Errorf("recording %s: %w", f.ID, err)
		}
		first := true
		for _, s := range segs {
			// A segment belongs to the window when it was completed inside it (as the
			// cloud counts uploaded segments); EndTimeIncluded adds the one still running
			// at End.
			end := s.start.Add(s.dur)
			if !end.After(req.Start) || end.After(req.End) && !(req.EndTimeIncluded && s.start.Before(req.End)) {
				continue
			}
			s.discontinuity = s.discontinuity || (first && len(picked) > 0)
			first = false
			picked = append(picked, s)
		}
	}
	if len(picked) == 0 {
		return nil, ErrNoSegments
	}
	pl := playlist.Media{Version: 3, Endlist: true}
	vod := playlist.MediaPlaylistTypeVOD
	pl.PlaylistType = &vod
	var total time.Duration
	var maxDur time.Duration
	for _, s := range picked {
		pl.Segments = append(pl.Segments, &playlist.MediaSegment{Duration: s.dur, URI: segment.RelativeURI(key, s.key), Discontinuity: s.discontinuity})
		total += s.dur
		maxDur = max(maxDur, s.dur)
	}
	pl.TargetDuration = int((maxDur + time.Second - 1) / time.Second)
	body, err := pl.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(workDir, "index-*.m3u8")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := store.Store(ctx, key, tmp.Name()); err != nil {
		return nil, err
	}
	last := picked[len(picked)-1]
	row := &catalog.File{ID: uuid.NewString(), TaskID: IndexTaskID, Domain: req.Domain, App: req.App, Stream: req.Stream, Format: "m3u8",
		Key: key, Start: picked[0].start, End: last.start.Add(last.dur), Duration: total.Seconds(), Bytes: int64(len(body)),
		Segments: len(picked), Status: catalog.FileDone}
	if len(files) > 0 {
		row.Width, row.Height, row.Codecs, row.FrameRate = files[0].Width, files[0].Height, files[0].Codecs, files[0].FrameRate
	}
	if err := cat.CreateFile(ctx, row); err != nil {
		return nil, err
	}
	return row, nil
}

// segmentsOf reads a stored playlist and places its segments on the wall clock: the
// recording's start plus the media time before each segment.
func segmentsOf(ctx context.Context, store storage.Store, f catalog.File) ([]seg, error) {
	pl, err := segment.ReadPlaylist(ctx, store, f.Key)
	if err != nil {
		return nil, err
	}
	var out []seg
	at := f.Start
	for _, s := range pl.Segments {
		out = append(out, seg{key: s.Key, start: at, dur: s.Duration, discontinuity: s.Discontinuity})
		at = at.Add(s.Duration)
	}
	return out, nil
}
