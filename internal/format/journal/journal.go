// Package journal keeps the small JSON state files ("journals") that let a format
// writer's working directory be finished after a crash: written atomically (temp file,
// fsync, rename, directory fsync) and read back with a version check.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SyncFile is the fsync used for journals; benchmarks replace it to measure CPU alone.
var SyncFile = (*os.File).Sync

const tmpSuffix = ".tmp"

// WriteFile replaces dir/name with data atomically; with durable the directory is
// fsync'd too, so the rename itself survives a power loss.
func WriteFile(dir, name string, data []byte, durable bool) error {
	return writeFile(dir, name, data, true, durable)
}

// WriteFileNoSync replaces dir/name with data (temp file and rename, so a reader never
// sees a partial file) without any fsync: for writers configured with NoSync (offline
// conversion: the input remains, so nothing is fsync'd; a crash means rerun).
func WriteFileNoSync(dir, name string, data []byte) error {
	return writeFile(dir, name, data, false, false)
}

// OverwriteNoSync writes data to dir/name in place (truncate, write), without fsync: no
// new file (inode) per call, which matters on file systems where creating files is slow,
// but a crash or a concurrent reader may see a partial file. Only for files that are never
// stored or linked elsewhere (journals, live playlists) of writers configured with NoSync.
func OverwriteNoSync(dir, name string, data []byte) error {
	return os.WriteFile(filepath.Join(dir, name), data, 0o644)
}

func writeFile(dir, name string, data []byte, syncFile, syncDir bool) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && syncFile {
		err = SyncFile(f)
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
	if syncDir {
		SyncDir(dir)
	}
	return nil
}

// SyncDir fsyncs a directory (best effort).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = SyncFile(d)
		_ = d.Close()
	}
}

// SaveLater is Save without waiting for the disk (WriteFileLater).
func SaveLater(dir, name string, v any) (sync func() error, err error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return WriteFileLater(dir, name, b)
}

// WriteFileLater is WriteFile without waiting for the disk: data is written at once,
// atomically (temp file, rename), and the returned function makes it durable (fsync of
// the file and of dir), for a format.Syncer to run off the goroutine that reads a
// publisher's connection. Until it has run, a crash may lose the file as it may lose the
// media written with it. If the file was replaced since, its newer content is synced; if
// removed, nothing is.
func WriteFileLater(dir, name string, data []byte) (sync func() error, err error) {
	if err := WriteFileNoSync(dir, name, data); err != nil {
		return nil, err
	}
	return func() error {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		err = SyncFile(f)
		f.Close()
		SyncDir(dir)
		if err != nil {
			return fmt.Errorf("sync %s: %w", filepath.Join(dir, name), err)
		}
		return nil
	}, nil
}

// Versioned is a journal with a format version.
type Versioned interface{ JournalVersion() int }

// Save writes v as JSON to dir/name, atomically and durably.
func Save(dir, name string, v any) error { return SaveSync(dir, name, v, true) }

// SaveSync is Save, or with sync false a Save without any fsync, in place
// (OverwriteNoSync): for writers configured with NoSync, whose journal is never read
// after a crash (a crash means rerun).
func SaveSync(dir, name string, v any, sync bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if !sync {
		return OverwriteNoSync(dir, name, b)
	}
	return WriteFile(dir, name, b, true)
}

// Load reads dir/name into v and checks its version. A missing file gives an error
// wrapping os.ErrNotExist.
func Load(dir, name string, v Versioned, version int) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if got := v.JournalVersion(); got != version {
		return fmt.Errorf("%s: version %d not supported (want %d)", name, got, version)
	}
	return nil
}

// CheckWorkDir verifies that dir is an existing directory that holds no journal name:
// a writer must not start over a recording that was not recovered.
func CheckWorkDir(dir, name string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("work dir %s is not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return fmt.Errorf("work dir %s holds a recording (%s): recover it first", dir, name)
	}
	return nil
}
