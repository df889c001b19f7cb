package notify

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"maps"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/schema/schematest"
)

// keysOf returns the sorted keys of a decoded JSON object.
func keysOf(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func TestPayloads(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		rc := newReceiver(t)
		c := openDB(t, driver)
		opt := fastOpts()
		opt.Workers = 1 // one at a time: arrival order = queue order
		n := newNotifier(t, c, opt, true)
		mustPut(t, n, Config{DomainName: "demo.example.com", NotifyURL: rc.URL + "/cb", NeedStatusNotify: true})

		push := map[string][]string{
			"callback_args1": {"value1"},
			"callback_myid":  {"1231389741", "second"},
			"callback_empty": {},
			"callback_blank": {""},
			"auth_key":       {"1-0-0-abc"},
			"Callback_case":  {"x"},
			"vhost":          {"demo.example.com"},
		}
		n.Notify(statusEvent(record.EventStarted, "Demo.Example.com", "s1"))
		n.Notify(statusEvent(record.EventWarning, "demo.example.com", "s1"))         // ignored
		n.Notify(statusEvent(record.EventTimestampRepair, "demo.example.com", "s1")) // ignored
		n.Notify(fileEvent("demo.example.com", "s1", push))
		n.Notify(fileEvent("demo.example.com", "s2", map[string][]string{"auth_key": {"x"}}))
		n.Notify(statusEvent(record.EventPaused, "demo.example.com", "s1"))
		n.Notify(statusEvent(record.EventResumed, "demo.example.com", "s1"))
		errEv := statusEvent(record.EventError, "demo.example.com", "s1")
		errEv.Code, errEv.Message = "finalize_failed", "mp4 file 0: disk full"
		n.Notify(errEv)
		errEv2 := statusEvent(record.EventError, "demo.example.com", "s1")
		errEv2.Code = "storage_failed"
		n.Notify(errEv2)
		n.Notify(fileEvent("other.example.com", "s1", nil))                                                      // no config: nothing
		n.Notify(record.Event{Type: record.EventFileCreated, Domain: "demo.example.com", App: "a", Stream: "s"}) // no file

		status := func(ev, stream string) map[string]any {
			return map[string]any{"domain": "demo.example.com", "app": "liveApp", "stream": stream, "event": ev}
		}
		wantFile := func(stream string, args map[string]any) map[string]any {
			m := map[string]any{"domain": "demo.example.com", "app": "liveApp", "stream": stream,
				"uri":      "liveApp/" + stream + "/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv",
				"duration": 69.403, "start_time": float64(1488985786), "stop_time": float64(1488985840)}
			if args != nil {
				m["push_args"] = args
			}
			return m
		}
		started := status("record_started", "s1")
		started["domain"] = "Demo.Example.com" // the body keeps the event's spelling
		wantErr1 := status("record_error", "s1")
		wantErr1["reason"] = "mp4 file 0: disk full"
		wantErr2 := status("record_error", "s1")
		wantErr2["reason"] = "storage_failed"
		want := []map[string]any{
			started,
			wantFile("s1", map[string]any{"callback_args1": "value1", "callback_myid": "1231389741", "callback_blank": ""}),
			wantFile("s2", nil),
			status("record_paused", "s1"),
			status("record_resumed", "s1"),
			wantErr1,
			wantErr2,
		}
		for i, w := range want {
			h := rc.next(t)
			if h.method != http.MethodPost || h.header.Get("Content-Type") != "application/json" {
				t.Fatalf("callback %d: %s %s", i, h.method, h.header.Get("Content-Type"))
			}
			if u, _ := url.Parse(h.url); u.Path != "/cb" {
				t.Fatalf("callback %d went to %s", i, h.url)
			}
			got := h.json(t)
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("callback %d:\n got %v (keys %s)\nwant %v (keys %s)\nraw %s", i, got, keysOf(got), w, keysOf(w), h.body)
			}
			// Times are whole Unix seconds, not floats with a fraction or strings.
			if st, ok := got["start_time"].(float64); ok && st != math.Trunc(st) {
				t.Fatalf("start_time %v not an integer", st)
			}
			if h.header.Get(HeaderSignature) != "" || h.header.Get(HeaderTimestamp) != "" {
				t.Fatalf("callback %d signed without notifyReqAuth", i)
			}
		}
		rc.none(t, 100*time.Millisecond)

		// Without needStatusNotify only file_created goes out.
		mustPut(t, n, Config{DomainName: "demo.example.com", NotifyURL: rc.URL + "/cb"})
		n.Notify(statusEvent(record.EventStarted, "demo.example.com", "s3"))
		n.Notify(errEv)
		n.Notify(fileEvent("demo.example.com", "s3", nil))
		if got := rc.next(t).json(t); !reflect.DeepEqual(got, wantFile("s3", nil)) {
			t.Fatalf("got %v", got)
		}
		rc.none(t, 100*time.Millisecond)

		// The queue: every callback stored, all delivered.
		ctx := context.Background()
		waitFor(t, "all delivered", func() bool {
			k, _ := n.CountCallbacks(ctx, Query{Status: StatusSuccess})
			return k == 8
		})
		if k, _ := n.CountCallbacks(ctx, Query{}); k != 8 {
			t.Fatalf("%d callbacks stored, want 8", k)
		}
		files, err := n.ListCallbacks(ctx, Query{Domain: "DEMO.example.com", Event: record.EventFileCreated})
		if err != nil || len(files) != 3 {
			t.Fatalf("file callbacks: %d, %v", len(files), err)
		}
		if f := files[0]; f.Stream != "s1" || f.Tries != 1 || len(f.Attempts) != 1 || f.Attempts[0].ResponseCode != 200 ||
			f.Attempts[0].Response != "200 OK" || f.URL != rc.URL+"/cb" || f.TaskID != "task-1" || !f.NextTryAt.IsZero() {
			t.Fatalf("stored callback %+v", f)
		}
		if s, _ := n.ListCallbacks(ctx, Query{Stream: "s1", App: "liveApp", Desc: true, Limit: 2, Offset: 1}); len(s) != 2 ||
			s[0].Event != record.EventError || s[1].Event != record.EventResumed {
			t.Fatalf("paged query: %+v", s)
		}
		if s, _ := n.ListCallbacks(ctx, Query{From: time.Now().Add(time.Hour)}); len(s) != 0 {
			t.Fatalf("From in the future: %d callbacks", len(s))
		}
		if s, _ := n.ListCallbacks(ctx, Query{To: time.Now().Add(time.Hour), Status: StatusFailed}); len(s) != 0 {
			t.Fatalf("failed: %d callbacks", len(s))
		}
	})
}

