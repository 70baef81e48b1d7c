package csvdrop

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTakenDirectoryLinkIsNotFollowed: whoever writes the drop folder can
// replace its processed or failed directory by a symbolic link to another
// directory the daemon may write (its outbox's, its configuration's). No
// export, errors file or list of recent takes may land there: the poll
// fails, naming the directory and what to do, and the file stays in the
// drop folder. Before, the files were moved through the link.
func TestTakenDirectoryLinkIsNotFollowed(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"processed", "failed"} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, dutchColumns)
			require.NoError(t, e.poll()) // creates both directories
			outside := t.TempDir()
			require.NoError(t, os.Remove(filepath.Join(e.drop, dir)))
			require.NoError(t, os.Symlink(outside, filepath.Join(e.drop, dir)))
			if dir == "processed" {
				e.write("export.csv", header+"p1;E;01-03-2024;ja;7\np2;E;31-02-2024;ja;7\n") // a bad row: an errors file too
			} else {
				e.write("export.csv", "no header at all\n")
			}

			err := e.poll()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "it leads outside it (replaced by a symbolic link?), which is never followed")
			assert.Empty(t, dirNames(t, outside), "nothing written through the link")
			assert.Contains(t, e.files(""), "export.csv", "the file stays in the drop folder")
			_, err = e.f.Check(t.Context())
			assert.ErrorContains(t, err, dir+"_dir "+filepath.Join(e.drop, dir))

			// A link inside the drop folder stays inside it, and is used.
			require.NoError(t, os.Remove(filepath.Join(e.drop, dir)))
			require.NoError(t, os.Mkdir(filepath.Join(e.drop, "elsewhere"), 0o755))
			require.NoError(t, os.Symlink("elsewhere", filepath.Join(e.drop, dir)))
			require.NoError(t, e.poll())
			assert.Contains(t, dirNames(t, filepath.Join(e.drop, "elsewhere")), "export.csv")
		})
	}
}

// TestTakenDirectorySwappedDuringPolls: a writer swapping the processed
// directory and a link to outside the drop folder as fast as it can, while
// polls take exports, never gets a file written outside: each move is
// resolved in the drop folder at the moment of its system call, not checked
// first and done after.
func TestTakenDirectorySwappedDuringPolls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	require.NoError(t, e.poll())
	outside := t.TempDir()
	processed, aside := filepath.Join(e.drop, "processed"), filepath.Join(e.drop, "processed.real")
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			// processed is the real directory, then a link to outside, then again the directory.
			if os.Rename(processed, aside) != nil {
				continue
			}
			_ = os.Symlink(outside, processed)
			_ = os.Remove(processed)
			_ = os.Rename(aside, processed)
		}
	})
	for i := range 100 {
		e.write("export.csv", header+"p"+strings.Repeat("1", i%5+1)+";E;01-03-2024;ja;7\np9;E;31-02-2024;ja;7\n")
		_ = e.poll() // fails whenever the link is in place: the file stays for the next poll
	}
	stop.Store(true)
	wg.Wait()
	assert.Empty(t, dirNames(t, outside), "nothing written through the link")

	// On a loaded machine the link may have been in place at every poll:
	// with the directory back, the next poll takes the export left waiting.
	if _, err := os.Stat(aside); err == nil {
		if info, err := os.Lstat(processed); err == nil && info.Mode()&os.ModeSymlink != 0 {
			require.NoError(t, os.Remove(processed))
		}
		_ = os.Rename(aside, processed) // fails when a poll made processed anew and moved files in: both count
	}
	require.NoError(t, e.poll())
	assert.Empty(t, dirNames(t, outside), "nothing written through the link")
	taken := 0
	for _, dir := range []string{processed, aside} {
		for _, name := range dirNames(t, dir) {
			if strings.HasPrefix(name, "export") && strings.HasSuffix(name, ".csv") {
				taken++
			}
		}
	}
	assert.Positive(t, taken, "polls that found the directory took the export")
	assert.NotContains(t, e.files(""), "export.csv", "no export left behind")
}

