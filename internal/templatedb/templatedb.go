// Package templatedb is the single place where live transcode templates change: the
// templates set through the APIs are stored in the catalog (table transcode_templates)
// and, after every change, the templates of the config file plus the stored ones become a
// new transcode.Library handed to OnChange (the transcoder: a change applies from the
// next publish; a running ffmpeg keeps the templates it started with).
//
// Config-file templates are not stored: they are read at every start and cannot be
// changed or deleted through the APIs. A stored template with the (domainName, appName,
// id) of a config-file template is shadowed by it (with a warning at start).
//
// Two kinds of rows: "custom" templates with their own parameters, and "system" rows
// binding a built-in template (lld, lsd, lhd, lud) to a domain and app, as the cloud's
// AddLiveStreamTranscode does. Built-ins apply everywhere without a binding; the binding
// only keeps the cloud's Lazy flag for DescribeLiveStreamTranscodeInfo.
package templatedb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/transcode"
)

// Kinds and sources of templates.
const (
	KindCustom = "custom"
	KindSystem = "system"

	SourceConfig  = "config"  // the config file's transcodeTemplates
	SourceAPI     = "api"     // set through the JSON or the cloud-compatible API
	SourceBuiltin = "builtin" // lld, lsd, lhd, lud (listed, never stored)
)

// Stored is a template as listed: the normalized template with its kind, the cloud's
// Lazy flag, where it comes from and its times (zero for config and built-in ones).
type Stored struct {
	transcode.Template
	Kind      string    `json:"kind"`
	Lazy      bool      `json:"lazy"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Errors of the Store (besides rules.ValidationErrors).
var (
	ErrNotFound = errors.New("template not found")
	ErrExists   = errors.New("template exists")
	ErrConfig   = errors.New("template is defined in the config file")
)

// Store changes templates and publishes the library.
type Store struct {
	db       *sql.DB
	config   []transcode.Template // normalized
	onChange func(*transcode.Library)
	log      *slog.Logger

	mu  sync.Mutex // serializes "change the table, rebuild, publish"
	lib atomic.Pointer[transcode.Library]
}

// New opens the store on the catalog's database, checks the config file's templates
// (errors carry their index, "[1].height") and builds the first library, which it hands
// to onChange (may be nil) and returns through Library.
func New(ctx context.Context, db *sql.DB, config []transcode.Template, onChange func(*transcode.Library), log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if _, err := transcode.NewLibrary(config); err != nil {
		return nil, err
	}
	s := &Store{db: db, onChange: onChange, log: log}
	for _, t := range config {
		t.Normalize()
		s.config = append(s.config, t)
	}
	stored, err := s.stored(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range stored {
		if s.configured(st.DomainName, st.AppName, st.ID) {
			log.Warn("a transcode template set through the API is shadowed by the config file's template with the same key",
				"domainName", st.DomainName, "appName", st.AppName, "id", st.ID)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s, s.publish(ctx)
}

// Library returns the current templates.
func (s *Store) Library() *transcode.Library { return s.lib.Load() }

// Defined reports whether template id can be recorded by a rule of domain and app: a
// built-in, or a custom template whose domain and app overlap the rule's ("*" overlaps
// everything). Wired to ruledb.Store.Templates.
func (s *Store) Defined(domain, app, id string) bool {
	if _, ok := transcode.Builtin[id]; ok {
		return true
	}
	domain = strings.ToLower(domain)
	overlap := func(a, b string) bool { return a == b || a == rules.Wildcard || b == rules.Wildcard }
	for _, t := range s.Library().Templates() {
		if t.ID == id && overlap(t.DomainName, domain) && overlap(t.AppName, app) {
			return true
		}
	}
	return false
}

func (s *Store) configured(domain, app, id string) bool {
	return slices.ContainsFunc(s.config, func(t transcode.Template) bool {
		return t.DomainName == domain && t.AppName == app && t.ID == id
	})
}

// List returns the built-in, config-file and stored templates; a non-empty domain or
// app keeps those of that domain or app (or "*").
func (s *Store) List(ctx context.Context, domain, app string) ([]Stored, error) {
	var out []Stored
	for _, id := range rules.BuiltinTemplates {
		t := transcode.Builtin[id]
		t.Normalize()
		out = append(out, Stored{Template: t, Kind: KindSystem, Source: SourceBuiltin})
	}
	for _, t := range s.config {
		out = append(out, Stored{Template: t, Kind: KindCustom, Source: SourceConfig})
	}
	stored, err := s.stored(ctx)
	if err != nil {
		return nil, err
	}
	out = append(out, stored...)
	domain = strings.ToLower(domain)
	return slices.DeleteFunc(out, func(st Stored) bool {
		return (domain != "" && st.DomainName != domain && st.DomainName != rules.Wildcard) ||
			(app != "" && st.AppName != app && st.AppName != rules.Wildcard)
	}), nil
}

// Get returns the stored or config-file template with the key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, domain, app, id string) (*Stored, error) {
	k := key(domain, app, id)
	for _, t := range s.config {
		if t.DomainName == k.DomainName && t.AppName == k.AppName && t.ID == id {
			return &Stored{Template: t, Kind: KindCustom, Source: SourceConfig}, nil
		}
	}
	return s.get(ctx, s.db, k)
}

// key normalizes a template's key the way Normalize does.
func key(domain, app, id string) transcode.Template {
	t := transcode.Template{DomainName: domain, AppName: app, ID: id}
	t.Normalize()
	return t
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) get(ctx context.Context, q querier, k transcode.Template) (*Stored, error) {
	sts, err := s.query(ctx, q, `WHERE domain=$1 AND app=$2 AND id=$3`, k.DomainName, k.AppName, k.ID)
	if err != nil {
		return nil, err
	}
	if len(sts) == 0 {
		return nil, fmt.Errorf("%w: no template %q for domainName %q, appName %q", ErrNotFound, k.ID, k.DomainName, k.AppName)
	}
	return &sts[0], nil
}

func (s *Store) stored(ctx context.Context) ([]Stored, error) { return s.query(ctx, s.db, ``) }

func (s *Store) query(ctx context.Context, q querier, where string, args ...any) ([]Stored, error) {
	rows, err := q.QueryContext(ctx, `SELECT kind, lazy, template, created_at, updated_at FROM transcode_templates `+where+
		` ORDER BY domain, app, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Stored
	for rows.Next() {
		var st Stored
		var tpl string
		var created, updated int64
		if err := rows.Scan(&st.Kind, &st.Lazy, &tpl, &created, &updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(tpl), &st.Template); err != nil {
			return nil, fmt.Errorf("stored transcode template: %w", err)
		}
		st.Source = SourceAPI
		st.CreatedAt, st.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		out = append(out, st)
	}
	return out, rows.Err()
}

