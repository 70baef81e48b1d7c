package csvdrop

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/kit/kittest"
	"github.com/cvbridge/cvbridge/bridge/clock"
)

// secretOutside writes, outside the drop folder, a file standing for one
// the daemon can read but the LMS side must never see (a secret file of
// /etc/cvbridge), and returns its path and content.
func secretOutside(t *testing.T) (path, content string) {
	t.Helper()
	content = "Deelnemer;Code;Datum;Geslaagd;Cijfer\np0;E;01-03-2024;ja;7\ns3cr3t-signing-key;E;01-03-2024;ja;7\n"
	path = filepath.Join(t.TempDir(), "coachview.secret")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path, content
}

// assertNowhere fails if any file below dir, or the log, holds the secret.
func assertNowhere(t *testing.T, e *env, secret string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(e.drop, func(path string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.NotContains(t, string(b), secret, "the secret was copied to %s", path)
		}
		return nil
	}))
	assert.NotContains(t, e.logs.String(), secret, "the secret was logged")
}

// TestSymlinkInDropFolderIsNotFollowed: whoever may write to the drop folder
// (the LMS's export job) must not be able to have the daemon read another
// file for it: a symbolic link there is left alone with one warning, and
// nothing it points at reaches a row, an errors file or the log.
func TestSymlinkInDropFolderIsNotFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	secret, _ := secretOutside(t)
	require.NoError(t, os.Symlink(secret, filepath.Join(e.drop, "export.csv")))
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	assert.Empty(t, e.sink.Added())
	assert.Equal(t, 1, strings.Count(e.logs.String(), "is a symbolic link, which is never followed"), "warned once: %s", e.logs.String())
	assert.Empty(t, e.files("failed"))
	assertNowhere(t, e, "s3cr3t")

	// A link made between the listing and the open is refused as well.
	fh, err := openNoFollow(filepath.Join(e.drop, "export.csv"))
	assert.Nil(t, fh)
	assert.ErrorIs(t, err, errSymlink)
}

// TestProcessedFileReplacedByLinkIsNotContinued: a file taken lately is
// watched for appended rows; replaced by a link to a larger file, it must
// not have that file's bytes copied into the drop folder as a continuation.
func TestProcessedFileReplacedByLinkIsNotContinued(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	e.write("late.csv", "Deelnemer;Code;Datum;Geslaagd;Cijfer\np1;E;01-03-2024;ja;7\n")
	require.NoError(t, e.poll())
	require.Len(t, e.sink.Added(), 1)
	secret, _ := secretOutside(t)
	taken := filepath.Join(e.drop, "processed", "late.csv")
	require.NoError(t, os.Remove(taken))
	require.NoError(t, os.Symlink(secret, taken))
	require.NoError(t, e.poll())
	require.NoError(t, e.poll())
	assert.Len(t, e.sink.Added(), 1)
	assertNowhere(t, e, "s3cr3t")
}

// TestEnrolExportDoesNotWriteThroughALink: the enrolment export's directory
// is shared with the LMS's importer; a link planted as the export file must
// not have enrolment rows appended to what it points at.
func TestEnrolExportDoesNotWriteThroughALink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ef := enrollingFolder(t, dir, "  enrol_export:\n    file: out/enrolments.csv\n", clock.System{})
	require.NoError(t, os.Mkdir(filepath.Join(dir, "out"), 0o755))
	victim := filepath.Join(t.TempDir(), "outbox.db")
	require.NoError(t, os.WriteFile(victim, []byte("precious"), 0o600))
	require.NoError(t, os.Symlink(victim, filepath.Join(dir, "out", "enrolments.csv")))
	err := ef.Enrol(t.Context(), jan)
	require.ErrorIs(t, err, errSymlink)
	got, rerr := os.ReadFile(victim)
	require.NoError(t, rerr)
	assert.Equal(t, "precious", string(got))
}

// TestNamedPipeDoesNotBlock: a named pipe in the drop folder, or one put
// in place of a file between listing and open, never blocks a poll.
func TestNamedPipeDoesNotBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	fifo := filepath.Join(e.drop, "pipe.csv")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	done := make(chan error, 1)
	go func() { done <- e.poll() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the poll blocked on a named pipe")
	}
	_, err := openNoFollow(fifo)
	assert.ErrorContains(t, err, "not a regular file")
}

// TestStaleTemporaryFilesAreRemoved: the adapter writes its errors files and
// continuations under random temporary names; one a crash left behind is
// removed after an hour, by a real poll only. Files of other programs stay.
func TestStaleTemporaryFilesAreRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	old := e.clk.Now().Add(-2 * time.Hour)
	names := map[string]bool{ // name: removed
		".x.csv.errors.csv.123456.tmp":                true,
		".x.continued-20261207T101010.csv.987654.tmp": true,
		".lms-export.tmp":                             false,
	}
	for name := range names {
		e.write(name, "half")
		require.NoError(t, os.Chtimes(filepath.Join(e.drop, name), old, old))
	}
	e.write(".y.csv.errors.csv.111.tmp", "being written")
	require.NoError(t, os.Chtimes(filepath.Join(e.drop, ".y.csv.errors.csv.111.tmp"), e.clk.Now(), e.clk.Now()))

	dry := kittest.NewSink() // a dry run changes nothing
	dry.Dry = true
	require.NoError(t, e.f.Poll(t.Context(), dry))
	for name := range names {
		assert.FileExists(t, filepath.Join(e.drop, name))
	}

	require.NoError(t, e.poll())
	for name, removed := range names {
		_, err := os.Lstat(filepath.Join(e.drop, name))
		assert.Equal(t, removed, os.IsNotExist(err), name)
	}
	assert.FileExists(t, filepath.Join(e.drop, ".y.csv.errors.csv.111.tmp"), "a recent one may be written now")
}
