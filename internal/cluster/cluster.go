// Package cluster is what several livrec nodes sharing one PostgreSQL catalog know of
// each other, kept in the catalog's database (tables nodes and stream_leases, made by
// package schema's migrations; they work on SQLite too, for one node):
//
//   - node identity and liveness: each node has an id (config, else the host name) and an
//     HTTP address other nodes can reach, and writes a heartbeat row every interval; a
//     node whose last beat is more than MissedBeats intervals old is dead;
//   - stream ownership: a publish takes a lease on its stream key with an expiry. Every
//     acquisition increments the key's generation, a fencing token: a write made under
//     generation g is refused once the lease has moved on (Holds), so a node that lost its
//     lease (partition, pause) cannot overwrite the new owner's rows.
//
// Times are Unix milliseconds of the caller's clock: nodes need synchronized clocks
// (NTP), with errors well under a lease's duration.
package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/livrec/livrec/internal/catalog"
)

// Store reads and writes the cluster tables of a catalog database.
type Store struct{ db *sql.DB }

// New returns a Store on db, the catalog's database (catalog.(*Catalog).DB()).
func New(db *sql.DB) *Store { return &Store{db: db} }

// Node is a node as its heartbeat row says.
type Node struct {
	ID        string    `json:"id"`
	HTTPAddr  string    `json:"httpAddr"`
	StartedAt time.Time `json:"startedAt"`
	BeatAt    time.Time `json:"beatAt"`
	Alive     bool      `json:"alive"`
}

// Liveness says when a node is dead: no beat for MissedBeats intervals.
type Liveness struct {
	Interval    time.Duration
	MissedBeats int
}

// Validate names the field out of range.
func (l Liveness) Validate() error {
	if l.Interval < 100*time.Millisecond || l.Interval > time.Hour {
		return fmt.Errorf("heartbeat interval %v is out of range (allowed 100ms–1h)", l.Interval)
	}
	if l.MissedBeats < 1 || l.MissedBeats > 1000 {
		return fmt.Errorf("missed beats %d is out of range (allowed 1–1000)", l.MissedBeats)
	}
	return nil
}

