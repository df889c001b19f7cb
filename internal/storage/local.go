package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Local is the default backend: objects are files below Root, the key being the path
// relative to it. Keys are expected to be clean (see package keytemplate); Local checks
// again that nothing escapes Root.
type Local struct {
	Root string
	// NoSync is for offline conversion: the input remains, so the directories of stored
	// objects (and copies across file systems) are not fsync'd; a crash means rerun.
	// Default: durable.
	NoSync bool
}

// NewLocal returns a local-disk store rooted at root, creating the directory.
func NewLocal(root string) (*Local, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("storage root %s: %w", abs, err)
	}
	return &Local{Root: abs}, nil
}

// Describe implements Store.
func (l *Local) Describe() string { return "local:" + l.Root }

// Path maps a key to its file path, refusing keys that would escape the root.
func (l *Local) Path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.ContainsRune(key, 0) {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fmt.Errorf("invalid object key %q", key)
		}
	}
	return filepath.Join(l.Root, filepath.FromSlash(key)), nil
}

// Store implements Store. The file is hard-linked under its key, which fails if the key
// exists, so an object is never replaced even when two writers race; across file systems
// it is copied to a temporary name next to the key and linked from there.
func (l *Local) Store(_ context.Context, key, path string) error {
	dst, err := l.Path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	err = os.Link(path, dst)
	if errors.Is(err, syscall.EXDEV) {
		err = copyAndLink(path, dst, !l.NoSync)
	}
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	if err != nil {
		return err
	}
	if !l.NoSync {
		syncDir(filepath.Dir(dst))
	}
	return os.Remove(path)
}

func copyAndLink(src, dst string, sync bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".livrec-*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), dst)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Open implements Store. A key whose path below Root passes through a symbolic link is
// not found: livrec never stores one, and following it would serve whatever it points
// to (any file the process can read) through /files/.
func (l *Local) Open(_ context.Context, key string) (Object, error) {
	p, err := l.Path(key)
	if err != nil {
		return nil, err
	}
	dir := l.Root
	for _, el := range strings.Split(key, "/") {
		dir = filepath.Join(dir, el)
		st, err := os.Lstat(dir)
		if errors.Is(err, os.ErrNotExist) || err == nil && st.Mode()&os.ModeSymlink != 0 {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, err
		}
	}
	// O_NOFOLLOW: the last element cannot have been swapped for a link since.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		f.Close()
		return nil, ErrNotFound
	}
	return &localObject{File: f, size: st.Size(), mod: st.ModTime()}, nil
}

type localObject struct {
	*os.File
	size int64
	mod  time.Time
}

func (o *localObject) Size() int64        { return o.size }
func (o *localObject) ModTime() time.Time { return o.mod }
