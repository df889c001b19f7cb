// Package schema is livrec's catalog database: the drivers it runs on (SQLite, the
// default, and PostgreSQL), opening one, and the versioned migrations of every table kept
// in it (the catalog's tasks, files, rules, nonces and uploads, notify's callbacks and
// their configuration, the VOD library's assets, the live transcode templates, the job
// queue's tables beside River's own). The packages that keep tables there (catalog, notify, ...) share
// one *sql.DB and write their queries once, for both drivers: placeholders are $1, $2,
// ... (SQLite binds $N by position too), flags are compared with TRUE and FALSE, and
// upserts use ON CONFLICT.
//
// Migrations are SQL files run by goose (github.com/pressly/goose/v3) in version order,
// each in a transaction, when the database is opened; the table goose_db_version records
// which ran. Several nodes opening one PostgreSQL database at once take turns (a
// PostgreSQL advisory lock). A database whose version is newer than the newest migration
// of this binary is refused, naming both versions: an older livrec must not write a schema
// it does not know.
//
// Adding a migration is adding one file, named NNNNN_what.sql with the next version
// number (five digits), "-- +goose Up" on its first statement line:
//   - in migrations/common/ when the same SQL runs on both drivers (TEXT, INTEGER,
//     BIGINT, DOUBLE PRECISION, BOOLEAN columns; no AUTOINCREMENT or identity columns);
//   - otherwise one file of that version in migrations/sqlite/ and one in
//     migrations/postgres/.
//
// A version is in common or in both dialect directories, never both (TestMigrationFiles
// checks it). A migration is never edited once released: a change is a new version.
//
// Version 1 creates the tables that livrec created before it had migrations with CREATE
// ... IF NOT EXISTS, so an SQLite catalog made then is adopted as version 1 without a
// change.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
)

// Drivers.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// CheckDSN reports a PostgreSQL connection string that cannot be parsed (without
// connecting); an SQLite DSN is a file name, checked when it is opened.
func CheckDSN(driver, dsn string) error {
	if driver != Postgres {
		if isPostgresURL(dsn) {
			return fmt.Errorf("a PostgreSQL URL with driver %s (leave the driver out, or say %s)", driver, Postgres)
		}
		return nil
	}
	_, err := pgconn.ParseConfig(dsn)
	return err
}

// DriverOf is the driver a DSN given without one means: PostgreSQL for a postgres:// or
// postgresql:// URL, else SQLite (a file name).
func DriverOf(dsn string) string {
	if isPostgresURL(dsn) {
		return Postgres
	}
	return SQLite
}

func isPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// DriverOfDB is the driver of a database Open returned, for the packages that are handed
// only the *sql.DB and write a query (or pick a River driver) differently per driver.
func DriverOfDB(db *sql.DB) string {
	if _, ok := db.Driver().(*stdlib.Driver); ok {
		return Postgres
	}
	return SQLite
}

// Drivers lists the drivers, the default first.
var Drivers = []string{SQLite, Postgres}

// CheckDriver returns an error naming the allowed drivers unless d is one ("" is SQLite).
func CheckDriver(d string) error {
	if d == "" || slices.Contains(Drivers, d) {
		return nil
	}
	return fmt.Errorf("catalog driver %q is not one of %s", d, strings.Join(Drivers, ", "))
}

//go:embed migrations
var migrations embed.FS

// Open opens the database of driver ("" = SQLite) at dsn — for SQLite the database file
// (created if missing), for PostgreSQL a connection string (URL or key=value form, as
// libpq takes) — and migrates it to the newest version.
func Open(ctx context.Context, driver, dsn string) (*sql.DB, error) {
	if err := CheckDriver(driver); err != nil {
		return nil, err
	}
	if dsn == "" {
		return nil, errors.New("catalog: empty database name (dsn)")
	}
	var db *sql.DB
	var err error
	if driver == Postgres {
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			// Enough for the recorder's concurrent writes without filling the server's
			// max_connections (100 by default) with a few nodes.
			db.SetMaxOpenConns(16)
			db.SetMaxIdleConns(16)
		}
	} else {
		db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"+
			"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err == nil {
			// SQLite allows one writer; a single connection avoids SQLITE_BUSY between our
			// own goroutines.
			db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, db, driver); err != nil {
		db.Close()
		return nil, fmt.Errorf("catalog %s: %w", redact(driver, dsn), err)
	}
	return db, nil
}

