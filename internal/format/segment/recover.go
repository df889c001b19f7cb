package segment

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/livrec/livrec/internal/storage"
)

// Partial is the segment a crashed writer was writing.
type Partial struct {
	Path     string        // its working file (possibly torn anywhere)
	OutStart time.Duration // output time of its first unit
	MapKey   string        // object key of its initialization segment ("" if none)
	MapPath  string        // the initialization segment's working file, if not stored yet
	// Whole is a prefix of the file known to hold whole units (written at a pause; 0 if
	// none): a cut may keep all of it.
	Whole int64
}

// CutFunc truncates a partial segment after its last complete unit and returns the media
// duration it still holds and its new size. A zero duration means nothing usable: the
// file is dropped.
type CutFunc func(ctx context.Context, p Partial) (time.Duration, int64, error)

// Recover finalizes a file whose writer died (crash, kill -9) from its working directory:
// it reads the journal, stores the complete objects that were not stored yet, cuts the
// partial current segment with cut (dropping it if it holds nothing), stores it, and
// stores the VOD playlist under playlistKey(end), end being the wall start of the last
// segment plus its duration. If the journal already names a playlist key (the crash
// happened inside Finish or an earlier Recover), that key is used instead. On success the
// working files are removed.
//
// Recover is idempotent: run again after a failure, it finds the state it journaled and
// takes an ErrExists for an object it had already stored (same bytes) as success.
// ErrNoJournal means there is nothing to recover; ErrNoMedia that nothing decodable was
// recorded (the working files are removed).
func Recover(ctx context.Context, name, workDir string, store storage.Store, playlistKey func(end time.Time) string,
	logger *slog.Logger, cut CutFunc) (Result, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("format", name)
	fin := finalizer{name: name, st: store, dir: workDir, log: logger, recovering: true}
	j, err := loadJournal(workDir)
	if err != nil {
		if errors.Is(err, ErrNoJournal) {
			return Result{}, err
		}
		return Result{}, fin.errorf("%w", err)
	}
	maps := fromJournalMaps(j.Maps)
	// An initialization segment whose sync had not run may be torn: the segments that
	// use it are dropped with it.
	torn := map[string]bool{}
	for _, m := range maps {
		if m.unsynced && !syncWhole(filepath.Join(workDir, m.file), m.bytes) {
			logger.Warn("unsynced initialization segment incomplete after the crash, dropped with its segments", "file", m.file)
			torn[m.key] = true
		}
		m.unsynced = false
	}
	segs := make([]*segState, 0, len(j.Segments)+1)
	disc := false
	for _, js := range j.Segments {
		s := fromJournalSeg(js)
		if torn[s.MapKey] {
			_ = os.Remove(filepath.Join(workDir, s.file))
			disc = true
			continue
		}
		if s.unsynced && !syncWhole(filepath.Join(workDir, s.file), s.Bytes) {
			// Its sync had not run: a power loss may have torn it. Dropped, and the
			// timeline goes on after a discontinuity.
			logger.Warn("unsynced segment incomplete after the crash, dropped", "file", s.file)
			_ = os.Remove(filepath.Join(workDir, s.file))
			disc = true
			continue
		}
		s.unsynced = false
		s.Discontinuity = s.Discontinuity || (disc && len(segs) > 0)
		disc = false
		segs = append(segs, s)
	}

	var extra string // partial file to remove if it is dropped
	if c := j.Current; c != nil && j.PlaylistKey == "" {
		if torn[c.Map] {
			extra = c.File
		} else {
			p := Partial{Path: filepath.Join(workDir, c.File), OutStart: c.OutStart, MapKey: c.Map, Whole: c.Whole}
			for _, m := range maps {
				if m.key == c.Map && !m.stored {
					p.MapPath = filepath.Join(workDir, m.file)
				}
			}
			dur, size, err := cut(ctx, p)
			switch {
			case errors.Is(err, os.ErrNotExist):
				logger.Warn("partial segment file missing", "file", p.Path)
			case err != nil:
				return Result{}, fin.errorf("recover partial segment: %w", err)
			case dur <= 0:
				logger.Warn("partial segment holds no complete frame, dropped", "file", p.Path)
				extra = c.File
			default:
				s := fromJournalSeg(*c)
				s.Duration, s.Bytes = dur, size
				s.Discontinuity = s.Discontinuity || (disc && len(segs) > 0)
				segs = append(segs, s)
			}
		}
	}
	if len(segs) == 0 {
		removeWorkFiles(workDir, nil, maps, extra)
		return Result{}, ErrNoMedia
	}
	// Initialization segments no segment uses (the partial one was dropped) are not
	// stored (they may have been already: that object then stays unreferenced).
	used := map[string]bool{}
	for _, s := range segs {
		used[s.MapKey] = true
	}
	var keep []*mapState
	for _, m := range maps {
		if used[m.key] {
			keep = append(keep, m)
		} else {
			_ = os.Remove(filepath.Join(workDir, m.file))
		}
	}
	maps = keep

	// Journal the final segment list first, so a repeated Recover does not re-cut.
	final := &journal{Version: journalVersion, NextSeq: j.NextSeq, PlaylistKey: j.PlaylistKey}
	if final.PlaylistKey == "" {
		last := segs[len(segs)-1]
		final.PlaylistKey = playlistKey(last.Start.Add(last.Duration))
	}
	fin.journal = func() error {
		final.Segments = final.Segments[:0]
		for _, s := range segs {
			final.Segments = append(final.Segments, toJournalSeg(s))
		}
		final.Maps = toJournalMaps(maps)
		return saveJournal(workDir, final, false)
	}
	if err := fin.journal(); err != nil {
		return Result{}, fin.errorf("journal: %w", err)
	}
	if extra != "" {
		_ = os.Remove(filepath.Join(workDir, extra))
	}
	return fin.run(ctx, segs, maps, final.PlaylistKey)
}

// syncWhole fsyncs the file at p and reports whether it holds all its bytes (size).
func syncWhole(p string, size int64) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	return err == nil && st.Size() == size && f.Sync() == nil
}
