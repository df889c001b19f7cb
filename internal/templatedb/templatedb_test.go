package templatedb

import (
	"context"
	"errors"
	"log/slog"
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
