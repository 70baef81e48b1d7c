package csvdrop

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// takenDir is the processed or the failed directory. By default it lies
// inside the drop folder, whose entries the LMS side writes: it could
// replace the directory by a symbolic link to anywhere the daemon may write
// (its outbox's directory, its configuration) and have exports, errors
// files and the list of files taken lately written there, or have files
// read from there. So while the directory lies inside the drop folder,
// every operation on it goes through an os.Root of the drop folder, which
// refuses any path that leaves it, at the moment of each system call. A
// directory the operator configured outside the drop folder is the
// operator's, and is used by its path.
type takenDir struct {
	key    string // its setting: processed_dir or failed_dir
	path   string // absolute: where it is, and how messages name it
	folder string // the drop folder
	rel    string // its path inside the drop folder; "" when outside it
}

// newTakenDir returns the directory at path, set by key, for the drop
// folder folder. It lies inside the drop folder when its path does, or
// when it does once the links among the operator's directories are
// resolved (a drop folder configured through a link, processed_dir through
// its target).
func newTakenDir(key, folder, path string) takenDir {
	d := takenDir{key: key, path: path, folder: folder}
	if rel, ok := inside(folder, path); ok {
		d.rel = rel
		return d
	}
	realFolder, err1 := filepath.EvalSymlinks(folder)
	realParent, err2 := filepath.EvalSymlinks(filepath.Dir(path))
	if err1 == nil && err2 == nil {
		d.rel, _ = inside(realFolder, filepath.Join(realParent, filepath.Base(path)))
	}
	return d
}

// again returns d as it is now: a poll asks anew, as the directories may
// have been created or linked since.
func (d takenDir) again() takenDir { return newTakenDir(d.key, d.folder, d.path) }

// inside returns path relative to folder when it lies below it.
func inside(folder, path string) (string, bool) {
	rel, err := filepath.Rel(folder, path)
	return rel, err == nil && rel != "." && filepath.IsLocal(rel)
}

// show is how messages name the file name in d.
func (d takenDir) show(name string) string { return filepath.Join(d.path, name) }

// withRoot runs do with the drop folder's root and name's path in it, when
// d lies inside the drop folder; a path that leaves the drop folder is
// refused with an error that says why.
func (d takenDir) withRoot(name string, do func(root *os.Root, rel string) error) error {
	root, err := os.OpenRoot(d.folder)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }() // a directory opened to resolve paths in
	return d.explain(do(root, filepath.Join(d.rel, name)))
}

// explain says what an error that os.Root gives for a path leaving the
// drop folder means for the operator.
func (d takenDir) explain(err error) error {
	if err == nil || !strings.Contains(err.Error(), "path escapes from parent") {
		return err
	}
	fix := "make it a directory again"
	if target, lerr := os.Readlink(d.path); lerr == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(d.path), target)
		}
		fix += fmt.Sprintf(", or, if you made it a link to %s on purpose, set %s: %s instead", target, d.key, target)
	}
	return fmt.Errorf("%w: %s is inside the drop folder and must stay there; it leads outside it (replaced by a symbolic link?), which is never followed: %s", err, d.path, fix)
}

// insideFolder reports an error when d, inside the drop folder, leads out
// of it, or back to the drop folder itself (a link to "."), where files
// moved to it would be taken again; a d that does not exist yet is created
// by the first poll.
func (d takenDir) insideFolder() error {
	if d.rel == "" {
		return nil
	}
	err := d.withRoot("", func(root *os.Root, rel string) error {
		dir, err := root.Stat(rel)
		if err != nil {
			return err
		}
		if folder, err := root.Stat("."); err == nil && os.SameFile(dir, folder) {
			return fmt.Errorf("%s leads back to the drop folder itself (a link to it?): files moved there would be taken again; make it a directory of its own", d.path)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// mkdirAll creates d if it does not exist, and reports an error naming
// its setting when it cannot be used.
func (d takenDir) mkdirAll() error {
	var err error
	if d.rel == "" {
		err = os.MkdirAll(d.path, 0o750)
	} else {
		err = d.withRoot("", func(root *os.Root, rel string) error { return root.MkdirAll(rel, 0o750) })
	}
	if errors.Is(err, fs.ErrExist) {
		err = errors.New("a file that is not a directory is in its place; move it away")
	}
	if err == nil {
		err = d.insideFolder()
	}
	if err != nil {
		return fmt.Errorf("%s %s: cannot be used for the files taken: %w", d.key, d.path, err)
	}
	return nil
}

// lstat describes the file name in d, not following a symbolic link.
func (d takenDir) lstat(name string) (info fs.FileInfo, err error) {
	if d.rel == "" {
		return os.Lstat(d.show(name))
	}
	err = d.withRoot(name, func(root *os.Root, rel string) error {
		info, err = root.Lstat(rel)
		return err
	})
	return info, err
}

// moveIn renames the file from, directly in the drop folder, to name in d.
func (d takenDir) moveIn(from, name string) error {
	if d.rel == "" {
		return os.Rename(filepath.Join(d.folder, from), d.show(name))
	}
	return d.withRoot(name, func(root *os.Root, rel string) error { return root.Rename(from, rel) })
}

// open opens the file name in d for reading: a regular file, never a
// symbolic link out of the drop folder.
func (d takenDir) open(name string) (f *os.File, err error) {
	if d.rel == "" {
		return openNoFollow(d.show(name))
	}
	err = d.withRoot(name, func(root *os.Root, rel string) error {
		// The root follows a link that stays in the drop folder; a file
		// that is a link, or became one meanwhile, is refused all the same.
		if f, err = root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			return err
		}
		opened, err := f.Stat()
		if err == nil && !opened.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", d.show(name))
		}
		if err == nil {
			if named, lerr := root.Lstat(rel); lerr != nil || !os.SameFile(opened, named) {
				err = errors.Join(lerr, fmt.Errorf("%s: %w", d.show(name), errSymlink))
			}
		}
		if err != nil {
			_ = f.Close() // not used
			f = nil
		}
		return err
	})
	return f, err
}

// remove deletes the file name from d.
func (d takenDir) remove(name string) error {
	if d.rel == "" {
		return os.Remove(d.show(name))
	}
	return d.withRoot(name, func(root *os.Root, rel string) error { return root.Remove(rel) })
}

// writeAside writes the file name in d as writeAside does a path.
func (d takenDir) writeAside(name string, write func(io.Writer) error) error {
	if d.rel == "" {
		return writeAside(d.show(name), write)
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand.Read never fails
	tmp := "." + name + "." + hex.EncodeToString(suffix[:]) + ".tmp"
	return d.withRoot("", func(root *os.Root, dir string) error {
		return writeThrough(func() (*os.File, error) {
			return root.OpenFile(filepath.Join(dir, tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		}, func() error { return root.Rename(filepath.Join(dir, tmp), filepath.Join(dir, name)) },
			func() error { return root.Remove(filepath.Join(dir, tmp)) }, write)
	})
}
