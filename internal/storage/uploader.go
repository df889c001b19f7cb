package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is returned by Uploader.Store after Close.
var ErrClosed = errors.New("uploader closed")

// UploaderOptions tunes an Uploader. The zero value is usable.
type UploaderOptions struct {
	// StreamOf names the upload queue of a key when the Store context carries none (see
	// WithStream). Items of one stream are uploaded one at a time in the order they were
	// stored; different streams upload in parallel. nil puts every key into one queue (a
	// single global FIFO: strictly ordered, one upload at a time).
	StreamOf func(key string) string
	// Workers bounds the uploads running at once across streams (default 4).
	Workers int
	// MinBackoff and MaxBackoff bound the retry delay after a failed attempt; it doubles
	// per failure of the same item, with ±20 % jitter (defaults 500 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one upload attempt, plus one second per MiB of the item
	// (default 1 min), so a hung connection is retried rather than blocking the queue.
	AttemptTimeout time.Duration
	// SpoolLimit raises the alarm when the spool holds more bytes than this (0: none).
	// Nothing is ever dropped: recording continues into the spool.
	SpoolLimit int64
	// OnSpoolLimit is called when the spool goes over the limit (over=true) and when it is
	// back under it. It runs in its own goroutine.
	OnSpoolLimit func(over bool, spoolBytes, limit int64)
	// OnError is called when an item is parked: the key exists in the backend with
	// different content. The item stays in the spool (it is retried at the next start, and
	// can never replace the stored object). It runs in its own goroutine.
	OnError func(key string, err error)
	// OnUploaded, if set, is called after an item reached the backend (or was found there
	// with identical content), in upload order per stream.
	OnUploaded func(key string, size int64)
	// Logger receives upload warnings and errors (default slog.Default()).
	Logger *slog.Logger
	// Metrics receives the upload metrics; nil keeps them private (see NewUploadMetrics).
	Metrics *UploadMetrics
}

type streamCtxKey struct{}

// WithStream returns a context that makes Uploader.Store queue the key on the named
// stream (typically the recording's id), so its playlist is uploaded after its segments
// while other recordings upload in parallel.
func WithStream(ctx context.Context, stream string) context.Context {
	return context.WithValue(ctx, streamCtxKey{}, stream)
}

// itemMeta is an item's journal entry, <seq>.json next to its data file <seq>.data.
type itemMeta struct {
	Key    string    `json:"key"`
	Stream string    `json:"stream"`
	Size   int64     `json:"size"`
	Queued time.Time `json:"queued"`
}

type item struct {
	itemMeta
	seq      uint64
	ready    bool // in the spool (journal and data written)
	parked   bool
	failures int
}

// Uploader is the spool: a Store that takes a complete local file, moves it into a spool
// directory and returns, and uploads it to the backend in the background.
//
// Store moves the file (a rename; a copy when the spool is on another file system) and
// writes an fsync'd journal entry first, so a file Store accepted survives kill -9: the
// next NewUploader+Start re-queues everything left in the spool in its original order. An
// item leaves the spool only after the backend confirmed it. Uploads retry with
// exponential backoff on every error (network, 5xx, 403...) except ErrExists; the spool
// keeps growing while the backend is unreachable and drains in order when it is back (the
// first successful upload ends every other stream's backoff wait).
//
// Exactly once: an ErrExists for an object whose content equals the spooled file (an
// attempt whose confirmation was lost, or a crash between upload and cleanup) counts as
// uploaded. An object with different content is a clash: the item is parked (kept, logged,
// counted, OnError), never retried into an overwrite.
//
// Store refuses (ErrExists) a key that is still in the spool. A clash with the backend is
// only found when the item is uploaded, so it is reported through OnError and the
// metrics, not by Store.
type Uploader struct {
	dir     string
	backend Store
	opts    UploaderOptions
	log     *slog.Logger
	m       *UploadMetrics
	lock    *os.File

	mu      sync.Mutex
	byKey   map[string]*item
	queues  map[string][]*item
	active  map[string]bool
	nextSeq uint64
	bytes   int64
	over    bool
	closed  bool
	started bool
	ctx     context.Context
	cancel  context.CancelFunc
	changed chan struct{} // closed and replaced on every state change (Drain)
	success chan struct{} // closed and replaced on every successful upload (ends backoffs)
	sem     chan struct{}
	wg      sync.WaitGroup
	cbWG    sync.WaitGroup
	items   map[uint64]*item // every item in the spool (parked included)
}

