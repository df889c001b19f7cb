package testenv

// A real PostgreSQL for the tests of the PostgreSQL catalog: Debian's postgresql package
// (initdb and postgres), run in a temporary directory on a free loopback port, without a
// system service. The first test that asks starts it; every test gets a database of its
// own; Main stops it when the test binary is done (and the kernel stops it if the binary
// dies first: the server gets SIGINT, a fast shutdown, when its parent exits).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// PostgresBinEnv names a directory holding initdb and postgres, searched before Debian's
// /usr/lib/postgresql/*/bin and PATH.
const PostgresBinEnv = "LIVREC_POSTGRES_BIN"

// postgresBin finds the directory of initdb and postgres.
func postgresBin() (dir, missing string) {
	const install = "apt-get install postgresql"
	has := func(d string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(d, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(PostgresBinEnv); d != "" {
		if !has(d) {
			return "", fmt.Sprintf("%s=%s holds no initdb and postgres; %s", PostgresBinEnv, d, install)
		}
		return d, ""
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { // newest major version first
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if has(d) {
			return d, ""
		}
	}
	return "", install
}

// pg is the test binary's server.
var pg struct {
	mu    sync.Mutex
	srv   *pgServer
	err   error // why it could not start (reported to every test that asks)
	count int   // databases made
}

type pgServer struct {
	dir    string // temporary: the data directory and the log
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	port   int
	admin  *sql.DB // on database "postgres", for CREATE DATABASE
}

const pgUser = "livrec"

// PostgresDSN returns the connection string of a new, empty database on the test
// binary's PostgreSQL server, starting the server on first use; the database is dropped
// when t ends. A missing PostgreSQL fails t naming the package to install (skips it under
// LIVREC_SKIP_E2E=1).
func PostgresDSN(t testing.TB) string {
	t.Helper()
	bin := Path(t, Postgres)
	pg.mu.Lock()
	if pg.srv == nil && pg.err == nil {
		pg.srv, pg.err = startPostgres(bin)
	}
	srv, err := pg.srv, pg.err
	pg.count++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), pg.count)
	pg.mu.Unlock()
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := srv.admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("PostgreSQL: CREATE DATABASE: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a connection the test left open must not keep the database.
		if _, err := srv.admin.ExecContext(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("PostgreSQL: DROP DATABASE: %v", err)
		}
	})
	return srv.dsn(name)
}

func (s *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgUser, s.port, db)
}

// pgCredential is who initdb and postgres run as: they refuse root, so a test running as
// root runs them as nobody (the data directory is then nobody's).
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func startPostgres(bin string) (*pgServer, error) {
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "livrec-postgres-")
	if err != nil {
		return nil, err
	}
	s := &pgServer{dir: dir}
	fail := func(err error) (*pgServer, error) {
		s.stop()
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(err)
		}
	}
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir // the server's user may not enter the test's working directory
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := command("initdb", "-D", data, "-U", pgUser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v\n%s", err, out))
	}
	logPath := filepath.Join(dir, "postgres.log")
	for range 5 { // the free port can be taken between choosing and binding it
		s.port, err = freePort()
		if err != nil {
			return fail(err)
		}
		// No Unix socket (TCP on loopback only); durability off: the data is thrown away.
		s.cmd = command("postgres", "-D", data, "-p", strconv.Itoa(s.port), "-c", "listen_addresses=127.0.0.1",
			"-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=300", "-c", "shared_buffers=32MB", "-c", "logging_collector=off")
		s.cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
		log, err := os.Create(logPath)
		if err != nil {
			return fail(err)
		}
		s.cmd.Stdout, s.cmd.Stderr = log, log
		err = s.cmd.Start()
		log.Close()
		if err != nil {
			return fail(fmt.Errorf("postgres: %w", err))
		}
		s.exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(s.cmd, s.exited)
		if err = s.waitReady(s.exited); err == nil {
			return s, nil
		}
		s.cmd.Process.Signal(syscall.SIGINT)
		<-s.exited
		s.cmd = nil
		out, _ := os.ReadFile(logPath)
		err = fmt.Errorf("%w\n%s", err, out)
		if !strings.Contains(string(out), "could not bind") && !strings.Contains(string(out), "in use") {
			return fail(err)
		}
	}
	return fail(err)
}

// waitReady connects until the server answers (it needs a moment to start).
func (s *pgServer) waitReady(exited <-chan struct{}) error {
	db, err := sql.Open("pgx", s.dsn("postgres"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := db.Ping()
		if err == nil {
			s.admin = db
			return nil
		}
		select {
		case <-exited:
			db.Close()
			return errors.New("postgres exited")
		default:
		}
		if time.Now().After(deadline) {
			db.Close()
			return fmt.Errorf("postgres does not answer on port %d: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop shuts the server down (fast: clients are disconnected) and removes its files.
func (s *pgServer) stop() {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	os.RemoveAll(s.dir)
}

// Main runs the tests of a package that uses PostgresDSN and then stops the server:
// call it from TestMain (func TestMain(m *testing.M) { testenv.Main(m) }).
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with cleanup of its own after the tests: it returns the exit
// code.
func Run(m *testing.M) int {
	code := m.Run()
	pg.mu.Lock()
	if pg.srv != nil {
		pg.srv.stop()
	}
	pg.mu.Unlock()
	return code
}
