package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/schema/schematest"
)

func openTemp(t *testing.T, driver, dsn string) *Catalog {
	t.Helper()
	c, err := OpenDriver(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rule(domain, app, stream string) *rules.Rule {
	return &rules.Rule{DomainName: domain, AppName: app, StreamName: stream,
		RecordFormats: []rules.RecordFormat{{Format: rules.M3U8}}}
}

func TestRuleCRUD(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c := openTemp(t, driver, dsn)

		sr, err := c.CreateRule(ctx, rule("Example.COM", "live", ""), RuleSourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		if sr.DomainName != "example.com" || sr.StreamName != "*" || sr.DelayTime != rules.DefaultDelayTime ||
			sr.RecordFormats[0].SliceDuration != rules.DefaultSliceDuration || sr.Source != RuleSourceAPI ||
			sr.CreatedAt.IsZero() || !sr.CreatedAt.Equal(sr.UpdatedAt) || len(sr.ID) != 36 {
			t.Fatalf("created rule not normalized: %+v", sr)
		}

		// Same key (domain compared case-insensitively, empty stream = "*") is a conflict.
		_, err = c.CreateRule(ctx, rule("example.com", "live", "*"), RuleSourceAPI)
		var ex *RuleExistsError
		if !errors.As(err, &ex) || ex.ID != sr.ID || !errors.Is(err, ErrRuleExists) {
			t.Fatalf("duplicate: got %v", err)
		}
		// Invalid rules are refused with ValidationErrors.
		bad := rule("example.com", "li*ve", "")
		if _, err := c.CreateRule(ctx, bad, RuleSourceAPI); !errors.As(err, new(rules.ValidationErrors)) {
			t.Fatalf("invalid rule: got %v", err)
		}
		if _, err := c.CreateRule(ctx, rule("a.com", "x", ""), "other"); err == nil {
			t.Fatal("bad source accepted")
		}

		got, err := c.GetRule(ctx, sr.ID)
		if err != nil || got.ID != sr.ID || got.AppName != "live" || !got.CreatedAt.Equal(sr.CreatedAt) {
			t.Fatalf("get: %+v %v", got, err)
		}

		other, err := c.CreateRule(ctx, rule("example.com", "live", "cam1"), RuleSourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		// Changing other's key onto sr's is a conflict; onto a free key works.
		if _, err := c.UpdateRule(ctx, other.ID, rule("example.com", "live", ""), RuleSourceAPI); !errors.Is(err, ErrRuleExists) {
			t.Fatalf("update to taken key: %v", err)
		}
		up, err := c.UpdateRule(ctx, other.ID, rule("example.com", "live", "cam2"), RuleSourceAPI)
		if err != nil || up.StreamName != "cam2" || !up.CreatedAt.Equal(other.CreatedAt) || up.UpdatedAt.Before(other.UpdatedAt) {
			t.Fatalf("update: %+v %v", up, err)
		}
		// Updating a rule to its own key is fine.
		if _, err := c.UpdateRule(ctx, other.ID, rule("example.com", "live", "cam2"), RuleSourceAPI); err != nil {
			t.Fatalf("update same key: %v", err)
		}
		if _, err := c.UpdateRule(ctx, "nope", rule("a.com", "x", ""), RuleSourceAPI); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update unknown: %v", err)
		}

		// Reopen: rules survive.
		c.Close()
		c2, err := OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		all, err := c2.AllRules(ctx)
		if err != nil || len(all) != 2 || all[0].ID != sr.ID || all[1].StreamName != "cam2" {
			t.Fatalf("after reopen: %+v %v", all, err)
		}
		set, err := c2.RuleSet(ctx)
		if err != nil || set.Len() != 2 {
			t.Fatalf("set: %v %v", set, err)
		}
		if m, ok := set.Match("example.com", "live", "cam2"); !ok || m.StreamName != "cam2" {
			t.Fatalf("match: %+v", m)
		}

		if err := c2.DeleteRule(ctx, sr.ID); err != nil {
			t.Fatal(err)
		}
		if err := c2.DeleteRule(ctx, sr.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		if _, err := c2.GetRule(ctx, sr.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get deleted: %v", err)
		}
	})
}

func TestListRules(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c := openTemp(t, driver, dsn)
		for i := range 25 {
			d := "a.com"
			if i%5 == 0 {
				d = "b.com"
			}
			if _, err := c.CreateRule(ctx, rule(d, "live", "s"+string(rune('a'+i))), RuleSourceAPI); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.CreateRule(ctx, rule("a.com", "other", ""), RuleSourceAPI); err != nil {
			t.Fatal(err)
		}
		page, total, err := c.ListRules(ctx, RuleQuery{Offset: 20, Limit: 10})
		if err != nil || total != 26 || len(page) != 6 || page[0].StreamName != "su" {
			t.Fatalf("page 3: %d %d %v", len(page), total, err)
		}
		page, total, _ = c.ListRules(ctx, RuleQuery{Domain: "B.COM"})
		if total != 5 || len(page) != 5 {
			t.Fatalf("domain filter: %d %d", len(page), total)
		}
		page, total, _ = c.ListRules(ctx, RuleQuery{Domain: "a.com", App: "other"})
		if total != 1 || len(page) != 1 || page[0].StreamName != "*" {
			t.Fatalf("domain+app filter: %+v %d", page, total)
		}
		page, total, _ = c.ListRules(ctx, RuleQuery{Offset: 100, Limit: 10})
		if total != 26 || page == nil || len(page) != 0 {
			t.Fatalf("past the end: %v %d", page, total)
		}
	})
}

func TestSyncConfigRules(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c := openTemp(t, driver, dsn)

		a, b := *rule("a.com", "live", ""), *rule("b.com", "live", "")
		res, err := c.SyncConfigRules(ctx, []rules.Rule{a, b})
		if err != nil || len(res.Added) != 2 || len(res.Updated)+len(res.Overridden)+len(res.Removed) != 0 {
			t.Fatalf("first start: %+v %v", res, err)
		}
		ids := map[string]string{}
		for _, r := range res.Added {
			ids[r.DomainName] = r.ID
		}
		// Same file again: nothing changes.
		if res, err := c.SyncConfigRules(ctx, []rules.Rule{a, b}); err != nil || len(res.Added)+len(res.Updated)+len(res.Overridden)+len(res.Removed) != 0 {
			t.Fatalf("unchanged start: %+v %v", res, err)
		}

		// Through the API: a new rule, and b edited (it becomes an API rule).
		apiRule, err := c.CreateRule(ctx, rule("c.com", "live", ""), RuleSourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		b2 := *rule("b.com", "live", "")
		b2.DelayTime = 60
		if _, err := c.UpdateRule(ctx, ids["b.com"], &b2, RuleSourceAPI); err != nil {
			t.Fatal(err)
		}
		c.Close()

		// Restart with a changed a and the original b: a is updated in place, b overridden
		// by the file (warning), the API rule stays.
		c, err = OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		a2 := *rule("a.com", "live", "")
		a2.OnDemand = rules.OnDemandManual
		res, err = c.SyncConfigRules(ctx, []rules.Rule{a2, b})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Updated) != 1 || res.Updated[0].ID != ids["a.com"] || len(res.Overridden) != 1 ||
			res.Overridden[0].ID != ids["b.com"] || res.Overridden[0].DelayTime != 60 || len(res.Added)+len(res.Removed) != 0 {
			t.Fatalf("restart: %+v", res)
		}
		gotB, _ := c.GetRule(ctx, ids["b.com"])
		if gotB.DelayTime != rules.DefaultDelayTime || gotB.Source != RuleSourceConfig {
			t.Fatalf("b not restored from the file: %+v", gotB)
		}
		gotA, _ := c.GetRule(ctx, ids["a.com"])
		if gotA.OnDemand != rules.OnDemandManual || gotA.Source != RuleSourceConfig {
			t.Fatalf("a not updated: %+v", gotA)
		}

		// A file that drops a removes it; the API rule persists.
		res, err = c.SyncConfigRules(ctx, []rules.Rule{b})
		if err != nil || len(res.Removed) != 1 || res.Removed[0].ID != ids["a.com"] {
			t.Fatalf("removal: %+v %v", res, err)
		}
		all, _ := c.AllRules(ctx)
		if len(all) != 2 || all[0].ID != ids["b.com"] || all[1].ID != apiRule.ID || all[1].Source != RuleSourceAPI {
			t.Fatalf("after removal: %+v", all)
		}

		// An invalid or duplicated config is refused without changes.
		if _, err := c.SyncConfigRules(ctx, []rules.Rule{b, b}); err == nil {
			t.Fatal("duplicate config rules accepted")
		}
		if all2, _ := c.AllRules(ctx); len(all2) != 2 {
			t.Fatalf("failed sync changed rules: %+v", all2)
		}
	})
}