// NewUploader opens (creating it) the spool directory dir in front of backend and loads
// what a previous process left there; uploads start with Start. The spool is locked
// (flock) against a second process.
func NewUploader(dir string, backend Store, opts UploaderOptions) (*Uploader, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m := opts.Metrics
	if m == nil {
		m = NewUploadMetrics()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("spool %s: %w", abs, err)
	}
	lock, err := os.OpenFile(filepath.Join(abs, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", abs, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool %s is in use by another process: %w", abs, err)
	}
	u := &Uploader{
		dir: abs, backend: backend, opts: opts, log: log.With("component", "uploader"), m: m, lock: lock,
		byKey: map[string]*item{}, items: map[uint64]*item{}, queues: map[string][]*item{}, active: map[string]bool{},
		nextSeq: 1, changed: make(chan struct{}), success: make(chan struct{}), sem: make(chan struct{}, opts.Workers),
	}
	if err := u.load(); err != nil {
		lock.Close()
		return nil, err
	}
	m.attach(u)
	return u, nil
}

func (u *Uploader) metaPath(seq uint64) string {
	return filepath.Join(u.dir, fmt.Sprintf("%020d.json", seq))
}

// uploadSuffix names the hard link of a data file that an attempt hands to the backend.
const uploadSuffix = ".up"

func (u *Uploader) dataPath(seq uint64) string {
	return filepath.Join(u.dir, fmt.Sprintf("%020d.data", seq))
}

// load reads the journal: every <seq>.json with its <seq>.data is re-queued in seq order.
// A journal entry without data is the trace of a Store that died before moving the file
// (the caller still has it): nothing was spooled. (An upload never removes the data
// itself: the backend gets a second name, <seq>.data.up, see attempt.) Temporary files
// of interrupted copies and such second names are removed.
func (u *Uploader) load() error {
	ents, err := os.ReadDir(u.dir)
	if err != nil {
		return fmt.Errorf("spool %s: %w", u.dir, err)
	}
	var items []*item
	journaled := map[uint64]bool{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, uploadSuffix) {
			_ = os.Remove(filepath.Join(u.dir, name))
			continue
		}
		num, _, _ := strings.Cut(name, ".")
		if seq, err := strconv.ParseUint(num, 10, 64); err == nil {
			u.nextSeq = max(u.nextSeq, seq+1) // never reuse a number present on disk
		}
		base, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue
		}
		journaled[seq] = true
		b, err := os.ReadFile(filepath.Join(u.dir, name))
		var meta itemMeta
		if err == nil {
			err = json.Unmarshal(b, &meta)
		}
		if err != nil || checkKey(meta.Key) != nil {
			if _, serr := os.Stat(u.dataPath(seq)); errors.Is(serr, os.ErrNotExist) {
				// A Store that died while writing the entry: nothing was spooled.
				_ = os.Remove(filepath.Join(u.dir, name))
				continue
			}
			u.log.Error("spool: unreadable journal entry left in place", "file", name, "err", err)
			continue
		}
		st, err := os.Stat(u.dataPath(seq))
		if errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(u.metaPath(seq))
			continue
		}
		if err != nil {
			return fmt.Errorf("spool %s: %w", u.dir, err)
		}
		meta.Size = st.Size()
		items = append(items, &item{itemMeta: meta, seq: seq, ready: true})
	}
	// Data without a journal entry cannot happen (the entry is made durable first); should
	// one appear anyway, it is reported and left alone, never removed.
	for _, e := range ents {
		if num, ok := strings.CutSuffix(e.Name(), ".data"); ok {
			if seq, err := strconv.ParseUint(num, 10, 64); err == nil && !journaled[seq] {
				u.log.Error("spool: file without journal entry (key unknown) left in place", "file", filepath.Join(u.dir, e.Name()))
			}
		}
	}
	slices.SortFunc(items, func(a, b *item) int { return cmpUint(a.seq, b.seq) })
	for _, it := range items {
		if old, dup := u.byKey[it.Key]; dup {
			// Two spooled files for one key (a caller re-stored after a crash): upload the
			// first; the second then meets ErrExists and is compared (same → done).
			u.log.Warn("spool: key spooled twice", "key", it.Key, "first", old.seq, "second", it.seq)
		} else {
			u.byKey[it.Key] = it
		}
		u.queues[it.Stream] = append(u.queues[it.Stream], it)
		u.items[it.seq] = it
		u.bytes += it.Size
	}
	if len(items) > 0 {
		u.log.Info("spool: re-queued items from a previous run", "items", len(items), "bytes", u.bytes)
	}
	u.checkLimitLocked()
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Describe implements Store: the backend's description (objects end up there).
func (u *Uploader) Describe() string { return u.backend.Describe() }

