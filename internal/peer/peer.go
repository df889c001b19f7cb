// Package peer is what one livrec node asks another node of its cluster over HTTP: a
// manual recording command for a stream the other node owns (the stream's lease names
// the owner, its heartbeat row the owner's HTTP address), the other node's live
// pushes, and the hand-over of a paused stream (handover.go). It is the one place of node-to-node HTTP: the client signs, the Handler checks.
//
// Requests are signed with the cluster secret every node shares (config node.secret):
// header X-Livrec-Peer is "<node id> <Unix seconds> <hex HMAC-SHA256(secret, node, time,
// method, path, body)>". The secret never travels, a request is bound to its body, and
// one older than MaxSkew is refused. An API token is not reused for this: tokens are the
// clients' (rotated, revoked, possibly none at all when the API trusts loopback only),
// and a peer request must not be something any API client can make.
//
// No loop is possible: the Handler runs a command on its own recorder only and never
// forwards it again, whoever owns the stream by then.
package peer

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/record"
)

// Header carries a peer request's signature.
const Header = "X-Livrec-Peer"

// MaxSkew bounds the age of a signed request (and the clock difference of two nodes).
const MaxSkew = 5 * time.Minute

// MinSecretLen is the shortest cluster secret accepted.
const MinSecretLen = 16

// Paths the Handler serves.
const (
	CommandPath  = "/peer/v1/command"
	StreamsPath  = "/peer/v1/streams"
	HandOverPath = "/peer/v1/handover"
)

// maxRequest bounds a peer request's body (read before its signature is checked),
// maxAnswer an answer's (a node's list of pushes).
const (
	maxRequest = 64 << 10
	maxAnswer  = 16 << 20
)

func sign(secret, node string, ts int64, method, path string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%s\n%d\n%s\n%s\n", node, ts, method, path)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks r's signature against secret and returns the calling node's id.
func verify(secret string, r *http.Request, body []byte, now time.Time) (string, error) {
	f := strings.Fields(r.Header.Get(Header))
	if len(f) != 3 {
		return "", fmt.Errorf("header %s missing or malformed: want \"<node> <unix time> <signature>\"", Header)
	}
	ts, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return "", fmt.Errorf("header %s: time %q is not Unix seconds", Header, f[1])
	}
	if d := now.Sub(time.Unix(ts, 0)); d > MaxSkew || d < -MaxSkew {
		return "", fmt.Errorf("header %s: signed at %s, more than %v from this node's clock", Header, time.Unix(ts, 0).UTC().Format(time.RFC3339), MaxSkew)
	}
	want := sign(secret, f[0], ts, r.Method, r.URL.Path, body)
	if subtle.ConstantTimeCompare([]byte(want), []byte(f[2])) != 1 {
		return "", fmt.Errorf("header %s: bad signature (is node.secret the same on every node?)", Header)
	}
	return f[0], nil
}

// Local is this node's recorder as peers use it (*record.Manager).
type Local interface {
	Command(ctx context.Context, domain, app, stream, cmd string) error
	Streams() []record.StreamInfo
	// HandOver gives the paused task of a stream key to the asking node (see Cluster).
	HandOver(ctx context.Context, key string) (taskID string, err error)
}

// commandRequest is the body of a forwarded command.
type commandRequest struct {
	Domain  string `json:"domain"`
	App     string `json:"app"`
	Stream  string `json:"stream"`
	Command string `json:"command"`
}

// commandAnswer is the owner's outcome: Code is a record.CommandError's code ("" for
// success, "Internal" for another failure).
type commandAnswer struct {
	Node    string `json:"node"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

const codeInternal = "Internal"

// Handler serves the peer routes for the other nodes of the cluster.
type Handler struct {
	Secret string
	Node   string // this node's id, named in answers
	Local  Local
	Logger *slog.Logger // nil: slog.Default()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if h.Secret == "" {
		http.Error(w, "this node has no cluster secret (node.secret): peer requests are refused", http.StatusForbidden)
		return
	}
	from, err := verify(h.Secret, r, body, time.Now())
	if err != nil {
		h.logger().Warn("peer request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == CommandPath:
		var req commandRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "command request: "+err.Error(), http.StatusBadRequest)
			return
		}
		// Run here, never forwarded: whoever owns the stream now, this is the last hop.
		ans := commandAnswer{Node: h.Node}
		if err := h.Local.Command(r.Context(), req.Domain, req.App, req.Stream, req.Command); err != nil {
			ans.Code, ans.Message = codeInternal, err.Error()
			var ce *record.CommandError
			if errors.As(err, &ce) {
				ans.Code, ans.Message = ce.Code, ce.Message
			}
		}
		h.logger().Info("manual command from another node", "node", from, "stream", req.Domain+"/"+req.App+"/"+req.Stream,
			"command", req.Command, "refused", ans.Code)
		writeJSON(w, ans)
	case r.Method == http.MethodGet && r.URL.Path == StreamsPath:
		writeJSON(w, h.Local.Streams())
	case r.Method == http.MethodPost && r.URL.Path == HandOverPath:
		h.handOver(w, r, from, body)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Client makes signed requests to other nodes as node Node.
type Client struct {
	Secret string
	Node   string
	HTTP   *http.Client // nil: a client with a 10 s timeout
}

var defaultHTTP = &http.Client{Timeout: 10 * time.Second}

// do sends a signed request to the node at addr (host:port) and returns the answer's
// body; any status but 200 is an error.
func (c *Client) do(ctx context.Context, addr, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	ts := time.Now().Unix()
	req.Header.Set(Header, fmt.Sprintf("%s %d %s", c.Node, ts, sign(c.Secret, c.Node, ts, method, path, body)))
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s: %s", addr, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// Command runs a manual command on the node at addr. A refusal by the owner is its
// *record.CommandError; a failure to reach it or a failure there is another error.
func (c *Client) Command(ctx context.Context, addr, domain, app, stream, cmd string) error {
	body, _ := json.Marshal(commandRequest{Domain: domain, App: app, Stream: stream, Command: cmd})
	b, err := c.do(ctx, addr, http.MethodPost, CommandPath, body)
	if err != nil {
		return err
	}
	var ans commandAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("%s: malformed answer: %w", addr, err)
	}
	switch ans.Code {
	case "":
		return nil
	case codeInternal:
		return fmt.Errorf("node %s: %s", ans.Node, ans.Message)
	default:
		return &record.CommandError{Code: ans.Code, Message: ans.Message}
	}
}

// Streams lists the live pushes of the node at addr.
func (c *Client) Streams(ctx context.Context, addr string) ([]record.StreamInfo, error) {
	b, err := c.do(ctx, addr, http.MethodGet, StreamsPath, nil)
	if err != nil {
		return nil, err
	}
	var out []record.StreamInfo
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: malformed answer: %w", addr, err)
	}
	return out, nil
}
