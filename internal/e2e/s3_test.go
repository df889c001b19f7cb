package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
	"github.com/livrec/livrec/internal/testmedia"
)

// s3server is a versitygw (an S3-compatible server that checks signatures) on loopback
// with a posix backend: objects are plain files under root/bucket.
type s3server struct {
	t         *testing.T
	bin, root string
	addr      string
	cmd       *exec.Cmd
	done      chan struct{}
	accessLog string
}

const s3Bucket, s3Access, s3Secret = "recordings", "livrec-test", "livrec-test-secret"

func startS3(t *testing.T) *s3server {
	t.Helper()
	bin := testenv.Path(t, testenv.Versitygw)
	s := &s3server{t: t, bin: bin, root: t.TempDir(), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	s.accessLog = s.root + ".access.log"
	if err := os.Mkdir(filepath.Join(s.root, s3Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// spooled lists the files of <data>/spool waiting for their upload.
func spooled(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dataDir, "spool"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".data") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (s *s3server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--port", s.addr, "--access", s3Access, "--secret", s3Secret, "--quiet",
		"--access-log", s.accessLog, "posix", s.root)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, d chan struct{}) { c.Wait(); close(d) }(s.cmd, s.done)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			return
		}
	}
	s.t.Fatalf("versitygw did not start on %s", s.addr)
}

// kill stops the server abruptly (an outage).
func (s *s3server) kill() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		<-s.done
		s.cmd = nil
	}
}

func (s *s3server) config(rulesYAML string) string {
	return fmt.Sprintf(`
s3:
  - endpoint: %q
    accessKey: %s
    secretKey: %s
    region: us-east-1
    pathStyle: true
rules:
%s`, s.addr, s3Access, s3Secret, rulesYAML)
}

func (s *s3server) object(key string) string {
	return filepath.Join(s.root, s3Bucket, filepath.FromSlash(key))
}

// segmentBytes returns the contents of the segments a stored playlist lists, in order.
func segmentBytes(t *testing.T, playlist string) [][]byte {
	t.Helper()
	body, err := os.ReadFile(playlist)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, l := range strings.Split(string(body), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(playlist), strings.TrimPrefix(l, "./")))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

const s3Rules = `  - domainName: "*"
    appName: cloud
    ossEndpoint: %q
    ossBucket: recordings
    delayTime: 15
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: mp4}]
  - domainName: "*"
    appName: disk
    delayTime: 15
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: mp4}]
`

// checkS3Recording compares the bucket's recording of a stream with the local-disk one
// of the same input: every segment byte-identical, the mp4 playable, uploaded flags set,
// and nothing but creations in the server's access log.
func checkS3Recording(t *testing.T, s *server, s3 *s3server, stream string) {
	t.Helper()
	cloud := s.waitDone("app=cloud&stream="+stream, 2, 30*time.Second)
	disk := s.waitDone("app=disk&stream="+stream, 2, 10*time.Second)
	sort.Slice(cloud, func(i, j int) bool { return cloud[i].Format < cloud[j].Format })
	sort.Slice(disk, func(i, j int) bool { return disk[i].Format < disk[j].Format })
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range cloud {
		for !fileExists(s3.object(r.Key)) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		decodeClean(t, s3.object(r.Key))
	}
	for i := range cloud {
		if cloud[i].Format != "m3u8" {
			continue
		}
		a, b := segmentBytes(t, s3.object(cloud[i].Key)), segmentBytes(t, s.filePath(disk[i].Key))
		if len(a) != len(b) {
			t.Fatalf("bucket has %d segments, local disk %d", len(a), len(b))
		}
		for k := range a {
			if !bytes.Equal(a[k], b[k]) {
				t.Fatalf("segment %d differs between the bucket and local disk", k)
			}
		}
	}
	for time.Now().Before(deadline) {
		n := 0
		for _, r := range s.recordings("app=cloud&stream=" + stream) {
			if r.Uploaded {
				n++
			}
		}
		if n == 2 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, r := range s.recordings("app=cloud&stream=" + stream) {
		if !r.Uploaded || r.OssBucket != s3Bucket {
			t.Fatalf("catalog row does not say the file reached the bucket: %+v", r)
		}
	}
	log, _ := os.ReadFile(s3.accessLog)
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "DELETE") && !strings.Contains(l, "uploadId") {
			t.Fatalf("livrec sent a DELETE: %s", l)
		}
	}
}

// TestS3Recording: a rule with ossEndpoint/ossBucket records into an S3-compatible
// bucket (through the local spool), byte-identical to a local-disk recording.
func TestS3Recording(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	s3 := startS3(t)
	src, err := testmedia.MakeFLV(t.TempDir(), testmedia.Spec{Video: testmedia.H264, Audio: testmedia.AAC, Seconds: 12, Width: 320, Height: 240, GOP: 50})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), s3.config(fmt.Sprintf(s3Rules, s3.addr)))
	for _, app := range []string{"cloud", "disk"} {
		if out, err := push(t, src, s.rtmpURL(app, "s")); err != nil {
			t.Fatalf("push: %v\n%s", err, out)
		}
	}
	s.waitIdle()
	s.stop()
	// SIGTERM finalized the recordings; with the bucket up, the way out uploads them
	// all: nothing is left in the spool.
	if left := spooled(t, s.dataDir); len(left) != 0 {
		t.Fatalf("after SIGTERM the spool still holds %v", left)
	}
	s.start()
	checkS3Recording(t, s, s3, "s")
	// The file server falls back to the bucket.
	r := s.recordings("app=cloud&stream=s&format=mp4")[0]
	if resp, err := httpGet(s.url("/files/" + r.Key)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /files/ of an object in the bucket: %v %+v", err, resp)
	}
}

// TestLongS3Outage: the S3 server is down for 60 s in the middle of a recording; the
// recording carries on into the spool and the bucket ends up complete and identical to
// a local-disk recording of the same input. Then livrec is killed (SIGKILL) while
// uploads are pending, and the bucket is complete after the restart.
func TestLongS3Outage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 60 s storage outage")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	s3 := startS3(t)
	src, err := testmedia.MakeFLV(t.TempDir(), testmedia.Spec{Video: testmedia.H264, Audio: testmedia.AAC, Seconds: 80, Width: 320, Height: 240, GOP: 50})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), s3.config(fmt.Sprintf(s3Rules, s3.addr)))
	go push(t, src, s.rtmpURL("disk", "o"), "-re")
	pushed := make(chan struct{})
	go func() { push(t, src, s.rtmpURL("cloud", "o"), "-re"); close(pushed) }()
	time.Sleep(10 * time.Second)
	s3.kill() // outage from 10 s to 70 s of the push
	time.Sleep(60 * time.Second)
	s3.start()
	<-pushed
	s.waitIdle()
	s.stop()
	// Pending uploads may still be in the spool: kill -9 a restarted livrec while it
	// drains, then start again: the bucket must end up complete, each object once.
	s.start()
	s.kill()
	s.start()
	checkS3Recording(t, s, s3, "o")
}
