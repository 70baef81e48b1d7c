//go:build unix

package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// checkStoreOwner refuses to open, as root, a SQLite outbox that belongs to
// another user (the service's), or to create one in a directory that does:
// SQLite would create its -wal and -shm files owned by root, which the
// service then cannot open. The error says which user to run as.
func checkStoreOwner(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil // opening reports it
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || st.Uid == 0 {
			return nil
		}
		name := strconv.FormatUint(uint64(st.Uid), 10)
		if u, err := user.LookupId(name); err == nil {
			name = u.Username
		}
		return fmt.Errorf("the outbox %s belongs to user %s, and this command runs as root, which would leave files there the service cannot write: run it as that user, e.g. sudo -u %s cvbridge …", path, name, name)
	}
	return nil
}

// LockSQLiteOutbox makes this process the one daemon on the SQLite outbox
// at path, for as long as the returned file stays open (the process's
// life: the kernel drops the lock when it dies, kill -9 included). A second
// `cvbridge run` on the same file — a copied configuration with the
// packaged absolute path, say, pointing at a test Coachview — would
// otherwise claim and send the same queue to its own target. The lock is
// flock(2) on a file beside the outbox (path + ".lock"), which neither
// SQLite's own POSIX locks nor other clients of the outbox (the CLI, a
// backup, sqlite3) touch. It holds the pid of the daemon that holds it.
func LockSQLiteOutbox(path string) (*os.File, error) {
	if err := checkStoreOwner(path); err != nil {
		return nil, err // root would leave a lock file the service cannot open
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("lock the outbox %s: %w", path, err)
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // one file, one lock, however the configuration names it
	}
	lockPath := path + ".lock"
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock the outbox %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(lockPath)
		_ = f.Close() // not ours to write
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(holder))
			if pid == "" {
				pid = "unknown"
			}
			return nil, fmt.Errorf("another cvbridge daemon (pid %s) runs on the outbox %s: one daemon per SQLite outbox; stop it, or give this configuration a storage.path of its own (several daemons may share a PostgreSQL outbox)", pid, path)
		}
		return nil, fmt.Errorf("lock the outbox %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0) // for the message above; the lock is what counts
	}
	return f, nil
}
