// Package ruledb is the single place where livrec's recording rules change: it stores
// them in the catalog (table rules) and, after every successful change, rebuilds the
// rules.Set from the database and hands it to OnChange (wired to record.Manager.SetRules,
// so a change applies from the next push while a live task keeps its rule).
//
// Config-file rules are merged at start by SyncConfig: they are upserted with source
// "config", config rows no longer in the file are deleted, rules created through the API
// (source "api") persist, and when both have the same (domainName, appName, streamName)
// the config file wins with a warning. See catalog.SyncConfigRules.
package ruledb

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/rules"
)

// changeMu serializes "change the rules table, rebuild the set, call OnChange" across all
// Stores of the process, so sets are published in the order of the changes even if two
// Stores share a catalog.
var changeMu sync.Mutex

// Store changes rules and publishes the new set.
type Store struct {
	cat       *catalog.Catalog
	onChange  func(*rules.Set)
	log       *slog.Logger
	endpoints []string
	groups    func(id string) bool
	defined   func(domain, app, id string) bool
}

// Templates sets how Create and Update learn whether a rule's transcodeTemplates exist
// for its domain and app (templatedb.Store.Defined) and returns s. A rule naming an
// unknown template is refused with a rules.ValidationError on "transcodeTemplates[i]".
// Without it every valid ID is accepted (an unknown one is reported at the push).
func (s *Store) Templates(defined func(domain, app, id string) bool) *Store {
	s.defined = defined
	return s
}

// New returns a Store on cat. onChange (may be nil) receives the complete new rule set
// after every successful change, including SyncConfig; log may be nil.
func New(cat *catalog.Catalog, onChange func(*rules.Set), log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{cat: cat, onChange: onChange, log: log}
}

// Endpoints sets the object-storage endpoints a rule may name with ossEndpoint (those
// under s3: in the config file) and returns s. Create and Update refuse a rule naming
// another one, with a rules.ValidationError on "ossEndpoint"; SyncConfig warns about
// stored rules that name one no longer configured. Without it no endpoint is known.
func (s *Store) Endpoints(known []string) *Store {
	s.endpoints = known
	return s
}

// TranscodeGroups sets the test of the transcode group ids a VOD rule may name
// (vodTranscodeGroupId, composeVodTranscodeGroupId) and returns s. Without it only
// rules.NoTranscodeGroup is known.
func (s *Store) TranscodeGroups(known func(id string) bool) *Store {
	s.groups = known
	return s
}

