package catalog

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/testenv"
)

func TestCatalogRoundTrip(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c, err := OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		task := &Task{ID: "t1", Domain: "d", App: "a", Stream: "s", State: TaskRecording, Rule: "{}", StartedAt: now, UpdatedAt: now}
		if err := c.CreateTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		f := &File{ID: "f1", TaskID: "t1", Domain: "d", App: "a", Stream: "s", Format: "m3u8", Start: now, Status: FileRecording}
		if err := c.CreateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
		open, err := c.OpenTasks(ctx)
		if err != nil || len(open) != 1 || open[0].ID != "t1" || !open[0].StartedAt.Equal(now) {
			t.Fatalf("open tasks %+v %v", open, err)
		}
		f.Status, f.Key, f.End, f.Duration, f.Width, f.Height = FileDone, "record/a/s/x.m3u8", now.Add(time.Minute), 60.04, 320, 240
		if err := c.UpdateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := c.SetTaskState(ctx, "t1", TaskEnded, now.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		c.Close()

		// Reopen: the data survived.
		c, err = OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open, _ = c.OpenTasks(ctx)
		if len(open) != 0 {
			t.Fatalf("ended task still open: %+v", open)
		}
		got, err := c.ListFiles(ctx, FileQuery{Domain: "d", App: "a", Stream: "s", From: now.Add(30 * time.Second), To: now.Add(10 * time.Minute)})
		if err != nil || len(got) != 1 {
			t.Fatalf("list: %+v %v", got, err)
		}
		if g := got[0]; g.Key != f.Key || g.Duration != 60.04 || g.Width != 320 || g.Status != FileDone || !g.End.Equal(f.End) {
			t.Fatalf("row mismatch: %+v", g)
		}
		if got, _ := c.ListFiles(ctx, FileQuery{From: now.Add(2 * time.Minute)}); len(got) != 0 {
			t.Fatalf("time filter: %+v", got)
		}
		if _, err := c.GetFile(ctx, "nope"); err != ErrNotFound {
			t.Fatalf("want ErrNotFound, got %v", err)
		}
		if n, err := c.CountFiles(ctx, FileQuery{Domain: "d", Status: FileDone}); err != nil || n != 1 {
			t.Fatalf("CountFiles = %d, %v", n, err)
		}
		if tk, err := c.GetTask(ctx, "t1"); err != nil || tk.State != TaskEnded || tk.Rule != "{}" || !tk.StartedAt.Equal(now) {
			t.Fatalf("GetTask = %+v, %v", tk, err)
		}
		if _, err := c.GetTask(ctx, "nope"); err != ErrNotFound {
			t.Fatalf("GetTask of a missing id: %v", err)
		}
		if err := c.DeleteFile(ctx, "f1"); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteFile(ctx, "f1"); err != ErrNotFound {
			t.Fatalf("second DeleteFile: %v", err)
		}
		if n, _ := c.CountFiles(ctx, FileQuery{}); n != 0 {
			t.Fatalf("CountFiles after delete = %d", n)
		}
	})
}

