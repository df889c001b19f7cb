// Package storage puts finished recording files under their object keys. A store only
// ever creates objects: it never replaces, modifies or deletes one. Writers produce their
// bytes in a local working file first (the spool) and hand the complete file over with
// Store; local disk is the default backend.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrExists is returned when an object already exists under the key: livrec never
// overwrites, so a clash is an error for the caller to report.
var ErrExists = errors.New("object already exists")

// ErrNotFound is returned by Open for a key with no object.
var ErrNotFound = errors.New("object not found")

// Store is a create-only object store.
type Store interface {
	// Store makes the complete local file at path available under key. It fails with
	// ErrExists, and leaves the local file in place, if the key is taken. On success the
	// local file is gone (moved, or uploaded and removed).
	Store(ctx context.Context, key, path string) error
	// Open opens a stored object for reading (file serving).
	Open(ctx context.Context, key string) (Object, error)
	// Describe names the backend for logs and the catalog (e.g. "local:/data/files").
	Describe() string
}

// Object is a stored object opened for reading.
type Object interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}
