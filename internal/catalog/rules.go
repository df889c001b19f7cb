package catalog

// Recording rules in the catalog. Each row is one normalized, validated rules.Rule keyed by
// (domain, app, stream), with where it came from: the config file or the HTTP API.
//
// Config-file rules and API rules across restarts (SyncConfigRules):
//   - at every start the config file's rules are upserted with source "config";
//   - a "config" row whose key is no longer in the file is deleted, so removing a rule from
//     the file removes it;
//   - "api" rows persist across restarts;
//   - when a key is in the file and also held by an "api" row (created through the API, or
//     a config rule edited through the API), the file wins: the row is overwritten and
//     becomes "config" again, and the caller logs a warning.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/schema"
)

// Rule sources.
const (
	RuleSourceConfig = "config" // from the config file, rewritten at every start
	RuleSourceAPI    = "api"    // created or last changed through the API
)

// StoredRule is a rule as stored: the normalized rule with its id, source and times. Its
// JSON form is the rule's fields plus id, source, createdAt and updatedAt.
type StoredRule struct {
	ID string `json:"id"`
	rules.Rule
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ErrRuleExists is matched (errors.Is) by a *RuleExistsError.
var ErrRuleExists = errors.New("rule exists")

// RuleExistsError reports that another rule already has the (domainName, appName,
// streamName) of the rule being stored.
type RuleExistsError struct {
	ID                              string // the existing rule; "" if unknown
	DomainName, AppName, StreamName string
	// Mode is the existing rule's mode ("storage" or "VOD", rules.Rule.Mode) when it
	// differs from the rule being stored's, else "".
	Mode string
}

func (e *RuleExistsError) Error() string {
	kind := "a rule"
	if e.Mode != "" {
		kind = "a " + e.Mode + " rule"
	}
	s := fmt.Sprintf("%s for domainName %q, appName %q, streamName %q already exists", kind, e.DomainName, e.AppName, e.StreamName)
	if e.ID != "" {
		s += " (id " + e.ID + ")"
	}
	if e.Mode != "" {
		s += ": a stream key is recorded either to storage or to the VOD library, not both"
	}
	return s
}

// Is makes errors.Is(err, ErrRuleExists) true.
func (e *RuleExistsError) Is(target error) bool { return target == ErrRuleExists }

// prepareRule returns a normalized copy of r and its JSON, or the rules.ValidationErrors.
func prepareRule(r *rules.Rule) (*rules.Rule, []byte, error) {
	n := r.Clone()
	n.Normalize()
	if err := n.Validate(); err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(n)
	if err != nil {
		return nil, nil, err
	}
	return n, b, nil
}

func validSource(s string) error {
	if s != RuleSourceConfig && s != RuleSourceAPI {
		return fmt.Errorf("catalog: rule source %q is not %q or %q", s, RuleSourceConfig, RuleSourceAPI)
	}
	return nil
}

// nowMS is the current time at the catalog's millisecond resolution.
func nowMS() time.Time { return time.UnixMilli(time.Now().UnixMilli()).UTC() }

// inTx runs fn in a transaction that no other change of the rules runs beside: on SQLite
// the catalog has one connection; on PostgreSQL, which other nodes share, the table is
// locked against writers (readers go on), so the clash checks see every committed rule.
func (c *Catalog) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if c.driver == schema.Postgres {
		if _, err := tx.ExecContext(ctx, `LOCK TABLE rules IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const ruleCols = `id,rule,source,created_at,updated_at`

func queryRules(ctx context.Context, q querier, query string, args ...any) ([]StoredRule, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []StoredRule{}
	for rows.Next() {
		var sr StoredRule
		var js string
		var cr, up int64
		if err := rows.Scan(&sr.ID, &js, &sr.Source, &cr, &up); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(js), &sr.Rule); err != nil {
			return nil, fmt.Errorf("catalog: rule %s: %w", sr.ID, err)
		}
		sr.CreatedAt, sr.UpdatedAt = FromMS(cr), FromMS(up)
		out = append(out, sr)
	}
	return out, rows.Err()
}

// clash returns a *RuleExistsError if a rule other than id has r's key.
func clash(ctx context.Context, tx *sql.Tx, r *rules.Rule, id string) error {
	var other, js string
	err := tx.QueryRowContext(ctx, `SELECT id, rule FROM rules WHERE domain=$1 AND app=$2 AND stream=$3 AND id<>$4`,
		r.DomainName, r.AppName, r.StreamName, id).Scan(&other, &js)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	e := &RuleExistsError{ID: other, DomainName: r.DomainName, AppName: r.AppName, StreamName: r.StreamName}
	var old rules.Rule
	if json.Unmarshal([]byte(js), &old) == nil && old.IsVod() != r.IsVod() {
		e.Mode = old.Mode()
	}
	return e
}

// uniqueViolation maps a UNIQUE constraint failure (a race the pre-check missed, e.g.
// another process on the same file) to a RuleExistsError.
func uniqueViolation(err error, r *rules.Rule) error {
	if schema.IsUniqueViolation(err) {
		return &RuleExistsError{DomainName: r.DomainName, AppName: r.AppName, StreamName: r.StreamName}
	}
	return err
}

// CreateRule normalizes and validates r and stores it with a new id. An invalid rule gives
// rules.ValidationErrors; a rule whose key is taken gives a *RuleExistsError.
func (c *Catalog) CreateRule(ctx context.Context, r *rules.Rule, source string) (*StoredRule, error) {
	if err := validSource(source); err != nil {
		return nil, err
	}
	n, js, err := prepareRule(r)
	if err != nil {
		return nil, err
	}
	now := nowMS()
	sr := &StoredRule{ID: uuid.NewString(), Rule: *n, Source: source, CreatedAt: now, UpdatedAt: now}
	err = c.inTx(ctx, func(tx *sql.Tx) error {
		if err := clash(ctx, tx, n, ""); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO rules(id,domain,app,stream,rule,source,created_at,updated_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8)`,
			sr.ID, n.DomainName, n.AppName, n.StreamName, string(js), source, MS(now), MS(now))
		return uniqueViolation(err, n)
	})
	if err != nil {
		return nil, err
	}
	return sr, nil
}

