package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLostOutputFailsTheCommand: a command whose output cannot be written
// (/dev/full: a full disk) fails with exit code 1 instead of passing for
// success, as `target pause` did while its confirmation was printed
// unchecked. The pause itself is done and stays done.
func TestLostOutputFailsTheCommand(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full to write to: %v", err)
	}
	t.Cleanup(func() { assert.NoError(t, full.Close()) })
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")

	err = dispatch(context.Background(), []string{"target", "pause", "--config", cfgPath, "coachview"}, full)
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.Contains(t, err.Error(), "writing the output")
	assert.Equal(t, 1, exitCode(err))

	out, err := runCLI(t, "target", "status", "--config", cfgPath, "coachview")
	require.NoError(t, err)
	assert.Contains(t, out, "paused")
}

// TestOutputKeepsTheFirstError: after a failed write nothing more is
// written, and every later write reports the first failure.
func TestOutputKeepsTheFirstError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	o := &output{w: f}
	_, err = o.Write([]byte("one\n"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = o.Write([]byte("two\n"))
	require.ErrorIs(t, err, os.ErrClosed)
	var later bytes.Buffer
	o.w = &later // a writer that would take it: o still refuses
	n, err := o.Write([]byte("three\n"))
	assert.Zero(t, n)
	assert.ErrorIs(t, err, os.ErrClosed)
	assert.Empty(t, later.String())
	data, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, "one\n", string(data))
}

// TestCloseIntoJoinsTheCloseError: a failure to close is joined to the
// command's own error, or becomes it.
func TestCloseIntoJoinsTheCloseError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	var cmdErr error
	closeInto(&cmdErr, f) // closed twice: fails
	assert.ErrorIs(t, cmdErr, os.ErrClosed)

	failed := errors.New("the command failed")
	cmdErr = failed
	closeInto(&cmdErr, f)
	assert.ErrorIs(t, cmdErr, failed)
	assert.ErrorIs(t, cmdErr, os.ErrClosed)
}