// Beat writes the heartbeat of node id at now (its first beat also sets started).
func (s *Store) Beat(ctx context.Context, id, httpAddr string, started, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO nodes(id, http_addr, started_at, beat_at) VALUES($1, $2, $3, $4)
		ON CONFLICT(id) DO UPDATE SET http_addr=excluded.http_addr, started_at=excluded.started_at, beat_at=excluded.beat_at`,
		id, httpAddr, started.UnixMilli(), now.UnixMilli())
	return err
}

// Nodes returns every node that ever beat, by id, with Alive judged at now.
func (s *Store) Nodes(ctx context.Context, l Liveness, now time.Time) ([]Node, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, http_addr, started_at, beat_at FROM nodes ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Node{}
	deadline := now.Add(-time.Duration(l.MissedBeats) * l.Interval)
	for rows.Next() {
		var n Node
		var started, beat int64
		if err := rows.Scan(&n.ID, &n.HTTPAddr, &started, &beat); err != nil {
			return nil, err
		}
		n.StartedAt, n.BeatAt = time.UnixMilli(started).UTC(), time.UnixMilli(beat).UTC()
		n.Alive = !n.BeatAt.Before(deadline)
		out = append(out, n)
	}
	return out, rows.Err()
}

// Heartbeat beats now and every l.Interval until ctx ends; a failed beat goes to onError
// (may be nil) and the next interval tries again.
func (s *Store) Heartbeat(ctx context.Context, id, httpAddr string, l Liveness, onError func(error)) {
	started := time.Now()
	tick := time.NewTicker(l.Interval)
	defer tick.Stop()
	for {
		if err := s.Beat(ctx, id, httpAddr, started, time.Now()); err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Lease is a node's ownership of a stream key until Expires; Generation is its fencing
// token.
type Lease struct {
	StreamKey  string
	NodeID     string
	Generation int64
	Expires    time.Time
}

// ErrLeaseHeld is returned by Acquire while another lease on the key has not expired.
var ErrLeaseHeld = errors.New("the stream is owned by a live lease")

// ErrLeaseLost is returned by Renew when the lease expired or moved on: the holder must
// stop writing the stream's rows.
var ErrLeaseLost = errors.New("the stream's lease is lost")

// Acquire takes the lease on key for node until now+ttl, with the next generation, unless
// an unexpired lease holds it (also one of this node: a second publisher is refused).
func (s *Store) Acquire(ctx context.Context, key, node string, ttl time.Duration, now time.Time) (*Lease, error) {
	l := &Lease{StreamKey: key, NodeID: node, Expires: time.UnixMilli(now.Add(ttl).UnixMilli()).UTC()}
	err := s.db.QueryRowContext(ctx, `INSERT INTO stream_leases(stream_key, node_id, generation, expires_at) VALUES($1, $2, 1, $3)
		ON CONFLICT(stream_key) DO UPDATE SET node_id=excluded.node_id, generation=stream_leases.generation+1, expires_at=excluded.expires_at
		WHERE stream_leases.expires_at<=$4
		RETURNING generation`, key, node, l.Expires.UnixMilli(), now.UnixMilli()).Scan(&l.Generation)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("stream %s: %w", key, ErrLeaseHeld)
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Renew extends l to now+ttl if it is still held (same generation, not expired).
func (s *Store) Renew(ctx context.Context, l *Lease, ttl time.Duration, now time.Time) error {
	exp := time.UnixMilli(now.Add(ttl).UnixMilli()).UTC()
	res, err := s.db.ExecContext(ctx, `UPDATE stream_leases SET expires_at=$1
		WHERE stream_key=$2 AND node_id=$3 AND generation=$4 AND expires_at>$5`,
		exp.UnixMilli(), l.StreamKey, l.NodeID, l.Generation, now.UnixMilli())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("stream %s generation %d: %w", l.StreamKey, l.Generation, ErrLeaseLost)
	}
	l.Expires = exp
	return nil
}

// Release ends l at once (the key's generation is kept, so the next owner's is higher).
// Releasing a lease already lost is not an error.
func (s *Store) Release(ctx context.Context, l *Lease) error {
	_, err := s.db.ExecContext(ctx, `UPDATE stream_leases SET expires_at=0 WHERE stream_key=$1 AND node_id=$2 AND generation=$3`,
		l.StreamKey, l.NodeID, l.Generation)
	return err
}

// Holds reports whether l is still the key's unexpired lease at now: the fencing check
// before a write made for the stream.
func (s *Store) Holds(ctx context.Context, l *Lease, now time.Time) (bool, error) {
	var ok bool
	err := s.db.QueryRowContext(ctx, `SELECT count(*)>0 FROM stream_leases
		WHERE stream_key=$1 AND node_id=$2 AND generation=$3 AND expires_at>$4`,
		l.StreamKey, l.NodeID, l.Generation, now.UnixMilli()).Scan(&ok)
	return ok, err
}

// NodeLeases is the stream ownership of one node, as the recorder uses it (it
// implements record.Leases): leases of TTL, taken for node, fencing the catalog writes
// through catalog.Fence.
type NodeLeases struct {
	Store *Store
	Node  string
	TTL   time.Duration
}

// LeaseTTL is how long a stream lease lasts without renewal: as long as a node without
// beats is taken for alive, so that a node judged dead has also lost its streams.
func (l Liveness) LeaseTTL() time.Duration { return time.Duration(l.MissedBeats) * l.Interval }

// Acquire takes the lease of key; a key owned elsewhere is an error wrapping
// ErrLeaseHeld that names the owner.
func (n *NodeLeases) Acquire(ctx context.Context, key string) (catalog.Fence, error) {
	l, err := n.Store.Acquire(ctx, key, n.Node, n.TTL, time.Now())
	if errors.Is(err, ErrLeaseHeld) {
		var owner string
		if n.Store.db.QueryRowContext(ctx, `SELECT node_id FROM stream_leases WHERE stream_key=$1`, key).Scan(&owner) == nil {
			return catalog.Fence{}, fmt.Errorf("stream %s is being published on node %s: %w", key, owner, ErrLeaseHeld)
		}
	}
	if err != nil {
		return catalog.Fence{}, err
	}
	return catalog.Fence{StreamKey: key, NodeID: n.Node, Generation: l.Generation}, nil
}

// Renew extends the lease of f; a lease lost is an error wrapping catalog.ErrFenced.
func (n *NodeLeases) Renew(ctx context.Context, f catalog.Fence) error {
	err := n.Store.Renew(ctx, n.lease(f), n.TTL, time.Now())
	if errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("%w: %w", catalog.ErrFenced, err)
	}
	return err
}

// Release ends the lease of f.
func (n *NodeLeases) Release(ctx context.Context, f catalog.Fence) error {
	return n.Store.Release(ctx, n.lease(f))
}

// Period is how often a lease is renewed: three times per TTL.
func (n *NodeLeases) Period() time.Duration { return n.TTL / 3 }

func (n *NodeLeases) lease(f catalog.Fence) *Lease {
	return &Lease{StreamKey: f.StreamKey, NodeID: f.NodeID, Generation: f.Generation}
}

// ReleaseNode ends every lease of node: at its start, when it has no publish yet, the
// leases a crash of its previous run left do not hold its streams until they expire.
func (s *Store) ReleaseNode(ctx context.Context, node string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE stream_leases SET expires_at=0 WHERE node_id=$1`, node)
	return err
}

