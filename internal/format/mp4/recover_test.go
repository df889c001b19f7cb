package mp4

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/media"
)

func execCombined(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

func testKeyFn(end time.Time) string {
	return "rec/live/s1/" + end.UTC().Format("20060102-150405.000") + ".mp4"
}

// ---------------------------------------------------------------------------------------
// A real kill -9: a child process (this test binary) records, then is killed.

const crashChildEnv = "LIVREC_MP4_CRASH_CHILD"

type crashFeed struct {
	Video, Audio *media.Track
	AUs          []*media.AccessUnit
}

// crashChild runs in the child process: it records dir/feed.gob into dir/work, says
// READY and waits to be killed.
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	f, err := os.Open(filepath.Join(dir, "feed.gob"))
	if err != nil {
		fail(err)
	}
	var cf crashFeed
	if err := gob.NewDecoder(f).Decode(&cf); err != nil {
		fail(err)
	}
	w, err := New(Config{WorkDir: filepath.Join(dir, "work"), Store: &diskStore{Root: dir}, Now: fakeClock()})
	if err != nil {
		fail(err)
	}
	if err := w.SetTracks(cf.Video, cf.Audio); err != nil {
		fail(err)
	}
	for _, au := range cf.AUs {
		if err := w.WriteAU(au); err != nil {
			fail(err)
		}
	}
	fmt.Println("READY", w.Duration())
	time.Sleep(time.Hour)
	os.Exit(0)
}

func TestRecoverAfterKill(t *testing.T) {
	in := getInput(t, inH264AAC)
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(crashFeed{Video: in.video, Audio: in.audio, AUs: in.aus}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "feed.gob"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait() //nolint:errcheck // killed
	if err != nil || !strings.HasPrefix(line, "READY") {
		t.Fatalf("child: %q %v", line, err)
	}
	written, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(line, "READY")))
	if err != nil {
		t.Fatal(err)
	}

	st := newDiskStore(t)
	res, err := Recover(context.Background(), work, st, testKeyFn, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("written %v before the kill, recovered %v, %d bytes", written, res.Duration, res.Bytes)
	if res.Duration < written-2*time.Second || res.Duration > written {
		t.Errorf("recovered %v of %v", res.Duration, written)
	}
	if want := testKeyFn(fakeClock()().Add(res.Duration)); res.Key != want {
		t.Errorf("key %q, want %q", res.Key, want)
	}
	checkFile(t, in, inH264AAC, st.Path(res.Key), res)
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
	if _, err := Recover(context.Background(), work, st, testKeyFn, nil); !errors.Is(err, ErrNoJournal) {
		t.Errorf("second Recover: %v, want ErrNoJournal", err)
	}
}

// ---------------------------------------------------------------------------------------
// In-process crashes: the writer is abandoned and its working file damaged.

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoverDamaged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		input  string
		damage func(t *testing.T, path string)
	}{
		{"cut-mid-fragment", inH264MP3, func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()-700); err != nil {
				t.Fatal(err)
			}
		}},
		{"zero-tail", inH265AAC, func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.Write(make([]byte, 5000)) //nolint:errcheck
		}},
		{"cut-in-moof", inMPEG4MP3, func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			i := bytes.LastIndex(b, []byte("moof"))
			if err := os.Truncate(path, int64(i+20)); err != nil {
				t.Fatal(err)
			}
		}},
		{"intact", inAACOnly, func(*testing.T, string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := getInput(t, tc.input)
			st := newDiskStore(t)
			w, dir := newTestWriter(t, st)
			if err := w.SetTracks(in.video, in.audio); err != nil {
				t.Fatal(err)
			}
			feed(t, w, in.aus)
			written := w.Duration()
			// Killed while writing the fragment of the last second: it is on disk,
			// then damaged.
			if err := w.flush(false); err != nil {
				t.Fatal(err)
			}
			w.f.Close() // the process is gone
			tc.damage(t, filepath.Join(dir, workName))
			backup := t.TempDir()
			copyDir(t, dir, backup)

			res, err := Recover(context.Background(), dir, st, testKeyFn, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("written %v, recovered %v", written, res.Duration)
			if res.Duration < written-2*time.Second || res.Duration > written {
				t.Errorf("recovered %v of %v", res.Duration, written)
			}
			checkFile(t, in, tc.input, st.Path(res.Key), res)

			// Idempotent: the same state again (as if the first Recover died after
			// storing) gives the same object, accepted although it exists.
			copyDir(t, backup, dir)
			res2, err := Recover(context.Background(), dir, st, testKeyFn, testLogger(t))
			if err != nil || res2 != res {
				t.Errorf("repeated Recover: %+v %v, first %+v", res2, err, res)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("work dir not cleaned: %v", entries)
			}
			if _, err := Recover(context.Background(), dir, st, testKeyFn, nil); !errors.Is(err, ErrNoJournal) {
				t.Errorf("third Recover: %v, want ErrNoJournal", err)
			}
		})
	}
}

