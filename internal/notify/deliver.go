package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// idleWait is how long the dispatcher sleeps when nothing is scheduled; Notify and the
// workers wake it earlier.
const idleWait = time.Minute

// sharedPoll is how often a node reads a shared queue (Options.Shared) when nothing it
// knows of is due sooner.
const sharedPoll = time.Second

// dbTimeout bounds the database writes of a try.
const dbTimeout = 10 * time.Second

// drainResponse is how much of a receiver's answer is read (and discarded) so that the
// connection can be kept alive. The body is not kept: a callback URL pointing at an
// internal service must not let the API client read that service's answers; the attempt
// stores the status code and its standard reason only.
const drainResponse = 64 << 10

// dispatch hands due callbacks to the workers, never more than there are free workers,
// and sleeps until the next one is due or the queue changes. The database is the queue:
// the dispatcher only remembers which callbacks are being tried.
func (n *Notifier) dispatch(ctx context.Context, jobs chan<- *Callback) {
	defer close(jobs)
	timer := time.NewTimer(idleWait)
	defer timer.Stop()
	for {
		timer.Reset(n.fill(ctx, jobs))
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-timer.C:
		}
	}
}

// fill dispatches due callbacks and returns how long to sleep.
func (n *Notifier) fill(ctx context.Context, jobs chan<- *Callback) time.Duration {
	// A tried callback leaves inflight only here, before the query: its try's record
	// committed before the worker reported it done, so this query sees the new state. A
	// worker removing it itself could do so while a query begun before the commit is
	// still being read, and the callback would be dispatched (and delivered) twice.
	n.mu.Lock()
	for _, id := range n.tried {
		delete(n.inflight, id)
	}
	n.tried = n.tried[:0]
	busy := len(n.inflight)
	n.mu.Unlock()
	free := n.opt.Workers - busy
	if free == 0 {
		return idleWait // a worker pokes when it is done
	}
	now := n.now()
	var rows *sql.Rows
	var err error
	if n.opt.Shared {
		// The claim is the due time moved to the claim's expiry: the callbacks this node
		// tries are no longer due for the others (nor for this one) until then; the try's
		// record sets the real next time. SKIP LOCKED: two nodes claiming at once take
		// different callbacks.
		rows, err = n.db.QueryContext(ctx, `UPDATE callbacks SET next_try_at=$1 WHERE id IN (
			SELECT id FROM callbacks WHERE status=$2 AND next_try_at<=$3 ORDER BY next_try_at, created_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
			RETURNING `+callbackCols, ms(now.Add(n.opt.ClaimTimeout)), StatusPending, ms(now), free)
	} else {
		rows, err = n.db.QueryContext(ctx, `SELECT `+callbackCols+` FROM callbacks WHERE status=$1 AND next_try_at<=$2
		ORDER BY next_try_at, created_at, id LIMIT $3`, StatusPending, ms(now), free+busy)
	}
	if err != nil {
		if ctx.Err() == nil {
			n.log.Error("callback queue: read failed", "err", err)
		}
		return time.Second
	}
	cbs, err := scanCallbacks(rows)
	if err != nil {
		n.log.Error("callback queue: read failed", "err", err)
		return time.Second
	}
	for _, cb := range cbs {
		if free == 0 {
			break
		}
		n.mu.Lock()
		skip := n.inflight[cb.ID]
		if !skip {
			n.inflight[cb.ID] = true
		}
		n.mu.Unlock()
		if skip {
			continue
		}
		jobs <- cb // never blocks: cap(jobs) = workers and a slot is free
		free--
	}
	// Callbacks due now but not dispatched wait for a worker, which pokes when done.
	var next *int64
	if err := n.db.QueryRowContext(ctx, `SELECT MIN(next_try_at) FROM callbacks WHERE status=$1 AND next_try_at>$2`,
		StatusPending, ms(now)).Scan(&next); err != nil {
		if ctx.Err() == nil {
			n.log.Error("callback queue: read failed", "err", err)
		}
		return time.Second
	}
	wait := idleWait
	if n.opt.Shared {
		wait = sharedPoll
	}
	if next == nil {
		return wait
	}
	return min(max(time.Until(fromMS(*next)), time.Millisecond), wait)
}

// worker tries the callbacks the dispatcher hands it.
func (n *Notifier) worker(ctx context.Context, jobs <-chan *Callback) {
	for cb := range jobs {
		n.try(ctx, cb)
		n.mu.Lock()
		n.tried = append(n.tried, cb.ID) // leaves inflight at the next fill
		n.mu.Unlock()
		n.poke()
	}
}

