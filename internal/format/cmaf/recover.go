package cmaf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/storage"
)

// cutPartialSegment truncates the segment at p.Path after its last complete moof+mdat
// pair and returns the media duration it still holds: the end of its last sample of
// either track (decode time plus duration, in the time scales of its initialization
// segment) minus the segment's start on the output timeline. A zero duration means no
// complete fragment: the file is left as is for the caller to drop.
func cutPartialSegment(ctx context.Context, store storage.Store, p segment.Partial) (time.Duration, int64, error) {
	b, err := os.ReadFile(p.Path)
	if err != nil {
		return 0, 0, err
	}
	cut := completeFragments(b)
	if cut == 0 {
		return 0, 0, nil
	}
	scales, err := loadTimeScales(ctx, store, p)
	if err != nil {
		return 0, 0, fmt.Errorf("initialization segment %q: %w", p.MapKey, err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[len(stypBox):cut]); err != nil {
		return 0, 0, fmt.Errorf("fragments: %w", err)
	}
	var end time.Duration
	for _, part := range parts {
		for _, tr := range part.Tracks {
			ts := scales[tr.ID]
			if ts == 0 {
				return 0, 0, fmt.Errorf("fragment of unknown track %d", tr.ID)
			}
			t := tr.BaseTime
			for _, s := range tr.Samples {
				t += uint64(s.Duration)
			}
			end = max(end, time.Duration(t/uint64(ts))*time.Second+time.Duration(t%uint64(ts))*time.Second/time.Duration(ts))
		}
	}
	dur := end - p.OutStart
	if dur <= 0 {
		return 0, 0, nil
	}
	f, err := os.OpenFile(p.Path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if err := f.Truncate(int64(cut)); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	return dur, int64(cut), nil
}

// completeFragments returns the length of the prefix of b made of the styp box and
// complete moof+mdat pairs, or 0 if there is no complete pair.
func completeFragments(b []byte) int {
	if !bytes.HasPrefix(b, stypBox) {
		return 0
	}
	off, cut := len(stypBox), 0
	moofEnd := -1 // end of a complete moof waiting for its mdat
	for {
		typ, size := boxHeader(b[off:])
		if size == 0 || off+size > len(b) {
			return cut
		}
		switch {
		case typ == "moof":
			moofEnd = off + size
		case typ == "mdat" && moofEnd == off:
			cut = off + size
		default:
			return cut
		}
		off += size
	}
}

// boxHeader returns the type and total size of the ISO BMFF box at the start of b (0 if
// the header is incomplete or invalid).
func boxHeader(b []byte) (string, int) {
	if len(b) < 8 {
		return "", 0
	}
	size := uint64(binary.BigEndian.Uint32(b))
	hdr := uint64(8)
	if size == 1 {
		if len(b) < 16 {
			return "", 0
		}
		size, hdr = binary.BigEndian.Uint64(b[8:]), 16
	}
	if size < hdr || size > 1<<40 {
		return "", 0
	}
	return string(b[4:8]), int(size)
}

// loadTimeScales reads the track time scales from the partial segment's initialization
// segment: the working file if it was not stored yet, else the stored object.
func loadTimeScales(ctx context.Context, store storage.Store, p segment.Partial) (map[int]uint32, error) {
	var r io.ReadSeeker
	if p.MapPath != "" {
		f, err := os.Open(p.MapPath)
		switch {
		case err == nil:
			defer f.Close()
			r = f
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
		// Gone: stored just before the crash, so read the stored object.
	}
	if r == nil {
		if p.MapKey == "" {
			return nil, errors.New("no initialization segment recorded")
		}
		obj, err := store.Open(ctx, p.MapKey)
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		r = obj
	}
	var init fmp4.Init
	if err := init.Unmarshal(r); err != nil {
		return nil, err
	}
	scales := map[int]uint32{}
	for _, t := range init.Tracks {
		scales[t.ID] = t.TimeScale
	}
	return scales, nil
}
