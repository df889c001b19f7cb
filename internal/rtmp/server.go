package rtmp

import (
	"errors"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/flv"
)

// Default values of the Server's tunables.
const (
	DefaultReadTimeout   = 30 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultChunkSize     = 4096
	DefaultWindowAckSize = 2500000
	// DefaultPublishDeadline bounds the handshake and the commands up to an accepted
	// publish; real encoders need milliseconds.
	DefaultPublishDeadline = 10 * time.Second
	// DefaultMaxConns and DefaultMaxConnsPerAddr cap the open connections, in total and
	// per client IP address.
	DefaultMaxConns        = 4096
	DefaultMaxConnsPerAddr = 64
)

// Reasons passed to Server.OnRefused.
const (
	RefusedMaxConns        = "max_conns"
	RefusedMaxConnsPerAddr = "max_conns_per_addr"
	RefusedPublishDeadline = "publish_deadline"
)

// refusedLogInterval rate-limits the log of refused connections: a flood of them must
// not flood the log.
const refusedLogInterval = 10 * time.Second

var (
	// ErrBadName is wrapped by a Handler's error to refuse a publish with
	// NetStream.Publish.BadName instead of NetStream.Publish.Denied.
	ErrBadName = errors.New("rtmp: bad stream name")

	// ErrServerClosed is returned by Serve after Close, and passed to Session.Close for
	// the publishes that Close interrupted.
	ErrServerClosed = errors.New("rtmp: server closed")
)

// PublishRequest describes a client's publish.
type PublishRequest struct {
	// App is the connect command's "app" (tcUrl path if absent) without query and
	// surrounding slashes; Stream is the publish name without its query.
	App, Stream string
	// Domain is the `vhost` query argument if present (publish-name args first, then
	// tcUrl args), else the tcUrl host without port.
	Domain string
	// TcURL is the connect command's tcUrl as sent.
	TcURL string
	// Args holds the query arguments of the publish name followed by those of the tcUrl
	// (so Args.Get prefers the publish name's value).
	Args url.Values
	// PublishType is the publish command's type argument ("live", "record", "append"),
	// empty if absent. Informational only.
	PublishType string
	// RemoteAddr is the client's address.
	RemoteAddr net.Addr

	releaseRead func() // the connection's lendReader.park; nil: none
}

// ReleaseReadBuffer is for a Session about to block in Tag (backpressure): the
// connection gives back the read buffer it borrowed, keeping the bytes it has not parsed
// yet in a copy of their size, so that publishes held back together do not hold a read
// buffer each. Call it only from Tag. A nil request does nothing.
func (r *PublishRequest) ReleaseReadBuffer() {
	if r != nil && r.releaseRead != nil {
		r.releaseRead()
	}
}

// Handler decides on publishes.
type Handler interface {
	// Publish is called when a client sends `publish`. A non-nil error refuses the
	// publish: the client receives an onStatus error (NetStream.Publish.BadName if the
	// error wraps ErrBadName, else NetStream.Publish.Denied) whose description is the
	// error text, and the connection is closed.
	Publish(req *PublishRequest) (Session, error)
}

// Session receives one accepted publish.
type Session interface {
	// Tag receives every audio (8), video (9) and script-data (18) message in arrival
	// order. Returning an error ends the connection (and Close is then called with that
	// error).
	//
	// t.Body belongs to the server and is valid only until Tag returns: the server
	// reuses its memory for later messages of the connection. Tag must not modify it,
	// and a session that keeps the body or any slice of it (a buffer, a queue, another
	// goroutine) must copy it before returning, as an io.Writer must not retain p. The
	// tags of one aggregate message are slices of that message's body, and a script tag
	// is the message body without its "@setDataFrame".
	Tag(t flv.Tag) error
	// Close is called exactly once when the publish ends: deleteStream / FCUnpublish /
	// closeStream, disconnect, timeout or protocol error. err is nil for a clean
	// unpublish, ErrServerClosed if Server.Close ended it.
	Close(err error)
}

// Server is an RTMP ingest server. Set the fields before calling Serve; the zero values
// of the optional ones select the defaults.
type Server struct {
	Handler Handler      // required
	Logger  *slog.Logger // nil: slog.Default()

	// ReadTimeout closes a connection that sent no byte for this long (default 30s).
	ReadTimeout time.Duration
	// WriteTimeout closes a connection that does not accept our bytes for this long
	// (default 10s).
	WriteTimeout time.Duration
	// ChunkSize is the chunk size announced for (and used by) our outgoing messages
	// (default 4096).
	ChunkSize uint32
	// WindowAckSize is announced to clients and also used for our own
	// acknowledgements until the client announces its window (default 2,500,000).
	WindowAckSize uint32
	// PublishDeadline closes a connection that has no accepted publish this long after it
	// was accepted (default 10s): it bounds the handshake and the commands before
	// publish, so that a client trickling bytes cannot hold a connection.
	PublishDeadline time.Duration
	// MaxConns caps the open connections (default 4096) and MaxConnsPerAddr those from
	// one client IP address (default 64); a connection over a cap is closed at once,
	// before the handshake.
	MaxConns, MaxConnsPerAddr int
	// OnRefused, if set, is called with a Refused* reason for every connection closed by
	// a cap or by PublishDeadline (for a metric). It must not block.
	OnRefused func(reason string)

	mu        sync.Mutex
	closed    bool
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	perAddr   map[string]int // open connections by client IP address
	batched   map[*batch]struct{}
	sweeping  bool // sweepBatches runs
	wg        sync.WaitGroup

	refusedMu      sync.Mutex
	refusedLogged  time.Time      // when refusals were last logged
	refusedPending map[string]int // refusals by reason since then
}

