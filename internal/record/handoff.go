package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/rules"
)

// Peers is what a node of a cluster (Config.Leases) knows of the others, for the
// streams that move between nodes (package peer implements it):
//   - a publish whose key another live node holds for a paused task (its stitch window)
//     asks that node to hand the task over (HandOver), then continues it here;
//   - the segmented recordings of a dead node are finalized here from the writer states
//     kept in the catalog (see reap).
type Peers interface {
	// Self is this node's id.
	Self() string
	// HandOver asks the node holding key's lease to hand over its paused task: it
	// returns the task's id once that node released the lease, or an error saying why
	// not (the key is being published there, the node is unreachable, ...).
	HandOver(ctx context.Context, key string) (taskID string, err error)
	// Alive reports whether node beats.
	Alive(ctx context.Context, node string) (bool, error)
	// Holds reports whether node holds an unexpired lease of key.
	Holds(ctx context.Context, key, node string) (bool, error)
}

// ClusterCatalog is what the streams that move between nodes need of the catalog
// (catalog.Catalog implements it): the writer states of segmented recordings and the
// claims that make a file finalized once.
type ClusterCatalog interface {
	Catalog
	SaveWriterState(ctx context.Context, fileID, taskID, node, state string) error
	TaskWriterStates(ctx context.Context, taskID string) (map[string]catalog.WriterState, error)
	UnclaimedStates(ctx context.Context) ([]catalog.WriterState, error)
	ClaimFile(ctx context.Context, fileID, taskID, node string) (bool, error)
	GetTask(ctx context.Context, id string) (*catalog.Task, error)
}

var _ ClusterCatalog = (*catalog.Catalog)(nil)

// storedStater is a writer whose state as far as it reached storage can continue on
// another node (the segmented formats: segment.Writer).
type storedStater interface{ StoredState() []byte }

// cluster returns the catalog and peers of a node in a cluster, or ok false.
func (m *Manager) cluster() (ClusterCatalog, Peers, bool) {
	cc, ok := m.cfg.Catalog.(ClusterCatalog)
	if !ok || m.cfg.Peers == nil || m.cfg.Leases == nil {
		return nil, nil, false
	}
	return cc, m.cfg.Peers, true
}

// saveWriterState queues the kept state of a segmented file in object storage (a
// node's writes to the catalog are ordered per task, behind the file's row). Called with
// t.mu held.
func (t *Task) saveWriterState(f *openFile) {
	cc, peers, ok := t.m.cluster()
	st, isStater := f.w.(storedStater)
	if !ok || !isStater || t.rule.OssBucket == "" {
		return // a local disk's segments: no other node can use the state
	}
	id, task, self := f.row.ID, t.id, peers.Self()
	t.m.cat.add(t.id, catalogOp{what: "save writer state", owner: t.owner, do: func(ctx context.Context, _ Catalog) error {
		// Taken when the write runs: the newest state, segments stored meanwhile included.
		b := st.StoredState()
		if b == nil {
			return nil
		}
		return cc.SaveWriterState(ctx, id, task, self, string(b))
	}})
}

// ParseStreamKey reads a StreamKey.String.
func ParseStreamKey(s string) (StreamKey, error) {
	i := strings.LastIndexByte(s, '/')
	j := -1
	if i > 0 {
		j = strings.LastIndexByte(s[:i], '/')
	}
	if j < 0 {
		return StreamKey{}, fmt.Errorf("stream key %q: want domain/app/stream", s)
	}
	return StreamKey{s[:j], s[j+1 : i], s[i+1:]}, nil
}

// ErrNoHandOver is returned by HandOver when the key has no task here that can move.
var ErrNoHandOver = errors.New("no task to hand over")

// HandOver gives the paused task of key to another node (Peers.HandOver on that node):
// its m3u8 and cmaf files are left open for the other node to continue from their kept
// states (everything received is stored first), its flv and mp4 files are finalized
// here (the other node goes on with the next sequence), and the key's lease is released
// once every catalog write of the task is done. It refuses a key being published here,
// a task stopped by a command or started by one, and a task whose rule records to this
// node's disk (another node cannot continue those files).
func (m *Manager) HandOver(ctx context.Context, keyStr string) (string, error) {
	key, err := ParseStreamKey(keyStr)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	t := m.tasks[key]
	why := ""
	switch {
	case m.live[key] != nil || m.acquiring[key]:
		why = "the stream is being published on this node"
	case t == nil:
		why = "the stream has no task on this node"
	case t.rule.OssBucket == "":
		why = fmt.Sprintf("its rule (domainName %s, appName %s, streamName %s) records to this node's local disk (ossEndpoint/ossBucket unset): only object storage is shared by the nodes",
			t.rule.DomainName, t.rule.AppName, t.rule.StreamName)
	case t.owner == nil:
		why = "the task holds no lease"
	}
	if why == "" {
		t.mu.Lock()
		if t.state != catalog.TaskPaused || t.stopped || t.manual {
			why = "the task is not paused in its stitch window"
		}
		t.mu.Unlock()
	}
	if why != "" {
		m.mu.Unlock()
		return "", fmt.Errorf("stream %s: %w: %s", key, ErrNoHandOver, why)
	}
	delete(m.tasks, key)
	// A publish of the key here meanwhile is refused: the lease goes to the asking node.
	m.acquiring[key] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.acquiring, key)
		m.mu.Unlock()
	}()
	// The hand-over, once begun, ends even if the asking node stops waiting.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), HandOverTimeout)
	defer cancel()
	t.handOver(hctx)
	return t.id, nil
}

