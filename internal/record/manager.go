// Package record runs recording tasks: it decides at publish time whether a stream is
// recorded and with which rule, keeps one task per stream key across publishes that
// come back within the stitch window, rolls files over at the recording cycle, and
// finalizes ("generates") files when a task ends. Terms and states follow design.md.
//
// Data path inside: ingest tags → media.Demuxer (per publish) → media.TimestampRepair
// (per task, so the timeline continues across stitched publishes) → one file writer per
// record format → storage; the catalog and events record what happened.
package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/metrics"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// Config wires a Manager.
type Config struct {
	Rules *rules.Set
	// AllTemplates, if set, says what a rule's transcodeTemplates ["all"] means for a
	// domain and app (the transcoder's library: built-in and custom templates); every
	// set given to the Manager gets it (rules.Set.WithAll).
	AllTemplates func(domain, app string) []string
	// Catalog keeps the rows of tasks and files; the recorder writes it in the
	// background (see Catalog).
	Catalog Catalog
	// Finalizers bounds how many files are finalized at once (0: DefaultFinalizers).
	Finalizers int
	Store      storage.Store // the default store (local disk)
	// StoreFor returns the store of a rule that names object storage (ossEndpoint and
	// ossBucket); nil, or a rule without them, uses Store.
	StoreFor func(r *rules.Rule) (storage.Store, error)
	WorkDir  string         // working files of open recordings (the spool)
	Location *time.Location // time zone of {StartTime}-style key variables
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
	Now      func() time.Time
	// AfterFunc schedules the stitch-window and time-window timers (default
	// time.AfterFunc; tests pass a fake clock with Now).
	AfterFunc func(d time.Duration, f func()) Timer
	// LiveURI maps a stored object key to the URI used in live (in-progress) playlists.
	LiveURI func(key string) string
	// OnEvent receives every event after it was logged (callbacks hook in here). It must
	// not block.
	OnEvent func(Event)
	// AskOnDemand asks the user's system whether to record a publish (onDemand 1). Nil:
	// such publishes are not recorded.
	AskOnDemand func(ctx context.Context, q OnDemandQuery) (OnDemandAnswer, error)
	// NoSync is for offline conversion (livrec remux): the input remains, so the format
	// writers fsync nothing; a crash means rerun. Default (false): durable, as live
	// recording needs (passed to the writers' NoSync).
	NoSync bool
	// TakeTagBodies declares that the source hands every tag body over to the publish
	// session (fresh memory it never modifies or reuses afterwards, as livrec remux's
	// reader does): the access units alias the bodies and the session's buffers keep them
	// without copying (media.Demuxer.TakeTagBodies). Default: a body is valid only during
	// Tag (rtmp.Session.Tag), the units are lent to the writers and what is buffered is
	// copied.
	TakeTagBodies bool
	// DiskCheckInterval is how often the free space of WorkDir's file system is checked
	// (one goroutine); 0 disables the check, the low-space alarm and the disk-full
	// handling (offline conversion, tests).
	DiskCheckInterval time.Duration
	// MinFreeBytes or MinFreePercent (of the file system's size) is the free space below
	// which the low-space alarm is raised; both 0: DefaultMinFreeBytes.
	MinFreeBytes   uint64
	MinFreePercent float64
	// DiskFullHold bounds the recorded bytes all writers keep in memory while the disk is
	// full, DiskFullHoldPerStream those of one task (all its formats); past either bound
	// new media is dropped (counted) until space returns. 0: DefaultDiskFullHold,
	// DefaultDiskFullHoldPerStream; negative: nothing is held (new media is dropped at
	// once; the segment or fragment being written is still kept).
	DiskFullHold          int64
	DiskFullHoldPerStream int64
	// Leases, when set (several nodes share the catalog), makes a publish own its stream
	// key across the nodes: it takes the key's lease before anything is recorded (a key
	// owned by another node is refused like a second publisher here), keeps it while the
	// publish or its task lives (the stitch window and the generation of the last files
	// included), and fences every catalog write of the task with it. Nil: one node, the
	// check of the live publishes here is enough.
	Leases Leases
	// Peers, with Leases and a catalog that keeps writer states (ClusterCatalog), moves
	// streams between the nodes: a publish of a key paused on another node continues that
	// node's task here, and the segmented recordings of a dead node are finalized here.
	Peers Peers
	// SyncWorkers fsync finished segments off the publishers' goroutines (0:
	// DefaultSyncWorkers). SyncBacklog bounds the bytes waiting for them (0:
	// DefaultSyncBacklog()): above it publishers are slowed (TCP backpressure). A backlog
	// older than SyncSlowAfter (0: DefaultSyncSlowAfter) is reported (record_warning
	// disk_slow). Unused with NoSync.
	SyncWorkers   int
	SyncBacklog   int64
	SyncSlowAfter time.Duration
}

