package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/livrec/livrec/internal/schema"
)

// Fence is the stream lease a recording task writes under when several nodes share the
// catalog (package cluster): its writes of task and file rows are made only while the
// lease of StreamKey is still NodeID's, with Generation, and unexpired. A node that lost
// its lease (a partition, a pause longer than the lease) cannot overwrite the rows of the
// stream's new owner.
type Fence struct {
	StreamKey  string
	NodeID     string
	Generation int64
}

// ErrFenced is returned by a fenced write whose lease has moved on or expired.
var ErrFenced = errors.New("the stream's lease is no longer this node's")

type fenceKey struct{}

// WithFence returns ctx carrying f: the task and file writes given it (CreateTask,
// SetTaskState, CreateFile, UpdateFile, FileProgress, DeleteFile) check the lease in the
// same transaction. It travels in the context so that the recorder's Catalog interface
// stays the same for the catalogs that know no leases (one node, memory).
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// exec runs a write, checked against the context's fence if it carries one. The lease
// row is locked (PostgreSQL: FOR UPDATE; SQLite serializes writers) from the check to
// the commit, so a takeover (cluster.Store.Acquire updates that row) waits for the write
// or the write sees the takeover: never a write of the old owner after it.
func (c *Catalog) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	if !ok {
		return c.db.ExecContext(ctx, query, args...)
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	lock := ""
	if c.driver == schema.Postgres {
		lock = " FOR UPDATE"
	}
	var gen int64
	err = tx.QueryRowContext(ctx, `SELECT generation FROM stream_leases WHERE stream_key=$1 AND node_id=$2 AND generation=$3 AND expires_at>$4`+lock,
		f.StreamKey, f.NodeID, f.Generation, time.Now().UnixMilli()).Scan(&gen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("stream %s generation %d on node %s: %w", f.StreamKey, f.Generation, f.NodeID, ErrFenced)
	}
	if err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return res, tx.Commit()
}