// TestUploaded: a local file is uploaded once done; a bucket file once MarkUploaded saw
// its key, whether that came before or after the row got the key.
func TestUploaded(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c, err := OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		mk := func(id, bucket string) *File {
			f := &File{ID: id, TaskID: "t", Domain: "d", App: "a", Stream: "s", Format: "mp4", Start: now, Status: FileRecording, OssBucket: bucket}
			if err := c.CreateFile(ctx, f); err != nil {
				t.Fatal(err)
			}
			return f
		}
		done := func(f *File, key string) {
			f.Key, f.Status = key, FileDone
			if err := c.UpdateFile(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		uploaded := func(id string) bool {
			g, err := c.GetFile(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return g.Uploaded
		}
		local, early, late := mk("local", ""), mk("early", "b"), mk("late", "b")
		done(local, "k/local.mp4")
		if !uploaded("local") {
			t.Fatal("a done local file is not marked uploaded")
		}
		// The upload finishes before the row has its key.
		if err := c.MarkUploaded(ctx, "b", "k/early.mp4"); err != nil {
			t.Fatal(err)
		}
		done(early, "k/early.mp4")
		if !uploaded("early") {
			t.Fatal("an upload that beat the catalog update was lost")
		}
		done(late, "k/late.mp4")
		if uploaded("late") {
			t.Fatal("a bucket file is marked uploaded before its upload")
		}
		if err := c.MarkUploaded(ctx, "b", "k/late.mp4"); err != nil {
			t.Fatal(err)
		}
		if !uploaded("late") {
			t.Fatal("MarkUploaded did not flag the row")
		}
		if err := c.MarkUploaded(ctx, "other", "k/late.mp4"); err != nil || !uploaded("late") {
			t.Fatal("another bucket's key must not matter")
		}
	})
}

// TestUploadedConcurrent: the upload spool's MarkUploaded and the recorder's UpdateFile
// (which gives the row its key) run on different goroutines, in any interleaving of their
// statements: whichever comes first, the row ends up flagged. (MarkUploaded used to look
// for the row and, finding none, note the key afterwards: an UpdateFile in between found
// neither and the flag was lost.)
func TestUploadedConcurrent(t *testing.T) {
	ctx := context.Background()
	c, err := Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		f := &File{ID: fmt.Sprint("f", i), TaskID: "t", Domain: "d", App: "a", Stream: "s", Format: "mp4", Start: now, Status: FileRecording, OssBucket: "b"}
		if err := c.CreateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("k/%d.mp4", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			f.Key, f.Status = key, FileDone
			if err := c.UpdateFile(ctx, f); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := c.MarkUploaded(ctx, "b", key); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	lost := 0
	for i := range n {
		g, err := c.GetFile(ctx, fmt.Sprint("f", i))
		if err != nil {
			t.Fatal(err)
		}
		if !g.Uploaded {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d uploads lost in a race with the catalog update", lost, n)
	}
}

// TestUseNonce: a nonce is accepted once until it expires, also by a catalog reopened
// on the same file (a restart), and expired nonces are deleted.
func TestUseNonce(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c, err := OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		use := func(c *Catalog, key string, now time.Time) bool {
			t.Helper()
			ok, err := c.UseNonce(ctx, key, now, now.Add(30*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !use(c, "ak\x00n1", t0) || use(c, "ak\x00n1", t0.Add(time.Minute)) {
			t.Fatal("a nonce is accepted once")
		}
		if !use(c, "ak\x00n2", t0) {
			t.Fatal("another nonce is refused")
		}
		if !use(c, "ak\x00\xff\xfe", t0) || use(c, "ak\x00\xff\xfe", t0) { // not UTF-8: the client's bytes
			t.Fatal("a nonce of any bytes is accepted once")
		}
		c.Close()
		if c, err = OpenDriver(driver, dsn); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if use(c, "ak\x00n1", t0.Add(2*time.Minute)) {
			t.Fatal("a nonce used before the restart is accepted again")
		}
		if !use(c, "ak\x00n1", t0.Add(31*time.Minute)) {
			t.Fatal("an expired nonce is still refused")
		}
		var n int
		if err := c.DB().QueryRow(`SELECT count(*) FROM signature_nonces`).Scan(&n); err != nil || n != 1 {
			t.Errorf("%d nonces kept (%v), want 1 (n2 expired and deleted)", n, err)
		}
	})
}

func TestMain(m *testing.M) { testenv.Main(m) }

// The catalog written by livrec before versioned migrations (schematest.BeforeMigrations)
// opens with its task, file and rule readable as before.
func TestOpenCatalogFromBeforeMigrations(t *testing.T) {
	c, err := Open(schematest.BeforeMigrations(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if tk, err := c.GetTask(ctx, "task-1"); err != nil || tk.State != TaskRecording || !tk.StartedAt.Equal(t0) {
		t.Fatalf("task: %+v %v", tk, err)
	}
	f, err := c.GetFile(ctx, "file-1")
	if err != nil || f.Key != "live/s1/0.flv" || f.Status != FileDone || !f.Uploaded || f.Bytes != 1234567 || f.FrameRate != 29.97 ||
		f.Bitrate != 163000 || f.OssBucket != "rec" || !f.End.Equal(t0.Add(time.Minute)) {
		t.Fatalf("file: %+v %v", f, err)
	}
	if r, err := c.FindRule(ctx, "example.com", "live", "s1"); err != nil || r.Source != RuleSourceAPI {
		t.Fatalf("rule: %+v %v", r, err)
	}
	// The upload remembered before its row had the key still flags the row.
	late := &File{ID: "late", TaskID: "task-1", Domain: "example.com", App: "live", Stream: "s1", Format: "m3u8", Start: t0,
		Status: FileRecording, OssBucket: "rec"}
	if err := c.CreateFile(ctx, late); err != nil {
		t.Fatal(err)
	}
	late.Key, late.Status = "live/s1/later.m3u8", FileDone
	if err := c.UpdateFile(ctx, late); err != nil {
		t.Fatal(err)
	}
	if g, _ := c.GetFile(ctx, "late"); g == nil || !g.Uploaded {
		t.Fatalf("late file: %+v", g)
	}
}
