package segment

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	journalfile "github.com/livrec/livrec/internal/format/journal"

	"github.com/livrec/livrec/internal/storage"
)

// journal is the crash-recovery record in WorkDir/journal.json.
type journal struct {
	Version  int          `json:"version"`
	Maps     []journalMap `json:"maps,omitempty"`
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
	Map           string        `json:"map,omitempty"`          // key of its initialization segment
	OutStart      time.Duration `json:"out_start_ns,omitempty"` // output time of its start
	Whole         int64         `json:"whole,omitempty"`        // current segment: bytes known to hold whole units (a pause)
	Unsynced      bool          `json:"unsynced,omitempty"`     // closed, its fsync not done yet
}

type journalMap struct {
	N        int    `json:"n"`
	Key      string `json:"key"`
	File     string `json:"file"`
	Bytes    int64  `json:"bytes"`
	Stored   bool   `json:"stored,omitempty"`
	Unsynced bool   `json:"unsynced,omitempty"` // written, its fsync not done yet
}

const journalVersion = 1

func toJournalSeg(s *segState) journalSeg {
	return journalSeg{Seq: s.seq, Key: s.Key, File: s.file, Duration: s.Duration, Start: s.Start,
		Discontinuity: s.Discontinuity, Bytes: s.Bytes, Stored: s.stored, Map: s.MapKey, Unsynced: s.unsynced}
}

func fromJournalSeg(j journalSeg) *segState {
	return &segState{
		Segment: Segment{Key: j.Key, Duration: j.Duration, Start: j.Start, Discontinuity: j.Discontinuity,
			Bytes: j.Bytes, MapKey: j.Map},
		seq: j.Seq, file: j.File, stored: j.Stored, unsynced: j.Unsynced,
	}
}

func toJournalMaps(maps []*mapState) []journalMap {
	var out []journalMap
	for _, m := range maps {
		out = append(out, journalMap{N: m.n, Key: m.key, File: m.file, Bytes: m.bytes, Stored: m.stored, Unsynced: m.unsynced})
	}
	return out
}

func fromJournalMaps(js []journalMap) []*mapState {
	var out []*mapState
	for _, j := range js {
		out = append(out, &mapState{n: j.N, key: j.Key, file: j.File, bytes: j.Bytes, stored: j.Stored, unsynced: j.Unsynced})
	}
	return out
}

// writeJournal atomically rewrites the journal from the writer's state.
func (w *Writer) writeJournal(playlistKey string) error {
	return saveJournal(w.cfg.WorkDir, w.journalState(playlistKey), w.cfg.NoSync)
}

// journalState is the journal of the writer's state.
func (w *Writer) journalState(playlistKey string) *journal {
	j := journal{Version: journalVersion, NextSeq: w.nextSeq, PendingDiscontinuity: w.pendingDisc,
		PlaylistKey: playlistKey, Segments: make([]journalSeg, 0, len(w.segs)), Maps: toJournalMaps(w.maps)}
	for _, s := range w.segs {
		j.Segments = append(j.Segments, toJournalSeg(s))
	}
	if w.cur != nil {
		c := toJournalSeg(&w.cur.segState)
		c.OutStart, c.Whole = w.cur.outStart, w.cur.whole
		j.Current = &c
	}
	return &j
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
		return nil, err
	}
	return &j, nil
}

// JournalVersion implements journal.Versioned.
func (j *journal) JournalVersion() int { return j.Version }

// syncFile is f.Sync; benchmarks replace it (SetSync) to measure CPU cost alone.
var syncFile = (*os.File).Sync

// SetSync replaces fsync for the whole package (nil restores it) and returns the previous
// function. Only benchmarks use it, to measure the muxing cost without disk flushes.
func SetSync(f func(*os.File) error) func(*os.File) error {
	prev := syncFile
	if f == nil {
		f = (*os.File).Sync
	}
	syncFile = f
	journalfile.SyncFile = f
	return prev
}

// atomicWrite replaces dir/name with data (see journalfile.WriteFile); noSync
// (Config.NoSync) leaves out every fsync.
func atomicWrite(dir, name string, data []byte, durable, noSync bool) error {
	if noSync {
		return journalfile.WriteFileNoSync(dir, name, data)
	}
	return journalfile.WriteFile(dir, name, data, durable)
}

