package record

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// TestDiskFullDropsCounted: while the disk is full every unit is dropped and counted;
// when space is back, recording resumes at a keyframe and what comes before it is
// dropped and counted too. The flv file holds exactly the frames not counted as dropped.
func TestDiskFullDropsCounted(t *testing.T) {
	r := newRig(t, m3u8Rule(60, rules.FLV), nil)
	r.m.disk = newDiskWatch(r.m) // its free-space check is played by the test
	s := r.publish("a")
	sent := 0
	send := func(tags []flv.Tag, base uint32) {
		t.Helper()
		for _, tag := range tags {
			tag.Timestamp += base
			if err := s.Tag(tag); err != nil {
				t.Fatal(err)
			}
			if isFrame(tag) {
				sent++
			}
		}
	}
	tags := fixtureTags()
	send(tags, 0)
	r.m.disk.noteFull(syscall.ENOSPC)
	send(frames(tags), fixtureSpan)
	r.m.disk.mu.Lock()
	r.m.disk.full = false // what the free-space check does once space is back
	r.m.disk.mu.Unlock()
	// Space is back in the middle of a group of pictures: from the fixture's second video
	// frame on, then the whole fixture again.
	rest := frames(tags)
	for i, tag := range rest {
		if tag.Type == flv.TagVideo && tag.Body[0]>>4 != 1 {
			rest = rest[i:]
			break
		}
	}
	send(rest, 2*fixtureSpan)
	send(frames(tags), 3*fixtureSpan)
	s.Close(nil)
	r.clock.Advance(61 * time.Second)
	var f catalog.File
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if fs := r.files("a"); len(fs) == 1 && fs[0].Status == catalog.FileDone {
			f = fs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flv generated: %+v", r.files("a"))
		}
	}
	path, err := r.cfg.Store.(*storage.Local).Path(f.Key)
	if err != nil {
		t.Fatal(err)
	}
	recorded := countFrames(t, path)
	dropped := 0
	mfs, err := r.m.cfg.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "livrec_dropped_units_total" {
			for _, m := range mf.GetMetric() {
				dropped += int(m.GetCounter().GetValue())
			}
		}
	}
	if dropped == 0 || recorded+dropped != sent {
		t.Fatalf("sent %d frames: %d recorded + %d counted as dropped", sent, recorded, dropped)
	}
}

// frames returns the fixture's audio and video frames (no script data, no sequence headers).
func frames(tags []flv.Tag) []flv.Tag {
	var out []flv.Tag
	for _, tag := range tags {
		if isFrame(tag) {
			out = append(out, tag)
		}
	}
	return out
}

func isFrame(tag flv.Tag) bool {
	switch tag.Type {
	case flv.TagVideo:
		h, err := flv.ParseVideoTagHeader(tag.Body)
		return err == nil && h.Kind == flv.PacketFrame
	case flv.TagAudio:
		h, err := flv.ParseAudioTagHeader(tag.Body)
		return err == nil && h.Kind == flv.PacketFrame
	}
	return false
}

// countFrames counts the audio and video frames of an FLV file.
func countFrames(t *testing.T, path string) int {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rd, err := flv.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		tag, err := rd.ReadTag()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if isFrame(tag) {
			n++
		}
	}
}
