package e2e

import (
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/testenv"
)

// rewriteFLV copies an FLV file, passing every tag's timestamp through fix.
func rewriteFLV(t *testing.T, src, dst string, fix func(ts uint32) uint32) {
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
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tag.Timestamp = fix(tag.Timestamp)
		if err := w.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *server) metric(name string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.url("/metrics"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestTimestampJumpRepaired: a 30 s forward jump in the pushed timestamps (both tracks)
// is re-based: the recording is continuous, decodes cleanly, and the repair is counted.
func TestTimestampJumpRepaired(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	src := makeSource(t, dir, 12)
	jumped := filepath.Join(dir, "jumped.flv")
	rewriteFLV(t, src, jumped, func(ts uint32) uint32 {
		if ts >= 6000 {
			return ts + 30000
		}
		return ts
	})
	s := startServer(t, t.TempDir(), hlsConfig)
	if out, err := push(t, jumped, s.rtmpURL("live", "jumpy")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	if n := s.metric(`livrec_timestamp_repairs_total{kind="jump"}`); n < 1 {
		t.Fatalf("the jump never reached livrec as a jump (repairs: %v); the test proves nothing", n)
	}
	s.stop()
	s.start()
	recs := s.waitDone("app=live&stream=jumpy", 1, 5e9)
	pl := s.filePath(recs[0].Key)
	decodeClean(t, pl)
	want := probeDuration(t, src)
	if got := probeDuration(t, pl); math.Abs(got-want) > 0.2 {
		t.Fatalf("recorded %.3f s, want %.3f s: the 30 s gap was not removed", got, want)
	}
	sameNALUs(t, videoNALUs(t, src), videoNALUs(t, pl))
}