// Backend returns the store the Uploader uploads to.
func (u *Uploader) Backend() Store { return u.backend }

// Dir returns the spool directory.
func (u *Uploader) Dir() string { return u.dir }

// Store implements Store: it moves the file at path into the spool, journals it and
// returns; the upload happens in the background. It fails with ErrExists (the file left
// in place) if key is still in the spool.
func (u *Uploader) Store(ctx context.Context, key, path string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("spool %s: %s is not a regular file", key, path)
	}
	stream, ok := ctx.Value(streamCtxKey{}).(string)
	if !ok && u.opts.StreamOf != nil {
		stream = u.opts.StreamOf(key)
	}
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return ErrClosed
	}
	if _, dup := u.byKey[key]; dup {
		u.mu.Unlock()
		return fmt.Errorf("%s (still in the upload spool): %w", key, ErrExists)
	}
	it := &item{itemMeta: itemMeta{Key: key, Stream: stream, Size: st.Size(), Queued: time.Now().UTC()}, seq: u.nextSeq}
	u.nextSeq++
	u.byKey[key] = it // reserved: a concurrent Store of the key fails
	u.mu.Unlock()

	if err := u.spool(it, path); err != nil {
		u.mu.Lock()
		delete(u.byKey, key)
		u.mu.Unlock()
		return fmt.Errorf("spool %s: %w", key, err)
	}

	u.mu.Lock()
	it.ready = true
	u.items[it.seq] = it
	u.queues[stream] = append(u.queues[stream], it)
	u.bytes += it.Size
	u.checkLimitLocked()
	u.kickLocked(stream)
	u.notifyLocked()
	u.mu.Unlock()
	u.m.queued(it.Size)
	return nil
}

// spool writes the journal entry (fsync'd) and then moves the file in.
func (u *Uploader) spool(it *item, src string) error {
	b, err := json.Marshal(it.itemMeta)
	if err != nil {
		return err
	}
	meta := u.metaPath(it.seq)
	if err := writeSynced(meta+".tmp", b); err != nil {
		return err
	}
	if err := os.Rename(meta+".tmp", meta); err != nil {
		_ = os.Remove(meta + ".tmp")
		return err
	}
	// The entry must be durable before the data can appear: data without an entry would
	// have no key.
	syncDir(u.dir)
	data := u.dataPath(it.seq)
	err = os.Rename(src, data)
	if errors.Is(err, syscall.EXDEV) {
		err = copyInto(src, data)
	}
	if err != nil {
		_ = os.Remove(meta)
		return err
	}
	syncDir(u.dir)
	return nil
}

func writeSynced(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(p)
	}
	return err
}

// copyInto copies src to dst through dst.tmp (fsync'd, renamed) and removes src.
func copyInto(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Remove(src)
}

// Start starts the background uploads, including what an earlier process left in the
// spool. Uploads stop when ctx is cancelled or Close is called.
func (u *Uploader) Start(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return ErrClosed
	}
	if u.started {
		return errors.New("uploader already started")
	}
	u.started = true
	u.ctx, u.cancel = context.WithCancel(ctx)
	for s := range u.queues {
		u.kickLocked(s)
	}
	return nil
}

// kickLocked starts the worker of stream if it has work and none runs.
func (u *Uploader) kickLocked(stream string) {
	if !u.started || u.closed || u.active[stream] || len(u.queues[stream]) == 0 {
		return
	}
	u.active[stream] = true
	u.wg.Add(1)
	go u.run(stream)
}

func (u *Uploader) notifyLocked() {
	close(u.changed)
	u.changed = make(chan struct{})
}

