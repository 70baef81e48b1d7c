package csvdrop

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cvbridge/cvbridge/bridge/source"
)

var (
	_ source.Checker = (*Folder)(nil)
	_ source.Checker = (*EnrollingFolder)(nil)
)

// Check verifies, for `cvbridge check`, that the drop folder exists and that
// this process can list it and move files out of it (it creates and removes
// a hidden file there), and that the processed and failed directories exist
// or can be created. The notes say how many files wait in the folder.
func (f *Folder) Check(context.Context) ([]string, error) {
	info, err := os.Stat(f.folder)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("drop folder %s does not exist: create it (owned by the service's user, writable by the LMS's export) or fix settings.folder", f.folder)
	case err != nil:
		return nil, fmt.Errorf("drop folder %s: %w", f.folder, err)
	case !info.IsDir():
		return nil, fmt.Errorf("drop folder %s is not a directory", f.folder)
	}
	if err := canWriteIn(f.folder); err != nil {
		return nil, fmt.Errorf("drop folder %s: files cannot be moved out of it: %w", f.folder, err)
	}
	for _, d := range []takenDir{f.processed.again(), f.failed.again()} {
		if err := d.insideFolder(); err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.key, d.path, err)
		}
		if err := creatable(d.path); err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.key, d.path, err)
		}
	}
	entries, err := os.ReadDir(f.folder)
	if err != nil {
		return nil, fmt.Errorf("drop folder %s cannot be listed: %w", f.folder, err)
	}
	waiting, links := 0, 0
	for _, e := range entries {
		switch {
		case e.IsDir() || !f.candidate(e.Name()):
		case e.Type()&fs.ModeSymlink != 0:
			links++
		default:
			waiting++
		}
	}
	notes := []string{fmt.Sprintf("drop folder %s: %d file(s) waiting", f.folder, waiting)}
	if links > 0 {
		notes = append(notes, fmt.Sprintf("drop folder %s: %d symbolic link(s), never taken (links are not followed): put the files themselves there", f.folder, links))
	}
	return notes, nil
}

// Check checks the drop folder, and that the enrolment export's directory
// exists and takes new files.
func (e *EnrollingFolder) Check(ctx context.Context) ([]string, error) {
	notes, err := e.Folder.Check(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(e.export.path)
	if err := canWriteIn(dir); err != nil {
		return nil, fmt.Errorf("enrol_export.file %s: its directory takes no new file: %w", e.export.path, err)
	}
	return notes, nil
}

// canWriteIn reports whether this process can create and remove a file in dir.
func canWriteIn(dir string) error {
	f, err := os.CreateTemp(dir, ".cvbridge-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

// creatable reports whether dir exists as a writable directory, or could be
// created in the nearest directory above it that exists.
func creatable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		switch {
		case err == nil && !info.IsDir():
			return fmt.Errorf("%s is not a directory", d)
		case err == nil:
			return canWriteIn(d)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		case filepath.Dir(d) == d:
			return err
		}
	}
}

var _ source.Owner = (*Folder)(nil)

// Owns names the drop folder: files in it are this connection's alone.
// The path is resolved through symbolic links, so two spellings of one
// folder are one.
func (f *Folder) Owns() []string {
	dir, err := filepath.Abs(f.folder)
	if err != nil {
		dir = f.folder
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return []string{"drop folder " + dir}
}
