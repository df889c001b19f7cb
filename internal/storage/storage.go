// Package storage puts finished recording files under their object keys. A store only
// ever creates objects: it never replaces, modifies or deletes one. Writers produce their
// bytes in a local working file first and hand the complete file over with Store.
//
// Backends:
//   - Local (the default): files below a root directory, hard-linked into place.
//   - S3: an S3-compatible bucket (minio-go). Store checks the key with HEAD, then uploads
//     with If-None-Match: * (one PUT up to the part size, 64 MiB by default, a streamed
//     multipart upload above it, whose CompleteMultipartUpload carries the condition), so
//     neither the client nor the server ever replaces an object; a taken key is
//     ErrExists. Check probes credentials, bucket and write permission at start-up.
//
// Uploader is the spool that goes in front of a remote backend: Store moves the file into a
// spool directory with an fsync'd journal entry and returns at once; background workers
// upload FIFO per stream (WithStream, UploaderOptions.StreamOf) with exponential backoff,
// so recording continues while the object store is unreachable, a playlist reaches the
// store after the segments stored before it, and a restart after kill -9 uploads what is
// left exactly once. A spool size limit raises an alarm (callback and metric) but never
// drops media.
//
// Wiring (config `s3: [{endpoint, accessKey, secretKey, secure, region, pathStyle}]`):
//
//	s3, err := storage.NewS3(cfg.S3[0], bucket) // keys may come from LIVREC_S3_* / AWS_*
//	if err := s3.Check(ctx); err != nil { log it, raise a status event; keep recording }
//	up, err := storage.NewUploader(filepath.Join(dataDir, "spool"), s3, opts)
//	up.Start(ctx)             // also re-queues a previous run's spool
//	// writers get up as their storage.Store; on shutdown: up.Drain(ctx) (bounded), up.Close()
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

// Deleter is a store that can delete objects. Only the VOD library uses it, on its own
// keys (deleting an asset deletes its files); recordings in the user's storage are never
// deleted by livrec unless asked for explicitly.
type Deleter interface {
	// Delete removes the object under key; a missing object is not an error.
	Delete(ctx context.Context, key string) error
}
