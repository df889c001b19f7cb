package hls

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/livrec/livrec/internal/storage"
)

// journal is the crash-recovery record in WorkDir/journal.json.
type journal struct {
	Version  int          `json:"version"`
	Segments []journalSeg `json:"segments"`
	NextSeq  int          `json:"next_seq"`
	// Current is the segment being written (its file may be partial).
	Current *journalSeg `json:"current,omitempty"`
	// PendingDiscontinuity: a resume was signalled and no segment has opened since.
	PendingDiscontinuity bool `json:"pending_discontinuity,omitempty"`
	// PlaylistKey is set once the file is being finalized (Finish or Recover): the key
	// the VOD playlist is stored under.
	PlaylistKey string `json:"playlist_key,omitempty"`
}

type journalSeg struct {
	Seq           int           `json:"seq"`
	Key           string        `json:"key"`
	File          string        `json:"file"`
	Duration      time.Duration `json:"duration_ns,omitempty"`
	Start         time.Time     `json:"start"`
	Discontinuity bool          `json:"discontinuity,omitempty"`
	Bytes         int64         `json:"bytes,omitempty"`
	Stored        bool          `json:"stored,omitempty"`
}

const journalVersion = 1

func toJournalSeg(s *segState) journalSeg {
	return journalSeg{Seq: s.seq, Key: s.Key, File: s.file, Duration: s.Duration, Start: s.Start,
		Discontinuity: s.Discontinuity, Bytes: s.Bytes, Stored: s.stored}
}

func fromJournalSeg(j journalSeg) *segState {
	return &segState{
		Segment: Segment{Key: j.Key, Duration: j.Duration, Start: j.Start, Discontinuity: j.Discontinuity, Bytes: j.Bytes},
		seq:     j.Seq, file: j.File, stored: j.Stored,
	}
}

// writeJournal atomically rewrites the journal from the writer's state.
func (w *Writer) writeJournal(playlistKey string) error {
	j := journal{Version: journalVersion, NextSeq: w.nextSeq, PendingDiscontinuity: w.pendingDisc,
		PlaylistKey: playlistKey, Segments: make([]journalSeg, 0, len(w.segs))}
	for _, s := range w.segs {
		j.Segments = append(j.Segments, toJournalSeg(s))
	}
	if w.cur != nil {
		c := toJournalSeg(&w.cur.segState)
		j.Current = &c
	}
	return saveJournal(w.cfg.WorkDir, &j)
}

func saveJournal(dir string, j *journal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return atomicWrite(dir, journalName, b, true)
}

func loadJournal(dir string) (*journal, error) {
	b, err := os.ReadFile(filepath.Join(dir, journalName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoJournal
		}
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("hls: journal: %w", err)
	}
	if j.Version != journalVersion {
		return nil, fmt.Errorf("hls: journal version %d not supported", j.Version)
	}
	return &j, nil
}

// syncFile is f.Sync; the mux-only benchmark replaces it to measure CPU cost alone.
var syncFile = (*os.File).Sync

// atomicWrite replaces dir/name with data: temp file, fsync, rename (and a directory
// fsync when durable is set, so the rename itself survives a power loss).
func atomicWrite(dir, name string, data []byte, durable bool) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if durable {
		if d, err := os.Open(dir); err == nil {
			_ = syncFile(d)
			_ = d.Close()
		}
	}
	return nil
}

// storeSegments stores every closed, not yet stored segment of segs. A failure other than
// ErrExists is logged and left for a retry; ErrExists is returned (joined) as an error.
// Segment files missing from dir are taken as stored when assumeMissingStored is set
// (Recover: the store moves the file, so a crash after the move but before the journal
// update leaves exactly that state).
func storeSegments(ctx context.Context, st storage.Store, dir string, segs []*segState,
	log logger, assumeMissingStored bool) (changed bool, existsErr error, lastErr error) {
	for _, s := range segs {
		if s.stored {
			continue
		}
		p := filepath.Join(dir, s.file)
		if assumeMissingStored {
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				log.Warn("hls: segment file gone, assuming it was stored", "key", s.Key)
				s.stored, changed = true, true
				continue
			}
		}
		err := storeChecked(ctx, st, s.Key, p, assumeMissingStored)
		switch {
		case err == nil:
			s.stored, changed = true, true
		case errors.Is(err, storage.ErrExists):
			log.Error("hls: segment key already exists, local file kept", "key", s.Key, "file", p)
			existsErr = errors.Join(existsErr, fmt.Errorf("hls: store segment %q: %w", s.Key, err))
			lastErr = err
		default:
			log.Warn("hls: segment store failed, will retry", "key", s.Key, "err", err)
			lastErr = err
		}
	}
	return changed, existsErr, lastErr
}

