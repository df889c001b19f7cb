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
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	f, ok := ctx.Value(fenceKey{}).(Fence)
	if !ok {
		if st != nil {
			return st.ExecContext(ctx, args...)
		}
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
	var res sql.Result
	if st != nil {
		res, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	} else {
		res, err = tx.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return nil, err
	}
	return res, tx.Commit()
}

// stmt returns query prepared on SQLite, preparing it once: SQLite parses a statement
// on every Exec otherwise, which was most of the cost of a recording's progress writes
// (every 10 s per file). The queries given to exec are constants, so the cache stays
// small. On PostgreSQL it returns nil: the driver caches its statements itself (and
// database/sql's made BenchmarkStreamMinute no faster, with more allocations).
func (c *Catalog) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if c.driver != schema.SQLite {
		return nil, nil
	}
	if st, ok := c.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := c.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}