// logger is the part of *slog.Logger used by the storing helpers.
type logger interface {
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// object is a working file to store under a key.
type object struct {
	key    *string // the key, changed to the one used when another object held it
	file   string
	stored *bool
	isMap  bool
}

func objects(segs []*segState, maps []*mapState) []object {
	objs := make([]object, 0, len(segs)+len(maps))
	var unsyncedMap map[string]bool // a segment waits for its initialization segment
	for _, m := range maps {
		if !m.unsynced { // stored once synced
			objs = append(objs, object{&m.key, m.file, &m.stored, true})
		} else {
			if unsyncedMap == nil {
				unsyncedMap = map[string]bool{}
			}
			unsyncedMap[m.key] = true
		}
	}
	for _, s := range segs {
		if !s.unsynced && !unsyncedMap[s.MapKey] { // stored once synced
			objs = append(objs, object{&s.Key, s.file, &s.stored, false})
		}
	}
	return objs
}

// storeObjects stores every object not stored yet. A key another object holds (two
// recordings rendered the same key) is replaced by the first free alternative
// (storage.StoreUnique): the object's key changes, and so do the map keys of the segments
// in segs when an initialization segment moved; renamed reports each such move. A failure
// is logged and left for a retry. Files missing from dir are taken as stored when
// recovering (the store moves the file, so a crash after the move but before the journal
// update leaves exactly that state); a recovery also takes an object holding the same
// bytes as stored by an earlier attempt.
func storeObjects(ctx context.Context, st storage.Store, dir string, objs []object, segs []*segState,
	log logger, recovering bool, renamed func(from, to string)) (changed bool, lastErr error) {
	for _, o := range objs {
		if *o.stored {
			continue
		}
		p := filepath.Join(dir, o.file)
		if recovering {
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				log.Warn("working file gone, assuming it was stored", "key", *o.key)
				*o.stored, changed = true, true
				continue
			}
		}
		used, err := storage.StoreUnique(ctx, st, *o.key, p, recovering)
		if err != nil {
			log.Warn("store failed, will retry", "key", used, "err", err)
			lastErr = err
			continue
		}
		if used != *o.key {
			log.Warn("object key held by another object: stored under the next free key", "key", *o.key, "stored_as", used)
			from := *o.key
			*o.key = used
			if o.isMap {
				for _, s := range segs {
					if s.MapKey == from {
						s.MapKey = used
					}
				}
			}
			if renamed != nil {
				renamed(from, used)
			}
		}
		*o.stored, changed = true, true
	}
	return changed, lastErr
}

// storePending stores the closed segments (and initialization segments) and refreshes
// the live playlist when something was stored. A failed store is retried at the next
// segment boundary and at Finish.
func (w *Writer) storePending(ctx context.Context) {
	changed, _ := storeObjects(ctx, w.cfg.Store, w.cfg.WorkDir, objects(w.segs, w.maps), w.segs, w.log, false,
		func(from, to string) {
			if w.cur != nil && w.cur.MapKey == from {
				w.cur.MapKey = to
			}
		})
	if changed {
		w.writeLive()
	}
}

// saveState stores what is pending and rewrites the live playlist and the journal: at
// once, or, with a Syncer, on it (persist) — the connection's goroutine then does no
// fsync. Called with mu held.
func (w *Writer) saveState() {
	if !w.async() {
		w.storePending(context.Background())
		if err := w.writeJournal(""); err != nil {
			// The recording goes on; only crash recovery of this segment is at risk.
			w.log.Error("journal write failed", "err", err)
		}
		return
	}
	if w.ioQueued {
		return
	}
	w.ioQueued = true
	w.syncs.Add(1)
	w.cfg.Syncer.Go(0, func() error {
		defer w.syncs.Done()
		w.persist()
		return nil
	})
}