// TestTakenDirectoryLinkedToTheFolderItself: processed/ made a link back
// to the drop folder would have every file taken moved into the drop folder
// and taken again, renamed at each poll until its name was too long: the
// poll fails instead, and `cvbridge check` says why.
func TestTakenDirectoryLinkedToTheFolderItself(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	require.NoError(t, e.poll())
	require.NoError(t, os.Remove(filepath.Join(e.drop, "processed")))
	require.NoError(t, os.Symlink(".", filepath.Join(e.drop, "processed")))
	e.write("export.csv", header+"p1;E;01-03-2024;ja;7\n")
	for range 3 {
		assert.ErrorContains(t, e.poll(), "leads back to the drop folder itself (a link to it?): files moved there would be taken again")
	}
	assert.Empty(t, e.sink.Added())
	assert.Equal(t, []string{"export.csv", "processed"}, e.files(""), "the file stays as it was (processed is the link)")
	_, err := e.f.Check(t.Context())
	assert.ErrorContains(t, err, "leads back to the drop folder itself")
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

// TestTakenDirMethodsRefuseALinkOut: each operation on a processed
// directory replaced by a link out of the drop folder is refused, and
// nothing is written, moved or read there; the error says what to set to
// keep such a link on purpose.
func TestTakenDirMethodsRefuseALinkOut(t *testing.T) {
	t.Parallel()
	folder, outside := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.csv"), []byte(header+"s3cr3t;E;01-03-2024;ja;7\n"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(folder, "processed")))
	require.NoError(t, os.WriteFile(filepath.Join(folder, "export.csv"), []byte(header), 0o644))
	d := newTakenDir("processed_dir", folder, filepath.Join(folder, "processed"))
	require.Equal(t, "processed", d.rel)

	errs := map[string]error{"mkdirAll": d.mkdirAll(), "moveIn": d.moveIn("export.csv", "export.csv"),
		"remove": d.remove("secret.csv"), "insideFolder": d.insideFolder(),
		"writeAside": d.writeAside("list.json", func(w io.Writer) error { _, err := w.Write([]byte("[]")); return err })}
	_, errs["lstat"] = d.lstat("secret.csv")
	f, err := d.open("secret.csv")
	errs["open"] = err
	assert.Nil(t, f)
	for op, err := range errs {
		assert.ErrorContains(t, err, "which is never followed", op)
		assert.ErrorContains(t, err, "set processed_dir: "+outside+" instead", op)
	}
	assert.Equal(t, []string{"secret.csv"}, dirNames(t, outside), "nothing written, moved or removed there")
	assert.FileExists(t, filepath.Join(folder, "export.csv"))

	// A file in the directory that is a link, even to a file inside the
	// drop folder, is not read.
	folder = t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(folder, "processed"), 0o755))
	require.NoError(t, os.Symlink("../export.csv", filepath.Join(folder, "processed", "late.csv")))
	require.NoError(t, os.WriteFile(filepath.Join(folder, "export.csv"), []byte(header), 0o644))
	_, err = newTakenDir("processed_dir", folder, filepath.Join(folder, "processed")).open("late.csv")
	assert.ErrorIs(t, err, errSymlink)
}

// TestTakenDirInsideALinkedFolder: a drop folder configured through a link
// and processed_dir through the link's target is still the drop folder's
// own directory, reached through its root.
func TestTakenDirInsideALinkedFolder(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	real := filepath.Join(base, "real")
	require.NoError(t, os.Mkdir(real, 0o755))
	require.NoError(t, os.Symlink(real, filepath.Join(base, "link")))
	d := newTakenDir("processed_dir", filepath.Join(base, "link"), filepath.Join(real, "processed"))
	assert.Equal(t, "processed", d.rel)
	d = newTakenDir("processed_dir", filepath.Join(base, "link"), filepath.Join(base, "elsewhere", "processed"))
	assert.Empty(t, d.rel, "outside the drop folder: the operator's")
}
