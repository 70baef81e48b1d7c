package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// TestReloadKeepsTheOutboxLocked is the outside view of the outbox's
// integrity: a daemon is reloaded (SIGHUP) twice while another SQLite client
// — the sqlite3 command-line shell, the way an operator inspects or backs up
// the file — reads it and runs .backup, `cvbridge storage backup` writes
// its checked copy, and `cvbridge forget` erases a person; then the daemon is killed with SIGKILL and started again.
//
// Closing any descriptor of a file drops every POSIX lock the process holds
// on it, so a reload that opens and closes the database file itself leaves
// the running pool unlocked; the next client then thinks it is alone,
// checkpoints and deletes the live -wal and -shm, and what the daemon
// commits after that is lost at the kill. The test asserts the daemon holds
// its locks after every reload, that every acknowledged webhook is still
// stored (and a resend of it is not carried out again), that every result
// was delivered once, and that the erasure stays done.
func TestReloadKeepsTheOutboxLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	reloadKillSequence(t, "")
}

// TestReloadKeepsThePostgresOutbox runs the same sequence on PostgreSQL,
// without the file checks.
func TestReloadKeepsThePostgresOutbox(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	reloadKillSequence(t, testdb.Postgres(t))
}

// reloadKillSequence runs the reload, inspect, forget, kill -9 and restart
// sequence on SQLite (dsn empty) or on the PostgreSQL database at dsn.
func reloadKillSequence(t *testing.T, dsn string) {
	sqlite3 := ""
	if dsn == "" {
		sqlite3 = sqliteShell(t)
	}
	bin := binary(t)
	dir := t.TempDir()
	cfgPath := inboundConfig(t, dir, "storage:\n  path: outbox.db\n")
	if dsn != "" {
		usePostgres(t, cfgPath, dsn)
	}
	base := startSimProcess(t, bin, filepath.Join(dir, "secret"))
	cfgText, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	cfgText = bytes.Replace(cfgText, []byte("http://127.0.0.1:9"), []byte(base), 1)
	cfgText = bytes.Replace(cfgText, []byte("    hash: sha512\n"), []byte("    hash: sha512\n    poll_interval: 200ms\n"), 1)
	require.NoError(t, os.WriteFile(cfgPath, cfgText, 0o644))
	lms := filepath.Join(dir, "lms.d", "export.yaml")
	lmsText, err := os.ReadFile(lms)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(lms, bytes.Replace(lmsText, []byte(`"@every 1m"`), []byte(`"@every 1s"`), 1), 0o644))
	dbPath := filepath.Join(dir, "outbox.db")
	logPath := filepath.Join(dir, "daemon.log")

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", cfgPath)
		logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() })
		return cmd
	}
	logCount := func(msg string) int {
		b, _ := os.ReadFile(logPath)
		return bytes.Count(b, []byte(msg))
	}
	reload := func(cmd *exec.Cmd, n int) {
		t.Helper()
		require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
		waitFor(t, 30*time.Second, func() bool { return logCount("configuration reloaded") >= n })
		if sqlite3 != "" {
			assert.Positive(t, testdb.POSIXLocks(t, cmd.Process.Pid, dbPath),
				"after reload %d the daemon holds no lock on outbox.db: another client may delete its WAL", n)
		}
	}
	webhooks := signedWebhooks("integrity-", 4)
	send := func(url string, w signedWebhook) {
		t.Helper()
		require.NoError(t, post(http.DefaultClient, url, w), "webhook %s", w.id)
	}
	shell := func(args ...string) string {
		t.Helper()
		if sqlite3 == "" {
			return ""
		}
		out, err := exec.Command(sqlite3, append([]string{dbPath}, args...)...).CombinedOutput()
		require.NoError(t, err, "sqlite3 %v: %s", args, out)
		return string(out)
	}

	daemon := start()
	waitRunning(t, logPath, 1)
	url := waitPublicURL(t, logPath) + "webhooks/cv"
	if sqlite3 != "" {
		require.Positive(t, testdb.POSIXLocks(t, daemon.Process.Pid, dbPath), "the running daemon holds a lock on outbox.db")
	}
	dropCSV(t, dir, "one.csv", goodRows(5))
	send(url, webhooks[0])
	waitFor(t, 30*time.Second, func() bool { return simStats(t, base).Accepted == 5 })

	reload(daemon, 1)
	// An operator looks at the file and backs it up while the daemon runs.
	if sqlite3 != "" {
		assert.Equal(t, "5\n", shell("SELECT count(*) FROM results WHERE state = 'delivered'"))
	}
	shell(".backup " + filepath.Join(dir, "copy.db"))
	backup := filepath.Join(dir, "backup.db")
	out, err := exec.Command(bin, "storage", "backup", "--config", cfgPath, "--to", backup).CombinedOutput()
	if sqlite3 != "" {
		require.NoError(t, err, string(out))
		assert.Contains(t, string(out), "integrity check: ok")
		copied, err := exec.Command(sqlite3, backup, "PRAGMA integrity_check; SELECT count(*) FROM results WHERE state = 'delivered';").CombinedOutput()
		require.NoError(t, err, string(copied))
		assert.Equal(t, "ok\n5\n", string(copied), "the online backup is whole and holds what was delivered")
		info, err := os.Stat(backup)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the backup holds person ids: its owner's only")
	} else {
		require.Error(t, err)
		assert.Contains(t, string(out), "pg_dump")
	}
	send(url, webhooks[1])
	out, err = exec.Command(bin, "forget", "--config", cfgPath, "P-"+webhooks[0].id).CombinedOutput()
	require.NoError(t, err, string(out))
	more := [][]string{{"R1", "VCA-BASIS", "01-03-2026", "ja", "7", ""}, {"R2", "VCA-BASIS", "01-03-2026", "ja", "8", ""}}
	dropCSV(t, dir, "two.csv", more)
	waitFor(t, 30*time.Second, func() bool { return simStats(t, base).Accepted == 7 })

	// The second reload names another database: the open one stays in use.
	moved := bytes.Replace(cfgText, []byte("path: outbox.db"), []byte("path: other.db"), 1)
	if dsn == "" {
		require.NoError(t, os.WriteFile(cfgPath, moved, 0o644))
	}
	reload(daemon, 2)
	if dsn == "" {
		assert.Equal(t, 1, logCount("changes only at a restart"), "the reload says the storage section waits for a restart")
		_, err := os.Stat(filepath.Join(dir, "other.db"))
		assert.ErrorIs(t, err, os.ErrNotExist, "the reload opened no other database")
		require.NoError(t, os.WriteFile(cfgPath, cfgText, 0o644))
	}
	shell("SELECT count(*) FROM inbound_messages")
	send(url, webhooks[2])
	// Wait for the enrolments to be carried out (the export file has all three).
	export := filepath.Join(dir, "enrolments.csv")
	waitFor(t, 30*time.Second, func() bool { b, _ := os.ReadFile(export); return bytes.Count(b, []byte("P-integrity-")) >= 3 })

	require.NoError(t, daemon.Process.Signal(syscall.SIGKILL))
	_ = daemon.Wait()
	daemon = start()
	waitFor(t, time.Minute, func() bool { return logCount(`msg="public listener"`) == 2 })
	url = lastPublicURL(t, logPath) + "webhooks/cv"
	// Coachview resends what it may not have seen answered.
	for _, w := range webhooks[:3] {
		send(url, w)
	}
	send(url, webhooks[3])
	waitFor(t, 30*time.Second, func() bool { b, _ := os.ReadFile(export); return bytes.Count(b, []byte("P-integrity-")) >= 4 })
	require.NoError(t, daemon.Process.Signal(syscall.SIGTERM))
	require.NoError(t, daemon.Wait())

	b, err := os.ReadFile(export)
	require.NoError(t, err)
	for _, w := range webhooks {
		assert.Equal(t, 1, bytes.Count(b, []byte(",P-"+w.id+",")), "person P-%s enrolled once:\n%s", w.id, b)
	}
	stats := simStats(t, base)
	assert.Equal(t, 7, stats.Accepted)
	assert.Zero(t, stats.Duplicates, "no result sent twice")

	driver, source := "sqlite", "file:"+dbPath+"?mode=ro"
	if dsn != "" {
		driver, source = "postgres", dsn
	}
	db, err := sqlx.Open(driver, source)
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	var requests []int
	require.NoError(t, db.Select(&requests, `SELECT requests FROM inbound_messages WHERE source = 'webhook:cv' ORDER BY id`))
	assert.Equal(t, []int{2, 2, 2, 1}, requests, "every acknowledged webhook is stored once, its resend counted")
	var email string
	require.NoError(t, db.Get(&email, db.Rebind(`SELECT coalesce(email, '') FROM inbound_messages WHERE person_id = ?`), "P-"+webhooks[0].id))
	assert.Empty(t, email, "the erasure stays done")
	var delivered int
	require.NoError(t, db.Get(&delivered, `SELECT count(*) FROM results WHERE state = 'delivered'`))
	assert.Equal(t, 7, delivered)
}

// sqliteShell returns the path of the sqlite3 command-line shell: a second,
// independent SQLite client. .ci/run installs it; elsewhere the test is
// skipped without it.
func sqliteShell(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("sqlite3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("sqlite3 is not installed: .ci/run installs it (apt-get install sqlite3)")
		}
		t.Skip("sqlite3 is not installed (apt-get install sqlite3)")
	}
	return path
}

// lastPublicURL returns the base URL of the public listener the daemon
// logging to logPath reported last: the log holds one line per start.
func lastPublicURL(t *testing.T, logPath string) string {
	t.Helper()
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	m := regexp.MustCompile(`public listener" address=(http://[0-9.:]+/)`).FindAllSubmatch(b, -1)
	require.NotEmpty(t, m, "no public listener in the daemon's log")
	return string(m[len(m)-1][1])
}
