// Package format defines what every output format writer is to the recording task: one
// recording *file* of one format (a playlist with its segments, or one container file).
// The writers live in the sub-packages: hls (MPEG-TS + m3u8), cmaf (fMP4 + m3u8), mp4
// (progressive MP4) and flvfile (FLV). A writer knows nothing of RTMP, rules or the
// catalog: it turns access units into bytes in its working directory and hands finished
// objects to a storage.Store.
package format

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/livrec/livrec/internal/media"
)

// Writer is one recording file being written.
type Writer interface {
	// SetTracks declares the tracks before the first access unit, and announces a track
	// or parameter change later. A writer whose container can signal the change does so
	// (a discontinuity, a new init segment); one that cannot returns ErrNeedNewFile and
	// stays unchanged: the task then finishes it and opens the next file.
	SetTracks(video, audio *media.Track) error
	// WriteAU writes one access unit (timestamps already repaired: monotonic per track).
	// The unit and its bytes are valid only during the call (the recording task lends
	// the ingest's memory): a writer copies what it keeps (AccessUnit.Clone).
	WriteAU(au *media.AccessUnit) error
	// Discontinuity marks a stitched resume (a new publish continues the file).
	Discontinuity()
	// Duration is the media duration written so far.
	Duration() time.Duration
	// Finish completes the file and stores it under key (extension included).
	Finish(ctx context.Context, key string) (Result, error)
}

// Pauser is implemented by writers that act when their input pauses: the publish ended
// and the stitch window runs, so nothing may come for a while (or ever: Finish follows
// the window, which can be hours). Pause writes out what the writer holds in the process
// (buffers, media held back for a fragment) so that the working files are a recoverable
// prefix of everything received, and returns sync, which makes them durable (fsync). Pause
// itself does not wait for the disk; sync may, and is called on another goroutine, maybe
// after the writer went on or finished (it works on its own descriptors). sync is nil
// when there is nothing to make durable.
type Pauser interface {
	Pause() (sync func() error)
}

// Syncer runs the fsyncs of finished data off the goroutine that feeds a writer (the
// publisher's connection), so a disk that falls behind never stalls reading.
type Syncer interface {
	// Go runs fn on another goroutine and returns at once; bytes is about what fn makes
	// durable, counted as waiting until fn returns. The bound on what waits is applied to
	// the writer's caller, before it hands over more media (backpressure), never in Go: a
	// writer calls Go with its lock held. fn's error is reported by the Syncer (and by fn).
	Go(bytes int64, fn func() error)
}

// SyncLater opens the files at paths now (read-only descriptors of their own) and returns
// a function that fsyncs and closes them: Pauser.Pause's sync. Opening now pins the files
// written so far, even if they are renamed or removed before the sync runs; fsync on any
// descriptor of a file makes its data durable.
func SyncLater(paths ...string) func() error {
	var files []*os.File
	var errs []error
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	return func() error {
		for _, f := range files {
			if err := f.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("sync %s: %w", f.Name(), err))
			}
			f.Close()
		}
		return errors.Join(errs...)
	}
}

// Errors every writer shares (the sub-packages' names for them are aliases).
var (
	// ErrNoMedia is returned by Finish and Recover when nothing was recorded: nothing is
	// stored, and the file is not an error but an empty recording (a push that dropped
	// before its first keyframe).
	ErrNoMedia = errors.New("no media recorded")
	// ErrFinished is returned by calls on a writer after a successful Finish.
	ErrFinished = errors.New("writer already finished")
	// ErrNoTracks is returned by WriteAU before the first SetTracks.
	ErrNoTracks = errors.New("access unit before SetTracks")
	// ErrNoJournal is returned by Recover when the work directory holds no recording
	// state: nothing was ever written there, or the file was finished (or recovered)
	// already — the writer cannot tell which, so it is not ErrNoMedia.
	ErrNoJournal = errors.New("no recording state in work directory")
)

// ErrNeedNewFile is returned by SetTracks when the container cannot carry the change.
var ErrNeedNewFile = errors.New("the container cannot signal this track change: start a new file")

// Result describes a finished (or recovered) file.
type Result struct {
	Key      string        // object key of the file or playlist
	Duration time.Duration // media duration
	Bytes    int64         // bytes stored (all segments, init and playlist included)
	Segments int           // stored segments (0 for single-file formats)
}

// Seconds is the media duration in seconds rounded to the millisecond: the precision
// of the catalog and the APIs for every format (flv's timestamps are milliseconds; the
// microsecond ticks of mp4 or MPEG-TS would only show up as noise such as 20.005986394).
func (r Result) Seconds() float64 {
	return r.Duration.Round(time.Millisecond).Seconds()
}

// IsDiskFull reports an error of a full file system (or an exhausted quota): the write
// may succeed once space is freed, unlike other I/O errors.
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
