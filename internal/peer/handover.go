package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/record"
)

// Cluster is what a node's recorder knows of the other nodes (it implements
// record.Peers): which are alive and which holds a stream, from the catalog, and the
// hand-over of a paused stream, asked of its owner over HTTP.
type Cluster struct {
	Store    *cluster.Store
	Node     string // this node's id
	Liveness cluster.Liveness
	Client   *Client // its HTTP client should allow record.HandOverTimeout
}

var _ record.Peers = (*Cluster)(nil)

// Self is this node's id.
func (c *Cluster) Self() string { return c.Node }

// Alive reports whether node beats.
func (c *Cluster) Alive(ctx context.Context, node string) (bool, error) {
	ns, err := c.Store.Nodes(ctx, c.Liveness, time.Now())
	if err != nil {
		return false, err
	}
	for _, n := range ns {
		if n.ID == node {
			return n.Alive, nil
		}
	}
	return false, nil
}

// Holds reports whether node holds an unexpired lease of key.
func (c *Cluster) Holds(ctx context.Context, key, node string) (bool, error) {
	owner, err := c.Store.Owner(ctx, key, time.Now())
	return owner == node && owner != "", err
}

type handOverRequest struct {
	StreamKey string `json:"streamKey"`
}

type handOverAnswer struct {
	Node   string `json:"node"`
	TaskID string `json:"taskId,omitempty"`
	Error  string `json:"error,omitempty"`
}

// HandOver asks the live node holding key's lease to hand over its paused task, and
// returns the task's id once that node released the lease.
func (c *Cluster) HandOver(ctx context.Context, key string) (string, error) {
	if c.Client == nil || c.Client.Secret == "" {
		return "", fmt.Errorf("no node.secret: nodes do not hand streams over")
	}
	now := time.Now()
	owner, err := c.Store.Owner(ctx, key, now)
	if err != nil || owner == "" {
		return "", fmt.Errorf("the stream's owner: none (%v)", err)
	}
	n, err := liveNode(ctx, c.Store, c.Liveness, owner, now)
	if err != nil {
		return "", err // a dead owner's lease expires by itself
	}
	body, _ := json.Marshal(handOverRequest{StreamKey: key})
	b, err := c.Client.do(ctx, n.HTTPAddr, http.MethodPost, HandOverPath, body)
	if err != nil {
		return "", fmt.Errorf("node %s: %w", owner, err)
	}
	var a handOverAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return "", fmt.Errorf("node %s: malformed answer: %w", owner, err)
	}
	if a.TaskID == "" {
		return "", fmt.Errorf("node %s refused: %s", owner, a.Error)
	}
	return a.TaskID, nil
}

// handOver answers a hand-over request of node from (signature checked).
func (h *Handler) handOver(w http.ResponseWriter, r *http.Request, from string, body []byte) {
	var req handOverRequest
	if err := json.Unmarshal(body, &req); err != nil || req.StreamKey == "" {
		http.Error(w, `hand-over request: want {"streamKey": "domain/app/stream"}`, http.StatusBadRequest)
		return
	}
	ans := handOverAnswer{Node: h.Node}
	id, err := h.Local.HandOver(r.Context(), req.StreamKey)
	if err != nil {
		ans.Error = err.Error()
	} else {
		ans.TaskID = id
	}
	h.logger().Info("stream hand-over asked by another node", "node", from, "stream", req.StreamKey, "task", id, "refused", ans.Error)
	writeJSON(w, ans)
}
