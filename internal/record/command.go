package record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/rules"
)

// Manual recording commands (RealTimeRecordCommand in the cloud API).
const (
	CommandStart       = "start"
	CommandStop        = "stop"
	CommandCancelDelay = "cancel_delay"
	CommandRestart     = "restart"
)

// CommandError is a manual command refused: Code is the cloud API's error code, which
// the APIs map from the field (never from the text).
type CommandError struct {
	Code    string
	Message string
}

func (e *CommandError) Error() string { return e.Code + ": " + e.Message }

// Is matches another CommandError with the same code, so errors.Is(err, ErrNoRule)
// holds for a refusal with more detail.
func (e *CommandError) Is(target error) bool {
	t, ok := target.(*CommandError)
	return ok && t.Code == e.Code
}

// Command error codes.
const (
	CodeTaskAlreadyStarted = "TaskAlreadyStarted"
	CodeTaskNotStarted     = "TaskNotStarted"
	CodeStreamNotLive      = "StreamNotLive"
	CodeNoRule             = "NoRecordConfig"
	CodeInvalidCommand     = "InvalidCommand"
)

// Command errors; the APIs map them by Code.
var (
	ErrTaskAlreadyStarted = &CommandError{CodeTaskAlreadyStarted, "the stream is already being recorded"}
	ErrTaskNotStarted     = &CommandError{CodeTaskNotStarted, "the stream has no recording task"}
	ErrStreamNotLive      = &CommandError{CodeStreamNotLive, "the stream is not being published"}
	ErrNoRule             = &CommandError{CodeNoRule, "no recording rule matches the stream"}
	ErrUnknownCommand     = &CommandError{CodeInvalidCommand, "command must be start, stop, cancel_delay or restart"}
)

// onDemandTimeout bounds the whole on-demand decision (the HTTP client has its own).
const onDemandTimeout = 10 * time.Second

// Command runs a manual recording command on a stream key (design.md "Task states"):
//   - start: record the live stream now, from the last keyframe already received
//     (a task a stop command paused resumes; error if already recording);
//   - stop: pause the task like a stream cut; its files are generated when the stitch
//     window expires;
//   - cancel_delay: end the task now: its files are generated immediately;
//   - restart: generate the open files now; new files begin at the next keyframe.
func (m *Manager) Command(ctx context.Context, domain, app, stream, cmd string) error {
	domain, err := rules.NormalizeDomain(domain)
	if err != nil {
		return &CommandError{CodeInvalidCommand, "domain " + err.Error()}
	}
	key := StreamKey{domain, app, stream}
	m.mu.Lock()
	s, t := m.live[key], m.tasks[key]
	switch cmd {
	case CommandStart:
		defer m.mu.Unlock()
		if s == nil {
			return ErrStreamNotLive
		}
		if t != nil {
			if t.recording() {
				return ErrTaskAlreadyStarted
			}
			t.resumeWith(s, true)
			s.attach(t)
			return nil
		}
		rule, ok := m.rules.Load().Match(key.Domain, app, stream)
		if !ok {
			return ErrNoRule
		}
		t, err := m.startTask(key, rule, s, true)
		if err != nil {
			return err
		}
		s.attach(t)
		return nil
	case CommandStop:
		defer m.mu.Unlock()
		if t == nil || !t.recording() {
			return ErrTaskNotStarted
		}
		if s != nil {
			s.detach(t)
		}
		t.stop()
		return nil
	case CommandCancelDelay:
		if t == nil {
			m.mu.Unlock()
			return ErrTaskNotStarted
		}
		delete(m.tasks, key)
		if s != nil {
			s.detach(t)
		}
		m.mu.Unlock()
		t.end("cancel_delay command")
		return nil
	case CommandRestart:
		if t == nil || !t.recording() {
			m.mu.Unlock()
			err := m.Command(ctx, domain, app, stream, CommandStart)
			if errors.Is(err, ErrTaskAlreadyStarted) { // started meanwhile
				return m.Command(ctx, domain, app, stream, CommandRestart)
			}
			return err
		}
		m.mu.Unlock()
		t.restart()
		return nil
	default:
		m.mu.Unlock()
		return &CommandError{CodeInvalidCommand, fmt.Sprintf("%s (got %q)", ErrUnknownCommand.Message, cmd)}
	}
}

