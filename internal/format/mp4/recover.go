package mp4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	journalfile "github.com/livrec/livrec/internal/format/journal"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/storage"
)

// Recover finalizes a file whose writer died (crash, kill -9) from its working
// directory: it parses the fragmented working file up to its last complete fragment,
// rebuilds the sample index, writes the progressive MP4 and stores it under key(end),
// end being the journaled start time plus the recovered duration. If the journal already
// names a key (the crash happened inside Finish or an earlier Recover), that key is used.
// On success the working files are removed.
//
// Recover is idempotent: run again after a failure it rebuilds the same bytes, and an
// ErrExists for an object with exactly those bytes counts as success. ErrNoJournal means
// there is nothing to recover; ErrNoMedia that nothing decodable was recorded (the
// working files are removed).
func Recover(ctx context.Context, workDir string, store storage.Store, key func(end time.Time) string,
	logger *slog.Logger) (format.Result, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	j, err := loadJournal(workDir)
	if err != nil {
		return format.Result{}, err
	}
	if j.Key == "" && key == nil {
		return format.Result{}, errors.New("mp4: Recover needs a key function")
	}
	workPath := filepath.Join(workDir, workName)
	x, valid, err := scanWorkFile(workPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		logger.Warn("mp4: journal without working file", "dir", workDir)
		removeWorkFiles(workDir)
		return format.Result{}, ErrNoMedia
	case err != nil:
		return format.Result{}, fmt.Errorf("mp4: recover %s: %w", workPath, err)
	}
	if st, err := os.Stat(workPath); err == nil && st.Size() > valid {
		logger.Warn("mp4: working file ends in an incomplete fragment, dropped", "file", workPath,
			"bytes", st.Size()-valid)
	}
	if x.samples() == 0 {
		logger.Warn("mp4: working file holds no complete fragment", "file", workPath)
		removeWorkFiles(workDir)
		return format.Result{}, ErrNoMedia
	}
	k := j.Key
	if k == "" {
		k = key(j.Start.Add(x.computeTiming().duration))
		j.Key = k
		if err := saveJournal(workDir, j, false); err != nil {
			return format.Result{}, fmt.Errorf("mp4: journal: %w", err)
		}
	}
	res, err := produce(ctx, store, workDir, x, k, false)
	if err != nil {
		return format.Result{}, err
	}
	logger.Info("mp4: recovered", "key", k, "duration", res.Duration, "bytes", res.Bytes)
	return res, nil
}

// produce writes the progressive file for x, stores it under key and removes the
// working files.
func produce(ctx context.Context, store storage.Store, workDir string, x *index, key string, noSync bool) (format.Result, error) {
	out := filepath.Join(workDir, outName)
	size, dur, err := x.writeProgressive(out, filepath.Join(workDir, workName), noSync)
	if err != nil {
		return format.Result{}, fmt.Errorf("mp4: write %s: %w", out, err)
	}
	// An object with the same bytes is this file, stored by an earlier attempt that died
	// before cleaning up; a key another recording holds moves the file to the next free key.
	used, err := storage.StoreUnique(ctx, store, key, out, true)
	if err != nil {
		return format.Result{}, fmt.Errorf("mp4: store %s: %w", key, err)
	}
	removeWorkFiles(workDir)
	return format.Result{Key: used, Duration: dur, Bytes: size}, nil
}

// removeWorkFiles removes the working files: the journal first, so that a crash in
// between leaves nothing that Recover would try to store again.
func removeWorkFiles(dir string) {
	os.Remove(filepath.Join(dir, journalName))
	syncDir(dir)
	for _, n := range []string{workName, outName, journalName + tmpSuffix} {
		os.Remove(filepath.Join(dir, n))
	}
}

// saveJournal writes the journal atomically, durably unless noSync (Config.NoSync).
func saveJournal(dir string, j *journal, noSync bool) error {
	return journalfile.SaveSync(dir, journalName, j, !noSync)
}

func loadJournal(dir string) (*journal, error) {
	var j journal
	if err := journalfile.Load(dir, journalName, &j, journalVersion); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoJournal
		}
		return nil, fmt.Errorf("mp4: %w", err)
	}
	return &j, nil
}

// JournalVersion implements journal.Versioned.
func (j *journal) JournalVersion() int { return j.Version }

func syncDir(dir string) { journalfile.SyncDir(dir) }
