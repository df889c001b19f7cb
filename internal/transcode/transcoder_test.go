package transcode

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
)

type nopSession struct{ tags int }

func (s *nopSession) Tag(flv.Tag) error { s.tags++; return nil }
func (s *nopSession) Close(error)       {}

type nextHandler struct{ n int }

func (h *nextHandler) Publish(*rtmp.PublishRequest) (rtmp.Session, error) {
	h.n++
	return &nopSession{}, nil
}

type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(typ, domain, app, stream, code, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, typ+" "+stream+" "+code+": "+msg)
}

func (e *events) all() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.got, "\n")
}

// fakeFFmpeg writes a shell script standing in for ffmpeg.
func fakeFFmpeg(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ffmpeg")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func testHandler(t *testing.T, ffmpeg string, ev *events) *Handler {
	t.Helper()
	set, err := rules.NewSet([]rules.Rule{{DomainName: "*", AppName: "live", RecordFormats: []rules.RecordFormat{{Format: rules.FLV}},
		TranscodeTemplates: []string{"lld"}, TranscodeRecordFormats: []rules.RecordFormat{{Format: rules.FLV}}}})
	if err != nil {
		t.Fatal(err)
	}
	return &Handler{Next: &nextHandler{}, Rules: func() *rules.Set { return set }, Addr: "127.0.0.1:1", FFmpeg: ffmpeg,
		Max: 1, QueueTags: 4, RestartsPerMinute: 1, OnEvent: ev.add}
}

func req(stream string) *rtmp.PublishRequest {
	return &rtmp.PublishRequest{App: "live", Stream: stream, Domain: "d.example"}
}

// A rendition name is refused to outside publishers; a second transcoder past Max is
// refused with an event while the original is still recorded; a stalled ffmpeg makes the
// tee drop (and count) tags instead of blocking; stopping kills it within a second.
func TestHandler(t *testing.T) {
	ev := &events{}
	h := testHandler(t, fakeFFmpeg(t, "exec sleep 30"), ev)
	if _, err := h.Publish(req("cam_lld")); !errors.Is(err, rtmp.ErrBadName) {
		t.Fatalf("outside publish of a rendition name: %v", err)
	}
	s1, err := h.Publish(req("cam"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s1.(*tee); !ok {
		t.Fatalf("first publish not transcoded: %T", s1)
	}
	s2, err := h.Publish(req("cam2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.(*tee); ok || !strings.Contains(ev.all(), "transcoder_limit") {
		t.Fatalf("second publish past Max=1: %T, events %s", s2, ev.all())
	}
	body := flv.AppendVideoHeader(nil, true, 7, 1, 0)
	for i := 0; i < 100; i++ {
		if err := s1.Tag(flv.Tag{Type: flv.TagVideo, Timestamp: uint32(i * 33), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if got := s1.(*tee).Session.(*nopSession).tags; got != 100 {
		t.Errorf("original got %d of 100 tags", got)
	}
	if d := s1.(*tee).tr.dropped.Load(); d < 90 {
		t.Errorf("dropped %v tags, want at least 90 (queue of 4, ffmpeg not reading)", d)
	}
	start := time.Now()
	s1.Close(nil)
	if el := time.Since(start); el > time.Second {
		t.Errorf("stopping took %s", el)
	}
	if h.Running() != 0 {
		t.Errorf("%d transcoders running after the publish ended", h.Running())
	}
}

// A dying ffmpeg is restarted with its stderr tail in the event, then given up past
// RestartsPerMinute.
func TestHandlerRestartLimit(t *testing.T) {
	ev := &events{}
	h := testHandler(t, fakeFFmpeg(t, "echo 'Unknown encoder libfoo' >&2; exit 1"), ev)
	s, err := h.Publish(req("cam"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ev.all(), "transcoder_given_up") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	all := ev.all()
	if !strings.Contains(all, EventError+" cam transcoder_exited") || !strings.Contains(all, "Unknown encoder libfoo") ||
		!strings.Contains(all, "transcoder_given_up") {
		t.Fatalf("events:\n%s", all)
	}
	if r := strings.Count(all, "transcoder_exited"); r != 1 {
		t.Errorf("%d restarts, want 1", r)
	}
	for i := 0; i < 50; i++ { // given up: the tee still never blocks
		s.Tag(flv.Tag{Type: flv.TagAudio, Body: []byte{0xaf, 1, 0}})
	}
	s.Close(nil)
}

// TestOrphanKilled: a transcoder's ffmpeg that ignores its stdin (stuck) still dies when
// livrec is killed with SIGKILL. The "livrec" is this test binary re-run as a helper.
func TestOrphanKilled(t *testing.T) {
	if os.Getenv("TRANSCODE_HELPER") != "" {
		ev := &events{}
		h := testHandler(t, os.Getenv("TRANSCODE_HELPER"), ev)
		if _, err := h.Publish(req("cam")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		return
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	ffmpeg := fakeFFmpeg(t, "echo $$ > "+pidFile+"; exec sleep 60 </dev/null")
	cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanKilled$")
	cmd.Env = append(os.Environ(), "TRANSCODE_HELPER="+ffmpeg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for i := 0; i < 100 && pid == 0; i++ {
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if pid == 0 {
		cmd.Process.Kill()
		t.Fatal("the helper's ffmpeg did not start")
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for running(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if running(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("ffmpeg %d survived SIGKILL of its parent", pid)
	}
}

// running reports whether pid runs (a zombie waiting for a reaper does not count).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
