package testdb

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// PrivateServer is a PostgreSQL server of the test's own, in a temporary
// directory on a free port, so a test may stop and restart it without
// touching the shared server.
type PrivateServer struct {
	t    testing.TB
	bin  string // directory of initdb, pg_ctl
	dir  string // holds the data directory, socket and log
	port int
	cred *syscall.Credential // the postgres user's when the test runs as root
}

// PrivatePostgres initialises and starts a private server, stopped and
// removed when t ends. It skips (fails under CI) when the PostgreSQL server
// binaries are not installed.
func PrivatePostgres(t testing.TB) *PrivateServer {
	t.Helper()
	bin := serverBinDir()
	if bin == "" {
		msg := "no PostgreSQL server binaries (initdb, pg_ctl) found in PATH or /usr/lib/postgresql/*/bin; " +
			"install the postgresql package to run this test"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so this is a failure")
		}
		t.Skip(msg)
	}
	s := &PrivateServer{t: t, bin: bin}
	dir, err := os.MkdirTemp("", "cvbridge-pg-")
	must(t, err)
	s.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user,
		// in a directory that user owns.
		u, err := user.Lookup("postgres")
		must(t, err, "running as root needs a postgres user to run the private server as")
		uid, err := strconv.Atoi(u.Uid)
		must(t, err)
		gid, err := strconv.Atoi(u.Gid)
		must(t, err)
		must(t, os.Chown(dir, uid, gid))
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	s.port = FreePort(t)
	s.run("initdb", "-D", s.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions")
	s.Start()
	t.Cleanup(func() {
		// Stop fast; the server may already be stopped by the test.
		cmd := s.command("pg_ctl", "stop", "-D", s.data(), "-m", "immediate", "-w")
		_ = cmd.Run()
	})
	return s
}

// DSN is the private server's DSN for its postgres database.
func (s *PrivateServer) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", s.port)
}

// Start starts the (stopped) server and waits until it accepts connections.
func (s *PrivateServer) Start() {
	s.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", s.port, s.dir)
	s.run("pg_ctl", "start", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-o", opts)
}

// Stop stops the server the way a restart by the operator does (fast
// shutdown: sessions are ended, open transactions rolled back).
func (s *PrivateServer) Stop() {
	s.t.Helper()
	s.run("pg_ctl", "stop", "-D", s.data(), "-m", "fast", "-w")
}

func (s *PrivateServer) data() string { return filepath.Join(s.dir, "data") }

// command is the server tool name with args, run as the server's user.
func (s *PrivateServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// run runs a server tool and fails the test, showing its output and the
// server log, when it fails.
func (s *PrivateServer) run(name string, args ...string) {
	s.t.Helper()
	out, err := s.command(name, args...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		s.t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", name, args, err, out, log)
	}
}

// serverBinDir finds the directory holding initdb and pg_ctl.
func serverBinDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	must(t, l.Close())
	return port
}

// must fails the test on err; args describe what was being done.
func must(t testing.TB, err error, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("testdb: %v %v", err, fmt.Sprint(args...))
	}
}
