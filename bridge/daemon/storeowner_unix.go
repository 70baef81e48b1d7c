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
