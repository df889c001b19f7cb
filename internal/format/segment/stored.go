package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/livrec/livrec/internal/storage"
)

// StoredState returns the part of the writer's state that reached storage, as JSON: the
// longest prefix of segments that are stored (with stored initialization segments), their
// durations and discontinuities, and the next segment number. Another process continues
// the file from it (Config.Resume) or finalizes it (FinishStored) without this one's
// working files. nil while nothing is stored.
func (w *Writer) StoredState() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	mapStored := map[string]bool{}
	for _, m := range w.maps {
		mapStored[m.key] = m.stored
	}
	j := journal{Version: journalVersion, NextSeq: w.nextSeq, PendingDiscontinuity: true}
	for _, s := range w.segs {
		if !s.stored || (s.MapKey != "" && !mapStored[s.MapKey]) {
			break
		}
		js := toJournalSeg(s)
		js.File = ""
		j.Segments = append(j.Segments, js)
	}
	if len(j.Segments) == 0 {
		return nil
	}
	for _, m := range w.maps {
		if m.stored {
			j.Maps = append(j.Maps, journalMap{N: m.n, Key: m.key, Bytes: m.bytes, Stored: true})
		}
	}
	b, _ := json.Marshal(j)
	return b
}

// parseStored reads a StoredState.
func parseStored(state []byte) (*journal, error) {
	var j journal
	if err := json.Unmarshal(state, &j); err != nil {
		return nil, fmt.Errorf("stored state: %w", err)
	}
	if j.Version != journalVersion {
		return nil, fmt.Errorf("stored state: version %d not supported (want %d)", j.Version, journalVersion)
	}
	for _, s := range j.Segments {
		if !s.Stored {
			return nil, fmt.Errorf("stored state: segment %d is not stored", s.Seq)
		}
	}
	return &j, nil
}

// storedSegs are the segments of a StoredState; their working file names are ones no
// writer makes (they are stored, never read from here).
func storedSegs(j *journal) []*segState {
	segs := make([]*segState, 0, len(j.Segments))
	for _, js := range j.Segments {
		s := fromJournalSeg(js)
		s.file = fmt.Sprintf("stored%06d", s.seq)
		segs = append(segs, s)
	}
	return segs
}

// resume makes the writer continue the file of a StoredState: its segments come first in
// the playlists, numbering goes on after them, and the first segment written here starts
// a new run marked #EXT-X-DISCONTINUITY (the timeline continues after them).
func (w *Writer) resume(state []byte) error {
	j, err := parseStored(state)
	if err != nil {
		return w.cfg.errorf("%w", err)
	}
	w.maps = fromJournalMaps(j.Maps)
	for _, s := range storedSegs(j) {
		w.segs = append(w.segs, s)
		w.doneDur += s.Duration
	}
	w.nextSeq = j.NextSeq
	w.pendingDisc = len(w.segs) > 0
	w.saveState() // the journal: a crash here recovers the file with the segments stored elsewhere
	return nil
}

// FinishStored finalizes the file of a StoredState as Finish would, when the writer that
// stored its segments is gone (its node died): the VOD playlist of those segments is
// stored under playlistKey(end), end being the wall start of the last segment plus its
// duration; workDir (private, existing) holds the playlist until it is stored. Run again
// after a failure it stores the same playlist, and an equal object already under the key
// counts as stored: a retry never makes a second object.
func FinishStored(ctx context.Context, name string, st storage.Store, state []byte, workDir string,
	playlistKey func(end time.Time) string, logger *slog.Logger) (Result, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fin := finalizer{name: name, st: st, dir: workDir, log: logger.With("format", name), recovering: true,
		journal: func() error { return nil }}
	j, err := parseStored(state)
	if err != nil {
		return Result{}, fin.errorf("%w", err)
	}
	if len(j.Segments) == 0 {
		return Result{}, ErrNoMedia
	}
	segs := storedSegs(j)
	last := segs[len(segs)-1]
	res, err := fin.run(ctx, segs, fromJournalMaps(j.Maps), playlistKey(last.Start.Add(last.Duration)))
	_ = os.Remove(workDir)
	return res, err
}