// try makes one delivery attempt and records it.
func (n *Notifier) try(ctx context.Context, cb *Callback) {
	if ctx.Err() != nil {
		return
	}
	start := n.now()
	hdr := map[string]string{"Content-Type": "application/json"}
	switch ts := start.Unix(); {
	case cb.authKey == "":
	case cb.signing == SigningVOD:
		hdr[HeaderVODTimestamp] = strconv.FormatInt(ts, 10)
		hdr[HeaderVODSignature] = SignVOD(cb.URL, ts, cb.authKey)
	default:
		if sig, err := Sign(cb.URL, ts, cb.authKey); err == nil {
			hdr[HeaderTimestamp] = strconv.FormatInt(ts, 10)
			hdr[HeaderSignature] = sig
		}
	}
	tctx, cancel := context.WithTimeout(ctx, n.opt.Timeout)
	defer cancel()
	code, response := 0, ""
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, cb.URL, strings.NewReader(cb.Body))
	if err == nil {
		for k, v := range hdr {
			req.Header[k] = []string{v} // exact spelling on the wire: ALI-LIVE-SIGNATURE
		}
		req.Header.Set("User-Agent", "livrec")
		var resp *http.Response
		if resp, err = n.http.Do(req); err == nil {
			code = resp.StatusCode
			_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, drainResponse))
			resp.Body.Close()
			response = strings.TrimSpace(fmt.Sprintf("%d %s", code, http.StatusText(code)))
			if rerr != nil && code/100 == 2 {
				err = fmt.Errorf("reading the answer: %w", rerr)
			}
		}
	}
	dur := time.Since(start)
	if err != nil && ctx.Err() != nil {
		return // cut short by Close: not a try; the callback stays pending for the next run
	}
	n.m.tryDuration.Observe(dur.Seconds())
	errText := ""
	switch {
	case err != nil && errors.Is(tctx.Err(), context.DeadlineExceeded):
		errText = fmt.Sprintf("no answer within %v", n.opt.Timeout)
	case err != nil:
		errText = err.Error()
	case code/100 != 2:
		errText = fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	}
	tries := cb.Tries + 1
	status, next, result := StatusPending, int64(0), "retry"
	switch {
	case errText == "":
		status, result = StatusSuccess, "success"
	case tries >= n.opt.MaxTries:
		status, result = StatusFailed, "failed"
	default:
		next = ms(n.now().Add(n.opt.Backoff(tries)))
	}
	if err := n.record(cb.ID, tries, start, code, errText, response, dur, status, next, hdr); err != nil {
		n.log.Error("callback: recording the try failed", "id", cb.ID, "err", err)
		select { // the callback is still due: do not hammer the receiver while the database fails
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return
	}
	cb.Tries = tries
	n.m.deliveries.WithLabelValues(result).Inc()
	attrs := []any{"id", cb.ID, "event", cb.Event, "domain", cb.Domain, "app", cb.App, "stream", cb.Stream, "url", cb.URL, "try", tries}
	switch status {
	case StatusSuccess:
		n.setPending(n.pending.Add(-1))
		n.log.Debug("callback delivered", attrs...)
	case StatusFailed:
		n.setPending(n.pending.Add(-1))
		n.log.Warn("callback failed, giving up", append(attrs, "err", errText)...)
	default:
		n.log.Info("callback try failed, will retry", append(attrs, "err", errText)...)
	}
}

// record writes an attempt and the callback's new state in one transaction.
func (n *Notifier) record(id string, try int, at time.Time, code int, errText, response string, dur time.Duration,
	status string, next int64, hdr map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	tx, err := n.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO callback_attempts(callback_id,try,at,response_code,error,response,duration_us) VALUES($1,$2,$3,$4,$5,$6,$7)`,
		id, try, ms(at), code, errText, response, dur.Microseconds()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE callbacks SET status=$1, tries=$2, next_try_at=$3, updated_at=$4, last_error=$5, headers=$6 WHERE id=$7`,
		status, try, next, ms(n.now()), errText, headersJSON(hdr), id); err != nil {
		return err
	}
	return tx.Commit()
}

func (n *Notifier) setPending(v int64) { n.m.queue.Set(float64(v)) }

type metrics struct {
	deliveries  *prometheus.CounterVec // by result: success, retry, failed
	queue       prometheus.Gauge
	tryDuration prometheus.Histogram
	onDemand    *prometheus.CounterVec // by result: record, skip, error
	dropped     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_callback_tries_total",
			Help: "Callback tries by result: success, retry (failed, will retry), failed (failed, gave up)."}, []string{"result"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_callback_queue",
			Help: "Callbacks waiting for delivery (pending)."}),
		tryDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "livrec_callback_try_seconds",
			Help: "Duration of callback tries.", Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5}}),
		onDemand: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_ondemand_requests_total",
			Help: "On-demand questions by result: record, skip, error."}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_callback_dropped_total",
			Help: "Callbacks lost because the database refused to store them."}),
	}
	if reg != nil {
		m.deliveries = register(reg, m.deliveries)
		m.queue = register(reg, m.queue)
		m.tryDuration = register(reg, m.tryDuration)
		m.onDemand = register(reg, m.onDemand)
		m.dropped = register(reg, m.dropped)
	}
	return m
}

// register registers c, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
	}
	return c
}
