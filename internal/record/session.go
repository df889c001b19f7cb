package record

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/rtmp"
)

// session is one publish: it demuxes the tags and forwards tracks and access units to
// the task the publish is attached to (if any). It implements rtmp.Session.
type session struct {
	m     *Manager
	key   StreamKey
	req   *rtmp.PublishRequest
	since time.Time
	dem   media.Demuxer

	bytesIn atomic.Int64

	mu   sync.Mutex // guards task and the track names
	task *Task
	vc   string
	ac   string

	closeOnce sync.Once
}

func newSession(m *Manager, key StreamKey, req *rtmp.PublishRequest) *session {
	s := &session{m: m, key: key, req: req, since: m.cfg.Now()}
	s.dem.OnTracks = s.onTracks
	s.dem.OnAccessUnit = s.onAccessUnit
	s.dem.OnWarning = func(code, msg string) {
		ev := Event{Type: EventWarning, Domain: key.Domain, App: key.App, Stream: key.Stream, Code: code, Message: msg}
		if t := s.currentTask(); t != nil {
			ev.TaskID = t.id
		}
		m.emit(ev)
	}
	return s
}

func (s *session) currentTask() *Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.task
}

func (s *session) setTask(t *Task) {
	s.mu.Lock()
	s.task = t
	s.mu.Unlock()
}

func (s *session) codecs() (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vc, s.ac
}

// Tag implements rtmp.Session.
func (s *session) Tag(t flv.Tag) error {
	s.bytesIn.Add(int64(len(t.Body)))
	s.m.cfg.Metrics.BytesIn.Add(float64(len(t.Body)))
	s.m.cfg.Metrics.TagsIn.Inc()
	return s.dem.WriteTag(t)
}

// Close implements rtmp.Session.
func (s *session) Close(err error) {
	s.closeOnce.Do(func() {
		s.dem.Flush()
		s.m.publishEnded(s)
	})
}

func (s *session) onTracks(video, audio *media.Track) {
	s.mu.Lock()
	s.vc, s.ac = "", ""
	if video != nil {
		s.vc = string(video.Codec)
	}
	if audio != nil {
		s.ac = string(audio.Codec)
	}
	t := s.task
	s.mu.Unlock()
	if t != nil {
		t.setTracks(s, video, audio)
	}
}

func (s *session) onAccessUnit(au *media.AccessUnit) {
	if t := s.currentTask(); t != nil {
		t.writeAU(s, au)
	}
}
