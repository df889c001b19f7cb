package record

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// reap finalizes the segmented recordings that dead nodes left open, from the writer
// states kept in the catalog (what reached storage: segments only in the dead node's
// work directory are not listed). A file is reaped once its node holds no lease of the
// stream any more, so that node writes no more rows for it, and either misses its
// heartbeats or wrote no state of the file for a whole lease (a live node's task that
// lost its lease, or whose hand-over the asking node did not take up: nobody records
// the file); ClaimFile makes one node do it, once. The task ends when none of
// its files is still recording (the flv and mp4 files of a dead node live only in its
// work directory: they wait for it to come back, whose Recover finalizes them).
func (m *Manager) reap(ctx context.Context) {
	cc, peers, ok := m.cluster()
	if !ok {
		return
	}
	states, err := cc.UnclaimedStates(ctx)
	if err != nil {
		m.cfg.Logger.Warn("cluster: listing recordings to finalize", "err", err)
		return
	}
	self := peers.Self()
	dead := map[string]bool{} // asked once per pass
	for _, st := range states {
		if st.NodeID == self || st.State == "" {
			continue // this node's own (a previous run's are Recover's)
		}
		d, asked := dead[st.NodeID]
		if !asked {
			alive, err := peers.Alive(ctx, st.NodeID)
			d = err == nil && !alive
			dead[st.NodeID] = d
		}
		// A live node's file is left alone unless nobody wrote its state for a whole
		// lease (and the node does not hold the stream, below): a task that lost its
		// lease, or was handed over to a node that did not take it up.
		if !d && time.Since(st.UpdatedAt) < 3*m.cfg.Leases.Period() {
			continue
		}
		task, err := cc.GetTask(ctx, st.TaskID)
		if err != nil {
			continue
		}
		if !sharedStorage(task.Rule) {
			continue // its segments are on that node's disk: that node recovers it
		}
		key := StreamKey{task.Domain, task.App, task.Stream}
		if held, err := peers.Holds(ctx, key.String(), st.NodeID); err != nil || held {
			continue
		}
		if ok, err := cc.ClaimFile(ctx, st.FileID, st.TaskID, self); err != nil || !ok {
			continue
		}
		m.reapFile(ctx, cc, task, st)
	}
}

// sharedStorage reports whether a task's rule (JSON) stores into object storage, which
// every node reaches.
func sharedStorage(ruleJSON string) bool {
	var r rules.Rule
	return json.Unmarshal([]byte(ruleJSON), &r) == nil && r.OssBucket != ""
}

// reapFile finalizes the claimed file of st. Called by reap.
func (m *Manager) reapFile(ctx context.Context, cc ClusterCatalog, task *catalog.Task, st catalog.WriterState) {
	log := m.cfg.Logger.With("task", task.ID)
	files, err := cc.TaskFiles(ctx, task.ID, catalog.FileRecording)
	if err != nil {
		log.Warn("cluster: finalizing a dead node's recording", "err", err)
		return
	}
	var f *catalog.File
	for i := range files {
		if files[i].ID == st.FileID {
			f = &files[i]
		}
	}
	if f == nil {
		return // completed meanwhile
	}
	var rule rules.Rule
	res, end := format.Result{}, f.Start
	err = json.Unmarshal([]byte(task.Rule), &rule)
	rf, ok := formatOf(rule, f.Format)
	switch {
	case err != nil:
	case !ok || formats[rf.Format].finishStored == nil:
		err = fmt.Errorf("the task's rule has no segmented %s format", f.Format)
	default:
		var store storage.Store
		if store, err = m.storeFor(&rule); err != nil {
			break
		}
		dir := filepath.Join(m.cfg.WorkDir, "reap", uuid.NewString())
		if err = os.MkdirAll(dir, 0o755); err != nil {
			break
		}
		vars := (&Task{m: m, key: StreamKey{task.Domain, task.App, task.Stream}}).keyVars(f.Sequence)
		vars.Start = f.Start
		var e time.Time
		res, e, err = finalizeWith(rf, vars, log, func(key func(time.Time) string) (format.Result, error) {
			return formats[rf.Format].finishStored(ctx, store, []byte(st.State), dir, key, log)
		})
		if !e.IsZero() {
			end = e
		}
	}
	log.Info("cluster: finalizing the recording of a dead node from what reached storage", "node", st.NodeID,
		"format", f.Format, "sequence", f.Sequence, "err", err)
	m.completeFile(f, end, res, err, nil, nil)
	id := task.ID
	m.cat.add(id, catalogOp{what: "end task of a dead node", do: func(ctx context.Context, c Catalog) error {
		open, err := c.TaskFiles(ctx, id, catalog.FileRecording)
		if err != nil || len(open) > 0 {
			return err
		}
		return c.SetTaskState(ctx, id, catalog.TaskEnded, m.cfg.Now())
	}})
	m.catalogDone(ctx, id)
}

