// Package schematest gives tests a fresh, migrated-on-open database of each catalog
// driver, so that every test of the packages keeping tables in the catalog runs on
// SQLite and on PostgreSQL. Packages using it call testenv.Main from TestMain (it stops
// the test binary's PostgreSQL).
package schematest

import (
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