func (t *Task) recording() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == catalog.TaskRecording
}

// stop pauses the task on a command while the stream may still be live.
func (t *Task) stop() {
	t.mu.Lock()
	pub := t.pub
	t.stopped = true
	t.mu.Unlock()
	t.pause(pub)
}

// restart generates the open files; the next ones open at the next keyframe.
func (t *Task) restart() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range t.outs {
		t.finishFile(o)
	}
}

// askOnDemand puts the on-demand question for a publish (onDemand 1) and starts the task
// if the answer is yes. The session keeps the media meanwhile.
func (m *Manager) askOnDemand(s *session, rule *rules.Rule) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), onDemandTimeout)
	defer cancel()
	// Wait (briefly) for the tracks and a first bitrate estimate.
	wait := time.NewTimer(2 * time.Second)
	select {
	case <-wait.C:
	case <-s.closed:
		wait.Stop()
		return
	}
	st := s.state()
	codec := st.video
	if codec == "" {
		codec = st.audio
	}
	q := OnDemandQuery{Domain: s.key.Domain, App: s.key.App, Stream: s.key.Stream, Codec: codec, VideoKbps: s.videoKbps()}
	ans, err := m.cfg.AskOnDemand(ctx, q)
	log := m.cfg.Logger.With("stream", s.key.String())
	reason := ""
	var r rules.Rule
	switch {
	case err != nil:
		reason = "on-demand callback failed: " + err.Error()
	case !ans.NeedRecord:
		reason = "on-demand callback answered NeedRecord false"
	default:
		r = applyAnswer(*rule, ans)
		if len(r.RecordFormats) == 0 {
			reason = fmt.Sprintf("on-demand callback formats %v share none with the rule's", ans.Formats)
		}
	}
	if t := m.answerOnDemand(s, &r, reason, q, log); t != nil {
		s.attach(t)
	}
}

// answerOnDemand applies the on-demand answer: the task started, if any, for the caller
// to attach after m.mu is released.
func (m *Manager) answerOnDemand(s *session, r *rules.Rule, reason string, q OnDemandQuery, log *slog.Logger) *Task {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live[s.key] != s || m.closed {
		return nil // the publish ended meanwhile
	}
	if reason != "" {
		log.Info("publish not recorded", "reason", reason)
		s.mu.Lock()
		s.keepAll = false
		s.mu.Unlock()
		return nil
	}
	if _, busy := m.tasks[s.key]; busy {
		return nil
	}
	log.Info("on-demand callback: recording", "formats", formatNames(*r), "codec", q.Codec, "vbitrate", q.VideoKbps)
	t, err := m.startTask(s.key, r, s, false)
	if err != nil {
		m.notStarted(s, err)
	}
	return t
}

// applyAnswer intersects the rule's formats with the answer's and applies its intervals.
func applyAnswer(r rules.Rule, ans OnDemandAnswer) rules.Rule {
	var out []rules.RecordFormat
	for _, rf := range r.RecordFormats {
		if ans.Formats != nil && !slices.ContainsFunc(ans.Formats, func(f string) bool { return strings.EqualFold(f, string(rf.Format)) }) {
			continue
		}
		name := string(rf.Format)
		if rf.Format == rules.CMAF {
			name = "m3u8"
		}
		for k, v := range ans.Intervals {
			if strings.EqualFold(k, name) && v > 0 {
				rf.CycleDuration = v
			}
		}
		out = append(out, rf)
	}
	r.RecordFormats = out
	return r
}

func formatNames(r rules.Rule) []string {
	var n []string
	for _, rf := range r.RecordFormats {
		n = append(n, string(rf.Format))
	}
	return n
}