// A crash inside Finish (after the journal got the key): Recover stores under that key,
// and produces the very bytes Finish would have (index from memory vs from the file).
func TestRecoverUsesFinishKey(t *testing.T) {
	in := getInput(t, inH264AAC)
	finished := newDiskStore(t)
	w1, _ := newTestWriter(t, finished)
	if err := w1.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w1, in.aus)
	res1, err := w1.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}

	st := newDiskStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	if err := w.flush(true); err != nil {
		t.Fatal(err)
	}
	w.f.Close()
	if err := saveJournal(dir, &journal{Version: journalVersion, Start: w.start, Key: testKey}, false); err != nil {
		t.Fatal(err)
	}
	res, err := Recover(context.Background(), dir, st, testKeyFn, nil)
	if err != nil || res.Key != testKey {
		t.Fatalf("Recover: %+v %v", res, err)
	}
	checkFile(t, in, inH264AAC, st.Path(testKey), res)
	checkComplete(t, in, st.Path(testKey), res)
	a, _ := os.ReadFile(finished.Path(testKey))
	b, _ := os.ReadFile(st.Path(testKey))
	if res != res1 || !bytes.Equal(a, b) {
		t.Errorf("Recover made another file than Finish: %+v vs %+v", res, res1)
	}
}

// New refuses a work dir that still holds an unrecovered recording.
func TestNewRefusesJournal(t *testing.T) {
	dir := t.TempDir()
	if err := saveJournal(dir, &journal{Version: journalVersion}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{WorkDir: dir, Store: newDiskStore(t)}); err == nil {
		t.Error("New accepted a work dir with a journal")
	}
}

// ---------------------------------------------------------------------------------------
// Memory: only the index grows with the recording.

// loopSpan is the timeline length of one loop of the input: past the end of its last
// frame of either track, on a whole video frame.
func loopSpan(in *input) time.Duration {
	var end time.Duration
	for _, au := range in.aus {
		end = max(end, au.DTS+40*time.Millisecond)
	}
	return (end + 39*time.Millisecond) / (40 * time.Millisecond) * (40 * time.Millisecond)
}

