package service

import (
	"io"
	"log/slog"
	"net/http"
	"syscall"
	"time"

	"github.com/livrec/livrec/internal/rtmp"
)

// Timeouts of the HTTP server. Requests are small (JSON bodies are at most 1 MiB), so
// reading one may take httpReadTimeout. Answers may be recordings of several GiB
// (/files/): rather than a total time, httpWriteTimeout bounds the time one write (of at
// most writeChunk) may block — every write pushes the deadline forward, so a slow but
// steady download completes and a client that stops reading is cut off. The kernel
// wakes a blocked writer only when a good part of the socket's send buffer (autotuned up
// to a few MiB) is free, so a write can block for buffer/rate: two minutes keep clients
// down to about 20 KB/s.
const (
	httpReadTimeout  = time.Minute
	httpWriteTimeout = 2 * time.Minute
	httpIdleTimeout  = 2 * time.Minute
	writeChunk       = 256 << 10
)

// minConnCap is the floor of the descriptor-derived RTMP connection cap.
const minConnCap = 16

// writeProgress makes d the time a response may go without progress (see
// httpWriteTimeout) instead of the time from the request to the end of the answer.
func writeProgress(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}, r)
	})
}

type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *progressWriter) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

func (w *progressWriter) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		w.extend()
		k, err := w.ResponseWriter.Write(p[:min(len(p), writeChunk)])
		n += k
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// ReadFrom copies in writeChunk pieces through the ResponseWriter's own ReadFrom, which
// keeps sendfile for files (http.ServeContent copies with io.CopyN).
func (w *progressWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		w.extend()
		n, err := io.Copy(w.ResponseWriter, io.LimitReader(r, writeChunk))
		total += n
		if err != nil || n < writeChunk {
			return total, err
		}
	}
}

func (w *progressWriter) Flush() {
	w.extend()
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// connCap is the RTMP connection cap: the configured one (0: rtmp's default), lowered
// to the file descriptor limit minus reserved so that idle or hostile connections can
// never take the descriptors that recordings, the catalog and the HTTP server need. The
// soft limit is first raised to the hard one (Go does so itself on Linux; elsewhere it
// may not).
func connCap(configured, reserved int, log *slog.Logger) int {
	if configured <= 0 {
		configured = rtmp.DefaultMaxConns
	}
	limit, ok := fdLimit()
	if !ok {
		return configured
	}
	avail := max(int(min(limit, 1<<30))-reserved, minConnCap)
	if avail < configured {
		log.Warn("RTMP connections capped by the file descriptor limit", "nofile", limit, "reservedFds", reserved,
			"rtmpMaxConns", configured, "cap", avail, "hint", "raise the limit (ulimit -n, systemd LimitNOFILE=) to allow more")
		return avail
	}
	return configured
}

// fdLimit raises RLIMIT_NOFILE's soft limit to the hard limit and returns the result.
func fdLimit() (uint64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	if rl.Cur < rl.Max {
		raised := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			rl.Cur = rl.Max
		}
	}
	return rl.Cur, true
}