// persist is saveState on the syncer: the objects to store and the playlist and journal
// to write are taken from the state with mu held, the I/O runs without it (ioMu keeps
// one persist at a time, so each write is of a later state than the one before), and its
// outcome is applied with mu again.
func (w *Writer) persist() {
	w.ioMu.Lock()
	defer w.ioMu.Unlock()
	w.mu.Lock()
	w.ioQueued = false
	if w.finished {
		w.mu.Unlock()
		return
	}
	orig := objects(w.segs, w.maps)
	objs := make([]object, 0, len(orig))
	keys := make([]string, len(orig))
	stored := make([]bool, len(orig))
	for i, o := range orig {
		if *o.stored {
			continue
		}
		keys[i] = *o.key
		objs = append(objs, object{&keys[i], o.file, &stored[i], o.isMap})
	}
	w.mu.Unlock()

	renames := map[string]string{}
	var changed bool
	if len(objs) > 0 {
		changed, _ = storeObjects(context.Background(), w.cfg.Store, w.cfg.WorkDir, objs, nil, w.log, false,
			func(from, to string) { renames[from] = to })
	}

	w.mu.Lock()
	for i, o := range orig {
		if stored[i] {
			*o.stored, *o.key = true, keys[i]
		}
	}
	for from, to := range renames {
		for _, s := range w.segs {
			if s.MapKey == from {
				s.MapKey = to
			}
		}
		if w.cur != nil && w.cur.MapKey == from {
			w.cur.MapKey = to
		}
	}
	var live []byte
	n := 0
	if changed {
		live, n = w.livePlaylist()
	}
	j := w.journalState("")
	w.mu.Unlock()

	if live != nil {
		if err := atomicWrite(w.cfg.WorkDir, liveName, live, false, false); err != nil {
			w.log.Warn("live playlist write failed", "err", err)
		} else {
			w.mu.Lock()
			w.liveStored = n
			w.mu.Unlock()
		}
	}
	if err := saveJournal(w.cfg.WorkDir, j, false); err != nil {
		w.log.Error("journal write failed", "err", err)
	}
}

// livePlaylist returns the live playlist and the segments it lists when that differs
// from the one written (nil otherwise).
func (w *Writer) livePlaylist() ([]byte, int) {
	mapStored := map[string]bool{}
	for _, m := range w.maps {
		mapStored[m.key] = m.stored
	}
	n := 0
	for n < len(w.segs) && w.segs[n].stored && (w.segs[n].MapKey == "" || mapStored[w.segs[n].MapKey]) {
		n++
	}
	if n == 0 || n == w.liveStored {
		return nil, 0
	}
	return marshalPlaylist(w.segs[:n], "EVENT", false, w.cfg.SliceDuration, w.cfg.SegmentURI), n
}

