package notify

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livrec/livrec/internal/record"
)

// Defaults of Options.
const (
	DefaultWorkers         = 4
	DefaultTimeout         = 5 * time.Second
	DefaultMaxTries        = 5
	DefaultOnDemandTimeout = 5 * time.Second
	DefaultRetention       = 30 * 24 * time.Hour
)

// pruneEvery is how often callbacks older than Options.Retention are deleted (and once
// at Start): the history stays bounded without a delete on every delivery.
const pruneEvery = time.Hour

// Header names of signed callbacks.
const (
	HeaderTimestamp = "ALI-LIVE-TIMESTAMP"
	HeaderSignature = "ALI-LIVE-SIGNATURE"
)

// DefaultBackoff is the wait after failed try number try (1-based): 1 s, 2 s, 4 s, 8 s,
// then 16 s (not used with the default 5 tries).
func DefaultBackoff(try int) time.Duration {
	if try < 1 {
		try = 1
	}
	if try > 5 {
		try = 5
	}
	return time.Second << (try - 1)
}

// Options tune a Notifier; zero fields take the defaults.
type Options struct {
	Workers  int                         // concurrent deliveries, default 4
	Timeout  time.Duration               // per try, default 5 s
	MaxTries int                         // tries before a callback is failed, default 5
	Backoff  func(try int) time.Duration // wait after failed try n (1-based), default DefaultBackoff
	// OnDemandTimeout bounds AskOnDemand (connection to answer), default 5 s.
	OnDemandTimeout time.Duration
	// Retention is how long delivered and failed callbacks (by creation time) are kept
	// for the history, default 30 days. Pending callbacks are never deleted.
	Retention time.Duration
	// AllowPrivateCallbacks lets callback and on-demand URLs reach loopback, private,
	// link-local (metadata), multicast and other non-public addresses; CallbackAllowList
	// allows only the CIDRs, IP addresses and host names it lists. Without either such
	// URLs are refused when configured and such connections when made (see guard.go).
	AllowPrivateCallbacks bool
	CallbackAllowList     []string
	// Transport carries the HTTP requests, default a clone of http.DefaultTransport
	// without proxy whose connections obey the address policy above. A Transport given
	// here is used as is: the connection-time check is then its business.
	Transport http.RoundTripper
	// Shared says that several nodes deliver from this database (PostgreSQL): a callback
	// is claimed before it is tried (FOR UPDATE SKIP LOCKED), for ClaimTimeout (default
	// Timeout + 30 s): no other node tries it meanwhile, and one claimed by a node that
	// died mid-delivery is due again once the claim expires. The queue and the domains'
	// configurations are also read every sharedPoll, since the other nodes' Notify calls
	// and configuration changes do not reach this node otherwise. Without it
	// (SQLite, one node) the dispatcher's own bookkeeping is enough.
	Shared       bool
	ClaimTimeout time.Duration
	// Registerer, when set, gets the metrics (livrec_callback_*, livrec_ondemand_*).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Notifier keeps the callback configuration and delivers callbacks. Create it with New,
// hand Notify to the recorder, Start it, and Close it at shutdown.
type Notifier struct {
	db     *sql.DB
	opt    Options
	log    *slog.Logger
	now    func() time.Time
	http   *http.Client // callbacks and on-demand questions: no redirects
	policy *addressPolicy

	cfgMu   sync.RWMutex
	configs map[string]Config // domain (lower case) → config

	wake chan struct{} // cap 1: "the queue changed"

	mu       sync.Mutex
	started  bool
	closed   bool
	inflight map[string]bool // callback ids being tried
	tried    []string        // tried since the last fill, still in inflight
	intake   []*Callback     // from Notify, not yet in the database
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	intakeSig  chan struct{} // cap 1: "intake is not empty"
	stopWriter chan struct{}
	writerDone chan struct{}

	pending atomic.Int64 // callbacks with status pending
	m       metrics
}

// maxIntake bounds the callbacks kept in memory, waiting for the database. It is only
// reached when the database refuses writes for a long time; further callbacks are
// dropped (and logged).
const maxIntake = 10000

// New loads the configuration. db is the catalog's database (catalog.(*Catalog).DB()),
// whose migrations made notify's tables (package schema).
func New(db *sql.DB, opt Options) (*Notifier, error) {
	if opt.Workers <= 0 {
		opt.Workers = DefaultWorkers
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.MaxTries <= 0 {
		opt.MaxTries = DefaultMaxTries
	}
	if opt.Backoff == nil {
		opt.Backoff = DefaultBackoff
	}
	if opt.OnDemandTimeout <= 0 {
		opt.OnDemandTimeout = DefaultOnDemandTimeout
	}
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.ClaimTimeout <= 0 {
		opt.ClaimTimeout = opt.Timeout + 30*time.Second
	}
	policy, err := newAddressPolicy(opt.AllowPrivateCallbacks, opt.CallbackAllowList)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	if opt.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // through a proxy the address check would only see the proxy's address
		t.DialContext = policy.dialContext()
		opt.Transport = t
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	n := &Notifier{
		db:  db,
		opt: opt,
		log: opt.Logger,
		now: time.Now,
		// A 3xx answer is a failed try or an unusable on-demand answer, never a reason to
		// send the request elsewhere (the address policy judged this URL, not that one).
		http: &http.Client{Transport: opt.Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		policy:     policy,
		configs:    map[string]Config{},
		wake:       make(chan struct{}, 1),
		inflight:   map[string]bool{},
		intakeSig:  make(chan struct{}, 1),
		stopWriter: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	ctx := context.Background()
	if err := n.loadConfigs(ctx); err != nil {
		return nil, fmt.Errorf("notify: load configs: %w", err)
	}
	var pending int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM callbacks WHERE status=$1`, StatusPending).Scan(&pending); err != nil {
		return nil, fmt.Errorf("notify: count pending callbacks: %w", err)
	}
	n.m = newMetrics(opt.Registerer)
	n.pending.Store(pending)
	n.m.queue.Set(float64(pending))
	go n.writer()
	return n, nil
}

// Start starts delivering: callbacks left pending by a previous run first (in due
// order), then new ones. It returns at once; ctx (or Close) stops the delivery.
func (n *Notifier) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("notify: Start after Close")
	}
	if n.started {
		return errors.New("notify: already started")
	}
	n.started = true
	ctx, n.cancel = context.WithCancel(ctx)
	jobs := make(chan *Callback, n.opt.Workers)
	for range n.opt.Workers {
		n.wg.Go(func() { n.worker(ctx, jobs) })
	}
	n.wg.Go(func() { n.dispatch(ctx, jobs) })
	n.wg.Go(func() { n.pruneLoop(ctx) })
	if n.opt.Shared {
		n.wg.Go(func() { n.reloadConfigs(ctx) })
	}
	n.poke()
	return nil
}

// reloadConfigs reads the domains' configurations again every sharedPoll: another node
// of the cluster may have changed them through its API, and Notify reads the copy in
// memory.
func (n *Notifier) reloadConfigs(ctx context.Context) {
	t := time.NewTicker(sharedPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := n.loadConfigs(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("callbacks: reloading the domains' configurations failed", "err", err)
		}
	}
}

// Close stops the delivery, writes the callbacks Notify took to the database, and waits
// for the workers. Tries in progress are cut short and not counted: their callbacks stay
// pending and are delivered after the next Start. Notify keeps queueing after Close
// (the rows wait for the next run).
func (n *Notifier) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	cancel := n.cancel
	n.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	n.wg.Wait()
	close(n.stopWriter)
	<-n.writerDone
	n.mu.Lock()
	lost := len(n.intake)
	n.intake = nil
	n.mu.Unlock()
	if lost > 0 {
		n.m.dropped.Add(float64(lost))
		n.log.Error("callbacks lost: the database refused them", "count", lost)
		return fmt.Errorf("notify: %d callbacks could not be stored", lost)
	}
	return nil
}

// pruneLoop deletes the callbacks older than the retention now and every pruneEvery.
func (n *Notifier) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		n.pruneOld(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneOld is one round of pruneLoop; a failure is logged and retried the next round.
func (n *Notifier) pruneOld(ctx context.Context) {
	k, err := n.Prune(ctx, n.now().Add(-n.opt.Retention))
	switch {
	case err != nil && ctx.Err() == nil:
		n.log.Error("callback history: prune failed", "err", err)
	case k > 0:
		n.log.Info("callback history: pruned", "callbacks", k, "retention", n.opt.Retention)
	}
}

// poke wakes the dispatcher without blocking.
func (n *Notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Notify takes one recorder event. Events that make a callback (see the package doc)
// are handed to a writer that stores them in the queue table, normally within a
// millisecond; the rest are ignored. Notify never waits for the database or a receiver.
// After Close it writes the row itself.
func (n *Notifier) Notify(ev record.Event) {
	switch ev.Type {
	case record.EventFileCreated, record.EventStarted, record.EventPaused, record.EventResumed, record.EventError:
	default:
		return
	}
	if cb := n.build(ev); cb != nil {
		n.queue(cb)
	}
}

// Signing schemes of a Message.
const (
	SigningLive = ""    // ALI-LIVE-TIMESTAMP / ALI-LIVE-SIGNATURE (Sign)
	SigningVOD  = "vod" // X-VOD-TIMESTAMP / X-VOD-SIGNATURE (SignVOD)
)

// Header names of callbacks signed as the VOD service signs them.
const (
	HeaderVODTimestamp = "X-VOD-TIMESTAMP"
	HeaderVODSignature = "X-VOD-SIGNATURE"
)

// Message is a callback that is not a recorder event (the VOD library's events): its
// body is given, and it is queued, delivered, retried and kept like the others.
type Message struct {
	Domain, App, Stream, TaskID string
	Event                       string // e.g. AddLiveRecordVideoComplete
	URL                         string
	Body                        []byte // JSON
	AuthKey                     string // "" = unsigned
	Signing                     string // SigningLive or SigningVOD
}

// Enqueue queues a message for delivery; like Notify it never waits for the database
// or the receiver.
func (n *Notifier) Enqueue(m Message) {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	now := n.now()
	n.queue(&Callback{
		ID: id.String(), Domain: normDomain(m.Domain), App: m.App, Stream: m.Stream, TaskID: m.TaskID, Event: m.Event,
		URL: m.URL, Body: string(m.Body), Headers: map[string]string{"Content-Type": "application/json"},
		Status: StatusPending, NextTryAt: now, CreatedAt: now, UpdatedAt: now, authKey: m.AuthKey, signing: m.Signing,
	})
}

// queue hands a new callback to the writer (or, after Close, writes it).
func (n *Notifier) queue(cb *Callback) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		defer cancel()
		if err := n.insertBatch(ctx, []*Callback{cb}); err != nil {
			n.m.dropped.Inc()
			n.log.Error("callback lost: database write failed", "event", cb.Event, "domain", cb.Domain, "app", cb.App,
				"stream", cb.Stream, "err", err)
		}
		return
	}
	if len(n.intake) >= maxIntake {
		n.mu.Unlock()
		n.m.dropped.Inc()
		n.log.Error("callback lost: database unavailable and memory queue full", "event", cb.Event,
			"domain", cb.Domain, "app", cb.App, "stream", cb.Stream)
		return
	}
	n.intake = append(n.intake, cb)
	n.mu.Unlock()
	select {
	case n.intakeSig <- struct{}{}:
	default:
	}
}

// writer moves callbacks from the intake to the database, all waiting ones in one
// transaction, until Close; then it writes what is left.
func (n *Notifier) writer() {
	defer close(n.writerDone)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		stopping := false
		select {
		case <-n.intakeSig:
		case <-retry.C:
		case <-n.stopWriter:
			stopping = true
		}
		if err := n.flush(); err != nil {
			if stopping {
				return
			}
			n.log.Error("callback queue: database write failed, will retry", "err", err)
			retry.Reset(time.Second)
			continue
		}
		if stopping {
			return
		}
	}
}

// flush writes the intake to the database; on failure the callbacks stay in the intake.
func (n *Notifier) flush() error {
	n.mu.Lock()
	batch := n.intake
	n.intake = nil
	n.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if err := n.insertBatch(ctx, batch); err != nil {
		n.mu.Lock()
		n.intake = append(batch, n.intake...)
		n.mu.Unlock()
		return err
	}
	n.poke()
	return nil
}

// build turns an event into a callback for the domain's configuration, nil if the
// configuration asks for none.
func (n *Notifier) build(ev record.Event) *Callback {
	domain, app, stream := ev.Domain, ev.App, ev.Stream
	if ev.File != nil {
		domain, app, stream = or(domain, ev.File.Domain), or(app, ev.File.App), or(stream, ev.File.Stream)
	}
	cfg, ok := n.config(domain)
	if !ok || cfg.NotifyURL == "" {
		return nil
	}
	var body any
	switch ev.Type {
	case record.EventFileCreated:
		if ev.File == nil {
			n.log.Warn("file_created event without a file: no callback", "domain", domain, "app", app, "stream", stream)
			return nil
		}
		body = fileBody(domain, app, stream, ev)
	default:
		if !cfg.NeedStatusNotify {
			return nil
		}
		sb := statusBody{Domain: domain, App: app, Stream: stream, Event: ev.Type}
		if ev.Type == record.EventError {
			r := or(ev.Message, ev.Code)
			if r == "" {
				r = "unknown"
			}
			sb.Reason = &r
		}
		body = sb
	}
	b, err := json.Marshal(body)
	if err != nil { // cannot happen with these types
		n.log.Error("callback body", "err", err)
		return nil
	}
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	now := n.now()
	cb := &Callback{
		ID: id.String(), Domain: normDomain(domain), App: app, Stream: stream, TaskID: ev.TaskID, Event: ev.Type,
		URL: cfg.NotifyURL, Body: string(b), Headers: map[string]string{"Content-Type": "application/json"},
		Status: StatusPending, NextTryAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if cfg.NotifyReqAuth && cfg.NotifyAuthKey != "" {
		cb.authKey = cfg.NotifyAuthKey
	}
	return cb
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// fileBody is the file_created callback (reference §3.2).
type fileBodyJSON struct {
	Domain    string            `json:"domain"`
	App       string            `json:"app"`
	Stream    string            `json:"stream"`
	URI       string            `json:"uri"`
	Duration  float64           `json:"duration"`
	StartTime int64             `json:"start_time"`
	StopTime  int64             `json:"stop_time"`
	PushArgs  map[string]string `json:"push_args,omitempty"`
}

func fileBody(domain, app, stream string, ev record.Event) fileBodyJSON {
	f := ev.File
	stop := f.End
	if stop.IsZero() {
		stop = ev.Time
	}
	if stop.IsZero() && !f.Start.IsZero() {
		stop = f.Start.Add(time.Duration(f.Duration * float64(time.Second)))
	}
	return fileBodyJSON{
		Domain: domain, App: app, Stream: stream,
		URI:       f.Key,
		Duration:  f.Duration,
		StartTime: unix(f.Start),
		StopTime:  unix(stop),
		PushArgs:  CallbackArgs(ev.PushArgs),
	}
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// CallbackArgs keeps the push URL arguments whose name starts with "callback_", first
// value each; nil when there are none.
func CallbackArgs(args map[string][]string) map[string]string {
	var out map[string]string
	for k, v := range args {
		if !strings.HasPrefix(k, "callback_") || len(v) == 0 {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v[0]
	}
	return out
}

// statusBody is the record_started / paused / resumed / error callback.
type statusBody struct {
	Domain string  `json:"domain"`
	App    string  `json:"app"`
	Stream string  `json:"stream"`
	Event  string  `json:"event"`
	Reason *string `json:"reason,omitempty"`
}

// SignVOD returns the X-VOD-SIGNATURE of a callback to callbackURL at Unix time ts:
// lowercase hex md5("<callbackURL>|<ts>|<key>") of the whole configured URL.
func SignVOD(callbackURL string, ts int64, key string) string {
	sum := md5.Sum([]byte(callbackURL + "|" + strconv.FormatInt(ts, 10) + "|" + key))
	return hex.EncodeToString(sum[:])
}

// Sign returns the ALI-LIVE-SIGNATURE of a callback to callbackURL at Unix time ts:
// lowercase hex md5("<host>|<ts>|<key>"), host being the URL's host name without port.
func Sign(callbackURL string, ts int64, key string) (string, error) {
	u, err := url.Parse(callbackURL)
	if err != nil {
		return "", err
	}
	sum := md5.Sum([]byte(u.Hostname() + "|" + strconv.FormatInt(ts, 10) + "|" + key))
	return hex.EncodeToString(sum[:]), nil
}
