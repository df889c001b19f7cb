package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
	"github.com/livrec/livrec/internal/testmedia"
)

// clusterS3Rules records app "cloud" into the bucket in every format.
const clusterS3Rules = `  - domainName: "*"
    appName: cloud
    ossEndpoint: %q
    ossBucket: recordings
    delayTime: 15
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: flv}, {format: mp4}]
  - domainName: "*"
    appName: cloudc
    ossEndpoint: %[1]q
    ossBucket: recordings
    delayTime: 15
    recordFormats: [{format: cmaf, sliceDuration: 5}]
`

// pushBoth pushes src in real time to the streams of node s, in parallel.
func pushBoth(t *testing.T, src string, s *server, stream string, apps ...string) {
	t.Helper()
	errs := make(chan error, len(apps))
	for _, app := range apps {
		go func() {
			out, err := push(t, src, s.rtmpURL(app, stream), "-re")
			if err != nil {
				err = fmt.Errorf("push %s/%s: %v\n%s", app, stream, err, out)
			}
			errs <- err
		}()
	}
	for range apps {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// flvSource makes a test FLV of H.264 (320x240, a keyframe every 2 s) and AAC.
func flvSource(t *testing.T, seconds float64) string {
	t.Helper()
	src, err := testmedia.MakeFLV(t.TempDir(), testmedia.Spec{Video: testmedia.H264, Audio: testmedia.AAC, Seconds: seconds, Width: 320, Height: 240, GOP: 50})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// waitObject waits until the bucket holds key (uploads go through the spool).
func waitObject(t *testing.T, s3 *s3server, key string) string {
	t.Helper()
	p := s3.object(key)
	for deadline := time.Now().Add(30 * time.Second); !fileExists(p); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("object %s never reached the bucket", key)
		}
	}
	return p
}

// waitSegments waits until every segment a stored playlist lists is in the bucket.
func waitSegments(t *testing.T, playlist string) {
	t.Helper()
	body, err := os.ReadFile(playlist)
	if err != nil {
		t.Fatal(err)
	}
	dir := playlist[:strings.LastIndexByte(playlist, '/')]
	for _, l := range strings.Split(string(body), "\n") {
		uri := ""
		switch {
		case strings.HasPrefix(l, `#EXT-X-MAP:URI="`):
			uri, _, _ = strings.Cut(strings.TrimPrefix(l, `#EXT-X-MAP:URI="`), `"`)
		case l != "" && !strings.HasPrefix(l, "#"):
			uri = l
		default:
			continue
		}
		p := dir + "/" + strings.TrimPrefix(uri, "./")
		for deadline := time.Now().Add(30 * time.Second); !fileExists(p); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("segment %s of %s never reached the bucket", uri, playlist)
			}
		}
	}
}

// TestClusterStitchAcrossNodes: a push drops on node 1 and comes back on node 2 within
// the stitch window: node 1 hands its task over and node 2 continues it. The m3u8 and
// cmaf recordings are one playlist each with one discontinuity, lasting both pushes and
// decoding clean; flv and mp4 are two files each of the task, sequence 0 from node 1 and
// 1 from node 2.
func TestClusterStitchAcrossNodes(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dsn := testenv.PostgresDSN(t)
	s3 := startS3(t)
	src := flvSource(t, 12)
	cfg := s3.config(fmt.Sprintf(clusterS3Rules, s3.addr))
	n1 := startNode(t, dsn, "n1", cfg)
	n2 := startNode(t, dsn, "n2", cfg)
	pushBoth(t, src, n1, "hop", "cloud", "cloudc")
	pushBoth(t, src, n2, "hop", "cloud", "cloudc") // within node 1's stitch window
	if !strings.Contains(n1.logs.String(), "handed over to another node") || !strings.Contains(n2.logs.String(), "handed over by another node") {
		t.Fatalf("no hand-over in the logs:\nnode 1:\n%s\nnode 2:\n%s", n1.logs.String(), n2.logs.String())
	}
	n2.stop()  // ends the task: its files are generated on node 2
	n2.start() // uploads what its spool still holds
	recs := append(n1.waitDone("app=cloud&stream=hop", 5, 30*time.Second), n1.waitDone("app=cloudc&stream=hop", 1, 30*time.Second)...)
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Format != recs[j].Format {
			return recs[i].Format < recs[j].Format
		}
		return recs[i].Sequence < recs[j].Sequence
	})
	var got []string
	task := recs[len(recs)-1].TaskID // mp4's
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s#%d", r.Format, r.Sequence))
		if (r.TaskID != task && r.Format != "cmaf") || r.Status != "done" {
			t.Fatalf("want every file done and of one task: %+v", recs)
		}
	}
	if want := "cmaf#0 flv#0 flv#1 m3u8#0 mp4#0 mp4#1"; strings.Join(got, " ") != want {
		t.Fatalf("files %v, want %s", got, want)
	}
	for _, r := range recs {
		p := waitObject(t, s3, r.Key)
		switch r.Format {
		case "m3u8", "cmaf":
			waitSegments(t, p)
			body, _ := os.ReadFile(p)
			if n := strings.Count(string(body), "#EXT-X-DISCONTINUITY\n"); n != 1 {
				t.Fatalf("%s playlist has %d discontinuities, want 1:\n%s", r.Format, n, body)
			}
			if r.Duration < 23 || r.Duration > 25 {
				t.Fatalf("%s recording is %.3f s, want both 12 s pushes", r.Format, r.Duration)
			}
			if d := probeDuration(t, p); d < 23 || d > 25.5 {
				t.Fatalf("%s playlist plays %.3f s, want both pushes", r.Format, d)
			}
		default:
			if r.Duration < 11 || r.Duration > 13 {
				t.Fatalf("%s file %d is %.3f s, want one 12 s push", r.Format, r.Sequence, r.Duration)
			}
		}
		decodeClean(t, p)
	}
}
