package hls

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/livrec/livrec/internal/format/segment/segtest"
	"github.com/livrec/livrec/internal/media"
)

// The shared helpers live in segment/segtest; these names keep the tests readable.

type (
	diskStore = segtest.Store
	input     = segtest.Input
)

const (
	inH264AAC  = segtest.H264AAC
	inH264AAC2 = segtest.H264AAC2
	inH265AAC  = segtest.H265AAC
	inH264MP3  = segtest.H264MP3
	inAACOnly  = segtest.AACOnly
)

var (
	newDiskStore     = segtest.NewStore
	getInput         = segtest.GetInput
	ffmpegDecode     = segtest.Decode
	fakeClock        = segtest.FakeClock
	testLogger       = segtest.Logger
	absDur           = segtest.AbsDur
	vcl              = segtest.VCL
	expectedDuration = segtest.ExpectedDuration
	discontinuities  = segtest.Discontinuities
)

func TestMain(m *testing.M) { segtest.Main(m) }

func demuxTS(t testing.TB, r io.Reader) *segtest.Demuxed { return segtest.DemuxTS(t, r) }

func feed(t testing.TB, w *Writer, aus []*media.AccessUnit) { t.Helper(); segtest.Feed(t, w, aus) }

func readPlaylist(t testing.TB, path string) (*playlist.Media, string) {
	t.Helper()
	return segtest.ReadPlaylist(t, path)
}

// checkVOD verifies the stored version-3 VOD playlist against res and decodes it.
func checkVOD(t *testing.T, st *diskStore, res Result, wantDur time.Duration) *playlist.Media {
	t.Helper()
	return segtest.CheckVOD(t, st, res, wantDur, 3)
}

// ---------------------------------------------------------------------------------------
// Running the writer.

const (
	testPlaylistKey = "rec/live/s1/2026-01-01/index.m3u8"
	testSlice       = 4 * time.Second
)

func testSegmentKey(seq int, _ time.Time) string {
	return fmt.Sprintf("rec/live/s1/2026-01-01/seg/%03d.ts", seq)
}

func newTestWriter(t testing.TB, st *diskStore, slice time.Duration) (*Writer, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := New(Config{
		SliceDuration: slice,
		WorkDir:       dir,
		SegmentKey:    testSegmentKey,
		SegmentURI:    st.Path, // absolute paths: the live playlist is playable from disk
		Store:         st,
		Now:           fakeClock(),
		Logger:        testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, dir
}

// checkSegmentStarts verifies every stored segment begins with PAT, and that its first
// PES is a video keyframe carrying its parameter sets (or audio for audio-only).
func checkSegmentStarts(t *testing.T, st *diskStore, res Result, hasVideo bool) {
	t.Helper()
	for i, s := range res.Segments {
		b, err := os.ReadFile(st.Path(s.Key))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || len(b)%188 != 0 {
			t.Fatalf("segment %d: size %d is not a whole number of TS packets", i, len(b))
		}
		if s.Bytes != int64(len(b)) {
			t.Errorf("segment %d: Bytes %d, object %d", i, s.Bytes, len(b))
		}
		if pid := int(b[1]&0x1F)<<8 | int(b[2]); pid != 0 {
			t.Errorf("segment %d: first packet PID %d, want PAT", i, pid)
		}
		d := demuxTS(t, bytes.NewReader(b))
		if len(d.Order) == 0 {
			t.Fatalf("segment %d: no PES", i)
		}
		if !hasVideo {
			continue
		}
		// File order (the reader delivers unbounded video PES late): video comes first.
		sc, err := scanTS(bytes.NewReader(b))
		if err != nil || len(sc.pes) == 0 || !sc.pes[0].video {
			t.Errorf("segment %d: does not start with a video PES", i)
		}
		var first *media.AccessUnit
		for _, au := range d.AUs {
			if au.Track == d.Video {
				first = au
				break
			}
		}
		if first == nil || !first.Key {
			t.Errorf("segment %d: does not start with a keyframe", i)
		}
		if len(d.Video.SPS) == 0 || len(d.Video.PPS) == 0 || d.Video.Codec == media.H265 && len(d.Video.VPS) == 0 {
			t.Errorf("segment %d: no parameter sets", i)
		}
	}
}

// concatSegments returns the stored segments back to back (a valid TS: the continuity
// counters run on).
func concatSegments(t testing.TB, st *diskStore, segs []Segment) []byte {
	var all []byte
	for _, s := range segs {
		b, err := os.ReadFile(st.Path(s.Key))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// videoIncreasing checks that the video DTS of aus increase.
func videoIncreasing(t *testing.T, aus []*media.AccessUnit) {
	t.Helper()
	var last time.Duration
	for _, au := range aus {
		if au.Track.Codec.IsVideo() {
			if au.DTS <= last {
				t.Fatalf("output video DTS not increasing: %v after %v", au.DTS, last)
			}
			last = au.DTS
		}
	}
}
