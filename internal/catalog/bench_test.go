package catalog

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkEndBurst measures the catalog writes of n tasks with two files each ending at
// the same moment (as record does: UpdateFile per file, then SetTaskState), each task in
// its own goroutine. ns/op is the burst's wall time.
// Run: go test -run '^$' -bench EndBurst -benchtime 3x ./internal/catalog
func BenchmarkEndBurst(b *testing.B) {
	const n = 300
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		c, err := Open(filepath.Join(b.TempDir(), "c.db"))
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		files := make([][2]*File, n)
		for i := range n {
			id := fmt.Sprintf("task-%d", i)
			if err := c.CreateTask(ctx, &Task{ID: id, Domain: "example.com", App: "live", Stream: fmt.Sprintf("s%d", i),
				State: TaskPaused, Rule: "{}", StartedAt: now, UpdatedAt: now}); err != nil {
				b.Fatal(err)
			}
			for j, f := range []string{"flv", "m3u8"} {
				fl := &File{ID: fmt.Sprintf("%s-%s", id, f), TaskID: id, Domain: "example.com", App: "live",
					Stream: fmt.Sprintf("s%d", i), Format: f, Start: now, Status: FileRecording}
				if err := c.CreateFile(ctx, fl); err != nil {
					b.Fatal(err)
				}
				files[i][j] = fl
			}
		}
		var wg sync.WaitGroup
		b.StartTimer()
		for i := range n {
			wg.Go(func() {
				for _, f := range files[i] {
					f.Status, f.Key, f.End, f.Duration, f.Bytes = FileDone, f.ID+".flv", now, 20, 3<<20
					if err := c.UpdateFile(ctx, f); err != nil {
						b.Error(err)
					}
				}
				if err := c.SetTaskState(ctx, fmt.Sprintf("task-%d", i), TaskEnded, now); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
}