// UpdateRule replaces the rule with the given id by r (normalized and validated), which
// may change its key, and sets its source. Errors: ErrNotFound, rules.ValidationErrors,
// *RuleExistsError.
func (c *Catalog) UpdateRule(ctx context.Context, id string, r *rules.Rule, source string) (*StoredRule, error) {
	if err := validSource(source); err != nil {
		return nil, err
	}
	n, js, err := prepareRule(r)
	if err != nil {
		return nil, err
	}
	var out *StoredRule
	err = c.inTx(ctx, func(tx *sql.Tx) error {
		old, err := queryRules(ctx, tx, `SELECT `+ruleCols+` FROM rules WHERE id=$1`, id)
		if err != nil {
			return err
		}
		if len(old) == 0 {
			return ErrNotFound
		}
		if err := clash(ctx, tx, n, id); err != nil {
			return err
		}
		now := nowMS()
		if _, err := tx.ExecContext(ctx, `UPDATE rules SET domain=$1, app=$2, stream=$3, rule=$4, source=$5, updated_at=$6 WHERE id=$7`,
			n.DomainName, n.AppName, n.StreamName, string(js), source, MS(now), id); err != nil {
			return uniqueViolation(err, n)
		}
		out = &StoredRule{ID: id, Rule: *n, Source: source, CreatedAt: old[0].CreatedAt, UpdatedAt: now}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetRule returns the rule with the given id, or ErrNotFound.
func (c *Catalog) GetRule(ctx context.Context, id string) (*StoredRule, error) {
	rs, err := queryRules(ctx, c.db, `SELECT `+ruleCols+` FROM rules WHERE id=$1`, id)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, ErrNotFound
	}
	return &rs[0], nil
}

// DeleteRule deletes the rule with the given id, or returns ErrNotFound.
func (c *Catalog) DeleteRule(ctx context.Context, id string) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM rules WHERE id=$1`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RuleQuery selects rules; empty Domain and App do not filter. Domain is compared
// case-insensitively, App exactly ("*" selects the rules whose appName is "*").
type RuleQuery struct {
	Domain, App   string
	Stream        string // exact ("*" selects the rules for every stream); "" does not filter
	Offset, Limit int    // Limit <= 0: no limit
	Desc          bool   // newest first
	Vod           int    // AnyMode, OnlyVod or OnlyStorage
}

// Modes of RuleQuery.Vod.
const (
	AnyMode     = 0
	OnlyVod     = 1 // rules with vod settings (rules.Rule.IsVod)
	OnlyStorage = 2
)

// ListRules returns a page of the rules matching q, oldest first, and the number of all
// matching rules.
func (c *Catalog) ListRules(ctx context.Context, q RuleQuery) ([]StoredRule, int, error) {
	var w Where
	w.Eq("domain", strings.ToLower(q.Domain))
	w.Eq("app", q.App)
	w.Eq("stream", q.Stream)
	switch q.Vod {
	case OnlyVod:
		w.Add(c.hasVod(true))
	case OnlyStorage:
		w.Add(c.hasVod(false))
	}
	cond := w.SQL()
	var total int
	if err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM rules`+cond, w.Args()...).Scan(&total); err != nil {
		return nil, 0, err
	}
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = math.MaxInt64 // no limit (SQLite has no OFFSET without LIMIT)
	}
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	// Rules created in one millisecond keep their insertion order: SQLite's rowid,
	// PostgreSQL's identity column seq.
	inserted := "rowid"
	if c.driver == schema.Postgres {
		inserted = "seq"
	}
	page := ` LIMIT ` + w.Arg(limit) + ` OFFSET ` + w.Arg(max(q.Offset, 0))
	rs, err := queryRules(ctx, c.db, `SELECT `+ruleCols+` FROM rules`+cond+` ORDER BY created_at `+order+`, `+inserted+` `+order+page,
		w.Args()...)
	if err != nil {
		return nil, 0, err
	}
	return rs, total, nil
}

