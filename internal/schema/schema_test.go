package schema_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Every version is in migrations/common or in both dialect directories, once.
func TestMigrationFiles(t *testing.T) {
	versions := map[string]map[int64]string{}
	for _, d := range []string{"common", schema.SQLite, schema.Postgres} {
		versions[d] = map[int64]string{}
		names, _ := filepath.Glob(filepath.Join("migrations", d, "*"))
		for _, n := range names {
			v, err := goose.NumericComponent(filepath.Base(n))
			if err != nil || !strings.HasSuffix(n, ".sql") {
				t.Errorf("%s: not NNNNN_name.sql (%v)", n, err)
				continue
			}
			if other, dup := versions[d][v]; dup {
				t.Errorf("version %d twice in %s: %s and %s", v, d, other, n)
			}
			versions[d][v] = n
		}
	}
	for v, n := range versions["common"] {
		for _, d := range []string{schema.SQLite, schema.Postgres} {
			if o, ok := versions[d][v]; ok {
				t.Errorf("version %d in common (%s) and in %s (%s)", v, n, d, o)
			}
		}
	}
	for _, pair := range [][2]string{{schema.SQLite, schema.Postgres}, {schema.Postgres, schema.SQLite}} {
		for v, n := range versions[pair[0]] {
			if _, ok := versions[pair[1]][v]; !ok {
				t.Errorf("%s has no version %d (%s)", pair[1], v, n)
			}
		}
	}
	ls, _ := schema.Latest(schema.SQLite)
	lp, _ := schema.Latest(schema.Postgres)
	if ls != lp || ls < 1 {
		t.Errorf("latest versions: sqlite %d, postgres %d", ls, lp)
	}
	if names, _ := fs.Glob(schema.Migrations(schema.Postgres), "*.sql"); len(names) != len(versions["common"])+len(versions[schema.Postgres]) {
		t.Errorf("postgres migrations seen: %v", names)
	}
}

var tables = []string{"tasks", "files", "signature_nonces", "uploaded_objects", "rules", "notify_configs", "callbacks", "callback_attempts"}

func TestOpenMigrates(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		for range 2 { // the second open finds the schema up to date
			db, err := schema.Open(ctx, driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			if d := schema.DriverOfDB(db); d != driver {
				t.Errorf("DriverOfDB: %s, want %s", d, driver)
			}
			for _, tb := range tables {
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM ` + tb).Scan(&n); err != nil || n != 0 {
					t.Errorf("table %s: %d rows, %v", tb, n, err)
				}
			}
			if v, want := version(t, db), latest(t, driver); v != want {
				t.Errorf("version %d, want %d", v, want)
			}
			db.Close()
		}
	})
}

func latest(t *testing.T, driver string) int64 {
	v, err := schema.Latest(driver)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func version(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var v int64
	if err := db.QueryRow(`SELECT max(version_id) FROM goose_db_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A schema newer than the binary is refused, naming both versions, and left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		db, err := schema.Open(ctx, driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		known := latest(t, driver)
		if _, err := db.Exec(`INSERT INTO goose_db_version(version_id, is_applied) VALUES($1, TRUE)`, known+1); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = schema.Open(ctx, driver, dsn)
		want := "schema version " + strconv.FormatInt(known+1, 10) + ", this livrec knows versions up to " + strconv.FormatInt(known, 10)
		if !errors.Is(err, schema.ErrTooNew) || !strings.Contains(err.Error(), want) {
			t.Fatalf("open of a newer schema: %v, want ErrTooNew with %q", err, want)
		}
	})
}

// The catalog written by livrec before versioned migrations (schematest.BeforeMigrations:
// a task, a file, a rule, a nonce, an upload, a notify configuration and a pending
// callback) is adopted at the newest version with every row kept.
func TestAdoptCatalogFromBeforeMigrations(t *testing.T) {
	db, err := schema.Open(context.Background(), schema.SQLite, schematest.BeforeMigrations(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v := version(t, db); v != latest(t, schema.SQLite) {
		t.Errorf("adopted at version %d", v)
	}
	for _, tb := range tables {
		want := 1
		if tb == "callback_attempts" {
			want = 0
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ` + tb).Scan(&n); err != nil || n != want {
			t.Errorf("table %s: %d rows, want %d (%v)", tb, n, want, err)
		}
	}
	var key string
	var bytes int64
	var fps float64
	var uploaded bool
	if err := db.QueryRow(`SELECT key, bytes, frame_rate, uploaded FROM files WHERE id=$1`, "file-1").Scan(&key, &bytes, &fps, &uploaded); err != nil ||
		key != "live/s1/0.flv" || bytes != 1234567 || fps != 29.97 || !uploaded {
		t.Errorf("file row: %q %d %v %v %v", key, bytes, fps, uploaded, err)
	}
}

// An even older catalog, whose files table lacks the columns added before versioned
// migrations, gets them, with its rows kept.
func TestAdoptOldFilesTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE files (
		id TEXT PRIMARY KEY, task_id TEXT NOT NULL, domain TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL,
		format TEXT NOT NULL, sequence INTEGER NOT NULL, key TEXT NOT NULL DEFAULT '', work_dir TEXT NOT NULL DEFAULT '',
		start_time INTEGER NOT NULL, end_time INTEGER NOT NULL DEFAULT 0, duration REAL NOT NULL DEFAULT 0,
		width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0, codecs TEXT NOT NULL DEFAULT '',
		bytes INTEGER NOT NULL DEFAULT 0, segments INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '');
		INSERT INTO files(id, task_id, domain, app, stream, format, sequence, start_time, status, bytes) VALUES('f', 't', 'd', 'a', 's', 'flv', 0, 1, 'done', 42)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = schema.Open(context.Background(), schema.SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var bytes, bitrate int64
	var bucket string
	if err := db.QueryRow(`SELECT bytes, bitrate, oss_bucket FROM files WHERE id='f'`).Scan(&bytes, &bitrate, &bucket); err != nil || bytes != 42 {
		t.Fatalf("row: %d %d %q %v", bytes, bitrate, bucket, err)
	}
}

// The queries are written once with $N placeholders: SQLite binds them by number, also
// out of order and repeated.
func TestPlaceholders(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		db, err := schema.Open(context.Background(), driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var s string
		if err := db.QueryRow(`SELECT $2 || $1 || $2`, "a", "b").Scan(&s); err != nil || s != "bab" {
			t.Fatalf("got %q, %v", s, err)
		}
	})
}

// Nodes starting together on one PostgreSQL database migrate it once, without errors.
func TestConcurrentMigrate(t *testing.T) {
	dsn := schematest.DSN(t, schema.Postgres)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			db, err := schema.Open(context.Background(), schema.Postgres, dsn)
			if err != nil {
				t.Error(err)
				return
			}
			db.Close()
		})
	}
	wg.Wait()
	db, err := schema.Open(context.Background(), schema.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM goose_db_version WHERE version_id=1`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("version 1 recorded %d times (%v)", n, err)
	}
}
