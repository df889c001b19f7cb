package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/config"
	"github.com/livrec/livrec/internal/testenv"
)

// clusterRules records app "cloud" as m3u8 and mp4 into the S3 bucket at addr (the
// storage every node reaches); callbacks may go to the loopback receiver.
const clusterRules = `allowPrivateCallbacks: true
s3:
  - endpoint: %[1]q
    accessKey: ` + s3Access + `
    secretKey: ` + s3Secret + `
    region: us-east-1
    pathStyle: true
rules:
  - domainName: "*"
    appName: cloud
    ossEndpoint: %[1]q
    ossBucket: recordings
    delayTime: 60
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: mp4}]
`

// diskRules are clusterRules on local disk: the single-node reference run.
const diskRules = `rules:
  - domainName: "*"
    appName: cloud
    delayTime: 15
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: mp4}]
`

// clusterStream is an entry of GET /api/v1/streams on a cluster node.
type clusterStream struct {
	Node      string `json:"node"`
	Stream    string `json:"stream"`
	State     string `json:"state"`
	Recording bool   `json:"recording"`
}

func (s *server) clusterStreams() []clusterStream {
	s.t.Helper()
	resp, err := http.Get(s.url("/api/v1/streams"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Streams     []clusterStream
		Unreachable []struct{ Node, Error string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		s.t.Fatal(err)
	}
	if len(out.Unreachable) > 0 {
		s.t.Fatalf("nodes unreachable: %+v", out.Unreachable)
	}
	return out.Streams
}

// waitStream waits until s lists stream as live on node with the given state.
func (s *server) waitStream(stream, node, state string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all := s.clusterStreams()
		for _, st := range all {
			if st.Stream == stream && st.Node == node && st.State == state {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("stream %s not %q on node %s within %v: %+v", stream, state, node, timeout, all)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// playlistMedia is a stored m3u8 playlist without its URI lines (the segments' names
// hold their start time) followed by its segments' bytes: what must be identical between
// two recordings of the same input.
func playlistMedia(t *testing.T, path string) [][]byte {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "#") {
			tags = append(tags, l)
		}
	}
	return append([][]byte{[]byte(strings.Join(tags, "\n"))}, segmentBytes(t, path)...)
}

// TestCluster3Nodes: three nodes on one PostgreSQL catalog recording into one S3 bucket.
//
//   - 30 pushes spread over the nodes make one task each (ended by a cancel_delay sent to
//     another node), each file once in the catalog
//     and in the bucket, with the same media bytes as a single-node run of the input
//     (object names hold the recording's time, so names differ: the mp4 is compared
//     whole, the m3u8 by its tags and its segments' bytes);
//   - a rule and a callback configuration made through node 1's API apply on the
//     others (they read the catalog again every heartbeat interval);
//   - a callback receiver that is down during the first pushes sees every event exactly
//     once (the nodes share the outbox: retried until it answers, by one node);
//   - manual commands sent to node 3 and node 2 for a stream on node 1 take effect
//     there and answer with node 1's outcome; /api/v1/streams of any node lists it with
//     its node, and its live playlist too; /api/v1/cluster and `livrec cluster status`
//     show the nodes and leases;
//   - a command for a stream of a node just killed answers 503 naming the node.
func TestCluster3Nodes(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dsn := testenv.PostgresDSN(t)
	s3 := startS3(t)
	src := makeSource(t, t.TempDir(), 6)
	rc := newReceiver(t)
	rc.failures = 1 << 30 // down until the first pushes are done
	cfg := fmt.Sprintf(clusterRules, s3.addr)
	nodes := []*server{startNode(t, dsn, "n1", cfg), startNode(t, dsn, "n2", cfg), startNode(t, dsn, "n3", cfg)}
	if code, body := nodes[0].put("/api/v1/domains/example.com/notify", map[string]any{"notifyUrl": rc.URL + "/cb",
		"needStatusNotify": true}); code != 200 {
		t.Fatalf("notify config: %d %s", code, body)
	}
	// A rule made through node 1's API; the other nodes read it (and the callback
	// configuration) from the catalog within a heartbeat interval (1 s here).
	if code, body := nodes[0].post("/api/v1/rules", map[string]any{"domainName": "*", "appName": "late", "ossEndpoint": s3.addr,
		"ossBucket": s3Bucket, "delayTime": 60, "recordFormats": []any{map[string]any{"format": "mp4"}}}); code != 201 {
		t.Fatalf("rule through node 1: %d %s", code, body)
	}
	time.Sleep(2500 * time.Millisecond)

	// The reference: one node, SQLite, local disk.
	ref := startServer(t, t.TempDir(), diskRules)
	if out, err := push(t, src, ref.rtmpURL("cloud", "ref")); err != nil {
		t.Fatalf("reference push: %v\n%s", err, out)
	}
	ref.waitIdle()
	ref.stop() // generates the files
	ref.start()
	refRecs := ref.waitDone("stream=ref", 2, 20*time.Second)
	refMedia := map[string][][]byte{}
	for _, r := range refRecs {
		if r.Format == "mp4" {
			b, err := os.ReadFile(ref.filePath(r.Key))
			if err != nil {
				t.Fatal(err)
			}
			refMedia["mp4"] = [][]byte{b}
		} else {
			refMedia["m3u8"] = playlistMedia(t, ref.filePath(r.Key))
		}
	}

	// 30 pushes, 10 per node, 6 at a time.
	const pushes = 30
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	var mu sync.Mutex
	var failed []string
	// The receiver is down for the first 4 s: the callbacks of those pushes are retried
	// (1 s, 2 s, 4 s after the first try) until it answers.
	refused := make(chan int, 1)
	time.AfterFunc(4*time.Second, func() {
		rc.mu.Lock()
		refused <- 1<<30 - rc.failures
		rc.failures = 0
		rc.mu.Unlock()
	})
	for i := range pushes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n := nodes[i%3]
			if out, err := push(t, src, n.rtmpURL("cloud", fmt.Sprintf("s%02d", i))+"?vhost=example.com"); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("push %d: %v\n%s", i, err, out))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatal(strings.Join(failed, "\n"))
	}
	nodes[0].waitIdle() // every node consumed its pushes (the list is the cluster's)
	if n := <-refused; n == 0 {
		t.Fatal("no callback was tried while the receiver was down")
	} else {
		t.Logf("%d callback tries refused while the receiver was down", n)
	}

	// While the 30 tasks wait in their stitch window: the cluster's status.
	code, body := get(t, nodes[1].url("/api/v1/cluster"))
	var st struct {
		Nodes []struct {
			ID, HTTPAddr string
			Alive        bool
			Leases       []string
		}
		Counts struct{ Nodes, Alive, Leases int }
	}
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/api/v1/cluster: %d %s", code, body)
	}
	if st.Counts.Nodes != 3 || st.Counts.Alive != 3 || st.Counts.Leases != pushes || len(st.Nodes) != 3 {
		t.Fatalf("/api/v1/cluster: %s", body)
	}
	for i, n := range st.Nodes {
		if n.ID != fmt.Sprintf("n%d", i+1) || !n.Alive || len(n.Leases) != pushes/3 ||
			n.HTTPAddr != strings.TrimPrefix(nodes[i].url(""), "http://") {
			t.Fatalf("node %d in /api/v1/cluster: %+v", i, n)
		}
		for _, k := range n.Leases {
			var j int
			if _, err := fmt.Sscanf(k, "example.com/cloud/s%02d", &j); err != nil || j%3 != i {
				t.Fatalf("node %s holds lease %s", n.ID, k)
			}
		}
	}
	cli := exec.Command(livrecBinary(t), "cluster", "status")
	cli.Env = append(os.Environ(), config.CatalogDSNEnv+"="+dsn)
	out, err := cli.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "3 nodes, 3 alive, 30 leases") {
		t.Fatalf("livrec cluster status: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "NODE") || !strings.HasPrefix(lines[1], "n1 ") ||
		!strings.Contains(lines[1], " yes ") || !strings.Contains(lines[1], "example.com/cloud/s00 example.com/cloud/s03") {
		t.Fatalf("livrec cluster status table:\n%s", out)
	}
	cli = exec.Command(livrecBinary(t), "cluster", "status", "--json")
	cli.Env = append(os.Environ(), config.CatalogDSNEnv+"="+dsn)
	if out, err = cli.Output(); err != nil || !bytes.Contains(out, []byte(`"leases": 30`)) {
		t.Fatalf("livrec cluster status --json: %v\n%s", err, out)
	}

	// The tasks wait in their stitch window (60 s): cancel_delay, sent to another node
	// than the recorder, ends each now.
	for i := range pushes {
		if code, body := nodes[(i+1)%3].post(fmt.Sprintf("/api/v1/streams/example.com/cloud/s%02d/record", i),
			map[string]string{"command": "cancel_delay"}); code != 200 {
			t.Fatalf("cancel_delay of s%02d sent to node %d: %d %s", i, (i+1)%3+1, code, body)
		}
	}

	// Every stream: one task, m3u8 and mp4 once each, the reference's media.
	var all []recording
	for i := range pushes {
		stream := fmt.Sprintf("s%02d", i)
		recs := nodes[(i+2)%3].waitDone("stream="+stream, 2, 30*time.Second) // asked of another node than the recorder
		sort.Slice(recs, func(a, b int) bool { return recs[a].Format < recs[b].Format })
		if len(recs) != 2 || recs[0].Format != "m3u8" || recs[1].Format != "mp4" || recs[0].TaskID != recs[1].TaskID {
			t.Fatalf("stream %s: %+v", stream, recs)
		}
		all = append(all, recs...)
	}
	tasks := map[string]bool{}
	for _, r := range all {
		tasks[r.TaskID] = true
	}
	if len(tasks) != pushes {
		t.Fatalf("%d tasks for %d pushes", len(tasks), pushes)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range all {
		for !fileExists(s3.object(r.Key)) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		var got [][]byte
		if r.Format == "mp4" {
			b, err := os.ReadFile(s3.object(r.Key))
			if err != nil {
				t.Fatal(err)
			}
			got = [][]byte{b}
		} else {
			got = playlistMedia(t, s3.object(r.Key))
		}
		want := refMedia[r.Format]
		if len(got) != len(want) {
			t.Fatalf("%s: %d parts, the single-node run %d", r.Key, len(got), len(want))
		}
		for k := range got {
			if !bytes.Equal(got[k], want[k]) {
				t.Fatalf("%s: part %d differs from the single-node run", r.Key, k)
			}
		}
	}
	var objects []string
	filepath.Walk(filepath.Join(s3.root, s3Bucket), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && (strings.HasSuffix(p, ".m3u8") || strings.HasSuffix(p, ".mp4")) {
			objects = append(objects, p)
		}
		return nil
	})
	if len(objects) != 2*pushes {
		t.Fatalf("%d playlists and mp4 files in the bucket, want %d", len(objects), 2*pushes)
	}

	// Callbacks: each event once, though a third of them waited for the receiver.
	deadline = time.Now().Add(30 * time.Second)
	for {
		counts := map[string]int{}
		rc.mu.Lock()
		for _, b := range rc.bodies {
			ev, _ := b["event"].(string)
			if ev == "" && b["uri"] != nil {
				ev = "file_created"
			}
			counts[fmt.Sprintf("%s %v %v", ev, b["stream"], b["uri"])]++
		}
		rc.mu.Unlock()
		perEvent := map[string]int{}
		for k, n := range counts {
			if n != 1 {
				t.Fatalf("callback %q delivered %d times", k, n)
			}
			perEvent[strings.Fields(k)[0]]++
		}
		if perEvent["record_started"] == pushes && perEvent["file_created"] == 2*pushes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbacks after 30 s: %v", perEvent)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The rule made through node 1 records on node 3.
	if out, err := push(t, src, nodes[2].rtmpURL("late", "r")); err != nil {
		t.Fatalf("push to node 3: %v\n%s", err, out)
	}
	nodes[2].waitIdle() // node 3 consumed the whole push
	if code, body := nodes[1].post("/api/v1/streams/127.0.0.1/late/r/record", map[string]string{"command": "cancel_delay"}); code != 200 {
		t.Fatalf("cancel_delay of late/r sent to node 2: %d %s", code, body)
	}
	if recs := nodes[0].waitDone("app=late&stream=r", 1, 20*time.Second); len(recs) != 1 || recs[0].Format != "mp4" || recs[0].Duration < 5.5 {
		t.Fatalf("the rule made through node 1 on node 3: %+v", recs)
	}

	// Manual commands for a stream on node 1, sent to the other nodes.
	long := makeSource(t, t.TempDir(), 20)
	pushDone := make(chan struct{})
	go func() { push(t, long, nodes[0].rtmpURL("cloud", "manual"), "-re"); close(pushDone) }()
	nodes[2].waitStream("manual", "n1", "recording", 10*time.Second)
	time.Sleep(2500 * time.Millisecond)
	cmd := func(n *server, c string) (int, string) {
		return n.post("/api/v1/streams/127.0.0.1/cloud/manual/record", map[string]string{"command": c})
	}
	if code, body := cmd(nodes[2], "stop"); code != 200 {
		t.Fatalf("stop sent to node 3: %d %s", code, body)
	}
	nodes[0].waitStream("manual", "n1", "paused", 5*time.Second)
	if l := nodes[0].logs.String(); !strings.Contains(l, `msg="manual command from another node" node=n3 stream=127.0.0.1/cloud/manual command=stop`) {
		t.Fatalf("node 1's log does not show the command from node 3:\n%s", l)
	}
	if code, body := cmd(nodes[1], "stop"); code != http.StatusConflict || !strings.Contains(body, "TaskNotStarted") {
		t.Fatalf("second stop sent to node 2 (node 1 refuses it): %d %s", code, body)
	}
	if code, body := cmd(nodes[1], "start"); code != 200 {
		t.Fatalf("start sent to node 2: %d %s", code, body)
	}
	nodes[2].waitStream("manual", "n1", "recording", 5*time.Second)
	// The live playlist of node 1's recording, asked of node 3 (which passes it on).
	var liveURL string
	for _, r := range nodes[2].recordings("stream=manual&status=recording&format=m3u8") {
		liveURL = r.LiveURL
	}
	if liveURL == "" {
		t.Fatalf("no liveUrl for the manual recording: %+v", nodes[2].recordings("stream=manual"))
	}
	var segment string
	for deadline := time.Now().Add(10 * time.Second); segment == ""; time.Sleep(200 * time.Millisecond) {
		code, body := get(t, nodes[2].url(liveURL))
		if code == 200 && strings.HasPrefix(body, "#EXTM3U") {
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "/files/") && segment == "" {
					segment = l
				}
			}
		}
		if segment == "" && time.Now().After(deadline) {
			t.Fatalf("live playlist of node 1's recording through node 3: %d %s", code, body)
		}
	}
	// Its segments are in the bucket, which node 3's /files/ reads.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, body := get(t, nodes[2].url(segment))
		if code == 200 && len(body) > 1000 && body[0] == 0x47 { // an MPEG-TS packet
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s through node 3: %d (%d bytes)", segment, code, len(body))
		}
	}
	if code, body := cmd(nodes[2], "cancel_delay"); code != 200 {
		t.Fatalf("cancel_delay sent to node 3: %d %s", code, body)
	}
	// Generated at once, not 15 s after the push.
	manual := nodes[1].waitDone("stream=manual", 2, 10*time.Second)
	select {
	case <-pushDone:
		t.Fatalf("the push ended before the files were generated: cancel_delay did not act")
	default:
	}
	for _, r := range manual {
		if r.Duration < 1 {
			t.Fatalf("manual recording %+v", r)
		}
	}

	// Node 1 dies with a live stream: its lease still names it for a few seconds, and a
	// command sent meanwhile says which node cannot be reached.
	if code, body := cmd(nodes[0], "start"); code != 200 {
		t.Fatalf("start on node 1: %d %s", code, body)
	}
	nodes[0].kill()
	code, body = cmd(nodes[2], "stop")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "node n1") {
		t.Fatalf("stop for a stream of a killed node: %d %s", code, body)
	}
	<-pushDone
}

// get fetches u and returns the status and body.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
