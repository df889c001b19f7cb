package catalog

import (
	"context"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/schema/schematest"
)

// A kept state is updated while unclaimed, listed while its file records, and a file's
// finalization is claimed by one node only (also a file without a kept state).
func TestWriterStateClaim(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c := openTemp(t, driver, dsn)
		now := time.Now()
		if err := c.CreateTask(ctx, &Task{ID: "t1", Domain: "d", App: "a", Stream: "s", State: TaskRecording, StartedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"f1", "f2"} {
			if err := c.CreateFile(ctx, &File{ID: id, TaskID: "t1", Format: "m3u8", Status: FileRecording, Start: now}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.SaveWriterState(ctx, "f1", "t1", "n1", `{"a":1}`); err != nil {
			t.Fatal(err)
		}
		if err := c.SaveWriterState(ctx, "f1", "t1", "n2", `{"a":2}`); err != nil {
			t.Fatal(err)
		}
		ws, err := c.UnclaimedStates(ctx)
		if err != nil || len(ws) != 1 || ws[0].NodeID != "n2" || ws[0].State != `{"a":2}` {
			t.Fatalf("unclaimed: %+v %v", ws, err)
		}
		if ok, err := c.ClaimFile(ctx, "f1", "t1", "n3"); !ok || err != nil {
			t.Fatalf("first claim: %v %v", ok, err)
		}
		if ok, err := c.ClaimFile(ctx, "f1", "t1", "n3"); !ok || err != nil {
			t.Fatalf("claim again by the same node: %v %v", ok, err)
		}
		if ok, err := c.ClaimFile(ctx, "f1", "t1", "n1"); ok || err != nil {
			t.Fatalf("claim by another node: %v %v", ok, err)
		}
		// Claimed: the writer's late saves are ignored, and it is no longer unclaimed.
		if err := c.SaveWriterState(ctx, "f1", "t1", "n2", `{"a":3}`); err != nil {
			t.Fatal(err)
		}
		all, err := c.TaskWriterStates(ctx, "t1")
		if err != nil || all["f1"].State != `{"a":2}` || all["f1"].Finalizer != "n3" {
			t.Fatalf("task states: %+v %v", all, err)
		}
		if ws, err := c.UnclaimedStates(ctx); err != nil || len(ws) != 0 {
			t.Fatalf("unclaimed after the claim: %+v %v", ws, err)
		}
		// No state kept: the claim is made all the same, and holds against others.
		if ok, err := c.ClaimFile(ctx, "f2", "t1", "n1"); !ok || err != nil {
			t.Fatalf("claim of a file without state: %v %v", ok, err)
		}
		if ok, err := c.ClaimFile(ctx, "f2", "t1", "n2"); ok || err != nil {
			t.Fatalf("second claim of a file without state: %v %v", ok, err)
		}
	})
}
