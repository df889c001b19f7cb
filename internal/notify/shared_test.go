package notify

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/schema"
)

// Two nodes delivering from one PostgreSQL queue (Options.Shared): each callback reaches
// the receiver exactly once, whichever node queued it.
func TestSharedQueueOnce(t *testing.T) {
	rc := newReceiver(t)
	c := openDB(t, schema.Postgres)
	opt := fastOpts()
	opt.Shared = true
	a, b := newNotifier(t, c, opt, true), newNotifier(t, c, opt, true)
	mustPut(t, a, Config{DomainName: "d.test", NotifyURL: rc.URL + "/cb", NeedStatusNotify: true})
	if err := b.loadConfigs(context.Background()); err != nil {
		t.Fatal(err)
	}
	const total = 60
	for i := range total {
		n := a
		if i%2 == 1 {
			n = b
		}
		n.Notify(statusEvent(record.EventStarted, "d.test", fmt.Sprintf("s%d", i)))
	}
	seen := map[string]int{}
	for range total {
		h := rc.next(t)
		seen[h.json(t)["stream"].(string)]++
	}
	rc.none(t, 2*sharedPoll)
	for i := range total {
		if s := fmt.Sprintf("s%d", i); seen[s] != 1 {
			t.Errorf("%s delivered %d times", s, seen[s])
		}
	}
	cbs, err := a.ListCallbacks(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cb := range cbs {
		if cb.Status != StatusSuccess || cb.Tries != 1 {
			t.Errorf("callback %s: %s after %d tries", cb.ID, cb.Status, cb.Tries)
		}
	}
}

// A node that stops in the middle of a delivery (killed: its try is never recorded)
// leaves the callback claimed; once the claim expires another node delivers it.
func TestSharedClaimExpires(t *testing.T) {
	rc := newReceiver(t)
	c := openDB(t, schema.Postgres)
	opt := fastOpts()
	opt.Shared, opt.Timeout, opt.ClaimTimeout = true, 5*time.Second, 2*time.Second
	rc.set(func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			hang(r) // node a's try: no answer until a stops
		}
	})
	a := newNotifier(t, c, opt, true)
	mustPut(t, a, Config{DomainName: "d.test", NotifyURL: rc.URL + "/cb", NeedStatusNotify: true})
	a.Notify(statusEvent(record.EventStarted, "d.test", "s1"))
	rc.next(t) // a is trying
	b := newNotifier(t, c, opt, true)
	a.Close() // a dies mid-delivery
	start := time.Now()
	rc.next(t) // b's try, once a's claim expired
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("node b tried the callback %v after a stopped, within a's claim", waited)
	}
	waitFor(t, "the callback delivered", func() bool { return onlyStatus(t, b) == StatusSuccess })
	rc.none(t, 2*sharedPoll)
	if cb := onlyCallback(t, b); cb.Tries != 1 {
		t.Fatalf("tries %d, want 1 (a's try was cut short)", cb.Tries)
	}
}

// A domain configured (or removed) through one node's API reaches the other nodes'
// Notify within a few shared polls, without a restart.
func TestSharedConfigReload(t *testing.T) {
	rc := newReceiver(t)
	c := openDB(t, schema.Postgres)
	opt := fastOpts()
	opt.Shared = true
	a, b := newNotifier(t, c, opt, true), newNotifier(t, c, opt, true)
	mustPut(t, a, Config{DomainName: "d.test", NotifyURL: rc.URL + "/cb", NeedStatusNotify: true})
	waitKnown := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * sharedPoll); ; time.Sleep(20 * time.Millisecond) {
			if _, ok := b.config("d.test"); ok == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node b: domain configured = %v after %v, want %v", !want, 5*sharedPoll, want)
			}
		}
	}
	waitKnown(true)
	b.Notify(statusEvent(record.EventStarted, "d.test", "s"))
	if h := rc.next(t); h.json(t)["stream"] != "s" {
		t.Fatalf("callback %v", h.json(t))
	}
	if err := a.Delete(context.Background(), "d.test"); err != nil {
		t.Fatal(err)
	}
	waitKnown(false)
}