// redact names the database in errors without a password the DSN may hold.
func redact(driver, dsn string) string {
	if driver != Postgres {
		return dsn
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(postgres)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// Migrations returns the migration files of driver as one directory.
func Migrations(driver string) fs.FS {
	if driver == "" {
		driver = SQLite
	}
	return union{sub(migrations, "migrations/common"), sub(migrations, "migrations/"+driver)}
}

func sub(fsys fs.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // only for an invalid name
	}
	return s
}

// union is the files of several directories as one (a missing directory is empty).
type union []fs.FS

func (u union) Open(name string) (fs.File, error) {
	for _, f := range u {
		if file, err := f.Open(name); err == nil {
			return file, nil
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (u union) ReadDir(name string) ([]fs.DirEntry, error) {
	var out []fs.DirEntry
	for _, f := range u {
		es, err := fs.ReadDir(f, name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		out = append(out, es...)
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Latest is the newest version of the migrations of driver.
func Latest(driver string) (int64, error) {
	names, err := fs.Glob(Migrations(driver), "*.sql")
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, n := range names {
		v, err := goose.NumericComponent(n)
		if err != nil {
			return 0, err
		}
		latest = max(latest, v)
	}
	return latest, nil
}

func provider(db *sql.DB, driver string) (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if driver == Postgres {
		dialect = goose.DialectPostgres
		// Polled every second (the default is 5 s), for up to 5 minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, db, Migrations(driver), opts...)
}

// ErrTooNew is matched (errors.Is) when the database's schema is newer than the binary.
var ErrTooNew = errors.New("catalog schema is newer than this livrec")

// Migrate brings db's schema to the newest version of driver's migrations, or refuses a
// schema newer than that.
func Migrate(ctx context.Context, db *sql.DB, driver string) error {
	if driver != Postgres {
		if err := adoptSQLite(ctx, db); err != nil {
			return fmt.Errorf("adopting a catalog from before versioned migrations: %w", err)
		}
	}
	p, err := provider(db, driver)
	if err != nil {
		return err
	}
	latest, err := Latest(driver)
	if err != nil {
		return err
	}
	// Checked before and after Up: before so that nothing runs on a newer schema, after
	// because another node may have migrated past us meanwhile.
	check := func() error {
		v, err := p.GetDBVersion(ctx)
		if err != nil {
			return fmt.Errorf("schema version: %w", err)
		}
		if v > latest {
			return fmt.Errorf("%w: the database is at schema version %d, this livrec knows versions up to %d; run a livrec at least as new as the one that migrated it",
				ErrTooNew, v, latest)
		}
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating the schema: %w", err)
	}
	return check()
}

// legacyColumns are the files columns that builds before versioned migrations added to
// older catalogs on the fly; version 1 has them, so an SQLite catalog that lacks them gets
// them before goose adopts it.
var legacyColumns = []struct{ column, decl string }{
	{"frame_rate", "REAL NOT NULL DEFAULT 0"},
	{"bitrate", "INTEGER NOT NULL DEFAULT 0"},
	{"oss_endpoint", "TEXT NOT NULL DEFAULT ''"},
	{"oss_bucket", "TEXT NOT NULL DEFAULT ''"},
	{"uploaded", "INTEGER NOT NULL DEFAULT 0"},
}

// adoptSQLite adds legacyColumns to the files table of an SQLite catalog that goose has
// not migrated yet (a new catalog has no files table: version 1 creates it whole).
func adoptSQLite(ctx context.Context, db *sql.DB) error {
	exists := func(table string) (bool, error) {
		var ok bool
		err := db.QueryRowContext(ctx, `SELECT count(*)>0 FROM sqlite_master WHERE type='table' AND name=$1`, table).Scan(&ok)
		return ok, err
	}
	files, err := exists("files")
	if err != nil || !files {
		return err
	}
	if migrated, err := exists("goose_db_version"); err != nil || migrated {
		return err
	}
	for _, c := range legacyColumns {
		var have bool
		if err := db.QueryRowContext(ctx, `SELECT count(*)>0 FROM pragma_table_info('files') WHERE name=$1`, c.column).Scan(&have); err != nil {
			return err
		}
		if !have {
			if _, err := db.ExecContext(ctx, `ALTER TABLE files ADD COLUMN `+c.column+` `+c.decl); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsUniqueViolation reports whether err is a UNIQUE (or primary key) constraint failure
// of either driver.
func IsUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == 19 /* SQLITE_CONSTRAINT */ && strings.Contains(se.Error(), "UNIQUE")
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
}
