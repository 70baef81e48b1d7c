package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCLINeverCreatesAnEmptyOutbox: a command pointed at a configuration
// whose outbox does not exist says so, instead of creating an empty one and
// listing nothing (issue 19, item 1: the CLI read /etc/cvbridge/outbox.db,
// empty, while the service wrote /var/lib/cvbridge/outbox.db).
func TestCLINeverCreatesAnEmptyOutbox(t *testing.T) {
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	db := filepath.Join(filepath.Dir(cfgPath), "outbox.db")
	for _, args := range [][]string{
		{"outbox", "list", "--config", cfgPath}, {"outbox", "show", "--config", cfgPath, "1"},
		{"target", "status", "--config", cfgPath}, {"inbox", "list", "--config", cfgPath}, {"enrolments", "--config", cfgPath},
	} {
		_, err := runCLI(t, args...)
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), "there is no outbox at "+db, "%v", args)
	}
	assert.NoFileExists(t, db)

	_, err := runCLI(t, "target", "pause", "--config", cfgPath, "coachview")
	require.NoError(t, err, "pausing before the first start creates the outbox")
	assert.FileExists(t, db)
}

// TestRootLeavesTheServicesOutboxAlone: run as root, a command refuses an
// outbox that belongs to the service's user (or a directory of it where it
// would create one), naming the user to run as: SQLite would otherwise
// create -wal and -shm files the service cannot open.
func TestRootLeavesTheServicesOutboxAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("run as root to check what root may not do")
	}
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	state := filepath.Join(filepath.Dir(cfgPath), "state")
	require.NoError(t, os.Mkdir(state, 0o750))
	require.NoError(t, os.Chown(state, 65534, 65534))
	text, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgPath, []byte(strings.Replace(string(text), "path: outbox.db", "path: state/outbox.db", 1)), 0o644))

	for _, args := range [][]string{{"target", "pause", "--config", cfgPath, "coachview"}, {"check", "--offline", "--config", cfgPath}} {
		_, err = runCLI(t, args...)
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), "belongs to user", "%v", args)
		assert.Contains(t, err.Error(), "sudo -u", "%v", args)
	}
	entries, err := os.ReadDir(state)
	require.NoError(t, err)
	assert.Empty(t, entries, "root created nothing in the service's directory")
}