// checkEndpoint refuses a valid rule whose ossEndpoint is not configured, a VOD rule
// naming an unknown transcode group, or a rule naming unknown transcodeTemplates (an invalid rule is left to the catalog, whose
// validation reports every problem).
func (s *Store) checkEndpoint(r *rules.Rule) error {
	n := r.Clone()
	n.Normalize()
	if n.Validate() != nil {
		return nil
	}
	var es rules.ValidationErrors
	if err := rules.CheckKnownEndpoint(n.OssEndpoint, s.endpoints); err != nil {
		field := "ossEndpoint"
		if n.IsVod() {
			field = "vod.storageLocation"
		}
		es = append(es, &rules.ValidationError{Field: field, Msg: err.Error()})
	}
	if n.IsVod() {
		known := s.groups
		if known == nil {
			known = func(id string) bool { return id == rules.NoTranscodeGroup }
		}
		for _, g := range []struct{ field, id string }{
			{"vod.vodTranscodeGroupId", n.Vod.TranscodeGroupID}, {"vod.composeVodTranscodeGroupId", n.Vod.ComposeTranscodeGroupID},
		} {
			if g.id != "" && !known(g.id) {
				es = append(es, &rules.ValidationError{Field: g.field, Msg: fmt.Sprintf("%q is not a known transcode group (%q keeps the original only)", g.id, rules.NoTranscodeGroup)})
			}
		}
	}
	for i, id := range n.TranscodeTemplates {
		if s.defined != nil && id != rules.AllTemplates && !s.defined(n.DomainName, n.AppName, id) {
			es = append(es, &rules.ValidationError{Field: fmt.Sprintf("transcodeTemplates[%d]", i),
				Msg: fmt.Sprintf("%q is neither a built-in template (%s) nor a custom template of domainName %q, appName %q",
					id, strings.Join(rules.BuiltinTemplates, ", "), n.DomainName, n.AppName)})
		}
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// SyncConfig merges the config file's rules into the catalog (see the package comment),
// logs what changed and returns the resulting set (also passed to OnChange). Call it once
// at start, before the recorder takes pushes.
func (s *Store) SyncConfig(ctx context.Context, cfg []rules.Rule) (*rules.Set, error) {
	changeMu.Lock()
	defer changeMu.Unlock()
	res, err := s.cat.SyncConfigRules(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("rules: merging the config file's rules into the catalog: %w", err)
	}
	for _, r := range res.Overridden {
		s.log.Warn("config file rule replaces a rule set through the API with the same key",
			"id", r.ID, "domainName", r.DomainName, "appName", r.AppName, "streamName", r.StreamName, "apiUpdatedAt", r.UpdatedAt)
	}
	for _, r := range res.Added {
		s.log.Info("rule added from the config file", "id", r.ID, "domainName", r.DomainName, "appName", r.AppName, "streamName", r.StreamName)
	}
	for _, r := range res.Updated {
		s.log.Info("rule updated from the config file", "id", r.ID, "domainName", r.DomainName, "appName", r.AppName, "streamName", r.StreamName)
	}
	for _, r := range res.Removed {
		s.log.Info("rule removed: no longer in the config file", "id", r.ID, "domainName", r.DomainName, "appName", r.AppName, "streamName", r.StreamName)
	}
	s.warnUnknownEndpoints(ctx)
	return s.publish(ctx)
}

// warnUnknownEndpoints names the stored rules whose ossEndpoint is no longer configured
// (removed from s3: while rules set through the API still use it): their pushes cannot
// be recorded, and each raises a record_error.
func (s *Store) warnUnknownEndpoints(ctx context.Context) {
	rs, _, err := s.cat.ListRules(ctx, catalog.RuleQuery{})
	if err != nil {
		s.log.Error("rules: cannot list the stored rules", "err", err)
		return
	}
	for _, r := range rs {
		if err := rules.CheckKnownEndpoint(r.OssEndpoint, s.endpoints); err != nil {
			s.log.Warn("rule names object storage that is not configured: its pushes will not be recorded",
				"id", r.ID, "domainName", r.DomainName, "appName", r.AppName, "streamName", r.StreamName,
				"ossEndpoint", r.OssEndpoint, "problem", err.Error())
		}
	}
}

// Create stores a new rule (source "api"). Errors: rules.ValidationErrors,
// *catalog.RuleExistsError, or a failure to store or apply it.
func (s *Store) Create(ctx context.Context, r *rules.Rule) (*catalog.StoredRule, error) {
	if err := s.checkEndpoint(r); err != nil {
		return nil, err
	}
	changeMu.Lock()
	defer changeMu.Unlock()
	sr, err := s.cat.CreateRule(ctx, r, catalog.RuleSourceAPI)
	if err != nil {
		return nil, err
	}
	s.log.Info("rule created", "id", sr.ID, "domainName", sr.DomainName, "appName", sr.AppName, "streamName", sr.StreamName)
	if _, err := s.publish(ctx); err != nil {
		return sr, err
	}
	return sr, nil
}

// Update replaces a rule (source becomes "api"). Errors: catalog.ErrNotFound,
// rules.ValidationErrors, *catalog.RuleExistsError, or a failure to store or apply it.
func (s *Store) Update(ctx context.Context, id string, r *rules.Rule) (*catalog.StoredRule, error) {
	if err := s.checkEndpoint(r); err != nil {
		return nil, err
	}
	changeMu.Lock()
	defer changeMu.Unlock()
	sr, err := s.cat.UpdateRule(ctx, id, r, catalog.RuleSourceAPI)
	if err != nil {
		return nil, err
	}
	s.log.Info("rule updated", "id", sr.ID, "domainName", sr.DomainName, "appName", sr.AppName, "streamName", sr.StreamName)
	if _, err := s.publish(ctx); err != nil {
		return sr, err
	}
	return sr, nil
}

// Delete deletes a rule. Errors: catalog.ErrNotFound, or a failure to delete or apply.
func (s *Store) Delete(ctx context.Context, id string) error {
	changeMu.Lock()
	defer changeMu.Unlock()
	if err := s.cat.DeleteRule(ctx, id); err != nil {
		return err
	}
	s.log.Info("rule deleted", "id", id)
	_, err := s.publish(ctx)
	return err
}

// Get returns one rule or catalog.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*catalog.StoredRule, error) {
	return s.cat.GetRule(ctx, id)
}

// Find returns the rule with the key (domain, app, stream) or catalog.ErrNotFound; an
// empty stream means "*".
func (s *Store) Find(ctx context.Context, domain, app, stream string) (*catalog.StoredRule, error) {
	return s.cat.FindRule(ctx, domain, app, stream)
}

// List returns a page of rules and the total number matching q.
func (s *Store) List(ctx context.Context, q catalog.RuleQuery) ([]catalog.StoredRule, int, error) {
	return s.cat.ListRules(ctx, q)
}

// Set returns the current rule set as stored.
func (s *Store) Set(ctx context.Context) (*rules.Set, error) { return s.cat.RuleSet(ctx) }

// Reload rebuilds the set from the catalog and passes it to onChange: in a cluster,
// another node's API may have changed the rules.
func (s *Store) Reload(ctx context.Context) (*rules.Set, error) {
	changeMu.Lock()
	defer changeMu.Unlock()
	return s.publish(ctx)
}

// publish rebuilds the set and calls onChange. The change is committed by now, so a
// cancelled request must not stop it from being applied.
func (s *Store) publish(ctx context.Context) (*rules.Set, error) {
	set, err := s.cat.RuleSet(context.WithoutCancel(ctx))
	if err != nil {
		s.log.Error("rules changed in the catalog but the new set could not be built; the recorder keeps the previous rules", "err", err)
		return nil, fmt.Errorf("rules stored but not applied: %w", err)
	}
	if s.onChange != nil {
		s.onChange(set)
	}
	return set, nil
}
