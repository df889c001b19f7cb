package flvfile

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
)

// ffmpegQuiet runs ffprobe and a full ffmpeg decode at level warning and returns what
// they print (nothing for a clean file).
func ffmpegQuiet(t *testing.T, path string) string {
	t.Helper()
	p, _ := exec.Command("ffprobe", "-v", "warning", "-show_entries", "format=duration", "-of", "csv=p=0", path).CombinedOutput()
	out := string(p)
	if _, err := time.ParseDuration(string(bytes.TrimSpace(p)) + "s"); err != nil {
		out = "ffprobe: " + out
	} else {
		out = ""
	}
	d, err := exec.Command("ffmpeg", "-nostdin", "-v", "warning", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		out += err.Error()
	}
	return out + string(d)
}

// TestReservation: the working file starts with a script tag of the reserved size, is a
// clean FLV while recording, and becomes the stored file in place: same tags at the same
// offsets, onMetaData in the reservation, keyframe positions exact.
func TestReservation(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newStore(t)
	dir := t.TempDir()
	w, err := New(Config{WorkDir: dir, Store: st, Now: func() time.Time { return testStart }, Logger: testLogger(t),
		MaxDuration: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus[:len(in.aus)/2])
	if err := w.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, workName)
	// While recording: a valid FLV that ffmpeg reads without a word.
	if out := ffmpegQuiet(t, work); out != "" {
		t.Errorf("working file while recording:\n%s", out)
	}
	var s state
	b, _ := os.ReadFile(filepath.Join(dir, stateName))
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	want, _ := reserveSize(&s.Meta, 15*60+8)
	if s.Reserve != want {
		t.Errorf("reserve %d, want %d (15 min of 1 s GOPs)", s.Reserve, want)
	}
	if most, _ := reserveSize(&s.Meta, maxReservedKeyframes); most >= 64<<10 {
		t.Errorf("largest reservation %d bytes, not under 64 KiB", most)
	}
	wb, _ := os.ReadFile(work)
	if wb[13] != flv.TagScript || int(wb[14])<<16|int(wb[15])<<8|int(wb[16]) != s.Reserve ||
		binary.BigEndian.Uint32(wb[reserveOffset+s.Reserve:]) != uint32(11+s.Reserve) {
		t.Fatalf("working file does not start with the %d-byte reservation", s.Reserve)
	}
	feed(t, w, in.aus[len(in.aus)/2:])
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	path := storedPath(t, st, testKey)
	fi := readBack(t, path)
	checkFile(t, recordCases[0], in, fi, res)
	if len(fi.firstTag.Body) != s.Reserve {
		t.Errorf("onMetaData tag body %d bytes, reserved %d", len(fi.firstTag.Body), s.Reserve)
	}
	if out := ffmpegQuiet(t, path); out != "" {
		t.Errorf("final file:\n%s", out)
	}
	if v, _ := metaValue(t, fi, "duration").(float64); v < 8 {
		t.Errorf("duration %v", v)
	}
}

// TestThinnedIndex: an index larger than its reservation keeps every step-th keyframe,
// still exact, and the file is finalized in place.
func TestThinnedIndex(t *testing.T) {
	in := getInput(t, inH264AAC)
	defer func(lo, hi int) { minReservedKeyframes, maxReservedKeyframes = lo, hi }(minReservedKeyframes, maxReservedKeyframes)
	minReservedKeyframes, maxReservedKeyframes = 2, 2
	st := newStore(t)
	w, _ := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	path := storedPath(t, st, testKey)
	fi := readBack(t, path)
	if len(fi.keyTags) < 4 || len(fi.kfPos) != (len(fi.keyTags)+1)/2 {
		t.Fatalf("%d index entries for %d keyframes, want every second one", len(fi.kfPos), len(fi.keyTags))
	}
	for i, p := range fi.kfPos {
		if int64(p) != fi.keyTags[2*i] {
			t.Errorf("entry %d at %v, keyframe %d at %d", i, p, 2*i, fi.keyTags[2*i])
		}
		if tag := fi.tagOffsets[int64(p)]; int64(tag.Timestamp) != int64(fi.kfTimes[i]*1000+0.5) {
			t.Errorf("entry %d: time %v, tag %d ms", i, fi.kfTimes[i], tag.Timestamp)
		}
	}
	if out := ffmpegQuiet(t, path); out != "" {
		t.Errorf("final file:\n%s", out)
	}
	if fi.size != res.Bytes {
		t.Errorf("size %d, result %d", fi.size, res.Bytes)
	}
}

// TestRecoverAfterStore: the working file was stored (it is the final file) but the
// process died before removing the sidecar. Recover reports the stored file from the
// journal and cleans up.
func TestRecoverAfterStore(t *testing.T) {
	in := getInput(t, inH264MP3)
	st := &flakyStore{Local: newStore(t), fails: 1}
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	if _, err := w.Finish(context.Background(), testKey); err == nil {
		t.Fatal("Finish succeeded with a failing store")
	}
	journaled, err := os.ReadFile(filepath.Join(dir, stateName))
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Finish(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateName), journaled, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Recover(context.Background(), dir, st, func(time.Time) string { return "other.flv" }, testLogger(t))
	if err != nil || got != res {
		t.Fatalf("Recover: %+v, %v; Finish said %+v", got, err, res)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
	fi := readBack(t, storedPath(t, st.Local, testKey))
	checkFile(t, recordCases[1], in, fi, res)
}

// TestRecoverOldLayout: a working file written before reservations (tags right after the
// header, no reserve in the sidecar) is finalized by the copy path.
func TestRecoverOldLayout(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newStore(t)
	w, dir := newTestWriter(t, st)
	if err := w.SetTracks(in.video, in.audio); err != nil {
		t.Fatal(err)
	}
	feed(t, w, in.aus)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Rewrite the directory as the previous version left it.
	sp := filepath.Join(dir, stateName)
	var s state
	b, _ := os.ReadFile(sp)
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	wp := filepath.Join(dir, workName)
	wb, _ := os.ReadFile(wp)
	old := append(wb[:dataOffset+4:dataOffset+4], wb[reserveOffset+s.Reserve+4:]...)
	if err := os.WriteFile(wp, old, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Reserve = 0
	if err := saveState(dir, &s, false); err != nil {
		t.Fatal(err)
	}
	res, err := Recover(context.Background(), dir, st, func(time.Time) string { return testKey }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fi := readBack(t, storedPath(t, st, testKey))
	checkFile(t, recordCases[0], in, fi, res)
	want, base := expectedUnits(in.aus, -1)
	compareUnits(t, want, base, fi.aus, 0)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
}

// TestIndexMatchesScan: the index a Writer keeps (which Finish uses) is exactly what
// scanning its working file gives (what Recover uses), so both write the same bytes.
func TestIndexMatchesScan(t *testing.T) {
	for _, c := range recordCases {
		for _, resume := range []bool{false, true} {
			in := getInput(t, c.name)
			w, dir := newTestWriter(t, newStore(t))
			if err := w.SetTracks(in.video, in.audio); err != nil {
				t.Fatal(err)
			}
			half := len(in.aus) / 2
			feed(t, w, in.aus[:half])
			if resume {
				w.Discontinuity()
			}
			feed(t, w, in.aus[half:])
			if err := w.bw.Flush(); err != nil {
				t.Fatal(err)
			}
			x, err := scanWork(filepath.Join(dir, workName), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*x, w.idx) {
				t.Errorf("%s (resume %v): writer's index differs from the scan:\n%+v\n%+v", c.name, resume, w.idx, *x)
			}
			_ = w.Close()
		}
	}
}
