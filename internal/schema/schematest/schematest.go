// Package schematest gives tests a fresh, migrated-on-open database of each catalog
// driver, so that every test of the packages keeping tables in the catalog runs on
// SQLite and on PostgreSQL. Packages using it call testenv.Main from TestMain (it stops
// the test binary's PostgreSQL).
package schematest

import (
	_ "embed"
	"os"
	"path/filepath"
	"testing"

	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/testenv"
)

// DSN returns the data source name of a new, empty database of driver: an SQLite file in
// t's temporary directory, or a database of the test binary's PostgreSQL.
func DSN(t testing.TB, driver string) string {
	t.Helper()
	if driver == schema.Postgres {
		return testenv.PostgresDSN(t)
	}
	return filepath.Join(t.TempDir(), "catalog.db")
}

// Each runs fn as one subtest per driver, named after it, with a new, empty database.
func Each(t *testing.T, fn func(t *testing.T, driver, dsn string)) {
	t.Helper()
	EachDriver(t, func(t *testing.T, driver string) { fn(t, driver, DSN(t, driver)) })
}

// EachDriver runs fn as one subtest per driver, named after it (fn makes its databases
// with DSN).
func EachDriver(t *testing.T, fn func(t *testing.T, driver string)) {
	t.Helper()
	for _, d := range schema.Drivers {
		t.Run(d, func(t *testing.T) { fn(t, d) })
	}
}

// beforeMigrations is a catalog written by livrec before versioned migrations, with that
// code: task-1 (recording) with file-1 (flv, done, uploaded to bucket rec, key
// live/s1/0.flv, 1234567 bytes, 29.97 fps, 163000 bit/s), an API rule for
// example.com/live/s1, a nonce, the upload of live/s1/later.m3u8 before its row had the
// key, a notify configuration for example.com and a pending record_started callback.
//
//go:embed catalog-before-migrations.db
var beforeMigrations []byte

// BeforeMigrations writes that catalog to a file in t's temporary directory and returns
// its path.
func BeforeMigrations(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	if err := os.WriteFile(path, beforeMigrations, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
