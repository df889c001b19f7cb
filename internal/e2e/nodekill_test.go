package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/testenv"
)

// nodeKillRules records app "cloud" into the bucket as m3u8 and flv.
const nodeKillRules = `  - domainName: "*"
    appName: cloud
    ossEndpoint: %q
    ossBucket: recordings
    delayTime: 15
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: flv}]
`

// putKeys counts the object creations of the bucket's access log by key: a line
// names the operation (s3_PutObject, s3_CompleteMultipartUpload: the parts of a
// multipart upload are not creations of their own), then the key. livrec's probes of the
// bucket are left out.
func putKeys(t *testing.T, s3 *s3server) map[string]int {
	t.Helper()
	log, err := os.ReadFile(s3.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, l := range strings.Split(string(log), "\n") {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if (f[i] == "s3_PutObject" || f[i] == "s3_CompleteMultipartUpload" || f[i] == "s3_CopyObject") &&
				!strings.HasPrefix(f[i+1], ".livrec-probe/") {
				out[f[i+1]]++
			}
		}
	}
	return out
}

// TestClusterNodeKilled: node 2 is SIGKILLed in the middle of two pushes. The publishers
// reconnect to node 1, which records them once node 2's leases expired, and finalizes
// node 2's open m3u8 recordings from what reached storage, once. Node 2 restarted
// recovers its flv files from its work directory, drops the m3u8 working files node 1
// finalized, and uploads what its spool held: every file done once, no task left open,
// no object written twice.
func TestClusterNodeKilled(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dsn := testenv.PostgresDSN(t)
	s3 := startS3(t)
	src, again := flvSource(t, 20), flvSource(t, 8)
	cfg := s3.config(fmt.Sprintf(nodeKillRules, s3.addr))
	n1 := startNode(t, dsn, "n1", cfg)
	n2 := startNode(t, dsn, "n2", cfg)
	streams := []string{"k1", "k2"}
	var wg sync.WaitGroup
	for _, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			push(t, src, n2.rtmpURL("cloud", st), "-re") // cut by the kill
			// The publisher reconnects to node 1: refused until node 2's lease expired.
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
				if _, err := push(t, again, n1.rtmpURL("cloud", st), "-re"); err == nil {
					return
				}
			}
			t.Errorf("stream %s: node 1 never accepted the reconnecting publisher", st)
		}()
	}
	time.Sleep(9 * time.Second) // a segment of each stream is stored
	n2.kill()
	wg.Wait()
	if t.Failed() {
		return
	}
	// Node 2's m3u8 files are finalized by node 1 (its flv files wait for node 2).
	for _, st := range streams {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			done := 0
			for _, r := range n1.recordings("app=cloud&format=m3u8&stream=" + st) {
				if r.Status == "done" {
					done++
				}
			}
			if done == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %s: node 2's m3u8 recording was not finalized by node 1: %+v", st, n1.recordings("app=cloud&stream="+st))
			}
		}
	}
	n2.start() // recovers its flv files, drains its spool
	n1.stop()  // ends node 1's tasks
	n1.start() // drains its spool
	for _, node := range []*server{n1, n2} {
		if c := strings.Count(node.logs.String(), "finalizing the recording of a dead node"); node == n2 && c != 0 {
			t.Fatalf("node 2 finalized %d recordings of a dead node", c)
		}
	}
	// n1.logs is the restarted node's: count the reaps in the catalog instead.
	cat, err := catalog.OpenDriver(schema.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	ctx := context.Background()
	if open, err := cat.OpenTasks(ctx); err != nil || len(open) != 0 {
		t.Fatalf("tasks left open: %+v %v", open, err)
	}
	if c := strings.Count(n2.logs.String(), "finalized by another node"); c != len(streams) {
		t.Fatalf("node 2's recovery dropped %d m3u8 files finalized elsewhere, want %d:\n%s", c, len(streams), n2.logs.String())
	}
	for _, st := range streams {
		recs := n1.waitDone("app=cloud&stream="+st, 4, 30*time.Second)
		byTask := map[string][]string{}
		for _, r := range recs {
			if r.Status != "done" {
				t.Fatalf("stream %s: %+v", st, recs)
			}
			byTask[r.TaskID] = append(byTask[r.TaskID], fmt.Sprintf("%s#%d", r.Format, r.Sequence))
			p := waitObject(t, s3, r.Key)
			if r.Format == "m3u8" {
				waitSegments(t, p)
				if r.Duration < 5 {
					t.Fatalf("stream %s: m3u8 of task %s is %.3f s", st, r.TaskID, r.Duration)
				}
			}
			decodeClean(t, p)
		}
		if len(recs) != 4 || len(byTask) != 2 {
			t.Fatalf("stream %s: want an m3u8 and an flv file of each node's task, have %v", st, byTask)
		}
		for task, files := range byTask {
			states, err := cat.TaskWriterStates(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			for id, ws := range states {
				if ws.Finalizer == "" && ws.State != "" {
					f, _ := cat.GetFile(ctx, id)
					t.Fatalf("task %s (%v): file %+v done without a claim", task, files, f)
				}
			}
		}
	}
	puts := putKeys(t, s3)
	if len(puts) < 8 { // two playlists, two flv files and their segments per stream
		log, _ := os.ReadFile(s3.accessLog)
		t.Fatalf("the bucket's access log shows %d objects created: %v\n%.3000s", len(puts), puts, log)
	}
	for key, n := range puts {
		if n != 1 {
			t.Fatalf("object %s was written %d times", key, n)
		}
	}
}
