package ruledb

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/testenv"
)

func rule(domain, app, stream string, delay int) rules.Rule {
	return rules.Rule{DomainName: domain, AppName: app, StreamName: stream, DelayTime: delay,
		RecordFormats: []rules.RecordFormat{{Format: rules.FLV}}}
}

// TestStoreAcrossRestarts: config rules are merged at each start, API rules persist, the
// file wins a key clash with a warning, and every change publishes the whole set.
func TestStoreAcrossRestarts(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))

		start := func(cfg ...rules.Rule) (*catalog.Catalog, *Store, *[]*rules.Set) {
			t.Helper()
			cat, err := catalog.OpenDriver(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cat.Close() })
			var published []*rules.Set
			st := New(cat, func(s *rules.Set) { published = append(published, s) }, log)
			set, err := st.SyncConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(published) != 1 || published[0] != set {
				t.Fatalf("SyncConfig published %d sets", len(published))
			}
			return cat, st, &published
		}

		cat, st, pub := start(rule("a.com", "*", "*", 0))
		created, err := st.Create(ctx, &rules.Rule{DomainName: "a.com", AppName: "live",
			RecordFormats: []rules.RecordFormat{{Format: rules.MP4}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(*pub) != 2 || (*pub)[1].Len() != 2 {
			t.Fatalf("create did not publish the whole set: %d", len(*pub))
		}
		if m, _ := (*pub)[1].Match("a.com", "live", "x"); m.RecordFormats[0].Format != rules.MP4 {
			t.Fatalf("published set does not match the new rule: %+v", m)
		}
		// A failed change publishes nothing.
		if _, err := st.Create(ctx, &rules.Rule{DomainName: "a.com", AppName: "live",
			RecordFormats: []rules.RecordFormat{{Format: rules.FLV}}}); !errors.Is(err, catalog.ErrRuleExists) {
			t.Fatalf("duplicate: %v", err)
		}
		if err := st.Delete(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("delete unknown: %v", err)
		}
		if len(*pub) != 2 {
			t.Fatalf("failed changes published: %d", len(*pub))
		}
		cat.Close()

		// Restart: the config file now also has the API rule's key → the file wins, warned.
		logs.Reset()
		_, st, pub = start(rule("a.com", "*", "*", 0), rule("a.com", "live", "*", 60))
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), created.ID) {
			t.Fatalf("no warning for the overridden API rule:\n%s", logs.String())
		}
		set := (*pub)[0]
		if m, _ := set.Match("a.com", "live", "x"); m.DelayTime != 60 || m.RecordFormats[0].Format != rules.FLV {
			t.Fatalf("config rule did not win: %+v", m)
		}
		got, err := st.Get(ctx, created.ID)
		if err != nil || got.Source != catalog.RuleSourceConfig {
			t.Fatalf("overridden row: %+v %v", got, err)
		}
		// An API rule on another key survives the next restart.
		other, err := st.Create(ctx, &rules.Rule{DomainName: "b.com", AppName: "*",
			RecordFormats: []rules.RecordFormat{{Format: rules.M3U8}}})
		if err != nil {
			t.Fatal(err)
		}
		_, st, pub = start(rule("a.com", "*", "*", 0))
		if (*pub)[0].Len() != 2 {
			t.Fatalf("after restart: %d rules", (*pub)[0].Len())
		}
		if _, err := st.Get(ctx, other.ID); err != nil {
			t.Fatalf("API rule lost: %v", err)
		}
	})
}

func TestMain(m *testing.M) { testenv.Main(m) }
