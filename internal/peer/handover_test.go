package peer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/schema/schematest"
)

// A hand-over request reaches the node holding the stream's lease, signed; the owner's
// refusal, a wrong secret, a dead owner and no owner are errors that say so.
func TestHandOver(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		store := openStore(t, driver, dsn)
		n1 := newNode(t, store, "n1")
		c := &Cluster{Store: store, Node: "n2", Liveness: live, Client: &Client{Secret: secret, Node: "n2"}}
		const key = "example.com/live/s"
		if _, err := c.HandOver(ctx, key); err == nil {
			t.Fatal("hand-over of a key nobody holds")
		}
		if _, err := store.Acquire(ctx, key, "n1", time.Minute, time.Now()); err != nil {
			t.Fatal(err)
		}
		if held, err := c.Holds(ctx, key, "n1"); err != nil || !held {
			t.Fatalf("Holds: %v %v", held, err)
		}
		if alive, err := c.Alive(ctx, "n1"); err != nil || !alive {
			t.Fatalf("Alive: %v %v", alive, err)
		}
		id, err := c.HandOver(ctx, key)
		if ran := n1.local.ran(); err != nil || id != "task-1" || len(ran) != 1 || ran[0] != key+" handover" {
			t.Fatalf("hand-over: %q %v, the owner ran %v", id, err, ran)
		}
		n1.local.err = errors.New("the stream is being published on this node")
		if _, err := c.HandOver(ctx, key); err == nil || !strings.Contains(err.Error(), "being published") {
			t.Fatalf("refused hand-over: %v", err)
		}
		bad := &Cluster{Store: store, Node: "n2", Liveness: live, Client: &Client{Secret: "not-the-secret-at-all", Node: "n2"}}
		if _, err := bad.HandOver(ctx, key); err == nil || !strings.Contains(err.Error(), "signature") || len(n1.local.ran()) != 2 {
			t.Fatalf("wrong secret: %v (owner ran %v)", err, n1.local.ran())
		}
		none := &Cluster{Store: store, Node: "n2", Liveness: live, Client: &Client{Node: "n2"}}
		if _, err := none.HandOver(ctx, key); err == nil || !strings.Contains(err.Error(), "node.secret") {
			t.Fatalf("no secret: %v", err)
		}
		if err := store.Beat(ctx, "n1", n1.srv.Listener.Addr().String(), time.Now(), time.Now().Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.HandOver(ctx, key); err == nil || !strings.Contains(err.Error(), "dead: no heartbeat") {
			t.Fatalf("dead owner: %v", err)
		}
	})
}