// run uploads the items of one stream in order until its queue is empty.
func (u *Uploader) run(stream string) {
	defer u.wg.Done()
	ctx := u.ctx
	for {
		u.mu.Lock()
		q := u.queues[stream]
		if len(q) == 0 || u.closed || ctx.Err() != nil {
			delete(u.active, stream)
			u.notifyLocked()
			u.mu.Unlock()
			return
		}
		it := q[0]
		woken := u.success
		u.mu.Unlock()

		select {
		case u.sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		res, err := u.attempt(ctx, it)
		<-u.sem
		if ctx.Err() != nil {
			continue // shutting down: the item stays in the spool
		}
		switch res {
		case resRetry:
			it.failures++
			d := backoff(u.opts.MinBackoff, u.opts.MaxBackoff, it.failures)
			u.m.Retries.Inc()
			u.log.Warn("upload failed, retrying", "key", it.Key, "attempt", it.failures, "retry_in", d.Round(time.Millisecond), "err", err)
			// Another stream's success means the store is back: retry at once.
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-woken:
				t.Stop()
			case <-ctx.Done():
				t.Stop()
			}
		case resDone, resGone:
			u.finish(it, res)
		case resParked:
			u.park(it, err)
		}
	}
}

type result int

const (
	resDone   result = iota // in the backend
	resGone                 // the spooled file vanished: nothing to upload
	resParked               // clash with different content
	resRetry
)

// attempt uploads one item once.
func (u *Uploader) attempt(ctx context.Context, it *item) (result, error) {
	p := u.dataPath(it.seq)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		u.log.Error("spooled file missing, dropping its journal entry", "key", it.Key, "file", p)
		return resGone, nil
	}
	actx, cancel := context.WithTimeout(ctx, u.opts.AttemptTimeout+time.Duration(it.Size>>20)*time.Second)
	defer cancel()
	// The backend removes the file it was given once the object is stored; give it a
	// second name, so the data stays in the spool until finish has run OnUploaded. A
	// kill after the upload then leaves the item whole: the next start finds the object
	// stored with identical content and calls OnUploaded (without the link, the data
	// was gone, the entry dropped at load as never spooled, and the callback lost).
	give := p + uploadSuffix
	_ = os.Remove(give)
	if os.Link(p, give) != nil {
		give = p // a file system without hard links: the window remains
	}
	defer func() {
		if give != p {
			_ = os.Remove(give)
		}
	}()
	start := time.Now()
	err := u.backend.Store(actx, it.Key, give)
	if err == nil {
		u.m.Duration.Observe(time.Since(start).Seconds())
		u.m.Bytes.Add(float64(it.Size))
		u.m.Uploads.WithLabelValues("uploaded").Inc()
		return resDone, nil
	}
	if !errors.Is(err, ErrExists) {
		u.m.Uploads.WithLabelValues("failed").Inc()
		return resRetry, err
	}
	same, cerr := SameContent(actx, u.backend, it.Key, p)
	switch {
	case cerr != nil:
		u.m.Uploads.WithLabelValues("failed").Inc()
		return resRetry, fmt.Errorf("%w (comparing with the stored object: %v)", err, cerr)
	case same:
		u.m.Uploads.WithLabelValues("already_stored").Inc()
		u.log.Info("object already stored with identical content", "key", it.Key)
		return resDone, nil
	}
	u.m.Uploads.WithLabelValues("clash").Inc()
	return resParked, fmt.Errorf("upload %s: %w with different content; kept in spool as %s", it.Key, err, p)
}

func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	j := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * j)
}

// finish removes a done item from the spool: the data file first, then the journal entry.
// OnUploaded runs before the removal, so a crash in between re-uploads the item at the
// next start (found with identical content: done) and calls OnUploaded again — the
// callback is never lost, only possibly repeated.
func (u *Uploader) finish(it *item, res result) {
	if res == resDone && u.opts.OnUploaded != nil {
		u.opts.OnUploaded(it.Key, it.Size) // also before Drain can see the item gone
	}
	_ = os.Remove(u.dataPath(it.seq))
	_ = os.Remove(u.metaPath(it.seq))
	u.mu.Lock()
	if res == resDone {
		close(u.success)
		u.success = make(chan struct{})
	}
	u.popLocked(it)
	if u.byKey[it.Key] == it {
		delete(u.byKey, it.Key)
	}
	delete(u.items, it.seq)
	u.bytes -= it.Size
	u.checkLimitLocked()
	u.notifyLocked()
	u.mu.Unlock()
}

func (u *Uploader) park(it *item, err error) {
	u.mu.Lock()
	u.popLocked(it)
	it.parked = true
	u.m.Parked.Inc()
	u.notifyLocked()
	u.mu.Unlock()
	u.log.Error("object key exists with different content; local file kept in the spool", "key", it.Key, "err", err)
	if u.opts.OnError != nil {
		u.cbWG.Go(func() { u.opts.OnError(it.Key, err) })
	}
}