// Owner returns the node whose unexpired lease holds key at now ("" if none does).
func (s *Store) Owner(ctx context.Context, key string, now time.Time) (string, error) {
	var node string
	err := s.db.QueryRowContext(ctx, `SELECT node_id FROM stream_leases WHERE stream_key=$1 AND expires_at>$2`,
		key, now.UnixMilli()).Scan(&node)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return node, err
}

// Leases returns the unexpired leases at now, by stream key.
func (s *Store) Leases(ctx context.Context, now time.Time) ([]Lease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stream_key, node_id, generation, expires_at FROM stream_leases
		WHERE expires_at>$1 ORDER BY stream_key`, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var exp int64
		if err := rows.Scan(&l.StreamKey, &l.NodeID, &l.Generation, &exp); err != nil {
			return nil, err
		}
		l.Expires = time.UnixMilli(exp).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

// Status is the cluster as the catalog says at one time: /api/v1/cluster and
// `livrec cluster status`.
type Status struct {
	At     time.Time    `json:"at"`
	Nodes  []NodeStatus `json:"nodes"`
	Counts Counts       `json:"counts"`
}

// NodeStatus is a node with the stream keys its unexpired leases hold.
type NodeStatus struct {
	Node
	Leases []string `json:"leases"`
}

// Counts sums a Status up.
type Counts struct {
	Nodes  int `json:"nodes"`
	Alive  int `json:"alive"`
	Leases int `json:"leases"`
}

// Status reads the nodes and their leases at now. A lease of a node that never beat
// (impossible unless its row was deleted) is listed under a node of that id, not alive.
func (s *Store) Status(ctx context.Context, l Liveness, now time.Time) (*Status, error) {
	nodes, err := s.Nodes(ctx, l, now)
	if err != nil {
		return nil, err
	}
	leases, err := s.Leases(ctx, now)
	if err != nil {
		return nil, err
	}
	st := &Status{At: now.UTC(), Nodes: []NodeStatus{}}
	at := map[string]int{}
	for _, n := range nodes {
		at[n.ID] = len(st.Nodes)
		st.Nodes = append(st.Nodes, NodeStatus{Node: n, Leases: []string{}})
		if n.Alive {
			st.Counts.Alive++
		}
	}
	for _, le := range leases {
		i, ok := at[le.NodeID]
		if !ok {
			i = len(st.Nodes)
			at[le.NodeID] = i
			st.Nodes = append(st.Nodes, NodeStatus{Node: Node{ID: le.NodeID}, Leases: []string{}})
		}
		st.Nodes[i].Leases = append(st.Nodes[i].Leases, le.StreamKey)
	}
	st.Counts.Nodes, st.Counts.Leases = len(st.Nodes), len(leases)
	return st, nil
}