func TestFindRuleAndFilters(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c := openTemp(t, driver, dsn)
		a, err := c.CreateRule(ctx, rule("example.com", "live", ""), RuleSourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.CreateRule(ctx, rule("example.com", "live", "cam"), RuleSourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			domain, app, stream, want string
		}{{"Example.com", "live", "", a.ID}, {"example.com", "live", "*", a.ID}, {"example.com", "live", "cam", b.ID}} {
			got, err := c.FindRule(ctx, tc.domain, tc.app, tc.stream)
			if err != nil || got.ID != tc.want {
				t.Errorf("FindRule(%q, %q, %q) = %v, %v; want %s", tc.domain, tc.app, tc.stream, got, err, tc.want)
			}
		}
		if _, err := c.FindRule(ctx, "example.com", "other", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("FindRule of a missing key: %v", err)
		}
		rs, total, err := c.ListRules(ctx, RuleQuery{Domain: "example.com", Stream: "cam"})
		if err != nil || total != 1 || len(rs) != 1 || rs[0].ID != b.ID {
			t.Errorf("Stream filter: %v %d %v", rs, total, err)
		}
		rs, _, err = c.ListRules(ctx, RuleQuery{Desc: true})
		if err != nil || len(rs) != 2 || rs[0].ID != b.ID {
			t.Errorf("Desc: %v %v", rs, err)
		}
	})
}