// Timer is a scheduled call (a *time.Timer by default).
type Timer interface {
	// Stop cancels the call; false if it already ran or was stopped.
	Stop() bool
}

// OnDemandQuery is what the on-demand callback is told about a publish.
type OnDemandQuery struct {
	Domain, App, Stream string
	Codec               string // video codec (h264, h265, mpeg4), or the audio codec
	VideoKbps           int
}

// OnDemandAnswer is the user's decision: formats (lower case; nil = the rule's) are
// intersected with the rule's, intervals (seconds, by "mp4", "flv", "m3u8") override the
// cycle of those formats (m3u8's also applies to cmaf).
type OnDemandAnswer struct {
	NeedRecord bool
	Formats    []string
	Intervals  map[string]int
}

// StreamKey identifies a stream: at most one live publisher and one task per key.
type StreamKey struct{ Domain, App, Stream string }

// LiveURI is the URI of a stored object in the live playlists (Config.LiveURI).
func (m *Manager) LiveURI(key string) string { return m.cfg.LiveURI(key) }

func (k StreamKey) String() string { return k.Domain + "/" + k.App + "/" + k.Stream }

// Manager owns the live publishes and the recording tasks. It implements rtmp.Handler.
type Manager struct {
	cfg   Config
	rules atomic.Pointer[rules.Set]

	cat  *catalogQueue
	fin  *finalizers
	disk *diskWatch // nil without Config.DiskCheckInterval
	hold *memHold   // what the writers keep in memory while the disk is full
	sync *syncPool  // nil with Config.NoSync
	// quit ends when Shutdown stops waiting: retries (a full disk) give up then.
	quit     context.Context
	stopQuit context.CancelFunc

	mu    sync.Mutex
	live  map[StreamKey]*session
	tasks map[StreamKey]*Task
	// owners are the stream leases held (Config.Leases), acquiring the keys whose lease
	// is being taken (a second publish of the key meanwhile is refused).
	owners    map[StreamKey]*owner
	acquiring map[StreamKey]bool
	closed    bool
	wg        sync.WaitGroup // delay timers running an end
	ending    sync.WaitGroup // ended tasks waiting for their files to complete
}

// NewManager returns a Manager; call Recover before accepting publishes.
func NewManager(cfg Config) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.LiveURI == nil {
		cfg.LiveURI = func(key string) string { return "/files/" + key }
	}
	m := &Manager{cfg: cfg, live: map[StreamKey]*session{}, tasks: map[StreamKey]*Task{},
		owners: map[StreamKey]*owner{}, acquiring: map[StreamKey]bool{}}
	m.cat = newCatalogQueue(m, cfg.Catalog)
	m.fin = newFinalizers(m, cfg.Finalizers)
	m.quit, m.stopQuit = context.WithCancel(context.Background())
	m.hold = newMemHold(m)
	if cfg.DiskCheckInterval > 0 {
		m.disk = newDiskWatch(m)
		go m.disk.run(m.quit, cfg.DiskCheckInterval)
	}
	if !cfg.NoSync {
		workers, backlog, slow := cfg.SyncWorkers, cfg.SyncBacklog, cfg.SyncSlowAfter
		if workers <= 0 {
			workers = DefaultSyncWorkers
		}
		if backlog <= 0 {
			backlog = DefaultSyncBacklog()
		}
		if slow <= 0 {
			slow = DefaultSyncSlowAfter
		}
		m.sync = newSyncPool(m, workers, backlog, slow)
	}
	m.SetRules(cfg.Rules)
	return m
}

// syncer is the sync pool as the writers see it (nil without one).
func (m *Manager) syncer() format.Syncer {
	if m.sync == nil {
		return nil
	}
	return m.sync
}

// SetRules replaces the rule set; it applies from the next task (a live task keeps the
// rule it started with).
func (m *Manager) SetRules(s *rules.Set) {
	if m.cfg.AllTemplates != nil {
		s = s.WithAll(m.cfg.AllTemplates)
	}
	m.rules.Store(s)
}

// Rules returns the current rule set.
func (m *Manager) Rules() *rules.Set { return m.rules.Load() }

