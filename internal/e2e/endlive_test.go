package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/testenv"
)

// audioAhead copies an FLV file sending its audio ahead of the video by lead, as live
// encoders do (the pictures come out of the encoder later): tags are reordered in arrival
// order only, their timestamps stay. It returns the number of audio frames whose
// timestamp is not before the first video keyframe's DTS, and not before its PTS.
func audioAhead(t *testing.T, src, dst string, lead uint32) (fromDTS, fromPTS int) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, err := flv.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	var head, media []flv.Tag
	key, keyPTS := int64(-1), int64(-1)
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tag.Body = slices.Clone(tag.Body) // the reader reuses its buffer
		frame := false
		switch tag.Type {
		case flv.TagVideo:
			h, err := flv.ParseVideoTagHeader(tag.Body)
			frame = err == nil && h.Kind == flv.PacketFrame
			if frame && key < 0 && tag.Body[0]>>4 == 1 {
				key = int64(tag.Timestamp)
				cts := int32(uint32(tag.Body[2])<<16|uint32(tag.Body[3])<<8|uint32(tag.Body[4])) << 8 >> 8
				keyPTS = key + int64(cts)
			}
		case flv.TagAudio:
			h, err := flv.ParseAudioTagHeader(tag.Body)
			frame = err == nil && h.Kind == flv.PacketFrame
		}
		if frame || len(media) > 0 {
			media = append(media, tag)
		} else {
			head = append(head, tag) // script data and sequence headers stay first
		}
	}
	at := func(tag flv.Tag) uint32 {
		if tag.Type == flv.TagVideo {
			return tag.Timestamp + lead
		}
		return tag.Timestamp
	}
	slices.SortStableFunc(media, func(a, b flv.Tag) int { return int(at(a)) - int(at(b)) })
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	h := r.Header()
	w, err := flv.NewWriter(out, h.HasAudio, h.HasVideo)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range append(head, media...) {
		if err := w.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
		if tag.Type == flv.TagAudio && len(tag.Body) > 1 && tag.Body[1] == 1 && int64(tag.Timestamp) >= key {
			fromDTS++
			if int64(tag.Timestamp) >= keyPTS {
				fromPTS++
			}
		}
	}
	return fromDTS, fromPTS
}

// mp4TailLoss is how many audio frames after the last picture the mp4 writer leaves out
// at the end of a file (see TestAudioKeptAtStartAndStitch).
const mp4TailLoss = 4

// probeAudioPackets counts the packets of the first audio stream with ffprobe.
func probeAudioPackets(t *testing.T, path string) int {
	t.Helper()
	out := mustRun(t, "ffprobe", "-v", "error", "-select_streams", "a:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path)
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n") // a playlist's program lists its streams again
	n, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("ffprobe audio packets of %s: %q", path, out)
	}
	return n
}

