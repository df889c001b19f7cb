package storage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// segBody is the deterministic content of test item i.
func segBody(i, size int) []byte { return randomBytes(size, uint64(1000+i)) }

// TestUploaderVersitygwOutage records into the spool while versitygw is killed and
// restarted on the same port and directory: uploads retry (the proxy answers 502 while the
// server is gone), then drain in order per stream; every object arrives byte-identical; no
// DELETE and no unconditional or overwriting PUT is ever sent.
func TestUploaderVersitygwOutage(t *testing.T) {
	v := startVersitygw(t)
	rec := newRecorder(t, v.addr)
	cfg := v.config()
	cfg.Endpoint = rec.addr()
	s3 := newTestS3(t, cfg)
	ctx := ctxT(t, 50*time.Second)
	if err := s3.Check(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	uploaded := map[string][]string{}
	opts := UploaderOptions{
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, Logger: testLogger(t),
		StreamOf: func(key string) string { return strings.Split(key, "/")[1] },
		OnUploaded: func(key string, _ int64) {
			mu.Lock()
			s := strings.Split(key, "/")[1]
			uploaded[s] = append(uploaded[s], key)
			mu.Unlock()
		},
	}
	u := newTestUploader(t, t.TempDir(), s3, opts)
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	want := map[string][]string{}
	bodies := map[string][]byte{}
	n := 0
	record := func(round int) {
		for i := range 4 {
			for _, s := range []string{"a", "b"} {
				key := fmt.Sprintf("rec/%s/%d-%02d.ts", s, round, i)
				if i == 3 {
					key = fmt.Sprintf("rec/%s/%d-index.m3u8", s, round)
				}
				n++
				bodies[key] = segBody(n, 64<<10+n)
				if err := u.Store(ctx, key, writeTemp(t, work, "seg", bodies[key])); err != nil {
					t.Fatal(err)
				}
				want[s] = append(want[s], key)
			}
		}
	}
	record(0)
	if err := u.Drain(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}

	v.stop()
	outage := time.Now()
	record(1)
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(u.m.Retries) < 4 {
		if time.Now().After(deadline) {
			t.Fatal("no retries during the outage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	record(2) // recording carries on into the spool
	if st := u.Stats(); st.Items != 16 {
		t.Fatalf("spool during outage: %+v", st)
	}
	time.Sleep(time.Until(outage.Add(3 * time.Second)))
	v.start()
	if err := u.Drain(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Logf("outage: %d retries, drained %v after restart", int(metricValue(u.m.Retries)), time.Since(outage)-3*time.Second)

	mu.Lock()
	for s := range want {
		if !slices.Equal(uploaded[s], want[s]) {
			t.Errorf("stream %s: uploaded %v, want %v", s, uploaded[s], want[s])
		}
	}
	mu.Unlock()
	for key, b := range bodies {
		if disk, err := os.ReadFile(v.objectPath(key)); err != nil || !bytes.Equal(disk, b) {
			t.Errorf("%s: stored object differs (%v)", key, err)
		}
	}
	// The server's own log: per stream, the playlist of a round was created after its
	// segments, and each object was created exactly once.
	created := map[string]int{}
	var order []string
	for _, e := range v.accessLog() {
		if e.Op == "PutObject" && e.Status == 200 {
			created[e.Key]++
			order = append(order, e.Key)
		}
	}
	for key := range bodies {
		if created[key] != 1 {
			t.Errorf("%s created %d times", key, created[key])
		}
	}
	for _, s := range []string{"a", "b"} {
		var got []string
		for _, k := range order {
			if strings.HasPrefix(k, "rec/"+s+"/") {
				got = append(got, k)
			}
		}
		if !slices.Equal(got, want[s]) {
			t.Errorf("server saw stream %s in order %v, want %v", s, got, want[s])
		}
	}
	var saw502 bool
	for _, r := range rec.requests() {
		saw502 = saw502 || r.Status == 502
	}
	if !saw502 {
		t.Error("the outage was not observed as 5xx answers")
	}
	assertCreateOnly(t, rec.requests())
	v.assertNoDeleteLogged(t)
}

const crashItems = 24

// TestUploaderCrashVersitygw kills (SIGKILL) a process in the middle of uploading its
// spool to versitygw, then drains the spool from this process: every item ends up in the
// bucket exactly once, byte-identical, and the spool is empty.
func TestUploaderCrashVersitygw(t *testing.T) {
	v := startVersitygw(t)
	spool := t.TempDir()
	ctx := ctxT(t, 50*time.Second)
	cmd := exec.Command(os.Args[0], "-test.run=^TestUploaderCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "LIVREC_CRASH_CHILD=1", "LIVREC_CRASH_SPOOL="+spool, "LIVREC_CRASH_ENDPOINT="+v.addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	ups := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "UPLOADED ") {
			ups++
			if ups == 3 {
				break
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if ups < 3 {
		t.Fatalf("child reported %d uploads before dying", ups)
	}
	left := len(spoolFiles(t, spool)) / 2
	t.Logf("killed the child after %d uploads; %d items left in the spool", ups, left)

	s3 := newTestS3(t, v.config())
	u := newTestUploader(t, spool, s3, UploaderOptions{MinBackoff: 50 * time.Millisecond, Logger: testLogger(t)})
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range crashItems {
		key := crashKey(i)
		if disk, err := os.ReadFile(v.objectPath(key)); err != nil || !bytes.Equal(disk, segBody(i, 1<<20)) {
			t.Errorf("%s: stored object differs (%v)", key, err)
		}
	}
	created := map[string]int{}
	for _, e := range v.accessLog() {
		if (e.Op == "PutObject" || e.Op == "CompleteMultipartUpload") && e.Status == 200 {
			created[e.Key]++
		}
	}
	for i := range crashItems {
		if c := created[crashKey(i)]; c != 1 {
			t.Errorf("%s created %d times", crashKey(i), c)
		}
	}
	if f := spoolFiles(t, spool); len(f) != 0 {
		t.Errorf("spool left %v", f)
	}
	if st := u.Stats(); st.Items != 0 || st.Parked != 0 {
		t.Errorf("stats %+v", st)
	}
	v.assertNoDeleteLogged(t)
}

func crashKey(i int) string { return "crash/seg" + strconv.Itoa(1000+i) + ".ts" }

// TestUploaderCrashChild is the process TestUploaderCrashVersitygw kills: it spools
// crashItems files and uploads them one at a time, printing each upload.
func TestUploaderCrashChild(t *testing.T) {
	if os.Getenv("LIVREC_CRASH_CHILD") == "" {
		t.Skip("helper process of TestUploaderCrashVersitygw")
	}
	s3, err := NewS3(S3Config{Endpoint: os.Getenv("LIVREC_CRASH_ENDPOINT"), AccessKey: testAccess, SecretKey: testSecret,
		Region: "us-east-1", PathStyle: true}, testBucket)
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewUploader(os.Getenv("LIVREC_CRASH_SPOOL"), s3, UploaderOptions{Workers: 1,
		OnUploaded: func(key string, _ int64) { fmt.Printf("UPLOADED %s\n", key) }})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	ctx := context.Background()
	for i := range crashItems {
		if err := u.Store(ctx, crashKey(i), writeTemp(t, work, "f", segBody(i, 1<<20))); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = u.Drain(ctx)
	time.Sleep(time.Minute) // killed before
}
