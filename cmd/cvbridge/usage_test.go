package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// exitOf is the exit status main gives a command's result.
func exitOf(err error) int {
	if err == nil {
		return 0
	}
	return exitCode(err)
}

// TestFlagsAfterArguments checks that flags are read wherever they stand,
// as the README writes them, and that -- ends them.
func TestFlagsAfterArguments(t *testing.T) {
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	t.Setenv("CVBRIDGE_CONFIG", filepath.Join(t.TempDir(), "absent.yaml"))

	out, err := runCLI(t, "target", "pause", "coachview", "--reason", "LMS migration", "--config", cfgPath)
	require.NoError(t, err)
	assert.Contains(t, out, "target coachview paused")
	out, err = runCLI(t, "target", "status", "coachview", "--config="+cfgPath)
	require.NoError(t, err)
	assert.Contains(t, out, "LMS migration")

	_, err = runCLI(t, "outbox", "show", "1", "--config", cfgPath)
	require.ErrorIs(t, err, outbox.ErrNotFound, "the store of --config was asked")
	_, err = runCLI(t, "outbox", "show", "--config", cfgPath, "--", "1")
	require.ErrorIs(t, err, outbox.ErrNotFound)
	out, err = runCLI(t, "outbox", "list", "--config", cfgPath, "--state", "pending")
	require.NoError(t, err)
	assert.Contains(t, out, "ID")

	// After --, a dash is an argument: the id "--config" is not a flag.
	_, err = runCLI(t, "outbox", "show", "--config", cfgPath, "--", "--config")
	require.Error(t, err)
	assert.Equal(t, 2, exitOf(err))
	assert.Contains(t, err.Error(), `"--config" is not a result id`)

	dir := t.TempDir()
	body, secret := filepath.Join(dir, "body.xml"), filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(body, []byte("<x/>"), 0o644))
	require.NoError(t, os.WriteFile(secret, []byte("geheim"), 0o600))
	before, err := runCLI(t, "sign", "--secret-file", secret, "--hash", "sha256", body)
	require.NoError(t, err)
	after, err := runCLI(t, "sign", body, "--secret-file", secret, "--hash=sha256")
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

// TestVersion checks --version and the version command.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		out, err := runCLI(t, args...)
		require.NoError(t, err, args)
		assert.Equal(t, "cvbridge "+version+"\n", out, args)
	}
}

// TestHelpForEveryCommand checks that every command and sub-command has a
// help with its usage line, reached in every way, that help succeeds, and
// that it never reads the configuration (there is none here).
func TestHelpForEveryCommand(t *testing.T) {
	t.Setenv("CVBRIDGE_CONFIG", filepath.Join(t.TempDir(), "absent.yaml"))
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		out, err := runCLI(t, args...)
		require.NoError(t, err, args)
		assert.Contains(t, out, "usage: cvbridge COMMAND", args)
	}
	groups := map[string][]string{
		"outbox":  {"list", "show", "retry", "cancel", "confirm"},
		"target":  {"pause", "resume", "status"},
		"inbox":   {"list", "show", "retry"},
		"oauth":   {"list", "revoke"},
		"storage": {"copy", "backup"},
	}
	for _, c := range commands() {
		if c.name == "help" {
			continue
		}
		for _, args := range [][]string{{"help", c.name}, {c.name, "--help"}, {c.name, "-h"}} {
			out, err := runCLI(t, args...)
			require.NoError(t, err, "%v", args)
			assert.Contains(t, out, "usage: cvbridge "+c.name, args)
		}
		for _, sub := range groups[c.name] {
			want := "usage: cvbridge " + c.name + " " + sub
			for _, args := range [][]string{
				{"help", c.name, sub}, {c.name, sub, "--help"},
				{c.name, sub, "-h"}, {c.name, sub, "--config", "/nonexistent/cvbridge.yaml", "--help"},
			} {
				out, err := runCLI(t, args...)
				require.NoError(t, err, "%v", args)
				assert.Contains(t, out, want, args)
			}
			out, err := runCLI(t, "help", c.name)
			require.NoError(t, err)
			assert.Contains(t, out, "cvbridge "+c.name+" "+sub, "the group lists its commands")
		}
	}

	out, err := runCLI(t, "outbox", "show", "--help")
	require.NoError(t, err)
	assert.Contains(t, out, "usage: cvbridge outbox show [flags] ID...\n")
	assert.Contains(t, out, "--config FILE")
	out, err = runCLI(t, "help", "target", "pause")
	require.NoError(t, err)
	assert.Contains(t, out, "usage: cvbridge target pause [flags] NAME...\n")
	assert.Contains(t, out, "--reason")
	out, err = runCLI(t, "help", "outbox")
	require.NoError(t, err)
	assert.Contains(t, out, "cvbridge outbox retry [flags] ID...")
	out, err = runCLI(t, "check", "--help")
	require.NoError(t, err)
	assert.Contains(t, out, "usage: cvbridge check [flags]\n")
	assert.Contains(t, out, "--offline")
}

// TestUsageErrorsExitTwo checks that mistakes in the command line exit 2
// and say what was wrong, before any configuration is read.
func TestUsageErrorsExitTwo(t *testing.T) {
	t.Setenv("CVBRIDGE_CONFIG", filepath.Join(t.TempDir(), "absent.yaml"))
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"--frobnicate"},
		{"help", "frobnicate"},
		{"outbox"},
		{"outbox", "purge"},
		{"outbox", "show"},
		{"outbox", "show", "abc"},
		{"outbox", "list", "--colour", "red"},
		{"outbox", "list", "extra"},
		{"target"},
		{"target", "pause"},
		{"inbox", "retry"},
		{"oauth", "revoke"},
		{"storage", "backup"},
		{"forget"},
		{"check", "extra"},
		{"version", "extra"},
	} {
		_, err := runCLI(t, args...)
		require.Error(t, err, "%v", args)
		assert.Equal(t, 2, exitOf(err), "%v: %v", args, err)
		assert.NotContains(t, err.Error(), "absent.yaml", "%v: no configuration is read", args)
	}
}

// TestProcessHelpAndVersion checks what only the process shows: the
// version set by -ldflags, help on stdout with exit 0, usage errors on
// stderr with exit 2.
func TestProcessHelpAndVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "cvbridge")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=9.9.9-test", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	run := func(args ...string) (stdout, stderr string, code int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CVBRIDGE_CONFIG=/nonexistent/cvbridge.yaml")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return o.String(), e.String(), exit.ExitCode()
		}
		require.NoError(t, err)
		return o.String(), e.String(), 0
	}
	stdout, _, code := run("--version")
	assert.Equal(t, 0, code)
	assert.Equal(t, "cvbridge 9.9.9-test\n", stdout)

	stdout, stderr, code := run("outbox", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "usage: cvbridge outbox")
	assert.Empty(t, stderr)

	stdout, stderr, code = run("target", "pause", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "usage: cvbridge target pause [flags] NAME...")
	assert.Empty(t, stderr)

	stdout, stderr, code = run("outbox", "show")
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "usage: cvbridge outbox show [flags] ID...")

	_, stderr, code = run("outbox", "list", "--colour", "red")
	assert.Equal(t, 2, code)
	assert.True(t, strings.HasPrefix(stderr, "cvbridge: outbox list: "), stderr)
}