// TestAudioKeptAtStartAndStitch: a publisher that sends its audio ahead of the video
// (by 300 ms) is pushed twice within the stitch window; every format keeps every audio
// frame from the first keyframe on, across the stitch too. mp4 starts its presentation
// at the first picture (edit list), so its audio starts there: from the keyframe's PTS.
func TestAudioKeptAtStartAndStitch(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	src := filepath.Join(dir, "ahead.flv")
	fromDTS, fromPTS := audioAhead(t, makeSource(t, dir, 6), src, 300)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: "a"
    delayTime: 15
    recordFormats:
      - format: m3u8
      - format: flv
      - format: mp4
  - domainName: "*"
    appName: "c"
    delayTime: 15
    recordFormats:
      - format: cmaf
`)
	for range 2 {
		var wg sync.WaitGroup
		for _, app := range []string{"a", "c"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if out, err := push(t, src, s.rtmpURL(app, "s")); err != nil {
					t.Errorf("push to %s: %v\n%s", app, err, out)
				}
			}()
		}
		wg.Wait()
		s.waitIdle()
	}
	s.stop()
	s.start()
	recs := append(s.waitDone("app=a&stream=s", 3, 10*time.Second), s.waitDone("app=c&stream=s", 1, 10*time.Second)...)
	if len(recs) != 4 {
		t.Fatalf("%d recordings, want 4 (one file per format, stitched): %+v", len(recs), recs)
	}
	for _, r := range recs {
		p := s.filePath(r.Key)
		decodeClean(t, p)
		// The second push's timeline continues the first one's: all its audio is kept.
		got := probeAudioPackets(t, p)
		if r.Format == "mp4" {
			// The mp4 starts its audio at the first picture's presentation (an edit list skips
			// the head of the frame playing then, which is kept), and ends the file with its last
			// picture: the audio sent ahead of it (its last ~80 ms) is not in the file. Known.
			lo, hi := fromPTS+fromDTS-mp4TailLoss, 2*fromDTS
			if got < lo || got > hi {
				t.Errorf("mp4: %d audio frames, want %d–%d", got, lo, hi)
			}
			continue
		}
		if got != 2*fromDTS {
			t.Errorf("%s: %d audio frames, want %d + %d", r.Format, got, fromDTS, fromDTS)
		}
	}
}

// playlist is what a player reads of a media playlist.
type playlist struct {
	seq     int
	uris    []string
	durs    []float64
	endlist bool
}

func (p playlist) duration() (d float64) {
	for _, x := range p.durs {
		d += x
	}
	return d
}

func readPlaylist(t *testing.T, u string) (playlist, int) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p playlist
	if resp.StatusCode != 200 {
		return p, resp.StatusCode
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			p.seq, _ = strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(line, "#EXTINF:"):
			d, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(line, "#EXTINF:"), ","), 64)
			p.durs = append(p.durs, d)
		case line == "#EXT-X-ENDLIST":
			p.endlist = true
		case line != "" && !strings.HasPrefix(line, "#"):
			p.uris = append(p.uris, line)
		}
	}
	return p, 200
}

// startLivePush starts livrec recording m3u8 (5 s segments, a 60 s stitch window) and
// pushes src in real time to live/stream; the push's outcome arrives on the channel.
func startLivePush(t *testing.T, src, stream string) (*server, <-chan error) {
	t.Helper()
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: "*"
    delayTime: 60
    recordFormats:
      - format: m3u8
        sliceDuration: 5
`)
	pushed := make(chan error, 1)
	go func() {
		out, err := push(t, src, s.rtmpURL("live", stream), "-re")
		if err != nil {
			err = fmt.Errorf("%v\n%s", err, out)
		}
		pushed <- err
	}()
	return s, pushed
}

// TestLivePlaylistFollowedToEnd follows /live/{id}.m3u8 as a player does, from the first
// segment to the end of the recording: every reload extends the previous one (same media
// sequence, the same URIs for the segments already listed); when the publish ends the
// last segment is listed while the stitch window runs; when the file is generated the
// same URL ends the list with #EXT-X-ENDLIST, and every segment listed was fetched.
func TestLivePlaylistFollowedToEnd(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 12)
	s, pushed := startLivePush(t, src, "follow")
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if recs := s.recordings("app=live&stream=follow&format=m3u8"); len(recs) > 0 {
			id = recs[0].ID
		}
	}
	if id == "" {
		t.Fatal("no recording appeared")
	}
	var prev playlist
	fetched := map[string]bool{}
	follow := func() playlist {
		p, code := readPlaylist(t, s.url("/live/"+id+".m3u8"))
		if code == 404 && len(prev.uris) == 0 {
			return prev // no segment yet
		}
		if code != 200 {
			t.Fatalf("live playlist: HTTP %d after %d segments", code, len(prev.uris))
		}
		if p.seq != prev.seq || len(p.uris) < len(prev.uris) || !slices.Equal(p.uris[:len(prev.uris)], prev.uris) {
			t.Fatalf("the playlist does not extend the previous one:\nbefore seq %d %v\nnow    seq %d %v", prev.seq, prev.uris, p.seq, p.uris)
		}
		for _, u := range p.uris[len(prev.uris):] {
			resp, err := httpGet(s.url(u))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("segment %s: %v %v", u, err, resp)
			}
			fetched[u] = true
		}
		prev = p
		return p
	}
	for done := false; !done; {
		select {
		case err := <-pushed:
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			done = true
		case <-time.After(500 * time.Millisecond):
			follow()
		}
	}
	// The publish ended: the stitch window runs (60 s), the whole push must be listed.
	var p playlist
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if p = follow(); p.duration() > 11.5 {
			break
		}
	}
	if p.duration() < 11.5 || p.endlist {
		t.Fatalf("during the stitch window the live playlist lists %.2f s of a 12 s push (endlist %v)", p.duration(), p.endlist)
	}
	if code, body := s.post("/api/v1/streams/127.0.0.1/live/follow/record", map[string]string{"command": "cancel_delay"}); code != 200 {
		t.Fatalf("cancel_delay: %d %s", code, body)
	}
	for deadline := time.Now().Add(10 * time.Second); !p.endlist; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the live playlist never reached #EXT-X-ENDLIST")
		}
		p = follow()
	}
	if len(fetched) != len(p.uris) || p.duration() < 11.5 {
		t.Fatalf("ended with %d segments (%.2f s), fetched %d", len(p.uris), p.duration(), len(fetched))
	}
}
