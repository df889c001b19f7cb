// Package variant writes the multi-variant (master) HLS playlist of an adaptive-bitrate
// recording: when a rule records the original as m3u8 and its transcoded renditions as
// m3u8 too, a playlist listing the original's and the renditions' m3u8 files
// (#EXT-X-STREAM-INF with BANDWIDTH, RESOLUTION, CODECS) is stored beside the
// original's m3u8, under its key with ".m3u8" replaced by "_master.m3u8".
//
// It follows the recorder's file_created events: the original's and each rendition's
// m3u8 file are generated separately (the renditions shortly after the original, when
// their ffmpeg has flushed), so the playlist is written once, Grace after the last of
// the variants overlapping the original's file arrived. It is an object of the store
// like the files it lists, not a recording: no catalog row and no callback, a log line.
package variant

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// DefaultGrace is how long the writer waits for more renditions after the last one.
const DefaultGrace = 3 * time.Second

// MasterKey is the key of the multi-variant playlist of an original m3u8 file.
func MasterKey(origKey string) string { return strings.TrimSuffix(origKey, ".m3u8") + "_master.m3u8" }

// Writer writes multi-variant playlists; feed it every record.Event (Event).
type Writer struct {
	Rules    func() *rules.Set
	StoreFor func(*rules.Rule) (storage.Store, error)
	WorkDir  string        // scratch space for the playlist before it is stored
	Grace    time.Duration // 0: DefaultGrace
	Logger   *slog.Logger

	mu      sync.Mutex
	pending map[string]*group // by the original's file id
	// orphans are rendition files that came before their original's (at shutdown the
	// stitch windows end together and the files are generated in any order).
	orphans []orphan
}

type orphan struct {
	base string
	f    *catalog.File
	at   time.Time
}

// group is one original m3u8 file and the rendition files found for it.
type group struct {
	rule       *rules.Rule
	orig       *catalog.File
	renditions map[string]*catalog.File // by stream
	timer      *time.Timer
}

// Event takes a recorder event; only m3u8 file_created events matter.
func (w *Writer) Event(ev record.Event) {
	if ev.Type != record.EventFileCreated || ev.File == nil || ev.File.Format != string(rules.M3U8) || ev.File.Key == "" {
		return
	}
	set := w.Rules()
	f := *ev.File
	base, isRendition := f.Stream, false
	if b, _, ok := set.RenditionOf(f.Domain, f.App, f.Stream); ok {
		base, isRendition = b, true
	}
	rule, ok := set.Match(f.Domain, f.App, base)
	if !ok || len(rule.TranscodeTemplates) == 0 || !hasM3U8(rule.RecordFormats) || !hasM3U8(rule.TranscodeRecordFormats) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending == nil {
		w.pending = map[string]*group{}
	}
	var g *group
	if !isRendition {
		g = &group{rule: rule, orig: &f, renditions: map[string]*catalog.File{}}
		w.pending[f.ID] = g
		w.orphans = slices.DeleteFunc(w.orphans, func(o orphan) bool {
			if o.f.Domain == f.Domain && o.f.App == f.App && o.base == f.Stream && overlaps(&f, o.f) {
				g.renditions[o.f.Stream] = o.f
				return true
			}
			return time.Since(o.at) > time.Minute
		})
	} else {
		for _, o := range w.pending {
			if o.orig != nil && o.orig.Domain == f.Domain && o.orig.App == f.App && o.orig.Stream == base && overlaps(o.orig, &f) {
				g = o
				break
			}
		}
		if g == nil {
			w.orphans = append(w.orphans, orphan{base: base, f: &f, at: time.Now()})
			return
		}
		g.renditions[f.Stream] = &f
	}
	grace := w.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	if g.timer != nil {
		g.timer.Stop()
	}
	id := g.orig.ID
	g.timer = time.AfterFunc(grace, func() { w.flush(id) })
}

// Flush writes every pending playlist now (at shutdown).
func (w *Writer) Flush() {
	w.mu.Lock()
	ids := make([]string, 0, len(w.pending))
	for id, g := range w.pending {
		if g.timer != nil {
			g.timer.Stop()
		}
		ids = append(ids, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		w.flush(id)
	}
}

func (w *Writer) flush(id string) {
	w.mu.Lock()
	g := w.pending[id]
	delete(w.pending, id)
	w.mu.Unlock()
	if g == nil || len(g.renditions) == 0 {
		return
	}
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	key := MasterKey(g.orig.Key)
	if err := w.write(g, key); err != nil {
		log.Error("multi-variant playlist not written", "key", key, "err", err)
		return
	}
	log.Info("multi-variant playlist written", "key", key, "variants", 1+len(g.renditions))
}

func (w *Writer) write(g *group, key string) error {
	st, err := w.StoreFor(g.rule)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(w.WorkDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(w.WorkDir, "master-*.m3u8")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(Playlist(g.orig, slices.Collect(maps.Values(g.renditions))))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return st.Store(context.Background(), key, filepath.Clean(tmp.Name()))
}

// Playlist is the multi-variant playlist of an original m3u8 file and its renditions':
// the original first (the variant a player without adaptation plays), then the
// renditions from the highest bandwidth down. URIs are relative to the original's key.
func Playlist(orig *catalog.File, renditions []*catalog.File) []byte {
	slices.SortFunc(renditions, func(a, b *catalog.File) int {
		if a.Bitrate != b.Bitrate {
			return int(b.Bitrate - a.Bitrate)
		}
		return strings.Compare(a.Stream, b.Stream)
	})
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	dir := path.Dir(orig.Key)
	for _, f := range append([]*catalog.File{orig}, renditions...) {
		// BANDWIDTH is the peak rate; the files' average plus a margin for the encoders'
		// rate control stands in for it.
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d", f.Bitrate*6/5, f.Bitrate)
		if f.Width > 0 && f.Height > 0 {
			fmt.Fprintf(&b, ",RESOLUTION=%dx%d", f.Width, f.Height)
		}
		if f.FrameRate > 0 {
			fmt.Fprintf(&b, ",FRAME-RATE=%.3f", f.FrameRate)
		}
		if f.CodecsRFC6381 != "" {
			fmt.Fprintf(&b, ",CODECS=\"%s\"", f.CodecsRFC6381)
		}
		b.WriteString("\n" + relative(dir, f.Key) + "\n")
	}
	return b.Bytes()
}

// relative is key's path relative to the directory dir (both object keys).
func relative(dir, key string) string {
	rel, err := filepath.Rel(filepath.FromSlash("/"+dir), filepath.FromSlash("/"+key))
	if err != nil {
		return "/" + key
	}
	return filepath.ToSlash(rel)
}

func hasM3U8(fs []rules.RecordFormat) bool {
	return slices.ContainsFunc(fs, func(f rules.RecordFormat) bool { return f.Format == rules.M3U8 })
}

// overlaps reports whether two files' times overlap (a rendition starts and ends a
// little after its original).
func overlaps(a, b *catalog.File) bool {
	return a.Start.Before(b.End) && b.Start.Before(a.End)
}
