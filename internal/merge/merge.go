// Package merge joins the m3u8 recordings of one task (its cycle files, MPEG-TS
// segments) into one more recording without re-encoding:
//
//   - Playlist writes a new VOD playlist that lists the segments of every input in order.
//     No media is copied: the new playlist references the stored segments, so a deleter
//     must keep a segment while any playlist still lists it (References).
//   - MP4 writes one progressive MP4 from the same segments with livrec's own MP4 writer
//     (format/mp4): the TS packets are demuxed into access units and muxed again.
//
// #EXT-X-DISCONTINUITY goes only where the inputs are really discontinuous: the first
// timestamp of an input's first segment is compared with where the previous input's
// last segment ends (its first timestamp plus its EXTINF), and the track sets (PMT) are
// compared. livrec's hls writer starts every file's MPEG-TS timeline at 1 s, so the
// cycle files of one task, although continuous in media, restart their timestamps and
// are joined with a discontinuity; inputs whose timestamps continue are joined without.
// Discontinuities inside an input are kept.
package merge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/keytemplate"
	"github.com/livrec/livrec/internal/storage"
)

// MaxInputs bounds the recordings of one merge (a 6 h task of 5-minute cycles has 72).
const MaxInputs = 1000

// continuityTolerance is how far an input's first timestamp may be from the end of the
// previous input and still count as continuous: a few frames of slack for EXTINF
// rounding and the last-frame duration estimate, far below any real timestamp jump.
const continuityTolerance = 250 * time.Millisecond

// Result describes a merged playlist.
type Result struct {
	Key      string        // the new playlist
	Duration time.Duration // sum of the EXTINF durations
	Segments int
	// Discontinuities counts the joins between inputs that got #EXT-X-DISCONTINUITY.
	Discontinuities int
	Bytes           int64 // size of the playlist
}

// input is one input playlist read back.
type input struct {
	pl *segment.StoredPlaylist
}

// readInputs validates the input list and reads the playlists: MPEG-TS, finished.
func readInputs(ctx context.Context, store storage.Store, inputs []string) ([]input, error) {
	if len(inputs) == 0 {
		return nil, errors.New("inputs: at least one playlist is needed")
	}
	if len(inputs) > MaxInputs {
		return nil, fmt.Errorf("inputs: %d playlists, at most %d", len(inputs), MaxInputs)
	}
	out := make([]input, 0, len(inputs))
	for i, key := range inputs {
		pl, err := segment.ReadPlaylist(ctx, store, key)
		if err != nil {
			return nil, fmt.Errorf("inputs[%d]: %w", i, err)
		}
		switch {
		case len(pl.Maps) > 0:
			return nil, fmt.Errorf("inputs[%d]: %s has fMP4 segments (cmaf); only MPEG-TS (m3u8) recordings are merged", i, key)
		case !pl.Endlist:
			return nil, fmt.Errorf("inputs[%d]: %s is not finished (no #EXT-X-ENDLIST)", i, key)
		case len(pl.Segments) == 0:
			return nil, fmt.Errorf("inputs[%d]: %s lists no segment", i, key)
		}
		out = append(out, input{pl: pl})
	}
	return out, nil
}

// checkKey validates the key of a new object (field names the option).
func checkKey(field, key, ext string) error {
	if !strings.HasSuffix(key, ext) {
		return fmt.Errorf("%s: %q must end in %s", field, key, ext)
	}
	if _, err := keytemplate.CleanKey(key); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// Playlist merges the m3u8 recordings under inputs (playlist keys, in play order) into a
// new VOD playlist stored under key (create-only: an existing key is storage.ErrExists).
// workDir is an existing directory for the temporary file.
func Playlist(ctx context.Context, store storage.Store, inputs []string, key, workDir string) (*Result, error) {
	if err := checkKey("key", key, ".m3u8"); err != nil {
		return nil, err
	}
	if workDir == "" {
		return nil, errors.New("workDir: required")
	}
	ins, err := readInputs(ctx, store, inputs)
	if err != nil {
		return nil, err
	}
	pl := playlist.Media{Version: 3, Endlist: true}
	vod := playlist.MediaPlaylistTypeVOD
	pl.PlaylistType = &vod
	res := &Result{Key: key}
	var maxDur time.Duration
	for i, in := range ins {
		join := false
		if i > 0 {
			cont, err := continuous(ctx, store, ins[i-1].pl, in.pl)
			if err != nil {
				return nil, fmt.Errorf("inputs[%d]: %w", i, err)
			}
			join = !cont
			if join {
				res.Discontinuities++
			}
		}
		for j, s := range in.pl.Segments {
			pl.Segments = append(pl.Segments, &playlist.MediaSegment{Duration: s.Duration,
				URI: segment.RelativeURI(key, s.Key), Discontinuity: s.Discontinuity || (j == 0 && join)})
			res.Duration += s.Duration
			maxDur = max(maxDur, s.Duration)
		}
	}
	res.Segments = len(pl.Segments)
	pl.TargetDuration = int((maxDur + time.Second - 1) / time.Second)
	body, err := pl.Marshal()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(workDir, "merge-*.m3u8")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := store.Store(ctx, key, tmp.Name()); err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	res.Bytes = int64(len(body))
	return res, nil
}

// continuous reports whether next's first segment continues prev's last one: same track
// set and a first timestamp where prev ends.
func continuous(ctx context.Context, store storage.Store, prev, next *segment.StoredPlaylist) (bool, error) {
	last := prev.Segments[len(prev.Segments)-1]
	a, err := probeSegment(ctx, store, last.Key)
	if err != nil {
		return false, err
	}
	b, err := probeSegment(ctx, store, next.Segments[0].Key)
	if err != nil {
		return false, err
	}
	if a.tracks != b.tracks {
		return false, nil
	}
	want := a.first + ticks(last.Duration)
	d := (b.first - want) & tsClockMask // difference modulo 2^33
	if d > tsClockMask/2 {
		d = tsClockMask + 1 - d
	}
	return d <= ticks(continuityTolerance), nil
}

// References returns the keys of the objects the playlist under key lists (segments,
// initialization segments), each once, without the playlist itself. A deleter removing
// a recording keeps every object another playlist (a merge, an index) still references.
func References(ctx context.Context, store storage.Store, key string) ([]string, error) {
	pl, err := segment.ReadPlaylist(ctx, store, key)
	if err != nil {
		return nil, err
	}
	return pl.Objects(), nil
}

// Orphans returns the objects of the playlist under key that none of the playlists under
// others references: what a deleter may remove with it (the playlist itself aside).
func Orphans(ctx context.Context, store storage.Store, key string, others []string) ([]string, error) {
	own, err := References(ctx, store, key)
	if err != nil {
		return nil, err
	}
	kept := map[string]bool{}
	for _, o := range others {
		refs, err := References(ctx, store, o)
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			kept[r] = true
		}
	}
	out := own[:0]
	for _, r := range own {
		if !kept[r] {
			out = append(out, r)
		}
	}
	return out, nil
}
