package service

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults of the HTTP connection caps (config httpMaxConns, httpMaxConnsPerAddr).
const (
	DefaultHTTPMaxConns        = 1024
	DefaultHTTPMaxConnsPerAddr = 64
)

// Reasons of livrec_http_connections_refused_total.
const (
	httpRefusedMaxConns        = "max_conns"
	httpRefusedMaxConnsPerAddr = "max_conns_per_addr"
)

// connCapListener caps the HTTP connections open at once, in total and per client IP
// address. A connection over a cap is closed at once (the client sees a reset or EOF)
// rather than left in the accept queue: a flood of idle sockets can then neither hold
// every descriptor nor starve /healthz and the players of other addresses.
type connCapListener struct {
	net.Listener
	max, perAddr int
	onRefused    func(reason string)
	log          *slog.Logger

	mu      sync.Mutex
	open    int
	byAddr  map[string]int
	logged  time.Time
	pending map[string]int
}

func newConnCapListener(l net.Listener, max, perAddr int, onRefused func(string), log *slog.Logger) *connCapListener {
	if max <= 0 {
		max = DefaultHTTPMaxConns
	}
	if perAddr <= 0 {
		perAddr = DefaultHTTPMaxConnsPerAddr
	}
	return &connCapListener{Listener: l, max: max, perAddr: perAddr, onRefused: onRefused, log: log,
		byAddr: map[string]int{}, pending: map[string]int{}}
}

func (l *connCapListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := nc.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		if reason := l.take(addr); reason != "" {
			// Counted before the close: a client that sees the close may look at the count.
			l.refused(reason, nc)
			nc.Close()
			continue
		}
		return &cappedConn{Conn: nc, l: l, addr: addr}, nil
	}
}

// take counts a new connection from addr, or returns the cap it would exceed.
func (l *connCapListener) take(addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open >= l.max:
		return httpRefusedMaxConns
	case l.byAddr[addr] >= l.perAddr:
		return httpRefusedMaxConnsPerAddr
	}
	l.open++
	l.byAddr[addr]++
	return ""
}

func (l *connCapListener) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
		delete(l.byAddr, addr)
	}
}

// refused counts a refusal and logs the refusals at most every 10 s, with their counts
// since the last such line (a flood must not flood the log).
func (l *connCapListener) refused(reason string, nc net.Conn) {
	if l.onRefused != nil {
		l.onRefused(reason)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending[reason]++
	if time.Since(l.logged) < 10*time.Second {
		return
	}
	attrs := []any{"last_remote", nc.RemoteAddr().String(), "httpMaxConns", l.max, "httpMaxConnsPerAddr", l.perAddr}
	for r, n := range l.pending {
		attrs = append(attrs, r, n)
	}
	l.log.Warn("http connections refused", attrs...)
	l.logged = time.Now()
	clear(l.pending)
}

// cappedConn gives its place back once, at the first Close.
type cappedConn struct {
	net.Conn
	l    *connCapListener
	addr string
	once sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}

// ReadFrom and CloseWrite reach the TCP connection: net/http sends files with its
// ReadFrom (sendfile) and half-closes with CloseWrite, which the wrapper would hide.
func (c *cappedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *cappedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