func (m *Manager) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = m.cfg.Now()
	}
	attrs := []any{"event", ev.Type, "domain", ev.Domain, "app", ev.App, "stream", ev.Stream}
	if ev.TaskID != "" {
		attrs = append(attrs, "task", ev.TaskID)
	}
	if ev.File != nil {
		attrs = append(attrs, "format", ev.File.Format, "key", ev.File.Key, "duration", ev.File.Duration)
	}
	if ev.Code != "" {
		attrs = append(attrs, "code", ev.Code)
	}
	if ev.Message != "" {
		attrs = append(attrs, "msg", ev.Message)
	}
	switch ev.Type {
	case EventError:
		m.cfg.Metrics.Errors.WithLabelValues(ev.Code).Inc()
		m.cfg.Logger.Error("recording error", attrs...)
	case EventWarning:
		m.cfg.Metrics.Warnings.WithLabelValues(ev.Code).Inc()
		m.cfg.Logger.Warn("stream warning", attrs...)
	case EventTimestampRepair:
		m.cfg.Metrics.TimestampRepairs.WithLabelValues(ev.Code).Inc()
		m.cfg.Logger.Info("timestamp repaired", attrs...)
	case EventFileCreated:
		if ev.File != nil {
			m.cfg.Metrics.FilesGenerated.WithLabelValues(ev.File.Format).Inc()
		}
		m.cfg.Logger.Info("file generated", attrs...)
	default:
		m.cfg.Logger.Info("recording", attrs...)
	}
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(ev)
	}
}

// errRefused wraps the reasons a publish is refused without being a bad name.
var errRefused = errors.New("publish refused")

// Publish implements rtmp.Handler: it validates the names, refuses a second publisher
// on a live stream key, and attaches the publish to a paused task (stitching) or decides
// whether to start a new one.
func (m *Manager) Publish(req *rtmp.PublishRequest) (rtmp.Session, error) {
	for _, f := range []struct{ name, val string }{{"app", req.App}, {"stream", req.Stream}} {
		if err := rules.ValidName(f.val); err != nil {
			m.cfg.Metrics.PublishRefused.WithLabelValues("bad_name").Inc()
			return nil, fmt.Errorf("%w: %s name %q: %v", rtmp.ErrBadName, f.name, f.val, err)
		}
	}
	domain, err := rules.NormalizeDomain(req.Domain)
	if err != nil {
		m.cfg.Metrics.PublishRefused.WithLabelValues("bad_name").Inc()
		return nil, fmt.Errorf("%w: domain (vhost) %v", rtmp.ErrBadName, err)
	}
	key := StreamKey{domain, req.App, req.Stream}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: server is shutting down", errRefused)
	}
	if _, ok := m.live[key]; ok || m.acquiring[key] {
		m.mu.Unlock()
		m.cfg.Metrics.PublishRefused.WithLabelValues("already_publishing").Inc()
		return nil, fmt.Errorf("%w: stream %s is already being published", errRefused, key)
	}
	s := newSession(m, key, req)
	if m.cfg.Leases != nil {
		own := m.owners[key] // held by a task of the key (in its stitch window)
		if own == nil {
			// The lease is taken without m.mu (a catalog round trip); the key is reserved
			// here meanwhile.
			m.acquiring[key] = true
			m.mu.Unlock()
			o, err := m.acquire(key)
			var adopted *Task
			if err != nil {
				// Another node holds the key: its paused task may move here.
				var id string
				if o, id, err = m.takeOver(key, err); err == nil {
					if adopted, err = m.adopt(id, o); err != nil {
						m.cfg.Logger.Error("cannot continue the task handed over: a new task starts", "task", id, "err", err)
						adopted, err = nil, nil
					}
				}
			}
			m.mu.Lock()
			if adopted != nil && m.tasks[key] == nil {
				m.tasks[key] = adopted
			}
			delete(m.acquiring, key)
			if err == nil && m.closed {
				m.mu.Unlock()
				o.release()
				return nil, fmt.Errorf("%w: server is shutting down", errRefused)
			}
			if err != nil {
				m.mu.Unlock()
				m.cfg.Metrics.PublishRefused.WithLabelValues("already_publishing").Inc()
				return nil, fmt.Errorf("%w: stream %s: cannot take its lease: %v", errRefused, key, err)
			}
			own = o
			m.owners[key] = o
		}
		own.hold()
		s.owner = own
	}
	var attach *Task
	if t, ok := m.tasks[key]; ok {
		if t.resume(s) {
			attach = t // a paused task within its stitch window: the recording continues
		} else {
			m.cfg.Logger.Info("publish not recorded", "stream", key.String(),
				"reason", "the stream's task was stopped by a command: only a start command resumes it")
		}
	} else if rule, ok := m.rules.Load().Match(domain, req.App, req.Stream); ok {
		attach = m.decideAndStart(s, rule)
	} else {
		m.cfg.Logger.Info("publish not recorded", "stream", key.String(), "reason", "no rule matches")
	}
	m.live[key] = s
	m.cfg.Metrics.LiveStreams.Inc()
	m.mu.Unlock()
	// The manager lock is held only while its maps change: attaching replays the media
	// the session buffered into the task's writers.
	if attach != nil {
		s.attach(attach)
	}
	return s, nil
}