// logger is the part of *slog.Logger used by the storing helpers.
type logger interface {
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// storeChecked stores the file at p under key. With sameIsOK, an ErrExists for an object
// whose bytes equal the local file counts as success (an earlier attempt stored it) and
// the local file is removed.
func storeChecked(ctx context.Context, st storage.Store, key, p string, sameIsOK bool) error {
	err := st.Store(ctx, key, p)
	if err == nil || !errors.Is(err, storage.ErrExists) || !sameIsOK {
		return err
	}
	same, cerr := sameContent(ctx, st, key, p)
	if cerr != nil || !same {
		return err
	}
	_ = os.Remove(p)
	return nil
}

// sameContent compares a stored object with a local file.
func sameContent(ctx context.Context, st storage.Store, key, p string) (bool, error) {
	local, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer local.Close()
	fi, err := local.Stat()
	if err != nil {
		return false, err
	}
	obj, err := st.Open(ctx, key)
	if err != nil {
		return false, err
	}
	defer obj.Close()
	if obj.Size() != fi.Size() {
		return false, nil
	}
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, errA := io.ReadFull(local, a)
		m, errB := io.ReadFull(obj, b[:n])
		if m != n || !bytes.Equal(a[:n], b[:m]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return true, nil
		}
		if errA != nil {
			return false, errA
		}
		if errB != nil {
			return false, errB
		}
	}
}

// storePending stores the closed segments and refreshes the live playlist when something
// was stored. It returns only ErrExists failures.
func (w *Writer) storePending(ctx context.Context) error {
	changed, existsErr, _ := storeSegments(ctx, w.cfg.Store, w.cfg.WorkDir, w.segs, w.log, false)
	if changed {
		w.writeLive()
	}
	return existsErr
}

// writeLive rewrites live.m3u8: an EVENT playlist of the longest stored prefix.
func (w *Writer) writeLive() {
	n := 0
	for n < len(w.segs) && w.segs[n].stored {
		n++
	}
	if n == 0 || n == w.liveStored {
		return
	}
	b, err := marshalPlaylist(w.segs[:n], playlist.MediaPlaylistTypeEvent, false, w.cfg.SliceDuration,
		func(key string) string { return w.cfg.SegmentURI(key) })
	if err == nil {
		err = atomicWrite(w.cfg.WorkDir, liveName, b, false)
	}
	if err != nil {
		w.log.Warn("hls: live playlist write failed", "err", err)
		return
	}
	w.liveStored = n
}

// targetDuration is the ceiling of the longest EXTINF as printed (five decimals).
func targetDuration(segs []*segState, floor time.Duration) int {
	maxD := floor
	for _, s := range segs {
		maxD = max(maxD, s.Duration)
	}
	// Round to the printed precision (10 µs) before taking the ceiling.
	sec := math.Round(maxD.Seconds()*1e5) / 1e5
	return max(1, int(math.Ceil(sec)))
}

// marshalPlaylist writes a media playlist. For EVENT playlists the target duration is at
// least the slice duration, so it rarely has to grow while the recording runs.
func marshalPlaylist(segs []*segState, typ playlist.MediaPlaylistType, endlist bool,
	floor time.Duration, uri func(key string) string) ([]byte, error) {
	if typ == playlist.MediaPlaylistTypeVOD {
		floor = 0
	}
	m := playlist.Media{
		Version:        3,
		TargetDuration: targetDuration(segs, floor),
		PlaylistType:   &typ,
		Endlist:        endlist,
	}
	for _, s := range segs {
		m.Segments = append(m.Segments, &playlist.MediaSegment{
			Duration:      s.Duration,
			URI:           uri(s.Key),
			Discontinuity: s.Discontinuity,
		})
	}
	return m.Marshal()
}

// relativeURI returns the URI of the object segKey relative to the directory of the
// object playlistKey, percent-encoded per path segment.
func relativeURI(playlistKey, segKey string) string {
	dir := path.Dir(playlistKey)
	var from []string
	if dir != "." && dir != "/" {
		from = strings.Split(strings.Trim(dir, "/"), "/")
	}
	to := strings.Split(strings.TrimLeft(segKey, "/"), "/")
	common := 0
	for common < len(from) && common < len(to)-1 && from[common] == to[common] {
		common++
	}
	parts := make([]string, 0, len(from)-common+len(to)-common)
	for range len(from) - common {
		parts = append(parts, "..")
	}
	for _, p := range to[common:] {
		parts = append(parts, url.PathEscape(p))
	}
	rel := strings.Join(parts, "/")
	if first, _, _ := strings.Cut(rel, "/"); strings.Contains(first, ":") {
		rel = "./" + rel // "a:b.ts" would read as a URI scheme
	}
	return rel
}

