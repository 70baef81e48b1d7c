package csvdrop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// The drop folder, the processed and failed directories below it and the
// directory of the enrolment export are written by the LMS side, often
// another user than the daemon. A symbolic link there could point at any
// file the daemon may read or write — its secret files, its outbox — and
// have it copied into an errors file or a log line, or overwritten. So the
// adapter never follows a symbolic link in the last element of such a path,
// never follows one out of the drop folder for the processed and failed
// directories inside it (takenDir; the configured directories themselves,
// and processed or failed directories configured elsewhere, are the
// operator's and are followed), never blocks on a named pipe, and creates
// its own files there under new random names before renaming them.

// errSymlink says why a file that is a symbolic link is left alone.
var errSymlink = errors.New("it is a symbolic link, which is never followed (it could point at any file this daemon can read or write); put the file itself there")

// openRegular opens path with flag (and perm when it creates it) unless its
// last element is a symbolic link or it is not a regular file.
func openRegular(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s: %w", path, errSymlink)
	}
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		_ = f.Close() // not used
		return nil, err
	}
	return f, nil
}

// openNoFollow opens a regular file for reading, refusing a symbolic link.
func openNoFollow(path string) (*os.File, error) {
	return openRegular(path, os.O_RDONLY, 0)
}
