// Package peer is what the livrec nodes of a cluster ask each other directly, over HTTP
// between their node.httpAddr addresses: the hand-over of a paused stream (a publish
// that comes back on another node within its stitch window continues the task there).
// Requests carry the cluster's shared secret (node.secret) as a bearer token. It also
// answers the recorder's questions about the other nodes from the catalog (package
// cluster): which are alive, which holds a stream.
package peer

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/cluster"
)

// HandOverPath is the hand-over request's path on a node's HTTP server.
const HandOverPath = "/cluster/v1/handover"

// Peers implements record.Peers for node Node.
type Peers struct {
	Store    *cluster.Store
	Node     string
	Liveness cluster.Liveness
	// Secret authenticates the requests between nodes; "" disables the hand-over.
	Secret string
	Client *http.Client // nil: a client with a 2-minute timeout
}

// Self is this node's id.
func (p *Peers) Self() string { return p.Node }

// Alive reports whether node beats.
func (p *Peers) Alive(ctx context.Context, node string) (bool, error) {
	ns, err := p.Store.Nodes(ctx, p.Liveness, time.Now())
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
func (p *Peers) Holds(ctx context.Context, key, node string) (bool, error) {
	owner, ok, err := p.Store.Owner(ctx, key, time.Now())
	return ok && owner == node, err
}

type request struct {
	StreamKey string `json:"streamKey"`
}

type answer struct {
	TaskID string `json:"taskId,omitempty"`
	Error  string `json:"error,omitempty"`
}

// HandOver asks the live node holding key's lease to hand over its paused task.
func (p *Peers) HandOver(ctx context.Context, key string) (string, error) {
	if p.Secret == "" {
		return "", errors.New("no node.secret configured: nodes do not hand streams over")
	}
	owner, ok, err := p.Store.Owner(ctx, key, time.Now())
	if err != nil || !ok {
		return "", fmt.Errorf("the stream's owner: %v", err)
	}
	ns, err := p.Store.Nodes(ctx, p.Liveness, time.Now())
	if err != nil {
		return "", err
	}
	addr := ""
	for _, n := range ns {
		if n.ID == owner && n.Alive {
			addr = n.HTTPAddr
		}
	}
	if addr == "" {
		return "", fmt.Errorf("node %s is not alive: its lease expires by itself", owner)
	}
	body, _ := json.Marshal(request{StreamKey: key})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+HandOverPath, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+p.Secret)
	req.Header.Set("Content-Type", "application/json")
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("node %s: %w", owner, err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&a); err != nil {
		return "", fmt.Errorf("node %s: HTTP %d: %w", owner, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || a.TaskID == "" {
		return "", fmt.Errorf("node %s refused: %s", owner, a.Error)
	}
	return a.TaskID, nil
}

// HandOverer is the node's recorder (record.Manager).
type HandOverer interface {
	HandOver(ctx context.Context, key string) (taskID string, err error)
}

// Handler answers hand-over requests authenticated with secret (not empty).
func Handler(h HandOverer, secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reply := func(code int, a answer) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(a)
		}
		if r.Method != http.MethodPost {
			reply(http.StatusMethodNotAllowed, answer{Error: "POST only"})
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(secret)) != 1 {
			reply(http.StatusUnauthorized, answer{Error: "bad or missing node secret"})
			return
		}
		var q request
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&q); err != nil || q.StreamKey == "" {
			reply(http.StatusBadRequest, answer{Error: "body: want {\"streamKey\": \"domain/app/stream\"}"})
			return
		}
		id, err := h.HandOver(r.Context(), q.StreamKey)
		if err != nil {
			reply(http.StatusConflict, answer{Error: err.Error()})
			return
		}
		reply(http.StatusOK, answer{TaskID: id})
	})
}