func (u *Uploader) popLocked(it *item) {
	q := u.queues[it.Stream]
	if i := slices.Index(q, it); i >= 0 {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) == 0 {
		delete(u.queues, it.Stream)
	} else {
		u.queues[it.Stream] = q
	}
}

func (u *Uploader) checkLimitLocked() {
	u.m.SpoolBytes.Set(float64(u.bytes))
	u.m.SpoolItems.Set(float64(len(u.items)))
	if u.opts.SpoolLimit <= 0 {
		return
	}
	over := u.bytes > u.opts.SpoolLimit
	if over == u.over {
		return
	}
	u.over = over
	if over {
		u.m.OverLimit.Set(1)
		u.log.Error("spool over its size limit: the object store is not keeping up; recording continues into the spool",
			"spool_bytes", u.bytes, "limit", u.opts.SpoolLimit, "dir", u.dir)
	} else {
		u.m.OverLimit.Set(0)
		u.log.Info("spool back under its size limit", "spool_bytes", u.bytes, "limit", u.opts.SpoolLimit)
	}
	if f := u.opts.OnSpoolLimit; f != nil {
		b, l := u.bytes, u.opts.SpoolLimit
		u.cbWG.Go(func() { f(over, b, l) })
	}
}

// Open implements Store: a key still waiting in the spool is served from there, anything
// else (parked keys included: the backend's object is the real one) from the backend.
func (u *Uploader) Open(ctx context.Context, key string) (Object, error) {
	u.mu.Lock()
	it, ok := u.byKey[key]
	ready := ok && it.ready && !it.parked
	var p string
	if ready {
		p = u.dataPath(it.seq)
	}
	u.mu.Unlock()
	if ready {
		if f, err := os.Open(p); err == nil {
			if st, err := f.Stat(); err == nil {
				return &localObject{File: f, size: st.Size(), mod: st.ModTime()}, nil
			}
			f.Close()
		}
		// Uploaded (and removed) in between: the backend has it.
	}
	return u.backend.Open(ctx, key)
}

// SpoolStats describes the spool (status page, health checks).
type SpoolStats struct {
	Items     int       // items in the spool, parked ones included
	Bytes     int64     // their size
	Parked    int       // items whose key exists in the backend with other content
	Oldest    time.Time // queue time of the oldest item not uploaded yet (zero if none)
	OverLimit bool      // Bytes is above UploaderOptions.SpoolLimit
}

// Stats returns the spool's current state.
func (u *Uploader) Stats() SpoolStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := SpoolStats{Items: len(u.items), Bytes: u.bytes, OverLimit: u.over}
	for _, it := range u.items {
		if it.parked {
			s.Parked++
		} else if s.Oldest.IsZero() || it.Queued.Before(s.Oldest) {
			s.Oldest = it.Queued
		}
	}
	return s
}

// Drain waits until every item that is not parked has been uploaded, or ctx ends.
func (u *Uploader) Drain(ctx context.Context) error {
	for {
		u.mu.Lock()
		pending := 0
		for _, q := range u.queues {
			pending += len(q)
		}
		ch := u.changed
		closed := u.closed
		u.mu.Unlock()
		if pending == 0 {
			return nil
		}
		if closed {
			return fmt.Errorf("spool drain: %d items left: %w", pending, ErrClosed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("spool drain: %d items left: %w", pending, ctx.Err())
		}
	}
}

// Close stops the uploads (an upload in flight is abandoned and retried at the next
// start) and releases the spool; everything not uploaded stays in the spool. Store fails
// with ErrClosed afterwards. Call Drain first for a graceful shutdown that empties it.
func (u *Uploader) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	if u.cancel != nil {
		u.cancel()
	}
	u.notifyLocked()
	u.mu.Unlock()
	u.wg.Wait()
	u.cbWG.Wait()
	u.m.detach(u)
	return u.lock.Close()
}

// Delete implements Deleter when the backend does: the object is deleted from the
// backend. A key still waiting in the spool is refused (it would be uploaded after).
func (u *Uploader) Delete(ctx context.Context, key string) error {
	u.mu.Lock()
	_, spooled := u.byKey[key]
	u.mu.Unlock()
	if spooled {
		return fmt.Errorf("%s is still waiting for its upload; delete it once uploaded", key)
	}
	d, ok := u.backend.(Deleter)
	if !ok {
		return fmt.Errorf("the storage %s cannot delete objects", u.backend.Describe())
	}
	return d.Delete(ctx, key)
}
