package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
)

// UnreachableError is a command for a stream owned by a node that is dead or cannot be
// reached: the APIs answer it 503, naming the node.
type UnreachableError struct {
	Node, Addr string
	Err        error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the stream is owned by node %s (%s), which cannot be reached: %v", e.Node, e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Router runs the APIs' manual commands where the stream is: on this node's recorder
// when this node owns the stream's lease or nobody does, else forwarded to the owner.
type Router struct {
	Node     string // this node's id
	Local    Local
	Store    *cluster.Store
	Liveness cluster.Liveness
	Client   *Client
}

// Command runs cmd on the stream's owner and returns the owner's outcome (a
// *record.CommandError for a refusal, *UnreachableError when the owner is out of reach).
func (r *Router) Command(ctx context.Context, domain, app, stream, cmd string) error {
	d, err := rules.NormalizeDomain(domain)
	if err != nil { // the recorder names the field
		return r.Local.Command(ctx, domain, app, stream, cmd)
	}
	key := record.StreamKey{Domain: d, App: app, Stream: stream}.String()
	now := time.Now()
	owner, err := r.Store.Owner(ctx, key, now)
	if err != nil {
		return fmt.Errorf("reading the owner of stream %s: %w", key, err)
	}
	if owner == "" || owner == r.Node {
		return r.Local.Command(ctx, domain, app, stream, cmd)
	}
	n, err := r.node(ctx, owner, now)
	if err != nil {
		return err
	}
	if err := r.Client.Command(ctx, n.HTTPAddr, d, app, stream, cmd); err != nil {
		var ce *record.CommandError
		if errors.As(err, &ce) {
			return err
		}
		return &UnreachableError{Node: n.ID, Addr: n.HTTPAddr, Err: err}
	}
	return nil
}

// node returns the live node id.
func (r *Router) node(ctx context.Context, id string, now time.Time) (*cluster.Node, error) {
	return liveNode(ctx, r.Store, r.Liveness, id, now)
}

// liveNode returns node id of st if it is alive at now, else an *UnreachableError.
func liveNode(ctx context.Context, st *cluster.Store, l cluster.Liveness, id string, now time.Time) (*cluster.Node, error) {
	nodes, err := st.Nodes(ctx, l, now)
	if err != nil {
		return nil, fmt.Errorf("reading the nodes: %w", err)
	}
	for _, n := range nodes {
		if n.ID != id {
			continue
		}
		if !n.Alive {
			return nil, &UnreachableError{Node: n.ID, Addr: n.HTTPAddr,
				Err: fmt.Errorf("dead: no heartbeat since %s", n.BeatAt.Format(time.RFC3339))}
		}
		return &n, nil
	}
	return nil, &UnreachableError{Node: id, Addr: "no address", Err: errors.New("the node has no heartbeat row")}
}

// NodeStream is a live push with the node it is on.
type NodeStream struct {
	Node string `json:"node"`
	record.StreamInfo
}

// NodeError is a node whose pushes could not be listed.
type NodeError struct {
	Node  string `json:"node"`
	Error string `json:"error"`
}

// Streams lists the live pushes of every live node (this one's from its recorder, the
// others' asked at once), sorted as each node sorts them, nodes by id; the nodes that did
// not answer are in the second result.
func (r *Router) Streams(ctx context.Context) ([]NodeStream, []NodeError) {
	nodes, err := r.Store.Nodes(ctx, r.Liveness, time.Now())
	if err != nil {
		nodes = nil
	}
	out, bad := []NodeStream{}, []NodeError{}
	if err != nil {
		bad = append(bad, NodeError{Node: r.Node, Error: "reading the nodes: " + err.Error()})
	}
	results := make([][]record.StreamInfo, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	self := false
	for i, n := range nodes {
		switch {
		case n.ID == r.Node:
			self = true
			results[i] = r.Local.Streams()
		case n.Alive:
			wg.Go(func() { results[i], errs[i] = r.Client.Streams(ctx, n.HTTPAddr) })
		}
	}
	wg.Wait()
	if !self { // before its first heartbeat
		for _, s := range r.Local.Streams() {
			out = append(out, NodeStream{Node: r.Node, StreamInfo: s})
		}
	}
	for i, n := range nodes {
		if errs[i] != nil {
			bad = append(bad, NodeError{Node: n.ID, Error: errs[i].Error()})
		}
		for _, s := range results[i] {
			out = append(out, NodeStream{Node: n.ID, StreamInfo: s})
		}
	}
	return out, bad
}

// Status is the cluster's status from the catalog.
func (r *Router) Status(ctx context.Context) (*cluster.Status, error) {
	return r.Store.Status(ctx, r.Liveness, time.Now())
}

// ForwardedHeader marks a request one node passed to another (its value is the sender's
// id): the receiver answers it itself, never passing it on again.
const ForwardedHeader = "X-Livrec-Forwarded-By"

// ServeOwner passes an unauthenticated GET (a live playlist, which only the node
// recording the stream has) to the live node that owns stream key, and answers with that
// node's answer. It returns false, having written nothing, when this node owns the key,
// nobody does, the owner is not alive or the request was already forwarded.
func (r *Router) ServeOwner(w http.ResponseWriter, req *http.Request, key string) bool {
	if req.Header.Get(ForwardedHeader) != "" {
		return false
	}
	now := time.Now()
	owner, err := r.Store.Owner(req.Context(), key, now)
	if err != nil || owner == "" || owner == r.Node {
		return false
	}
	n, err := r.node(req.Context(), owner, now)
	if err != nil {
		return false
	}
	target := &url.URL{Scheme: "http", Host: n.HTTPAddr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(ForwardedHeader, r.Node)
		},
		// The headers this node already set (CORS, added before the handler) stay this
		// node's: the owner's copies would be added to them, twice the same header.
		ModifyResponse: func(res *http.Response) error {
			for k := range w.Header() {
				res.Header.Del(k)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, (&UnreachableError{Node: n.ID, Addr: n.HTTPAddr, Err: err}).Error(), http.StatusServiceUnavailable)
		},
	}
	proxy.ServeHTTP(w, req)
	return true
}