func TestAuthHeaders(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		rc := newReceiver(t)
		n := newNotifier(t, openDB(t, driver), fastOpts(), true)
		mustPut(t, n, Config{DomainName: "signed.example.com", NotifyURL: rc.URL + "/cb?x=1", NotifyReqAuth: true, NotifyAuthKey: "yourkey"})
		mustPut(t, n, Config{DomainName: "keyonly.example.com", NotifyURL: rc.URL, NotifyAuthKey: "yourkey"})
		mustPut(t, n, Config{DomainName: "nokey.example.com", NotifyURL: rc.URL, NotifyReqAuth: true})

		before := time.Now().Unix()
		n.Notify(fileEvent("signed.example.com", "s1", nil))
		h := rc.next(t)
		after := time.Now().Unix()
		ts := h.header.Get(HeaderTimestamp)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || sec < before || sec > after {
			t.Fatalf("%s = %q, want Unix seconds in [%d, %d]", HeaderTimestamp, ts, before, after)
		}
		host := strings.Split(strings.TrimPrefix(rc.URL, "http://"), ":")[0] // 127.0.0.1, without the port
		sum := md5.Sum([]byte(host + "|" + ts + "|yourkey"))
		if got, want := h.header.Get(HeaderSignature), hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("%s = %q, want %q", HeaderSignature, got, want)
		}
		// The reference example.
		if s, _ := Sign("https://learn.aliyundoc.com/your/callback", 1519375990, "yourkey"); s != md5hex("learn.aliyundoc.com|1519375990|yourkey") {
			t.Fatalf("Sign = %s", s)
		}
		if s, _ := Sign("http://learn.aliyundoc.com:8080/cb", 1, "k"); s != md5hex("learn.aliyundoc.com|1|k") {
			t.Fatalf("Sign with port = %s", s)
		}
		// The headers of the try are kept with the callback.
		waitFor(t, "delivery recorded", func() bool { return onlyStatus(t, n) == StatusSuccess })
		if cb := onlyCallback(t, n); cb.Headers[HeaderSignature] != h.header.Get(HeaderSignature) || cb.Headers[HeaderTimestamp] != ts {
			t.Fatalf("stored headers %v", cb.Headers)
		}

		for _, d := range []string{"keyonly.example.com", "nokey.example.com"} {
			n.Notify(fileEvent(d, "s1", nil))
			h := rc.next(t)
			if _, ok := h.header[http.CanonicalHeaderKey(HeaderSignature)]; ok {
				t.Fatalf("%s: signature header sent", d)
			}
			if _, ok := h.header[http.CanonicalHeaderKey(HeaderTimestamp)]; ok {
				t.Fatalf("%s: timestamp header sent", d)
			}
		}
	})
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestRetriesThenSuccess(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		rc := newReceiver(t)
		var n *Notifier
		storedBeforeTry := make(chan []Callback, 1)
		rc.set(func(k int, w http.ResponseWriter, _ *http.Request) {
			switch k {
			case 1:
				cbs, _ := n.ListCallbacks(context.Background(), Query{})
				storedBeforeTry <- cbs
				http.Error(w, "busy", http.StatusInternalServerError)
			case 2:
				closeConn(w)
			default:
				w.WriteHeader(http.StatusNoContent)
			}
		})
		reg := prometheus.NewRegistry()
		opt := fastOpts()
		opt.Registerer = reg
		n = newNotifier(t, openDB(t, driver), opt, true)
		mustPut(t, n, Config{DomainName: "d", NotifyURL: rc.URL})
		n.Notify(fileEvent("d", "s1", nil))
		for range 3 {
			rc.next(t)
		}
		waitFor(t, "success", func() bool { return onlyStatus(t, n) == StatusSuccess })
		rc.none(t, 100*time.Millisecond)
		if s := <-storedBeforeTry; len(s) != 1 || s[0].Status != StatusPending || s[0].Tries != 0 {
			t.Fatalf("queue during the first try: %+v", s)
		}
		cb := onlyCallback(t, n)
		if cb.Tries != 3 || len(cb.Attempts) != 3 || cb.LastError != "" {
			t.Fatalf("callback %+v", cb)
		}
		codes := []int{cb.Attempts[0].ResponseCode, cb.Attempts[1].ResponseCode, cb.Attempts[2].ResponseCode}
		if !reflect.DeepEqual(codes, []int{500, 0, 204}) {
			t.Fatalf("codes %v", codes)
		}
		if a := cb.Attempts[0]; a.Error != "HTTP 500 Internal Server Error" || a.Response != "500 Internal Server Error" || a.Try != 1 {
			t.Fatalf("attempt 1 %+v", a)
		}
		if a := cb.Attempts[1]; a.Error == "" || a.Try != 2 {
			t.Fatalf("attempt 2 %+v", a)
		}
		if a := cb.Attempts[2]; a.Error != "" || a.Try != 3 || a.Time.IsZero() || a.Time.Before(cb.Attempts[1].Time) {
			t.Fatalf("attempt 3 %+v", a)
		}
		if v := value(t, n.m.deliveries.WithLabelValues("retry")); v != 2 {
			t.Fatalf("retry tries %v", v)
		}
		if v := value(t, n.m.deliveries.WithLabelValues("success")); v != 1 {
			t.Fatalf("successful tries %v", v)
		}
		if v := value(t, n.m.queue); v != 0 {
			t.Fatalf("queue %v", v)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		series := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += "," + l.GetName() + "=" + l.GetValue()
				}
				series[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		if series["livrec_callback_tries_total,result=retry"] != 2 || series["livrec_callback_tries_total,result=success"] != 1 ||
			series["livrec_callback_queue"] != 0 {
			t.Fatalf("registered series %v", series)
		}
	})
}

