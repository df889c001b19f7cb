package templatedb

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/testenv"
	"github.com/livrec/livrec/internal/transcode"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestStoreRoundTrip: a custom template and a system binding (with the Lazy flag) are
// stored, updated, found again by a store on the reopened catalog and deleted, on both
// catalog drivers.
func TestStoreRoundTrip(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		open := func() (*catalog.Catalog, *Store) {
			cat, err := catalog.OpenDriver(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(ctx, cat.DB(), nil, nil, slog.New(slog.DiscardHandler))
			if err != nil {
				cat.Close()
				t.Fatal(err)
			}
			return cat, s
		}
		cat, s := open()
		custom := Stored{Template: transcode.Template{DomainName: "A.example", AppName: "live", ID: "p480", Height: 480, VideoBitrate: 800}}
		if _, err := s.Create(ctx, custom); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, custom); !errors.Is(err, ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		sys := Stored{Template: transcode.Template{DomainName: "a.example", AppName: "live", ID: "lsd"}, Kind: KindSystem, Lazy: true}
		if _, err := s.Create(ctx, sys); err != nil {
			t.Fatal(err)
		}
		custom.Height, custom.Lazy = 540, true
		if _, err := s.Update(ctx, custom); err != nil {
			t.Fatal(err)
		}
		cat.Close()

		cat, s = open()
		defer cat.Close()
		got, err := s.Get(ctx, "a.example", "live", "p480")
		if err != nil || got.Height != 540 || !got.Lazy || got.Kind != KindCustom || got.Source != SourceAPI || got.CreatedAt.IsZero() {
			t.Fatalf("custom after reopen: %+v %v", got, err)
		}
		if got, err := s.Get(ctx, "a.example", "live", "lsd"); err != nil || !got.Lazy || got.Kind != KindSystem {
			t.Fatalf("system binding after reopen: %+v %v", got, err)
		}
		if l, ok := s.Library().Lookup("a.example", "live", "p480"); !ok || l.Height != 540 {
			t.Fatalf("library after reopen: %+v %v", l, ok)
		}
		if list, err := s.List(ctx, "a.example", ""); err != nil || len(list) != 6 { // 4 built-ins, p480, the binding
			t.Fatalf("list: %d %v", len(list), err)
		}
		if err := s.Delete(ctx, "a.example", "live", "p480"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "a.example", "live", "p480"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if _, err := s.Get(ctx, "a.example", "live", "p480"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
	})
}

// TestReload: a template created through another node's store (the same catalog)
// reaches this node's library and onChange at Reload, and its deletion too.
func TestReload(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		cat, err := catalog.OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer cat.Close()
		other, err := New(ctx, cat.DB(), nil, nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		var changed *transcode.Library
		s, err := New(ctx, cat.DB(), nil, func(l *transcode.Library) { changed = l }, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		has := func(l *transcode.Library) bool { return slices.Contains(l.IDs("a.example", "live"), "p480") }
		if _, err := other.Create(ctx, Stored{Template: transcode.Template{DomainName: "a.example", AppName: "live", ID: "p480", Height: 480, VideoBitrate: 800}}); err != nil {
			t.Fatal(err)
		}
		if has(s.Library()) {
			t.Fatal("the other store's template is known before Reload")
		}
		if err := s.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if !has(s.Library()) || changed == nil || !has(changed) {
			t.Fatalf("after Reload: library %v, onChange %v", s.Library().IDs("a.example", "live"), changed)
		}
		if err := other.Delete(ctx, "a.example", "live", "p480"); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(ctx); err != nil || has(s.Library()) {
			t.Fatalf("after the deletion and Reload: %v %v", s.Library().IDs("a.example", "live"), err)
		}
	})
}
