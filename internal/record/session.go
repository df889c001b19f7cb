package record

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/rtmp"
)

// Buffer bounds of a publish that is not being recorded (yet).
const (
	// While an on-demand question is pending everything since the publish began is kept,
	// so that the recording can start at the stream's first keyframe once the answer is
	// yes; past these bounds only the current GOP is kept.
	maxPendingBytes    = 32 << 20
	maxPendingDuration = 30 * time.Second
	// Otherwise the current GOP (from the last video keyframe; audio-only: the last
	// seconds) is kept, so a manual start begins at the last keyframe already received.
	maxGOPBytes        = 16 << 20
	audioOnlyGOPWindow = 2 * time.Second
)

// session is one publish: it demuxes the tags and forwards tracks and access units to
// the task the publish is attached to. While no task is attached it keeps a small
// buffer (see the constants above). It implements rtmp.Session.
type session struct {
	m     *Manager
	key   StreamKey
	req   *rtmp.PublishRequest
	since time.Time
	dem   media.Demuxer

	bytesIn atomic.Int64
	owner   *owner // the stream's lease (Config.Leases), else nil

	// mu guards everything below. It is held while access units are forwarded to the task,
	// so attaching a task (and replaying the buffer) and live units never interleave.
	// Lock order: Manager.mu → Task.mu, and session.mu → Task.mu; never Task.mu → session.mu.
	mu           sync.Mutex
	task         *Task
	video, audio *media.Track
	buf          []media.AccessUnit
	bufBytes     int
	keepAll      bool // an on-demand question is pending
	videoBytes   int64
	firstDTS     time.Duration
	lastDTS      time.Duration
	haveDTS      bool

	timers []Timer // time-window edges, stopped when the publish ends

	closeOnce sync.Once
	closed    chan struct{}
}

// after runs f after d unless the publish has ended by then.
func (s *session) after(d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timers = append(s.timers, s.m.cfg.AfterFunc(d, func() {
		select {
		case <-s.closed:
		default:
			f()
		}
	}))
}

func newSession(m *Manager, key StreamKey, req *rtmp.PublishRequest) *session {
	s := &session{m: m, key: key, req: req, since: m.cfg.Now(), closed: make(chan struct{})}
	s.dem.TakeTagBodies = m.cfg.TakeTagBodies
	// The units are lent to the task's writers, which copy what they keep; the session's
	// buffer and the task's early audio keep copies (Manager.keep).
	s.dem.LendUnits = true
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

// attach makes t record this publish from now on, starting with the buffered media
// (the current GOP, or everything since the publish began while on-demand was pending).
func (s *session) attach(t *Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.task = t
	s.keepAll = false
	if s.video != nil || s.audio != nil {
		t.setTracks(s, s.video, s.audio)
	}
	for i := range s.buf {
		t.writeAU(s, &s.buf[i])
	}
	s.buf, s.bufBytes = nil, 0
}

// detach stops forwarding to t (a stop command): the session buffers again.
func (s *session) detach(t *Task) {
	s.mu.Lock()
	if s.task == t {
		s.task = nil
	}
	s.mu.Unlock()
}

type streamState struct {
	video, audio string
	bitrate      int64 // bit/s of the video elementary stream, 0 if unknown
}

func (s *session) state() streamState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st streamState
	if s.video != nil {
		st.video = string(s.video.Codec)
	}
	if s.audio != nil {
		st.audio = string(s.audio.Codec)
	}
	if d := s.lastDTS - s.firstDTS; d > 0 {
		st.bitrate = int64(float64(s.videoBytes*8) / d.Seconds())
	}
	return st
}

// videoKbps is the video bitrate for the on-demand question: the publisher's metadata
// if it says, else what was measured so far.
func (s *session) videoKbps() int {
	if r := s.dem.Metadata.VideoDataRate; r > 0 {
		return int(r)
	}
	return int(s.state().bitrate / 1000)
}

// Tag implements rtmp.Session.
func (s *session) Tag(t flv.Tag) error {
	if s.owner != nil && s.owner.lost.Load() {
		return errLeaseLost
	}
	s.bytesIn.Add(int64(len(t.Body)))
	s.m.cfg.Metrics.BytesIn.Add(float64(len(t.Body)))
	s.m.cfg.Metrics.TagsIn.Inc()
	return s.dem.WriteTag(t)
}

// Close implements rtmp.Session.
func (s *session) Close(err error) {
	s.closeOnce.Do(func() {
		s.dem.Flush()
		close(s.closed)
		s.mu.Lock()
		for _, t := range s.timers {
			t.Stop()
		}
		s.mu.Unlock()
		s.m.publishEnded(s)
	})
}

func (s *session) onTracks(video, audio *media.Track) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.video, s.audio = video, audio
	if s.task != nil {
		s.task.setTracks(s, video, audio)
	}
}

func (s *session) onAccessUnit(au *media.AccessUnit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if au.Track != nil && au.Track.Codec.IsVideo() {
		s.videoBytes += int64(au.Size())
		if !s.haveDTS {
			s.firstDTS, s.haveDTS = au.DTS, true
		}
		s.lastDTS = au.DTS
	}
	if s.task != nil {
		s.task.writeAU(s, au)
		return
	}
	s.buffer(au)
}

// keep returns au for a buffer that outlives the call it came in: a copy of a lent unit
// (media.Demuxer.LendUnits), the unit itself if its bytes are the source's handed-over
// bodies (Config.TakeTagBodies).
func (m *Manager) keep(au *media.AccessUnit) media.AccessUnit {
	if m.cfg.TakeTagBodies {
		return *au
	}
	return au.Clone()
}

// buffer keeps a copy of the unit (the task rewrites timestamps in place, and the
// demuxer lends its units).
func (s *session) buffer(au *media.AccessUnit) {
	if s.keepAll && (s.bufBytes > maxPendingBytes || len(s.buf) > 0 && au.DTS-s.buf[0].DTS > maxPendingDuration) {
		s.keepAll = false
	}
	if !s.keepAll {
		switch {
		case au.Track == s.video && au.Key:
			// The GOP starts here, with the audio that arrived ahead of this picture but is
			// not earlier than it (the task writes it after the keyframe).
			last := len(s.buf) - 1
			for last >= 0 && s.buf[last].Track != s.video {
				last--
			}
			n := 0
			for _, b := range s.buf[last+1:] {
				if b.DTS >= au.DTS {
					s.buf[n] = b
					n++
				}
			}
			clear(s.buf[n:])
			s.buf, s.bufBytes = s.buf[:n], 0
			for i := range s.buf {
				s.bufBytes += s.buf[i].Size()
			}
		case s.video == nil:
			n := 0
			for n < len(s.buf) && au.DTS-s.buf[n].DTS > audioOnlyGOPWindow {
				s.bufBytes -= s.buf[n].Size()
				n++
			}
			s.buf = append(s.buf[:0], s.buf[n:]...)
		case s.bufBytes > maxGOPBytes:
			return // a GOP this large: wait for the next keyframe
		}
	}
	s.buf = append(s.buf, s.m.keep(au))
	s.bufBytes += au.Size()
}