func TestRetriesGiveUp(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		rc := newReceiver(t)
		rc.set(func(k int, w http.ResponseWriter, r *http.Request) {
			switch k {
			case 1:
				w.WriteHeader(500)
			case 2:
				w.WriteHeader(502)
			case 3:
				hang(r)
			case 4:
				closeConn(w)
			case 5:
				w.WriteHeader(404)
			default:
				w.WriteHeader(200)
			}
		})
		var waits []int
		opt := Options{Logger: quiet, AllowPrivateCallbacks: true, Timeout: 200 * time.Millisecond, Backoff: func(try int) time.Duration {
			waits = append(waits, try) // tries run one after the other: no race
			return 10 * time.Millisecond
		}}
		n := newNotifier(t, openDB(t, driver), opt, true)
		mustPut(t, n, Config{DomainName: "d", NotifyURL: rc.URL})
		n.Notify(statusEvent(record.EventStarted, "d", "s")) // status events are off: nothing
		n.Notify(fileEvent("d", "s1", nil))
		waitFor(t, "failed", func() bool { return onlyStatus(t, n) == StatusFailed })
		time.Sleep(200 * time.Millisecond) // no sixth try
		if got := rc.count.Load(); got != 5 {
			t.Fatalf("%d requests, want 5", got)
		}
		cb := onlyCallback(t, n)
		if cb.Tries != 5 || len(cb.Attempts) != 5 || cb.LastError != "HTTP 404 Not Found" || !cb.NextTryAt.IsZero() {
			t.Fatalf("callback %+v", cb)
		}
		var codes []int
		for _, a := range cb.Attempts {
			codes = append(codes, a.ResponseCode)
			if a.Error == "" {
				t.Fatalf("failed attempt without error: %+v", a)
			}
		}
		if !reflect.DeepEqual(codes, []int{500, 502, 0, 0, 404}) {
			t.Fatalf("codes %v", codes)
		}
		if e := cb.Attempts[2].Error; e != "no answer within 200ms" {
			t.Fatalf("timeout attempt error %q", e)
		}
		if d := cb.Attempts[2].Duration; d < 150*time.Millisecond || d > 2*time.Second {
			t.Fatalf("timeout attempt took %v", d)
		}
		if !reflect.DeepEqual(waits, []int{1, 2, 3, 4}) {
			t.Fatalf("backoff asked for tries %v", waits)
		}
		if v := value(t, n.m.deliveries.WithLabelValues("failed")); v != 1 {
			t.Fatalf("failed %v", v)
		}
	})
}