// Serve accepts connections on l until Close is called, then returns ErrServerClosed.
// It returns another error if Accept fails permanently. Serve closes l when it returns.
// Serve may be called on several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil {
		l.Close()
		return errors.New("rtmp: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[*net.Listener]struct{})
	}
	lp := &l
	s.listeners[lp] = struct{}{}
	s.mu.Unlock()

	defer func() {
		s.mu.Lock()
		delete(s.listeners, lp)
		s.mu.Unlock()
		l.Close()
	}()

	s.logger().Info("rtmp server listening", "addr", l.Addr().String())

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Transient failures such as EMFILE: back off like net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger().Warn("rtmp accept failed; retrying", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c, err := s.track(nc)
		if errors.Is(err, ErrServerClosed) {
			nc.Close()
			return err
		}
		if err != nil {
			s.refused(err.Error(), nc)
			nc.Close()
			continue
		}
		go func() {
			defer s.untrack(c)
			c.serve()
		}()
	}
}

// Close stops all Serve calls, closes every connection and waits until their goroutines
// have ended; every open Session has received Close(ErrServerClosed) by then. It returns
// the first error met while closing a listener.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	for lp := range s.listeners {
		if e := (*lp).Close(); e != nil && err == nil && !errors.Is(e, net.ErrClosed) {
			err = e
		}
	}
	for c := range s.conns {
		c.abort()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// serveConn serves one already accepted connection synchronously (used by tests and
// fuzzing with in-memory connections). It returns false if the server is closed.
func (s *Server) serveConn(nc net.Conn) bool {
	c, err := s.track(nc)
	if err != nil {
		nc.Close()
		return false
	}
	defer s.untrack(c)
	c.serve()
	return true
}

// track registers a new connection unless the server is closed (ErrServerClosed) or a
// connection cap is reached (an error whose text is the Refused* reason).
func (s *Server) track(nc net.Conn) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
		s.perAddr = make(map[string]int)
	}
	addr := clientAddr(nc)
	if len(s.conns) >= s.maxConns() {
		return nil, errors.New(RefusedMaxConns)
	}
	if s.perAddr[addr] >= s.maxConnsPerAddr() {
		return nil, errors.New(RefusedMaxConnsPerAddr)
	}
	c := newConn(s, nc)
	c.addr = addr
	s.conns[c] = struct{}{}
	s.perAddr[addr]++
	s.wg.Add(1)
	return c, nil
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.dc.batch != nil {
		delete(s.batched, c.dc.batch)
	}
	if s.perAddr[c.addr]--; s.perAddr[c.addr] <= 0 {
		delete(s.perAddr, c.addr)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// clientAddr is the IP address of the peer without port (the whole address if it has
// none, as an in-memory connection).
func clientAddr(nc net.Conn) string {
	a := remoteString(nc)
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

// refused counts a refused connection and logs the refusals at most once per
// refusedLogInterval, with their count by reason since the last such log.
func (s *Server) refused(reason string, nc net.Conn) {
	if s.OnRefused != nil {
		s.OnRefused(reason)
	}
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	if s.refusedPending == nil {
		s.refusedPending = make(map[string]int)
	}
	s.refusedPending[reason]++
	now := time.Now()
	if now.Sub(s.refusedLogged) < refusedLogInterval {
		return
	}
	attrs := []any{"last_remote", remoteString(nc), "limits", map[string]any{
		"max_conns": s.maxConns(), "max_conns_per_addr": s.maxConnsPerAddr(), "publish_deadline": s.publishDeadline().String()}}
	for r, n := range s.refusedPending {
		attrs = append(attrs, r, n)
	}
	s.logger().Warn("rtmp connections refused", attrs...)
	s.refusedLogged = now
	clear(s.refusedPending)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// orDefault is v, or def when v is zero (or negative): the Server's unset fields.
func orDefault[T int | uint32 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (s *Server) readTimeout() time.Duration  { return orDefault(s.ReadTimeout, DefaultReadTimeout) }
func (s *Server) writeTimeout() time.Duration { return orDefault(s.WriteTimeout, DefaultWriteTimeout) }
func (s *Server) publishDeadline() time.Duration {
	return orDefault(s.PublishDeadline, DefaultPublishDeadline)
}
func (s *Server) maxConns() int        { return orDefault(s.MaxConns, DefaultMaxConns) }
func (s *Server) maxConnsPerAddr() int { return orDefault(s.MaxConnsPerAddr, DefaultMaxConnsPerAddr) }
func (s *Server) windowAckSize() uint32 {
	return orDefault(s.WindowAckSize, DefaultWindowAckSize)
}

func (s *Server) chunkSize() uint32 {
	if s.ChunkSize >= 128 && s.ChunkSize <= 0xFFFFFF {
		return s.ChunkSize
	}
	return DefaultChunkSize
}