// FindRule returns the rule with the key (domain, app, stream), or ErrNotFound. The key is
// compared as stored: domain in lower case, an empty stream means "*".
func (c *Catalog) FindRule(ctx context.Context, domain, app, stream string) (*StoredRule, error) {
	if stream == "" {
		stream = rules.Wildcard
	}
	rs, err := queryRules(ctx, c.db, `SELECT `+ruleCols+` FROM rules WHERE domain=$1 AND app=$2 AND stream=$3`,
		strings.ToLower(domain), app, stream)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, ErrNotFound
	}
	return &rs[0], nil
}

// AllRules returns every stored rule, oldest first.
func (c *Catalog) AllRules(ctx context.Context) ([]StoredRule, error) {
	rs, _, err := c.ListRules(ctx, RuleQuery{})
	return rs, err
}

// RuleSet builds a rules.Set from every stored rule.
func (c *Catalog) RuleSet(ctx context.Context) (*rules.Set, error) {
	rs, err := c.AllRules(ctx)
	if err != nil {
		return nil, err
	}
	plain := make([]rules.Rule, len(rs))
	for i := range rs {
		plain[i] = rs[i].Rule
	}
	set, err := rules.NewSet(plain)
	if err != nil {
		return nil, fmt.Errorf("catalog: stored rules: %w", err)
	}
	return set, nil
}

// RuleSync says what SyncConfigRules changed.
type RuleSync struct {
	Added      []StoredRule // config rules that were not stored
	Updated    []StoredRule // stored "config" rules whose content changed
	Overridden []StoredRule // "api" rows replaced by the config file's rule for the same key (as they were before)
	Removed    []StoredRule // "config" rows whose key is no longer in the file
}

// SyncConfigRules makes the stored "config" rules equal to the config file's rules (see
// the top of this file) in one transaction. cfg must have distinct keys; each rule is
// normalized and validated.
func (c *Catalog) SyncConfigRules(ctx context.Context, cfg []rules.Rule) (RuleSync, error) {
	var res RuleSync
	if _, err := rules.NewSet(cfg); err != nil {
		var ves rules.ValidationErrors
		if errors.As(err, &ves) {
			return res, ves.Prefix("rules")
		}
		return res, err
	}
	type k struct{ d, a, s string }
	err := c.inTx(ctx, func(tx *sql.Tx) error {
		stored, err := queryRules(ctx, tx, `SELECT `+ruleCols+` FROM rules`)
		if err != nil {
			return err
		}
		byKey := map[k]*StoredRule{}
		for i := range stored {
			r := &stored[i]
			byKey[k{r.DomainName, r.AppName, r.StreamName}] = r
		}
		now := nowMS()
		inFile := map[k]bool{}
		for i := range cfg {
			n, js, err := prepareRule(&cfg[i])
			if err != nil {
				return err
			}
			key := k{n.DomainName, n.AppName, n.StreamName}
			inFile[key] = true
			old := byKey[key]
			if old == nil {
				sr := StoredRule{ID: uuid.NewString(), Rule: *n, Source: RuleSourceConfig, CreatedAt: now, UpdatedAt: now}
				if _, err := tx.ExecContext(ctx, `INSERT INTO rules(id,domain,app,stream,rule,source,created_at,updated_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8)`,
					sr.ID, n.DomainName, n.AppName, n.StreamName, string(js), sr.Source, MS(now), MS(now)); err != nil {
					return err
				}
				res.Added = append(res.Added, sr)
				continue
			}
			oldJS, err := json.Marshal(&old.Rule)
			if err != nil {
				return err
			}
			if old.Source == RuleSourceConfig && string(oldJS) == string(js) {
				continue // unchanged
			}
			if _, err := tx.ExecContext(ctx, `UPDATE rules SET rule=$1, source=$2, updated_at=$3 WHERE id=$4`,
				string(js), RuleSourceConfig, MS(now), old.ID); err != nil {
				return err
			}
			if old.Source == RuleSourceAPI {
				res.Overridden = append(res.Overridden, *old)
			} else {
				res.Updated = append(res.Updated, StoredRule{ID: old.ID, Rule: *n, Source: RuleSourceConfig, CreatedAt: old.CreatedAt, UpdatedAt: now})
			}
		}
		for _, r := range stored {
			if r.Source == RuleSourceConfig && !inFile[k{r.DomainName, r.AppName, r.StreamName}] {
				if _, err := tx.ExecContext(ctx, `DELETE FROM rules WHERE id=$1`, r.ID); err != nil {
					return err
				}
				res.Removed = append(res.Removed, r)
			}
		}
		return nil
	})
	if err != nil {
		return RuleSync{}, err
	}
	return res, nil
}

// hasVod is the condition "the rule is (is not) a VOD rule": its JSON has a vod object.
// The rule column is TEXT on both drivers; each has its own JSON functions.
func (c *Catalog) hasVod(vod bool) string {
	is := "IS NOT NULL"
	if !vod {
		is = "IS NULL"
	}
	if c.driver == schema.Postgres {
		return "(rule::jsonb->'vod') " + is
	}
	return "json_extract(rule,'$.vod') " + is
}
