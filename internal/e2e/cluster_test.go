package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// startNode runs livrec as node id of a cluster whose catalog is the PostgreSQL
// database dsn (each node has its own data directory and ports).
func startNode(t *testing.T, dsn, id, rulesYAML string) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), rtmpPort: freePort(t), httpPort: freePort(t), catalogDSN: dsn}
	s.config = t.TempDir() + "/livrec.yaml"
	// The DSN reaches it in LIVREC_CATALOG_DSN (server.start).
	cfg := fmt.Sprintf("node:\n  id: %s\n  heartbeatInterval: 1\n  missedBeats: 3\n%s", id, rulesYAML)
	if err := os.WriteFile(s.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	return s
}

// TestClusterSecondPublisherRefused: two nodes on one PostgreSQL catalog. A stream key
// published on node 1 is refused on node 2 — while it is live and during its stitch
// window, when node 1 still owns it (its rule records to the local disk: no hand-over)
// — and node 1 records it whole. Once node 1's task
// ended (SIGTERM finalizes it) the lease is released: node 2 then records the key.
func TestClusterSecondPublisherRefused(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dsn := testenv.PostgresDSN(t)
	src := makeSource(t, t.TempDir(), 8)
	n1 := startNode(t, dsn, "n1", hlsConfig)
	n2 := startNode(t, dsn, "n2", hlsConfig)
	first := make(chan error, 1)
	go func() {
		out, err := push(t, src, n1.rtmpURL("live", "dup"), "-re")
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		first <- err
	}()
	time.Sleep(3 * time.Second)
	if out, err := push(t, src, n2.rtmpURL("live", "dup")); err == nil {
		t.Fatalf("second publisher on node 2 accepted:\n%s", out)
	}
	if err := <-first; err != nil {
		t.Fatalf("first publisher: %v", err)
	}
	// In node 1's stitch window (15 s) the key is still node 1's.
	if out, err := push(t, src, n2.rtmpURL("live", "dup")); err == nil {
		t.Fatalf("publisher on node 2 accepted in node 1's stitch window:\n%s", out)
	}
	if !strings.Contains(n2.logs.String(), "being published on node n1") {
		t.Fatalf("node 2's log does not name the owner:\n%s", n2.logs.String())
	}
	// The task of a local-disk rule is not handed over (its files are on node 1's disk).
	if !strings.Contains(n2.logs.String(), "records to this node's local disk") {
		t.Fatalf("node 2's log does not say why node 1 kept the stream:\n%s", n2.logs.String())
	}
	n1.stop() // ends the task: the file is generated, the lease released
	recs := n2.waitDone("app=live&stream=dup", 1, 20*time.Second)
	if len(recs) != 1 {
		t.Fatalf("recordings after node 1's push: %+v", recs)
	}
	r := recs[0]
	if r.Duration < 7.5 || r.Duration > 8.5 {
		t.Fatalf("node 1's recording is %.3f s, want the whole 8 s push", r.Duration)
	}
	sameNALUs(t, videoNALUs(t, src), videoNALUs(t, n1.filePath(r.Key)))

	// Released: node 2 records the key now.
	if out, err := push(t, src, n2.rtmpURL("live", "dup")); err != nil {
		t.Fatalf("push on node 2 after node 1 released the key: %v\n%s", err, out)
	}
	n2.stop()
	n2.start()
	recs = n2.waitDone("app=live&stream=dup", 2, 20*time.Second)
	tasks := map[string]bool{}
	for _, r := range recs {
		tasks[r.TaskID] = true
	}
	if len(recs) != 2 || len(tasks) != 2 {
		t.Fatalf("want two recordings of two tasks, have %+v", recs)
	}
}