func TestDefaultBackoff(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		var got []time.Duration
		for i := 1; i <= 4; i++ {
			got = append(got, DefaultBackoff(i))
		}
		if !reflect.DeepEqual(got, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}) {
			t.Fatalf("%v", got)
		}
	})
}

func TestRestart(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		rc := newReceiver(t)
		entered := make(chan struct{}, 10)
		mode := "fail"
		rc.set(func(_ int, w http.ResponseWriter, r *http.Request) {
			switch mode {
			case "fail":
				w.WriteHeader(503)
			case "hang":
				entered <- struct{}{}
				hang(r)
			default:
				w.WriteHeader(200)
			}
		})
		setMode := func(m string) {
			rc.mu.Lock()
			mode = m
			rc.mu.Unlock()
		}
		c := openDB(t, driver)
		optA := fastOpts()
		optA.Backoff = func(int) time.Duration { return 1500 * time.Millisecond }
		a := newNotifier(t, c, optA, true)
		mustPut(t, a, Config{DomainName: "d", NotifyURL: rc.URL})

		// ev1: one failed try, then waits for its retry.
		a.Notify(fileEvent("d", "s1", nil))
		rc.next(t)
		cbs, _ := a.ListCallbacks(ctx, Query{})
		id1 := cbs[0].ID
		waitFor(t, "first try recorded", func() bool { return callbackByID(t, a, id1).Tries == 1 })
		// ev2: its try hangs when a closes.
		setMode("hang")
		a.Notify(fileEvent("d", "s2", nil))
		<-entered
		rc.next(t)
		start := time.Now()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("Close took %v with a hanging receiver", el)
		}
		// ev3: queued after Close, waits for the next run.
		a.Notify(fileEvent("d", "s3", nil))
		all, _ := a.ListCallbacks(ctx, Query{})
		if len(all) != 3 {
			t.Fatalf("%d callbacks", len(all))
		}
		for i, cb := range all {
			wantTries := 0
			if i == 0 {
				wantTries = 1
			}
			if cb.Status != StatusPending || cb.Tries != wantTries || len(cb.Attempts) != wantTries {
				t.Fatalf("after Close, callback %d: %+v", i, cb)
			}
		}
		if v := value(t, a.m.queue); v != 3 {
			t.Fatalf("queue gauge %v", v)
		}

		setMode("ok")
		// A try whose answer comes later than the timeout is tried again: the receiver
		// sees it twice (at least once is all HTTP can promise). A loaded machine can be
		// that slow with the 1 s of fastOpts, so b waits longer.
		optB := fastOpts()
		optB.Timeout = 10 * time.Second
		b := newNotifier(t, c, optB, false)
		if v := value(t, b.m.queue); v != 3 {
			t.Fatalf("queue gauge after restart %v", v)
		}
		rc.none(t, 50*time.Millisecond) // nothing before Start
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
		streams := map[string]bool{}
		for range 3 {
			h := rc.next(t)
			streams[h.json(t)["stream"].(string)] = true
		}
		if len(streams) != 3 {
			t.Fatalf("delivered %v", streams)
		}
		waitFor(t, "all success", func() bool {
			k, _ := b.CountCallbacks(ctx, Query{Status: StatusSuccess})
			return k == 3
		})
		if cb := callbackByID(t, b, id1); cb.Tries != 2 || cb.Attempts[0].ResponseCode != 503 || cb.Attempts[1].ResponseCode != 200 {
			t.Fatalf("ev1 %+v", cb)
		}
		if v := value(t, b.m.queue); v != 0 {
			t.Fatalf("queue gauge %v", v)
		}
		rc.none(t, 100*time.Millisecond)
		if err := b.Start(ctx); err == nil {
			t.Fatal("second Start accepted")
		}
	})
}