// decideAndStart applies the rule's time window and start mode to a live publish. It
// returns the task started, which the caller attaches to s after releasing m.mu.
// Called with m.mu held.
func (m *Manager) decideAndStart(s *session, rule *rules.Rule) *Task {
	key := s.key
	in, edge := rule.InWindow(m.cfg.Now())
	if !in {
		if edge.IsZero() {
			m.cfg.Logger.Info("publish not recorded", "stream", key.String(), "reason", "the rule's time window has ended")
			return nil
		}
		m.cfg.Logger.Info("publish not recorded yet", "stream", key.String(), "reason", "before the rule's time window", "start", edge)
		s.after(edge.Sub(m.cfg.Now()), func() {
			m.mu.Lock()
			var t *Task
			if m.live[key] == s && m.tasks[key] == nil && !m.closed {
				t = m.decideAndStart(s, rule)
			}
			m.mu.Unlock()
			if t != nil {
				s.attach(t)
			}
		})
		return nil
	}
	if !edge.IsZero() {
		// The window closes: the task ends and its files are generated.
		s.after(edge.Sub(m.cfg.Now()), func() {
			m.cfg.Logger.Info("the rule's time window ended", "stream", key.String())
			m.Command(context.Background(), key.Domain, key.App, key.Stream, CommandCancelDelay)
		})
	}
	switch rec, why := decide(rule, s.req.Args); {
	case rule.OnDemand == rules.OnDemandCallback && m.cfg.AskOnDemand != nil:
		s.mu.Lock()
		s.keepAll = true // keep the media until the answer arrives
		s.mu.Unlock()
		m.wg.Add(1)
		go m.askOnDemand(s, rule)
	case rec:
		t, err := m.startTask(key, rule, s, false)
		if err != nil {
			m.notStarted(s, err)
		}
		return t
	default:
		m.cfg.Logger.Info("publish not recorded", "stream", key.String(), "reason", why)
	}
	return nil
}

// decide applies the rule's start mode (design.md "Start decisions").
func decide(rule *rules.Rule, args url.Values) (bool, string) {
	switch rule.OnDemand {
	case rules.OnDemandAuto:
		return true, "automatic"
	case rules.OnDemandPushURL:
		raw := args.Get("record_config")
		if raw == "" {
			return false, "onDemand 2: the push URL has no record_config"
		}
		var rc struct{ NeedRecord bool }
		if err := json.Unmarshal([]byte(raw), &rc); err != nil {
			return false, "onDemand 2: record_config is not valid JSON: " + err.Error()
		}
		if !rc.NeedRecord {
			return false, "onDemand 2: record_config says NeedRecord false"
		}
		return true, "onDemand 2: record_config"
	case rules.OnDemandManual:
		return false, "onDemand 7: manual recording only"
	case rules.OnDemandCallback:
		return false, "onDemand 1: no on-demand callback is configured"
	default:
		return false, fmt.Sprintf("onDemand %d: unknown start mode", rule.OnDemand)
	}
}

// startTask creates a task for the live publish s; the caller attaches it to s (which
// replays the media the session buffered) after releasing m.mu. Called with m.mu held.
func (m *Manager) startTask(key StreamKey, rule *rules.Rule, s *session, manual bool) (*Task, error) {
	t, err := m.newTask(key, rule, s)
	if err != nil {
		return nil, err
	}
	t.manual = manual
	m.tasks[key] = t
	return t, nil
}

// publishEnded is called by a session when its publish ends.
func (m *Manager) publishEnded(s *session) {
	m.mu.Lock()
	if m.live[s.key] == s {
		delete(m.live, s.key)
		m.cfg.Metrics.LiveStreams.Dec()
	}
	t := m.tasks[s.key]
	m.mu.Unlock()
	if t != nil {
		t.pause(s)
	}
	m.unhold(s.owner)
}