// writeLive rewrites live.m3u8: an EVENT playlist of the longest stored prefix (segments
// whose initialization segment is stored too).
func (w *Writer) writeLive() {
	b, n := w.livePlaylist()
	if b == nil {
		return
	}
	var err error
	if w.cfg.NoSync {
		// In place: not worth a new file per segment when nothing is crash-safe anyway.
		err = journalfile.OverwriteNoSync(w.cfg.WorkDir, liveName, b)
	} else {
		err = atomicWrite(w.cfg.WorkDir, liveName, b, false, false)
	}
	if err != nil {
		w.log.Warn("live playlist write failed", "err", err)
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

// marshalPlaylist writes a media playlist of type typ ("VOD" or "EVENT"). For EVENT
// playlists the target duration is at least floor, so it rarely has to grow while the
// recording runs. An #EXT-X-MAP precedes the first segment and every segment whose
// initialization segment differs from the previous one's; a playlist with maps is version
// 6 (RFC 8216 section 7), else version 3 (float EXTINF). The text is what gohlslib's
// playlist.Media.Marshal writes for the same playlist, plus the per-segment maps that it
// cannot express.
func marshalPlaylist(segs []*segState, typ string, endlist bool, floor time.Duration,
	uri func(key string) string) []byte {
	if typ == "VOD" {
		floor = 0
	}
	version := 3
	for _, s := range segs {
		if s.MapKey != "" {
			version = 6
		}
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:" + strconv.Itoa(version) + "\n")
	b.WriteString("#EXT-X-TARGETDURATION:" + strconv.Itoa(targetDuration(segs, floor)) + "\n")
	b.WriteString("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:" + typ + "\n")
	curMap := ""
	for _, s := range segs {
		if s.Discontinuity {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.MapKey != "" && s.MapKey != curMap {
			b.WriteString("#EXT-X-MAP:URI=\"" + uri(s.MapKey) + "\"\n")
			curMap = s.MapKey
		}
		b.WriteString("#EXTINF:" + strconv.FormatFloat(s.Duration.Seconds(), 'f', 5, 64) + ",\n")
		b.WriteString(uri(s.Key) + "\n")
	}
	if endlist {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return []byte(b.String())
}

// RelativeURI returns the URI of the object key relative to the directory of the object
// playlistKey, percent-encoded per path segment.
func RelativeURI(playlistKey, key string) string {
	dir := path.Dir(playlistKey)
	var from []string
	if dir != "." && dir != "/" {
		from = strings.Split(strings.Trim(dir, "/"), "/")
	}
	to := strings.Split(strings.TrimLeft(key, "/"), "/")
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

// finalizer stores a file's objects and its VOD playlist.
type finalizer struct {
	name       string
	st         storage.Store
	dir        string
	log        logger
	recovering bool
	noSync     bool         // Config.NoSync
	journal    func() error // journals the final state before the playlist is stored
}

func (f *finalizer) errorf(format string, args ...any) error {
	return fmt.Errorf(f.name+": "+format, args...)
}

// run stores pending objects, then the VOD playlist under playlistKey, then removes the
// working files.
func (f *finalizer) run(ctx context.Context, segs []*segState, maps []*mapState, playlistKey string) (Result, error) {
	objs := objects(segs, maps)
	if _, lastErr := storeObjects(ctx, f.st, f.dir, objs, segs, f.log, f.recovering, nil); lastErr != nil {
		_ = f.journal()
		return Result{}, f.errorf("store segments: %w", lastErr)
	}
	if err := f.journal(); err != nil {
		return Result{}, f.errorf("journal: %w", err)
	}
	b := marshalPlaylist(segs, "VOD", true, 0, func(key string) string { return RelativeURI(playlistKey, key) })
	if err := atomicWrite(f.dir, playlistName, b, false, f.noSync); err != nil {
		return Result{}, f.errorf("playlist: %w", err)
	}
	// An equal playlist already under the key was stored by an earlier attempt of this
	// very file (the key was journaled before), so it counts as stored; another one moves
	// this one to the next free key, in the same directory (the relative URIs hold).
	used, err := storage.StoreUnique(ctx, f.st, playlistKey, filepath.Join(f.dir, playlistName), true)
	if err != nil {
		return Result{}, f.errorf("store playlist %q: %w", playlistKey, err)
	}
	if used != playlistKey {
		f.log.Warn("playlist key held by another object: stored under the next free key", "key", playlistKey, "stored_as", used)
	}

	res := Result{PlaylistKey: used, PlaylistBytes: int64(len(b)), Recovered: f.recovering}
	res.Bytes = res.PlaylistBytes
	for _, m := range maps {
		res.Bytes += m.bytes
	}
	for _, s := range segs {
		res.Segments = append(res.Segments, s.Segment)
		res.Duration += s.Duration
		res.Bytes += s.Bytes
	}
	res.Start = segs[0].Start
	last := segs[len(segs)-1]
	res.End = last.Start.Add(last.Duration)

	removeWorkFiles(f.dir, segs, maps, "")
	return res, nil
}

// removeWorkFiles removes the files this package creates in dir (never anything else).
func removeWorkFiles(dir string, segs []*segState, maps []*mapState, extra string) {
	names := []string{journalName, liveName, playlistName, journalName + tmpSuffix,
		liveName + tmpSuffix, playlistName + tmpSuffix}
	for _, s := range segs {
		names = append(names, s.file)
	}
	for _, m := range maps {
		names = append(names, m.file, m.file+tmpSuffix)
	}
	if extra != "" {
		names = append(names, extra)
	}
	for _, n := range names {
		_ = os.Remove(filepath.Join(dir, n))
	}
}

// EndedLive returns the last form of the live playlist of a finished file: its VOD
// playlist vod, stored under vodKey, with the live playlist's URIs (uri(key), as
// Config.SegmentURI) and type (EVENT). A player that followed the live playlist then
// reads the same segments under the same URIs, and the #EXT-X-ENDLIST.
func EndedLive(vod []byte, vodKey string, uri func(key string) string) []byte {
	dir := path.Dir(vodKey)
	abs := func(rel string) string {
		if u, err := url.PathUnescape(rel); err == nil {
			rel = u
		}
		return uri(path.Join(dir, rel))
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(vod), "\n") {
		text := strings.TrimRight(line, "\r\n")
		switch {
		case text == "#EXT-X-PLAYLIST-TYPE:VOD":
			text = "#EXT-X-PLAYLIST-TYPE:EVENT"
		case strings.HasPrefix(text, `#EXT-X-MAP:URI="`):
			rel, rest, _ := strings.Cut(strings.TrimPrefix(text, `#EXT-X-MAP:URI="`), `"`)
			text = `#EXT-X-MAP:URI="` + abs(rel) + `"` + rest
		case text != "" && !strings.HasPrefix(text, "#"):
			text = abs(text)
		}
		b.WriteString(text)
		if strings.HasSuffix(line, "\n") {
			b.WriteString("\n")
		}
	}
	return []byte(b.String())
}