func TestNotifyNeverBlocks(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		rc := newReceiver(t)
		rc.set(func(_ int, _ http.ResponseWriter, r *http.Request) { hang(r) })
		n := newNotifier(t, openDB(t, driver), Options{Logger: quiet, AllowPrivateCallbacks: true}, true) // default 5 s timeout, 4 workers
		mustPut(t, n, Config{DomainName: "d", NotifyURL: rc.URL, NeedStatusNotify: true})
		const events = 1000
		start := time.Now()
		for i := range events {
			if i%2 == 0 {
				n.Notify(fileEvent("d", "s"+strconv.Itoa(i), nil))
			} else {
				n.Notify(statusEvent(record.EventPaused, "d", "s"+strconv.Itoa(i)))
			}
		}
		el := time.Since(start)
		t.Logf("%d Notify calls with a hanging receiver: %v", events, el)
		if el > time.Second {
			t.Fatalf("%d Notify calls took %v", events, el)
		}
		waitFor(t, "all queued", func() bool {
			k, err := n.CountCallbacks(context.Background(), Query{Status: StatusPending})
			return err == nil && k == events
		})
		// Every worker is stuck on the receiver; Close does not wait for it.
		waitFor(t, "4 hanging tries", func() bool { return rc.count.Load() >= 4 })
		start = time.Now()
		n.Close()
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("Close took %v", el)
		}
	})
}

func TestPrune(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		rc := newReceiver(t)
		n := newNotifier(t, openDB(t, driver), fastOpts(), false)
		mustPut(t, n, Config{DomainName: "d", NotifyURL: rc.URL})
		n.Notify(fileEvent("d", "s1", nil))
		n.Notify(fileEvent("d", "s2", nil))
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivered", func() bool { k, _ := n.CountCallbacks(ctx, Query{Status: StatusSuccess}); return k == 2 })
		n.Close()
		n.Notify(fileEvent("d", "s3", nil)) // pending: kept
		k, err := n.Prune(ctx, time.Now().Add(time.Minute))
		if err != nil || k != 2 {
			t.Fatalf("pruned %d, %v", k, err)
		}
		left, _ := n.ListCallbacks(ctx, Query{})
		if len(left) != 1 || left[0].Stream != "s3" {
			t.Fatalf("left %+v", left)
		}
		var attempts int
		_ = n.db.QueryRow(`SELECT count(*) FROM callback_attempts`).Scan(&attempts)
		if attempts != 0 {
			t.Fatalf("%d attempts left", attempts)
		}
	})
}