// delayExpired ends a paused task whose stitch window passed, unless it resumed since.
func (m *Manager) delayExpired(t *Task, gen uint64) {
	defer m.wg.Done()
	m.mu.Lock()
	if m.tasks[t.key] != t || !t.pausedAt(gen) {
		m.mu.Unlock()
		return
	}
	delete(m.tasks, t.key)
	m.mu.Unlock()
	t.end("stitch window expired")
}

// Shutdown ends every task now and refuses new publishes; it returns when every open
// file is finalized and every catalog write is done (or ctx ends: what is still being
// finalized is then left to the next start's recovery). Call it after the ingest server
// closed its connections.
func (m *Manager) Shutdown(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	tasks := make([]*Task, 0, len(m.tasks))
	for k, t := range m.tasks {
		tasks = append(tasks, t)
		delete(m.tasks, k)
	}
	m.mu.Unlock()
	for _, t := range tasks {
		t.end("shutdown")
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		m.fin.wait()
		m.ending.Wait()
		m.cat.wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		m.cfg.Logger.Error("shutdown: stopped waiting for files being finalized; the next start recovers them", "err", ctx.Err())
	}
	m.stopQuit()
}

// Drain waits until every file handed to the finalizers so far is generated and every
// catalog write queued so far is done (tests, offline conversion).
func (m *Manager) Drain() {
	m.sync.idle()
	m.fin.wait()
	m.ending.Wait()
	m.cat.wait()
}

// StreamInfo describes a live publish for the API.
type StreamInfo struct {
	Domain    string      `json:"domain"`
	App       string      `json:"app"`
	Stream    string      `json:"stream"`
	Since     time.Time   `json:"since"`
	State     string      `json:"state"` // recording, paused (stopped by a command), or "" (not recorded)
	Recording bool        `json:"recording"`
	TaskID    string      `json:"taskId,omitempty"`
	Rule      *rules.Rule `json:"rule,omitempty"` // the rule the task started with
	Video     string      `json:"videoCodec,omitempty"`
	Audio     string      `json:"audioCodec,omitempty"`
	Bitrate   int64       `json:"videoBitrate"` // bit/s, measured
	BytesIn   int64       `json:"bytesIn"`
}

// Streams lists the live publishes.
func (m *Manager) Streams() []StreamInfo {
	m.mu.Lock()
	type entry struct {
		k StreamKey
		s *session
		t *Task
	}
	var live []entry
	for k, s := range m.live {
		live = append(live, entry{k, s, m.tasks[k]})
	}
	m.mu.Unlock()
	out := make([]StreamInfo, 0, len(live))
	for _, e := range live {
		st := e.s.state()
		si := StreamInfo{Domain: e.k.Domain, App: e.k.App, Stream: e.k.Stream, Since: e.s.since, BytesIn: e.s.bytesIn.Load(),
			Video: st.video, Audio: st.audio, Bitrate: st.bitrate}
		if t := e.t; t != nil {
			t.mu.Lock()
			si.State, si.TaskID, si.Recording = t.state, t.id, t.state == catalog.TaskRecording
			r := t.rule
			si.Rule = &r
			t.mu.Unlock()
		}
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}

// storeFor picks the store a rule's files go to.
// StoreFor returns the store of a rule's files.
func (m *Manager) StoreFor(r *rules.Rule) (storage.Store, error) { return m.storeFor(r) }

func (m *Manager) storeFor(r *rules.Rule) (storage.Store, error) {
	if r.OssBucket == "" || m.cfg.StoreFor == nil {
		return m.cfg.Store, nil
	}
	return m.cfg.StoreFor(r)
}

// notStarted reports a push that should be recorded but whose task could not start (the
// rule's storage is not configured, the catalog failed): a record_error event, so that
// callbacks and metrics see it, not only the log.
func (m *Manager) notStarted(s *session, err error) {
	m.emit(Event{Type: EventError, Domain: s.key.Domain, App: s.key.App, Stream: s.key.Stream, Code: "task_not_started",
		Message: "cannot start recording task: " + err.Error(), PushArgs: s.req.Args})
}

// Emit reports an event that concerns no particular recording (a storage alarm): it is
// logged, counted and handed to OnEvent like the others.
func (m *Manager) Emit(ev Event) { m.emit(ev) }
