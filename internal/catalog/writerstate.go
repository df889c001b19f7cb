package catalog

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// WriterState is what a node keeps in the catalog of a segmented recording (m3u8, cmaf)
// it is writing: the writer's state as far as it reached storage (the stored segments,
// their durations and discontinuities, the next sequence; segment.Writer.StoredState), so
// that another node can continue the recording (a stream handed over) or finalize it
// (its node died) without the first node's disk.
type WriterState struct {
	FileID, TaskID string
	NodeID         string // the node writing the file
	State          string // the writer's JSON
	// Finalizer is the node that claimed the file's finalization (ClaimFile), or "".
	Finalizer string
	UpdatedAt time.Time
}

// SaveWriterState records the state of file (of task) written by node. It is a fenced
// write (WithFence) like the file's other rows, and is ignored once a node claimed the
// file's finalization.
func (c *Catalog) SaveWriterState(ctx context.Context, fileID, taskID, node, state string) error {
	_, err := c.exec(ctx, `INSERT INTO writer_states(file_id, task_id, node_id, state, finalizer, updated_at) VALUES($1, $2, $3, $4, '', $5)
		ON CONFLICT(file_id) DO UPDATE SET node_id=excluded.node_id, state=excluded.state, updated_at=excluded.updated_at
		WHERE writer_states.finalizer=''`, fileID, taskID, node, state, time.Now().UnixMilli())
	return err
}

// TaskWriterStates returns the states kept for the files of a task, by file id.
func (c *Catalog) TaskWriterStates(ctx context.Context, taskID string) (map[string]WriterState, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT file_id, task_id, node_id, state, finalizer, updated_at FROM writer_states WHERE task_id=$1`, taskID)
	if err != nil {
		return nil, err
	}
	ws, err := scanWriterStates(rows)
	out := map[string]WriterState{}
	for _, w := range ws {
		out[w.FileID] = w
	}
	return out, err
}

// UnclaimedStates returns the states of the files still recording whose finalization
// no node claimed: those a dead node left are finalized from them by another one.
func (c *Catalog) UnclaimedStates(ctx context.Context) ([]WriterState, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT w.file_id, w.task_id, w.node_id, w.state, w.finalizer, w.updated_at
		FROM writer_states w JOIN files f ON f.id=w.file_id WHERE f.status=$1 AND w.finalizer='' ORDER BY w.updated_at`, FileRecording)
	if err != nil {
		return nil, err
	}
	return scanWriterStates(rows)
}

func scanWriterStates(rows *sql.Rows) ([]WriterState, error) {
	defer rows.Close()
	var out []WriterState
	for rows.Next() {
		var w WriterState
		var at int64
		if err := rows.Scan(&w.FileID, &w.TaskID, &w.NodeID, &w.State, &w.Finalizer, &at); err != nil {
			return nil, err
		}
		w.UpdatedAt = FromMS(at)
		out = append(out, w)
	}
	return out, rows.Err()
}

// ClaimFile makes node the one that finalizes file (of task): true if the file was
// unclaimed or already node's, false if another node claimed it. A file without a kept
// state is claimed too (its row is made): the node that recovers it from its work
// directory and a node that finalizes it from the catalog never both do.
func (c *Catalog) ClaimFile(ctx context.Context, fileID, taskID, node string) (bool, error) {
	var id string
	err := c.db.QueryRowContext(ctx, `INSERT INTO writer_states(file_id, task_id, node_id, state, finalizer, updated_at) VALUES($1, $2, $3, '', $3, $4)
		ON CONFLICT(file_id) DO UPDATE SET finalizer=excluded.finalizer
		WHERE writer_states.finalizer='' OR writer_states.finalizer=excluded.finalizer
		RETURNING file_id`, fileID, taskID, node, time.Now().UnixMilli()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
