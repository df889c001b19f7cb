package peer

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fakeRecorder struct {
	keys []string
	err  error
}

func (f *fakeRecorder) HandOver(_ context.Context, key string) (string, error) {
	f.keys = append(f.keys, key)
	return "task-1", f.err
}

const secret = "a-test-secret-of-some-length"

// A hand-over request reaches the node holding the stream's lease, authenticated; the
// owner's refusal, a wrong secret, a dead owner and no owner are errors that say so.
func TestHandOver(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c, err := catalog.OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		store := cluster.New(c.DB())
		rec := &fakeRecorder{}
		srv := httptest.NewServer(Handler(rec, secret))
		defer srv.Close()
		addr := strings.TrimPrefix(srv.URL, "http://")
		live := cluster.Liveness{Interval: time.Second, MissedBeats: 3}
		now := time.Now()
		if err := store.Beat(ctx, "n1", addr, now, now); err != nil {
			t.Fatal(err)
		}
		p := &Peers{Store: store, Node: "n2", Liveness: live, Secret: secret}
		const key = "example.com/live/s"
		if _, err := p.HandOver(ctx, key); err == nil {
			t.Fatal("hand-over of a key nobody holds")
		}
		if _, err := store.Acquire(ctx, key, "n1", time.Minute, now); err != nil {
			t.Fatal(err)
		}
		if held, err := p.Holds(ctx, key, "n1"); err != nil || !held {
			t.Fatalf("Holds: %v %v", held, err)
		}
		if alive, err := p.Alive(ctx, "n1"); err != nil || !alive {
			t.Fatalf("Alive: %v %v", alive, err)
		}
		id, err := p.HandOver(ctx, key)
		if err != nil || id != "task-1" || len(rec.keys) != 1 || rec.keys[0] != key {
			t.Fatalf("hand-over: %q %v, the owner saw %v", id, err, rec.keys)
		}
		rec.err = errors.New("the stream is being published on this node")
		if _, err := p.HandOver(ctx, key); err == nil || !strings.Contains(err.Error(), "being published") {
			t.Fatalf("refused hand-over: %v", err)
		}
		bad := &Peers{Store: store, Node: "n2", Liveness: live, Secret: "not-the-secret-at-all"}
		if _, err := bad.HandOver(ctx, key); err == nil || !strings.Contains(err.Error(), "secret") || len(rec.keys) != 2 {
			t.Fatalf("wrong secret: %v (owner saw %v)", err, rec.keys)
		}
		none := &Peers{Store: store, Node: "n2", Liveness: live}
		if _, err := none.HandOver(ctx, key); err == nil || !strings.Contains(err.Error(), "node.secret") {
			t.Fatalf("no secret: %v", err)
		}
		if err := store.Beat(ctx, "n1", addr, now, now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := p.HandOver(ctx, key); err == nil || !strings.Contains(err.Error(), "not alive") {
			t.Fatalf("dead owner: %v", err)
		}
	})
}