// value reads a counter or gauge.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather: %v %v", mfs, err)
	}
	m := mfs[0].GetMetric()[0]
	return m.GetCounter().GetValue() + m.GetGauge().GetValue()
}

// TestRetention: the prune at Start deletes delivered and failed callbacks older than
// the retention (default 30 days) with their attempts, and keeps younger ones and every
// pending one, however old.
func TestRetention(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		db := openDB(t, driver)
		ok, bad, slow := newReceiver(t), newReceiver(t), newReceiver(t)
		bad.set(func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
		slow.set(func(_ int, _ http.ResponseWriter, r *http.Request) { hang(r) })

		// The first run delivers (or gives up on) callbacks made 31 and 29 days ago.
		var clock atomic.Int64
		opt := fastOpts()
		opt.MaxTries = 1
		n1 := newNotifier(t, db, opt, false)
		n1.now = func() time.Time { return time.UnixMilli(clock.Load()) }
		mustPut(t, n1, Config{DomainName: "ok", NotifyURL: ok.URL})
		mustPut(t, n1, Config{DomainName: "bad", NotifyURL: bad.URL})
		mustPut(t, n1, Config{DomainName: "slow", NotifyURL: slow.URL})
		day := 24 * time.Hour
		clock.Store(time.Now().Add(-31 * day).UnixMilli())
		n1.Notify(fileEvent("ok", "old-delivered", nil))
		n1.Notify(fileEvent("bad", "old-failed", nil))
		if err := n1.Start(ctx); err != nil {
			t.Fatal(err)
		}
		count := func(n *Notifier, status string) int {
			k, err := n.CountCallbacks(ctx, Query{Status: status})
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
		waitFor(t, "old ones done", func() bool { return count(n1, StatusSuccess) == 1 && count(n1, StatusFailed) == 1 })
		clock.Store(time.Now().Add(-29 * day).UnixMilli())
		n1.Notify(fileEvent("ok", "recent-delivered", nil))
		waitFor(t, "recent one delivered", func() bool { return count(n1, StatusSuccess) == 2 })
		n1.Close()
		clock.Store(time.Now().Add(-31 * day).UnixMilli())
		n1.Notify(fileEvent("slow", "old-pending", nil)) // after Close: stored, not tried

		// The next run prunes at start; the old pending one is being tried meanwhile.
		opt.MaxTries = 100
		n2 := newNotifier(t, db, opt, true)
		waitFor(t, "old ones pruned", func() bool { return count(n2, "") == 2 })
		cbs, err := n2.ListCallbacks(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, cb := range cbs {
			got[cb.Stream] = cb.Status
		}
		if len(got) != 2 || got["recent-delivered"] != StatusSuccess || got["old-pending"] != StatusPending {
			t.Fatalf("left %v, want recent-delivered success and old-pending pending", got)
		}
		var orphans int
		if err := n2.db.QueryRow(`SELECT count(*) FROM callback_attempts WHERE callback_id NOT IN (SELECT id FROM callbacks)`).Scan(&orphans); err != nil || orphans != 0 {
			t.Fatalf("%d attempts of pruned callbacks left (%v)", orphans, err)
		}
	})
}

// TestPruneBatches: Prune deletes more rows than one batch holds.
func TestPruneBatches(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		n := newNotifier(t, openDB(t, driver), fastOpts(), false)
		old := time.Now().Add(-time.Hour)
		cbs := make([]*Callback, 2*pruneRows+1)
		for i := range cbs {
			cbs[i] = &Callback{ID: strconv.Itoa(i), Domain: "d", App: "a", Stream: "s", Event: "file_created", URL: "http://127.0.0.1:1/",
				Body: "{}", Status: StatusSuccess, CreatedAt: old, UpdatedAt: old}
		}
		cbs[0].Status = StatusPending
		if err := n.insertBatch(ctx, cbs); err != nil {
			t.Fatal(err)
		}
		k, err := n.Prune(ctx, time.Now())
		if err != nil || k != 2*pruneRows {
			t.Fatalf("pruned %d (%v), want %d", k, err, 2*pruneRows)
		}
		if left := onlyCallback(t, n); left.ID != "0" {
			t.Fatalf("left %+v", left)
		}
	})
}