// Reap finalizes, every interval until ctx ends, the segmented recordings dead nodes
// left open (see reap). It does nothing outside a cluster (Config.Peers).
func (m *Manager) Reap(ctx context.Context, interval time.Duration) {
	if _, _, ok := m.cluster(); !ok {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.reap(ctx)
	}
}

// claimRecovery says whether this node recovers file f of a task it left open: in a
// cluster another node may have finalized it (or be doing so) from its kept state.
func (m *Manager) claimRecovery(ctx context.Context, f *catalog.File) (bool, error) {
	cc, peers, ok := m.cluster()
	if !ok {
		return true, nil
	}
	mine, err := cc.ClaimFile(ctx, f.ID, f.TaskID, peers.Self())
	if err != nil {
		return false, fmt.Errorf("claiming %s file %d of task %s: %w", f.Format, f.Sequence, f.TaskID, err)
	}
	return mine, nil
}

// claimFinish claims the finalization of a file this node generates: false only if
// another node claimed it (it finalized the file from its kept state, judging this node
// dead). A catalog error does not stop the file: only a claim made elsewhere does.
func (m *Manager) claimFinish(f *catalog.File) bool {
	cc, peers, ok := m.cluster()
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(m.quit, catalogTimeout)
	defer cancel()
	mine, err := cc.ClaimFile(ctx, f.ID, f.TaskID, peers.Self())
	if err == nil && !mine {
		m.cfg.Logger.Warn("file finalized by another node: this node's copy is not stored", "task", f.TaskID,
			"format", f.Format, "sequence", f.Sequence)
	}
	return err != nil || mine
}

// dropFinalizedElsewhere removes the working files of task's files that another node
// finalized from their kept states while this node was down: the objects stored are
// that node's playlist's, and nothing of this node's copy is stored over them.
func (m *Manager) dropFinalizedElsewhere(ctx context.Context, taskID string) {
	cc, peers, ok := m.cluster()
	if !ok {
		return
	}
	files, err := cc.TaskFiles(ctx, taskID, "")
	if err != nil {
		return
	}
	states, err := cc.TaskWriterStates(ctx, taskID)
	if err != nil {
		return
	}
	for _, f := range files {
		by := states[f.ID].Finalizer
		if by == "" || by == peers.Self() || f.WorkDir == "" {
			continue
		}
		if _, err := os.Stat(f.WorkDir); err != nil {
			continue
		}
		m.cfg.Logger.Info("recover: the file was finalized by another node, its working files are dropped",
			"task", f.TaskID, "format", f.Format, "sequence", f.Sequence, "node", by)
		os.RemoveAll(f.WorkDir)
	}
}

// endedElsewhere returns the working directories of this node's tasks that another node
// ended meanwhile (their files finalized from the catalog while this node was down). It
// runs before this node's own recovery, which ends tasks too.
func (m *Manager) endedElsewhere(ctx context.Context) []string {
	cc, _, ok := m.cluster()
	if !ok {
		return nil
	}
	ents, err := os.ReadDir(m.cfg.WorkDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if _, err := uuid.Parse(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		if t, err := cc.GetTask(ctx, e.Name()); err == nil && t.State == catalog.TaskEnded {
			out = append(out, e.Name())
		}
	}
	return out
}
