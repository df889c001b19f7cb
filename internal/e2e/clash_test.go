package e2e

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// TestDomainsDoNotClash: live/s1 pushed on two domains at the same time with the default
// rule (its key templates have no domain) renders the same object keys; both recordings
// are generated whole, under distinct keys (the second one's with a "_1" suffix), each
// with its own media. Spellings of a vhost are one domain.
func TestDomainsDoNotClash(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	// Different sound, the same length: the end times, and so the keys of the whole
	// files, are the same too.
	lengths := map[string]float64{"a.test": 6, "b.test": 6}
	srcs := map[string]string{}
	for d, sec := range lengths {
		sub := dir + "/" + d
		mustRun(t, "mkdir", "-p", sub)
		srcs[d] = makeSourceFreq(t, sub, sec, map[string]int{"a.test": 440, "b.test": 880}[d])
	}
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: "*"
    delayTime: 15
    recordFormats:
      - format: m3u8
      - format: flv
      - format: mp4
`)
	// The keys carry the start second: both pushes start just after a second boundary,
	// and on a loaded machine, where the two ffmpegs may still start in different seconds,
	// the pair is pushed again on another stream name (at most 3 times).
	attempt := 1
	for ; ; attempt++ {
		stream := fmt.Sprintf("s%d", attempt)
		suffixed, keys := pushClashing(t, s, srcs, lengths, stream)
		if suffixed > 0 {
			break
		}
		if attempt == 3 {
			t.Fatalf("no key clashed in %d attempts (keys %v): the test did not exercise a clash", attempt, keys)
		}
		t.Logf("%s: the pushes started in different seconds, no clash: again", stream)
	}
	if n := len(s.recordings("domain=A.Test.")); n != 3*attempt {
		t.Errorf("recordings listed for domain A.Test.: %d, want a.test's 3 of each of %d attempts", n, attempt)
	}
}

// pushClashing pushes srcs on live/stream of the domains a.test and b.test (spelled as
// vhosts that normalize to them) at once, restarts livrec to generate every file, checks
// each recording whole, and returns how many keys carry the clash suffix.
func pushClashing(t *testing.T, s *server, srcs map[string]string, lengths map[string]float64, stream string) (int, map[string]string) {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	var wg sync.WaitGroup
	for d, vhost := range map[string]string{"a.test": "A.Test.", "b.test": "b.test:1935"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := push(t, srcs[d], s.rtmpURL("live", stream)+"?vhost="+vhost); err != nil {
				t.Errorf("push on %s: %v\n%s", vhost, err, out)
			}
		}()
	}
	wg.Wait()
	s.waitIdle()
	s.stop() // generates every file
	s.start()

	keys := map[string]string{}
	suffixed := 0
	for d, sec := range lengths {
		recs := s.waitDone("domain="+d+"&app=live&stream="+stream, 3, 10*time.Second)
		if len(recs) != 3 {
			t.Fatalf("%s: %d recordings, want 3 (m3u8, flv, mp4): %+v", d, len(recs), recs)
		}
		for _, r := range recs {
			if r.Status != "done" {
				t.Errorf("%s %s: status %s (%s)", d, r.Format, r.Status, r.Error)
				continue
			}
			if other, ok := keys[r.Key]; ok {
				t.Errorf("%s %s and %s share the key %s", d, r.Format, other, r.Key)
			}
			keys[r.Key] = d + " " + r.Format
			p := s.filePath(r.Key)
			if strings.Contains(r.Key, "_1.") {
				suffixed++
			}
			if r.Format == "m3u8" {
				pl := mustRun(t, "cat", p)
				if strings.Contains(pl, "_1.ts") {
					suffixed++
				}
			}
			decodeClean(t, p)
			got := probeDuration(t, p)
			if math.Abs(got-sec) > 0.15 || math.Abs(r.Duration-sec) > 0.15 {
				t.Errorf("%s %s %s: ffprobe %.3f s, catalog %.3f s, pushed %.1f s", d, r.Format, r.Key, got, r.Duration, sec)
			}
		}
	}
	return suffixed, keys
}

// makeSourceFreq is makeSource with a sine of freq Hz.
func makeSourceFreq(t *testing.T, dir string, seconds float64, freq int) string {
	t.Helper()
	p := dir + "/src.flv"
	mustRun(t, "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=25:duration=%g", seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=44100:duration=%g", freq, seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "50", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "flv", p)
	return p
}