// loopFeed writes loops of the input back to back on one continuous timeline.
func loopFeed(t testing.TB, w *Writer, in *input, from, to int) int64 {
	span := loopSpan(in)
	var au media.AccessUnit
	var n int64
	for k := from; k < to; k++ {
		for _, src := range in.aus {
			au = *src
			au.DTS += time.Duration(k) * span
			au.PTS += time.Duration(k) * span
			if err := w.WriteAU(&au); err != nil {
				t.Fatal(err)
			}
			n += int64(src.Size())
		}
	}
	return n
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestMemoryBounded(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	loopFeed(t, w, in, 0, 1) // buffers at their working size
	n0 := w.idx.samples()
	h0 := heapAlloc()
	media := loopFeed(t, w, in, 1, 60) // about 10 minutes
	h1 := heapAlloc()
	samples := w.idx.samples() - n0
	growth := int64(h1) - int64(h0)
	// 12 bytes per sample, whole index blocks, the chunk list, and some slack.
	limit := int64(samples)*12 + 2*blockLen*12*2 + 256<<10
	t.Logf("10 min: %d samples, %d media bytes, heap grew %d bytes (limit %d)", samples, media, growth, limit)
	if growth > limit {
		t.Errorf("heap grew %d bytes for %d samples (%d media bytes): more than the index", growth, samples, media)
	}
	if media < 2*limit {
		t.Fatalf("test media too small (%d bytes) to tell the index from the payloads", media)
	}
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := probeFormatDuration(t, st.Path(testKey)); absDur(got-60*loopSpan(in)) > 200*time.Millisecond ||
		absDur(got-res.Duration) > 2*time.Millisecond {
		t.Errorf("10-minute file lasts %v (result %v)", got, res.Duration)
	}
}

// ---------------------------------------------------------------------------------------
// The 64-bit paths: co64 chunk offsets, a 64-bit mdat size and version-1 mdhd.

func TestLargeFileBoxes(t *testing.T) {
	in := getInput(t, inH264AAC)
	old := offsetLimit
	offsetLimit = 1000 // every offset "exceeds" 32 bits
	defer func() { offsetLimit = old }()
	st := newDiskStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	path := st.Path(testKey)
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, []byte("co64")) || bytes.Contains(b, []byte("stco")) {
		t.Error("no co64 box")
	}
	if i := bytes.Index(b, []byte("mdat")); i < 4 || b[i-1] != 1 || b[i-4] != 0 {
		t.Error("mdat without 64-bit size")
	}
	if out := ffmpegDecode(t, path); out != "" {
		t.Errorf("ffmpeg decode reported:\n%s", out)
	}
	if got := probeFormatDuration(t, path); absDur(got-res.Duration) > 2*time.Millisecond {
		t.Errorf("duration %v, result %v", got, res.Duration)
	}
	// The same movie in 32-bit form has identical media.
	offsetLimit = old
	w2, _ := newTestWriter(t, st)
	if err := w2.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w2, in.aus)
	if _, err := w2.Finish(context.Background(), "small.mp4"); err != nil {
		t.Fatal(err)
	}
	hash := func(p string) string {
		out, err := execCombined("ffmpeg", "-nostdin", "-v", "error", "-i", p, "-map", "0", "-c", "copy", "-f", "streamhash", "-")
		if err != nil {
			t.Fatalf("streamhash: %v %s", err, out)
		}
		return string(out)
	}
	if a, b := hash(path), hash(st.Path("small.mp4")); a != b {
		t.Errorf("co64 file differs from the stco one:\n%s\n%s", a, b)
	}
}

// Long recordings need version-1 mdhd (90 kHz overflows 32 bits after 13.25 h).
func TestLongDurationBoxes(t *testing.T) {
	in := getInput(t, inAACOnly)
	st := newDiskStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(nil, in.audio); err != nil {
		t.Fatal(err)
	}
	// Three frames, 20 hours apart (timestamp repair would not do this; the container
	// must still describe it).
	for i, au := range in.aus[:3] {
		c := *au
		c.DTS = time.Duration(i) * 20 * time.Hour
		c.PTS = c.DTS
		if err := w.WriteAU(&c); err != nil {
			t.Fatal(err)
		}
	}
	_ = dir
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	if want := 60 * time.Hour; absDur(res.Duration-want) > time.Millisecond {
		t.Errorf("duration %v, want %v", res.Duration, want)
	}
	if got := probeFormatDuration(t, st.Path(testKey)); absDur(got-res.Duration) > 2*time.Millisecond {
		t.Errorf("ffprobe duration %v, result %v", got, res.Duration)
	}
}

// ---------------------------------------------------------------------------------------
// Benchmarks.

// BenchmarkWriter measures WriteAU (fragmenting into the working file included); one op
// is one access unit, so allocs/op is allocations per AU.
func BenchmarkWriter(b *testing.B) {
	in := getInput(b, inH264AAC)
	st := newDiskStore(b)
	w, _ := newTestWriter(b, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, au := range in.aus {
		total += int64(au.Size())
	}
	b.SetBytes(total / int64(len(in.aus)))
	b.ReportAllocs()
	var au media.AccessUnit
	n := len(in.aus)
	span := loopSpan(in)
	b.ResetTimer()
	for i := range b.N {
		k := time.Duration(i/n) * span
		au = *in.aus[i%n]
		au.DTS += k
		au.PTS += k
		if err := w.WriteAU(&au); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if _, err := w.Finish(context.Background(), testKey); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFinish measures producing the progressive file of a 5-minute recording from
// its working file (moov from the index, mdat copied).
func BenchmarkFinish(b *testing.B) {
	in := getInput(b, inH264AAC)
	b.ReportAllocs()
	for i := range b.N {
		b.StopTimer()
		st := newDiskStore(b)
		w, _ := newTestWriter(b, st)
		if err := w.SetTracks(in.video, in.audio); err != nil {
			b.Fatal(err)
		}
		media := loopFeed(b, w, in, 0, 30)
		if i == 0 {
			b.SetBytes(media)
		}
		b.StartTimer()
		if _, err := w.Finish(context.Background(), testKey); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = io.EOF
