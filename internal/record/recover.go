package record

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// Recover ends the tasks a previous process left RECORDING or PAUSED (a crash or a
// kill): each open file is finalized from its working files, exactly once. Call it
// before accepting publishes.
func (m *Manager) Recover(ctx context.Context) error {
	tasks, err := m.cfg.Catalog.OpenTasks(ctx)
	if err != nil {
		return err
	}
	for _, id := range m.endedElsewhere(ctx) {
		m.dropFinalizedElsewhere(ctx, id)
		os.Remove(filepath.Join(m.cfg.WorkDir, id)) // only if nothing else is left
	}
	for _, t := range tasks {
		if m.cfg.Leases != nil {
			// The catalog is shared: the open tasks of the other nodes are theirs. A task
			// is this node's when its working directory is here.
			if _, err := os.Stat(filepath.Join(m.cfg.WorkDir, t.ID)); err != nil {
				continue
			}
		}
		var rule rules.Rule
		if err := json.Unmarshal([]byte(t.Rule), &rule); err != nil {
			m.cfg.Logger.Error("recover: task rule unreadable", "task", t.ID, "err", err)
		}
		files, err := m.cfg.Catalog.TaskFiles(ctx, t.ID, catalog.FileRecording)
		if err != nil {
			return err
		}
		m.dropFinalizedElsewhere(ctx, t.ID)
		log := m.cfg.Logger.With("task", t.ID)
		log.Info("recovering recording task left open", "stream", t.Domain+"/"+t.App+"/"+t.Stream, "state", t.State, "files", len(files))
		for i := range files {
			f := &files[i]
			if mine, err := m.claimRecovery(ctx, f); err != nil {
				return err
			} else if !mine {
				continue // another node finalizes it
			}
			rf, ok := formatOf(rule, f.Format)
			var res format.Result
			end := f.Start
			if !ok {
				err = fmt.Errorf("the task's rule has no %s format", f.Format)
			} else {
				vars := (&Task{m: m, key: StreamKey{t.Domain, t.App, t.Stream}}).keyVars(f.Sequence)
				vars.Start = f.Start
				var e2 = end
				var store storage.Store
				if store, err = m.storeFor(&rule); err == nil {
					res, e2, err = recoverFile(ctx, store, rf, vars, f.WorkDir, log)
				}
				if !e2.IsZero() {
					end = e2
				}
			}
			m.completeFile(f, end, res, err, nil, nil)
		}
		id, at := t.ID, m.cfg.Now()
		m.cat.add(id, catalogOp{what: "task ended (recovered)", do: func(ctx context.Context, c Catalog) error {
			os.Remove(filepath.Join(m.cfg.WorkDir, id))
			return c.SetTaskState(ctx, id, catalog.TaskEnded, at)
		}})
	}
	m.cat.wait()
	return nil
}

func formatOf(rule rules.Rule, format string) (rules.RecordFormat, bool) {
	for _, rf := range rule.RecordFormats {
		if string(rf.Format) == format {
			return rf, true
		}
	}
	return rules.RecordFormat{}, false
}