// check normalizes and validates st for storing (field paths relative to the template).
func check(st *Stored) error {
	st.Normalize()
	var es rules.ValidationErrors
	if st.DomainName != rules.Wildcard {
		d, err := rules.NormalizeDomain(st.DomainName)
		if err != nil {
			es = append(es, &rules.ValidationError{Field: "domainName", Msg: err.Error()})
		}
		st.DomainName = d
	}
	if st.AppName != rules.Wildcard {
		if err := rules.ValidName(st.AppName); err != nil {
			es = append(es, &rules.ValidationError{Field: "appName", Msg: err.Error()})
		}
	}
	switch st.Kind {
	case "", KindCustom:
		st.Kind = KindCustom
		if err := st.Validate(); err != nil {
			es = append(es, err.(rules.ValidationErrors)...)
		}
	case KindSystem:
		if _, ok := transcode.Builtin[st.ID]; !ok {
			es = append(es, &rules.ValidationError{Field: "id",
				Msg: fmt.Sprintf("%q is not a built-in template (%s)", st.ID, strings.Join(rules.BuiltinTemplates, ", "))})
		}
		st.Template = key(st.DomainName, st.AppName, st.ID) // a binding has no parameters of its own
	default:
		es = append(es, &rules.ValidationError{Field: "kind", Msg: fmt.Sprintf("%q is not one of custom, system", st.Kind)})
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// Create stores a new template. Errors: rules.ValidationErrors, ErrExists (wrapped),
// ErrConfig, or a failure to store it.
func (s *Store) Create(ctx context.Context, st Stored) (*Stored, error) {
	if err := check(&st); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.configured(st.DomainName, st.AppName, st.ID) {
		return nil, fmt.Errorf("%w: %q for domainName %q, appName %q", ErrConfig, st.ID, st.DomainName, st.AppName)
	}
	if _, err := s.get(ctx, s.db, st.Template); err == nil {
		return nil, fmt.Errorf("%w: %q for domainName %q, appName %q", ErrExists, st.ID, st.DomainName, st.AppName)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	st.Source, st.CreatedAt, st.UpdatedAt = SourceAPI, now, now
	b, _ := json.Marshal(st.Template)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO transcode_templates (domain, app, id, kind, lazy, template, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, st.DomainName, st.AppName, st.ID, st.Kind, st.Lazy, string(b), now.UnixMilli(), now.UnixMilli()); err != nil {
		return nil, err
	}
	s.log.Info("transcode template created", "domainName", st.DomainName, "appName", st.AppName, "id", st.ID, "kind", st.Kind)
	return &st, s.publish(ctx)
}

// Update replaces a stored template; its key and kind cannot change. Errors:
// rules.ValidationErrors, ErrNotFound, ErrConfig (a config-file template), or a
// failure to store it.
func (s *Store) Update(ctx context.Context, st Stored) (*Stored, error) {
	if err := check(&st); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.configured(st.DomainName, st.AppName, st.ID) {
		return nil, fmt.Errorf("%w (change it there): %q for domainName %q, appName %q", ErrConfig, st.ID, st.DomainName, st.AppName)
	}
	old, err := s.get(ctx, s.db, st.Template)
	if err != nil {
		return nil, err
	}
	if old.Kind != st.Kind {
		return nil, rules.ValidationErrors{{Field: "kind", Msg: fmt.Sprintf("is %s and cannot change (delete the template and create it again)", old.Kind)}}
	}
	st.Source, st.CreatedAt, st.UpdatedAt = SourceAPI, old.CreatedAt, time.UnixMilli(time.Now().UnixMilli()).UTC()
	b, _ := json.Marshal(st.Template)
	if _, err := s.db.ExecContext(ctx, `UPDATE transcode_templates SET lazy=$1, template=$2, updated_at=$3 WHERE domain=$4 AND app=$5 AND id=$6`,
		st.Lazy, string(b), st.UpdatedAt.UnixMilli(), st.DomainName, st.AppName, st.ID); err != nil {
		return nil, err
	}
	s.log.Info("transcode template updated", "domainName", st.DomainName, "appName", st.AppName, "id", st.ID)
	return &st, s.publish(ctx)
}

// Delete deletes a stored template. Errors: ErrNotFound, ErrConfig, or a failure.
func (s *Store) Delete(ctx context.Context, domain, app, id string) error {
	k := key(domain, app, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.configured(k.DomainName, k.AppName, k.ID) {
		return fmt.Errorf("%w (remove it there): %q for domainName %q, appName %q", ErrConfig, k.ID, k.DomainName, k.AppName)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM transcode_templates WHERE domain=$1 AND app=$2 AND id=$3`, k.DomainName, k.AppName, k.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no template %q for domainName %q, appName %q", ErrNotFound, k.ID, k.DomainName, k.AppName)
	}
	s.log.Info("transcode template deleted", "domainName", k.DomainName, "appName", k.AppName, "id", k.ID)
	return s.publish(ctx)
}

// Reload rebuilds the library from the catalog and passes it to onChange: in a cluster,
// another node's API may have changed the templates.
func (s *Store) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publish(ctx)
}

// publish rebuilds the library from the config file and the custom rows. Called with
// s.mu held; the change is committed, so a cancelled request must not stop it.
func (s *Store) publish(ctx context.Context) error {
	stored, err := s.stored(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("templates stored but not applied: %w", err)
	}
	ts := slices.Clone(s.config)
	for _, st := range stored {
		if st.Kind == KindCustom && !s.configured(st.DomainName, st.AppName, st.ID) {
			ts = append(ts, st.Template)
		}
	}
	lib, err := transcode.NewLibrary(ts)
	if err != nil {
		s.log.Error("transcode templates changed but the new library could not be built; the transcoder keeps the previous templates", "err", err)
		return fmt.Errorf("templates stored but not applied: %w", err)
	}
	s.lib.Store(lib)
	if s.onChange != nil {
		s.onChange(lib)
	}
	return nil
}