// finalize stores pending segments, then the VOD playlist under playlistKey, then removes
// the working files. journalFn journals the final state before the playlist is stored.
func finalize(ctx context.Context, st storage.Store, dir string, segs []*segState, playlistKey string,
	log logger, recovering bool, journalFn func() error) (Result, error) {
	if _, existsErr, lastErr := storeSegments(ctx, st, dir, segs, log, recovering); lastErr != nil {
		_ = journalFn()
		if existsErr != nil {
			return Result{}, existsErr
		}
		return Result{}, fmt.Errorf("hls: store segments: %w", lastErr)
	}
	if err := journalFn(); err != nil {
		return Result{}, fmt.Errorf("hls: journal: %w", err)
	}
	b, err := marshalPlaylist(segs, playlist.MediaPlaylistTypeVOD, true, 0,
		func(key string) string { return relativeURI(playlistKey, key) })
	if err != nil {
		return Result{}, err
	}
	if err := atomicWrite(dir, playlistName, b, false); err != nil {
		return Result{}, fmt.Errorf("hls: playlist: %w", err)
	}
	// An equal playlist already under the key was stored by an earlier attempt of this
	// very file (the key was journaled before), so it counts as stored.
	if err := storeChecked(ctx, st, playlistKey, filepath.Join(dir, playlistName), true); err != nil {
		return Result{}, fmt.Errorf("hls: store playlist %q: %w", playlistKey, err)
	}

	res := Result{PlaylistKey: playlistKey, PlaylistBytes: int64(len(b)), Recovered: recovering}
	res.Bytes = res.PlaylistBytes
	for _, s := range segs {
		res.Segments = append(res.Segments, s.Segment)
		res.Duration += s.Duration
		res.Bytes += s.Bytes
	}
	res.Start = segs[0].Start
	last := segs[len(segs)-1]
	res.End = last.Start.Add(last.Duration)

	removeWorkFiles(dir, segs, "")
	return res, nil
}

// removeWorkFiles removes the files this package creates in dir (never anything else).
func removeWorkFiles(dir string, segs []*segState, extra string) {
	names := []string{journalName, liveName, playlistName, journalName + tmpSuffix,
		liveName + tmpSuffix, playlistName + tmpSuffix}
	for _, s := range segs {
		names = append(names, s.file)
	}
	if extra != "" {
		names = append(names, extra)
	}
	for _, n := range names {
		_ = os.Remove(filepath.Join(dir, n))
	}
}

// Finish closes and stores the current segment, stores every segment still waiting, then
// stores the final VOD playlist (#EXT-X-PLAYLIST-TYPE:VOD ... #EXT-X-ENDLIST, segment URIs
// relative to the playlist's directory) under playlistKey, and removes the working files.
// If storing fails, the error is returned and Finish may be called again (the working
// files are kept). ErrNoMedia means no complete frame was ever written; nothing is stored
// and the working files are removed.
func (w *Writer) Finish(ctx context.Context, playlistKey string) (Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return Result{}, ErrFinished
	}
	if w.cur != nil {
		if err := w.closeCurrent(-1, false); err != nil {
			_ = w.writeJournal("")
			return Result{}, err
		}
	}
	if len(w.segs) == 0 {
		w.finished = true
		removeWorkFiles(w.cfg.WorkDir, nil, "")
		return Result{}, ErrNoMedia
	}
	res, err := finalize(ctx, w.cfg.Store, w.cfg.WorkDir, w.segs, playlistKey, w.log, false,
		func() error { return w.writeJournal(playlistKey) })
	if err != nil {
		return Result{}, err
	}
	w.finished = true
	return res, nil
}

// Close abandons the writer without finishing: it flushes and closes the open segment file
// but stores nothing and keeps the working directory, which Recover can turn into a stored
// file later. Use it when the process must stop without storing.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == nil {
		return nil
	}
	err := w.flushAudio()
	if err == nil {
		err = w.cur.bw.Flush()
	}
	if cerr := w.cur.f.Close(); err == nil {
		err = cerr
	}
	w.cur = nil
	w.sink.w = nil
	w.finished = true
	return err
}
