package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/config"
	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// livrecBinary builds cmd/livrec once per test run.
func livrecBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "livrec-e2e-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "livrec")
		args := []string{"build", "-o", binPath}
		if os.Getenv("LIVREC_E2E_RACE") != "" {
			// The server under the race detector: a race makes it exit with status 66,
			// which the tests report (stop() checks the exit code).
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../../cmd/livrec")...).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is one livrec process.
type server struct {
	t        *testing.T
	dataDir  string
	config   string
	rtmpPort int
	httpPort int
	cmd      *exec.Cmd
	logs     *bytes.Buffer
	// catalogDSN is the PostgreSQL database (LIVREC_CATALOG_DSN) under
	// LIVREC_TEST_CATALOG=postgres.
	catalogDSN string
	done       chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func TestMain(m *testing.M) { testenv.Main(m) }

// CatalogEnv chooses the catalog driver of every livrec the tests start:
// LIVREC_TEST_CATALOG=postgres runs the suite on PostgreSQL (a database of the test
// binary's server per data directory), unset or sqlite on the SQLite file in the data
// directory.
const CatalogEnv = "LIVREC_TEST_CATALOG"

func testCatalogDriver(t *testing.T) string {
	switch d := os.Getenv(CatalogEnv); d {
	case "", schema.SQLite:
		return schema.SQLite
	case schema.Postgres:
		return d
	default:
		t.Fatalf("%s=%q: want %s or %s", CatalogEnv, d, schema.SQLite, schema.Postgres)
		return ""
	}
}

var catalogDSNs = struct {
	sync.Mutex
	m map[string]string // data directory → PostgreSQL DSN
}{m: map[string]string{}}

// catalogDSN is the catalog of dataDir under the chosen driver: the same database for
// every livrec (restart) on that directory.
func catalogDSN(t *testing.T, dataDir string) (driver, dsn string) {
	t.Helper()
	driver = testCatalogDriver(t)
	if driver != schema.Postgres {
		return driver, filepath.Join(dataDir, "catalog.db")
	}
	catalogDSNs.Lock()
	defer catalogDSNs.Unlock()
	if dsn, ok := catalogDSNs.m[dataDir]; ok {
		return driver, dsn
	}
	dsn = testenv.PostgresDSN(t)
	catalogDSNs.m[dataDir] = dsn
	t.Cleanup(func() {
		catalogDSNs.Lock()
		delete(catalogDSNs.m, dataDir)
		catalogDSNs.Unlock()
	})
	return driver, dsn
}

// openCatalog opens the catalog of the livrec on dataDir, for a test to read or seed.
func openCatalog(t *testing.T, dataDir string) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.OpenDriver(catalogDSN(t, dataDir))
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// startServer runs livrec with the given YAML config (empty: none) on fresh ports.
func startServer(t *testing.T, dataDir, configYAML string) *server {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, rtmpPort: freePort(t), httpPort: freePort(t)}
	if driver, dsn := catalogDSN(t, dataDir); driver == schema.Postgres {
		// In the environment, a postgres:// DSN alone selects PostgreSQL: also for the
		// configs a test writes itself between restarts.
		s.catalogDSN = dsn
	}
	if configYAML != "" {
		s.config = filepath.Join(t.TempDir(), "livrec.yaml")
		if err := os.WriteFile(s.config, []byte(configYAML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.start()
	return s
}

// e2eNodeSecret is the cluster secret (node.secret) of the nodes on a PostgreSQL catalog.
const e2eNodeSecret = "e2e-cluster-secret-0123456789"

func (s *server) start() {
	t := s.t
	t.Helper()
	args := []string{"serve", "--data-dir", s.dataDir,
		"--rtmp-addr", "127.0.0.1:" + strconv.Itoa(s.rtmpPort), "--http-addr", "127.0.0.1:" + strconv.Itoa(s.httpPort)}
	if s.config != "" {
		args = append(args, "--config", s.config)
	}
	s.cmd = exec.Command(livrecBinary(t), args...)
	if s.catalogDSN != "" {
		// Every node of a test's cluster shares the one secret.
		s.cmd.Env = append(os.Environ(), config.CatalogDSNEnv+"="+s.catalogDSN, config.NodeSecretEnv+"="+e2eNodeSecret)
	}
	logs := &syncBuffer{}
	s.logs = &logs.Buffer
	s.cmd.Stdout, s.cmd.Stderr = logs, logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("livrec log:\n%s", logs.String())
			logs.mu.Unlock()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("livrec exited at start:\n%s", logs.String())
		default:
		}
		if resp, err := http.Get(s.url("/healthz")); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if _, err := os.Stat(filepath.Join(s.dataDir, "catalog.db")); s.catalogDSN != "" && err == nil {
					t.Fatalf("%s=postgres, but livrec made an SQLite catalog in %s", CatalogEnv, s.dataDir)
				}
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("livrec did not become healthy:\n%s", logs.String())
}

func (s *server) url(p string) string { return "http://127.0.0.1:" + strconv.Itoa(s.httpPort) + p }

func (s *server) rtmpURL(app, stream string) string {
	return "rtmp://127.0.0.1:" + strconv.Itoa(s.rtmpPort) + "/" + app + "/" + stream
}

// stop sends SIGTERM and waits: every open recording is finalized on the way out.
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("livrec did not stop within 30 s after SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("livrec exit code %d", code)
	}
}

// kill sends SIGKILL: a crash.
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

type recording struct {
	ID        string  `json:"id"`
	TaskID    string  `json:"taskId"`
	Format    string  `json:"format"`
	Sequence  int     `json:"sequence"`
	Key       string  `json:"key"`
	Duration  float64 `json:"duration"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	Codecs    string  `json:"codecs"`
	Status    string  `json:"status"`
	Segments  int     `json:"segments"`
	Error     string  `json:"error"`
	Uploaded  bool    `json:"uploaded"`
	OssBucket string  `json:"ossBucket"`
	URL       string  `json:"url"`
	LiveURL   string  `json:"liveUrl"`
}

func (s *server) recordings(query string) []recording {
	s.t.Helper()
	resp, err := http.Get(s.url("/api/v1/recordings?" + query))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Recordings []recording }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		s.t.Fatal(err)
	}
	return out.Recordings
}

// waitRecordings polls until n recordings with status done exist.
func (s *server) waitDone(query string, n int, timeout time.Duration) []recording {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := s.recordings(query)
		done := 0
		for _, r := range recs {
			if r.Status == "done" {
				done++
			}
		}
		if done >= n {
			return recs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("want %d done recordings, have %+v", n, recs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *server) filePath(key string) string {
	return filepath.Join(s.dataDir, "files", filepath.FromSlash(key))
}

// run executes a command and returns its combined output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// makeSource encodes a test FLV: testsrc2 + sine, H.264 with B-frames and AAC.
func makeSource(t *testing.T, dir string, seconds float64, extra ...string) string {
	t.Helper()
	p := filepath.Join(dir, "src.flv")
	args := []string{"-v", "error", "-y", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=25:duration=%g", seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=44100:duration=%g", seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "50", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k"}
	args = append(args, extra...)
	args = append(args, "-f", "flv", p)
	mustRun(t, "ffmpeg", args...)
	return p
}

// push publishes a file over RTMP as fast as possible (-re makes it real time).
func push(t *testing.T, src, url string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"-v", "error"}, extra...)
	args = append(args, "-i", src, "-c", "copy", "-f", "flv", url)
	return run(t, "ffmpeg", args...)
}

func probeDuration(t *testing.T, path string) float64 {
	t.Helper()
	out := mustRun(t, "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path)
	d, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		t.Fatalf("ffprobe duration of %s: %q", path, out)
	}
	return d
}

// decodeClean decodes the whole input; ffmpeg must print nothing at -v error.
func decodeClean(t *testing.T, path string) {
	t.Helper()
	out, err := run(t, "ffmpeg", "-v", "error", "-i", path, "-f", "null", "-")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("decoding %s is not clean (err=%v):\n%s", path, err, out)
	}
}

// videoNALUs extracts the H.264 VCL NAL units (slices) with ffmpeg's own demuxer.
func videoNALUs(t *testing.T, path string) [][]byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "es.h264")
	mustRun(t, "ffmpeg", "-v", "error", "-y", "-i", path, "-map", "0:v:0", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var nalus [][]byte
	for _, n := range splitAnnexB(b) {
		if typ := n[0] & 0x1f; typ >= 1 && typ <= 5 {
			nalus = append(nalus, n)
		}
	}
	return nalus
}

func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

func sameNALUs(t *testing.T, want, got [][]byte) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("video NAL unit count: pushed %d, recorded %d", len(want), len(got))
	}
	for i := range want {
		if !bytes.Equal(want[i], got[i]) {
			t.Fatalf("video NAL unit %d differs (%d vs %d bytes)", i, len(want[i]), len(got[i]))
		}
	}
}

func httpGet(u string) (*http.Response, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}

// waitIdle waits until livrec has no live publish: the pushes' data is all consumed.
func (s *server) waitIdle() {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url("/api/v1/streams"))
		if err == nil {
			var out struct{ Streams []json.RawMessage }
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if len(out.Streams) == 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("publishes still live after 20 s")
}