// handOver is HandOver's work on the task, which no publish can reach any more.
func (t *Task) handOver(ctx context.Context) {
	m := t.m
	var open []*openFile
	t.mu.Lock()
	from, ok := t.halt(func(o *output) {
		if _, seg := o.curWriter().(storedStater); seg {
			open = append(open, o.cur)
			o.cur = nil
			return
		}
		t.finishFile(o) // flv, mp4: generated here
	})
	t.mu.Unlock()
	if !ok {
		return
	}
	m.cfg.Metrics.ActiveTasks.WithLabelValues(from).Dec()
	for _, f := range open {
		// Whatever the pause left to sync and store is stored before the state is kept.
		if p, ok := f.w.(format.Pauser); ok {
			if sync := p.Pause(); sync != nil {
				_ = sync()
			}
		}
		t.mu.Lock()
		t.saveWriterState(f)
		t.mu.Unlock()
	}
	t.inflight.Wait() // the flv and mp4 files: generated, their rows queued
	m.catalogDone(ctx, t.id)
	for _, f := range open {
		if c, ok := f.w.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		_ = os.RemoveAll(f.row.WorkDir) // stored: the other node lists these segments
	}
	_ = os.Remove(filepath.Join(m.cfg.WorkDir, t.id))
	m.cfg.Logger.Info("recording task handed over to another node", "task", t.id, "stream", t.key.String(),
		"open_files", len(open))
	m.unhold(t.owner) // the last user: the lease is released
}

// catalogDone waits until the catalog writes of task id queued so far are done.
func (m *Manager) catalogDone(ctx context.Context, id string) {
	done := make(chan struct{})
	m.cat.add(id, catalogOp{what: "barrier", do: func(context.Context, Catalog) error { return nil },
		then: func() { close(done) }})
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// takeOver is called for a publish whose key's lease another node holds: it asks that
// node for its paused task (Peers.HandOver) and takes the lease. The task is then
// continued here (adopt). Called without m.mu, the key reserved in m.acquiring.
func (m *Manager) takeOver(key StreamKey, held error) (*owner, string, error) {
	_, peers, ok := m.cluster()
	if !ok {
		return nil, "", held
	}
	ctx, cancel := context.WithTimeout(context.Background(), HandOverTimeout)
	defer cancel()
	id, err := peers.HandOver(ctx, key.String())
	if err != nil {
		return nil, "", fmt.Errorf("%v (no hand-over: %v)", held, err)
	}
	o, err := m.acquire(key)
	if err != nil {
		return nil, "", err
	}
	return o, id, nil
}

// HandOverTimeout bounds asking another node for a task (and the request between the
// nodes): it finalizes the task's flv and mp4 files meanwhile (an mp4 copies its whole
// working file).
const HandOverTimeout = 2 * time.Minute

// adopt continues here the task id another node handed over for the publish s: its
// rule, its m3u8 and cmaf files (from their kept states: the same playlists, with a
// discontinuity), and the sequence numbers of its flv and mp4 files. The task is PAUSED
// until the caller resumes it with s. Called without m.mu.
func (m *Manager) adopt(id string, own *owner) (*Task, error) {
	cc, _, _ := m.cluster()
	ctx, cancel := context.WithTimeout(context.Background(), catalogTimeout)
	defer cancel()
	row, err := cc.GetTask(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	var rule rules.Rule
	if err := json.Unmarshal([]byte(row.Rule), &rule); err != nil {
		return nil, fmt.Errorf("task %s: rule: %w", id, err)
	}
	files, err := cc.TaskFiles(ctx, id, "")
	if err != nil {
		return nil, err
	}
	states, err := cc.TaskWriterStates(ctx, id)
	if err != nil {
		return nil, err
	}
	store, err := m.storeFor(&rule)
	if err != nil {
		return nil, err
	}
	key := StreamKey{row.Domain, row.App, row.Stream}
	t := m.task(id, key, rule, row.StartedAt, store, catalog.TaskPaused, own)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rf := range rule.RecordFormats {
		o := &output{rf: rf}
		t.outs = append(t.outs, o)
		for _, f := range files {
			if f.Format != string(rf.Format) {
				continue
			}
			o.nextSeq = max(o.nextSeq, f.Sequence+1)
			st, ok := states[f.ID]
			if f.Status != catalog.FileRecording || !formats[rf.Format].segmented || !ok || st.State == "" || st.Finalizer != "" {
				continue
			}
			if err := t.continueFile(o, f, st.State); err != nil {
				m.cfg.Logger.Error("cannot continue a file handed over: the next file opens instead", "task", id,
					"format", f.Format, "sequence", f.Sequence, "err", err)
			}
		}
	}
	m.cfg.Logger.Info("continuing a recording task handed over by another node", "task", id, "stream", key.String())
	return t, nil
}

// continueFile opens the writer of file f from its kept state, in a working directory
// of this node. Called with t.mu held.
func (t *Task) continueFile(o *output, f catalog.File, state string) error {
	dir := filepath.Join(t.m.cfg.WorkDir, t.id, fmt.Sprintf("%s-%d", f.Format, f.Sequence))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	prog := &progress{}
	w, err := openWriter(t, o.rf, dir, prog, []byte(state))
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	f.WorkDir = dir
	prior := w.Duration()
	// The media of this node starts at the task's timeline origin: the file's own clock
	// goes on after what the other node recorded.
	of := &openFile{row: f, w: w, startDTS: -prior, prog: prog}
	of.reported.dts = prior
	o.cur = of
	row := f
	t.m.cat.add(t.id, catalogOp{what: "continue file", owner: t.owner,
		do: func(ctx context.Context, c Catalog) error { return c.UpdateFile(ctx, &row) }})
	t.saveWriterState(of) // this node writes it now
	return nil
}
