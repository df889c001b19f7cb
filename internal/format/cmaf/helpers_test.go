package cmaf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/format/segment/segtest"
	"github.com/livrec/livrec/internal/media"
)

func TestMain(m *testing.M) { segtest.Main(m) }

const (
	testPlaylistKey = "rec/live/s1/2026-01-01/index.m3u8"
	testSlice       = 4 * time.Second
)

func testSegmentKey(seq int, _ time.Time) string {
	return fmt.Sprintf("rec/live/s1/2026-01-01/seg/%03d.m4s", seq)
}

func testInitKey(n int) string {
	return fmt.Sprintf("rec/live/s1/2026-01-01/seg/init%d.mp4", n)
}

func newTestWriter(t testing.TB, st *segtest.Store) (*Writer, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := New(Config{
		SliceDuration: testSlice,
		WorkDir:       dir,
		SegmentKey:    testSegmentKey,
		InitKey:       testInitKey,
		SegmentURI:    st.Path, // absolute paths: the live playlist is playable from disk
		Store:         st,
		Now:           segtest.FakeClock(),
		Logger:        segtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, dir
}

// finish finishes w, returning the detailed result.
func finish(t testing.TB, w *Writer) segment.Result {
	t.Helper()
	res, err := w.Writer.Finish(t.Context(), testPlaylistKey)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// outTrack is one output track, read back from the stored objects.
type outTrack struct {
	timeScale uint32
	samples   []*fmp4.Sample
	dts       []uint64 // decode time of each sample
	segStart  []int    // index of the first sample of each segment
}

// output is a recording read back: per init segment, its tracks (by ID).
type output struct {
	inits  []*fmp4.Init
	tracks []map[int]*outTrack // per init
}

// readOutput parses every stored segment of res with its init segment and checks the
// CMAF structure: init ftyp major brand cmfc, every segment starting with styp and,
// for video, a sync sample; fragments at most ~1 s; decode times continuous within a
// segment (tfdt = previous end).
func readOutput(t *testing.T, st *segtest.Store, res segment.Result) *output {
	t.Helper()
	o := &output{}
	initIdx := map[string]int{}
	for i, s := range res.Segments {
		if s.MapKey == "" {
			t.Fatalf("segment %d without map", i)
		}
		n, ok := initIdx[s.MapKey]
		if !ok {
			b, err := os.ReadFile(st.Path(s.MapKey))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 16 || string(b[4:8]) != "ftyp" || string(b[8:12]) != "cmfc" || !bytes.Contains(b[16:binary.BigEndian.Uint32(b)], []byte("iso6")) {
				t.Errorf("init %s: ftyp %q, want major brand cmfc, compatible iso6", s.MapKey, b[:min(len(b), 32)])
			}
			var init fmp4.Init
			if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
				t.Fatalf("init %s: %v", s.MapKey, err)
			}
			n = len(o.inits)
			initIdx[s.MapKey] = n
			o.inits = append(o.inits, &init)
			tr := map[int]*outTrack{}
			for _, it := range init.Tracks {
				tr[it.ID] = &outTrack{timeScale: it.TimeScale}
			}
			o.tracks = append(o.tracks, tr)
		}
		b, err := os.ReadFile(st.Path(s.Key))
		if err != nil {
			t.Fatal(err)
		}
		if s.Bytes != int64(len(b)) {
			t.Errorf("segment %d: Bytes %d, object %d", i, s.Bytes, len(b))
		}
		if !bytes.HasPrefix(b, stypBox) || string(b[8:12]) != "cmfs" {
			t.Fatalf("segment %d does not start with styp cmfs: %q", i, b[:min(len(b), 24)])
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(b[len(stypBox):]); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if completeFragments(b) != len(b) {
			t.Errorf("segment %d: trailing bytes after the last fragment", i)
		}
		for _, tr := range o.tracks[n] {
			tr.segStart = append(tr.segStart, len(tr.samples))
		}
		for pi, p := range parts {
			for _, pt := range p.Tracks {
				tr := o.tracks[n][pt.ID]
				if tr == nil {
					t.Fatalf("segment %d: unknown track %d", i, pt.ID)
				}
				if pi == 0 && pt.ID == 1 && o.inits[n].Tracks[0].Codec.IsVideo() && pt.Samples[0].IsNonSyncSample {
					t.Errorf("segment %d does not start with a sync sample", i)
				}
				bt := pt.BaseTime
				if k := len(tr.dts); k > 0 && tr.segStart[len(tr.segStart)-1] < k {
					if end := tr.dts[k-1] + uint64(tr.samples[k-1].Duration); end != bt {
						t.Errorf("segment %d track %d: tfdt %d, previous fragment ended at %d", i, pt.ID, bt, end)
					}
				}
				var d uint64
				for _, smp := range pt.Samples {
					tr.samples = append(tr.samples, smp)
					tr.dts = append(tr.dts, bt+d)
					d += uint64(smp.Duration)
				}
				if float64(d)/float64(tr.timeScale) > 1.2 {
					t.Errorf("segment %d track %d: fragment of %.2f s", i, pt.ID, float64(d)/float64(tr.timeScale))
				}
			}
		}
	}
	return o
}

// payloads concatenates the sample payloads of the video (or audio) track.
func (o *output) payloads(video bool) []byte {
	var b []byte
	for n, init := range o.inits {
		for _, it := range init.Tracks {
			if it.Codec.IsVideo() == video {
				for _, s := range o.tracks[n][it.ID].samples {
					b = append(b, s.Payload...)
				}
			}
		}
	}
	return b
}

// inputPayloads concatenates the sample data of the input units the recording keeps
// (video from the first keyframe, audio not before it), as fMP4 carries it.
func inputPayloads(aus []*media.AccessUnit, video bool) []byte {
	var b []byte
	var first time.Duration = -1
	hasVideo := false
	for _, au := range aus {
		hasVideo = hasVideo || au.Track.Codec.IsVideo()
	}
	for _, au := range aus {
		if first < 0 {
			if au.Track.Codec.IsVideo() != hasVideo || !au.Key {
				continue
			}
			first = au.DTS
		}
		if au.Track.Codec.IsVideo() == video && au.DTS >= first {
			b = avccPayload(b, au)
		}
	}
	return b
}

// avccPayload appends the sample data of au as the muxer lays it out: H.264/H.265 NAL
// units with 4-byte length prefixes, any other codec as is.
func avccPayload(b []byte, au *media.AccessUnit) []byte {
	if len(au.NALUs) == 0 {
		return append(b, au.Data...)
	}
	for _, n := range au.NALUs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

// probeCodecs returns ffprobe's codec names of path, sorted.
func probeCodecs(t *testing.T, path string) string {
	t.Helper()
	b, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	// ffprobe lists the streams of the HLS program and the streams themselves.
	f := strings.Fields(string(b))
	sort.Strings(f)
	return strings.Join(slices.Compact(f), ",")
}

// stripParams removes H.264 SPS/PPS NAL units from length-prefixed (AVCC) data.
func stripParams(b []byte) []byte {
	var out []byte
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b)) + 4
		if n > len(b) {
			break
		}
		if typ := b[4] & 0x1F; typ != 7 && typ != 8 {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}
