package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Backup writes a consistent copy of the outbox to the file at to while the
// store stays in use; see BackupFile.
func (s *Store) Backup(ctx context.Context, to string) error {
	return backup(ctx, s.db, to)
}

// BackupFile writes a consistent copy of the outbox database at path to
// the file at to while a daemon keeps using it. It opens the database
// without migrating it (a newer cvbridge's backup leaves the running older
// daemon's schema alone) and without touching the running process, which
// is another. SQLite's VACUUM INTO reads one snapshot inside a read
// transaction, so writers go on and the copy holds every commit made
// before it began. The copy is written beside to, checked with PRAGMA
// integrity_check, synced and only then renamed into place, readable by its
// owner only. An existing file at to is refused.
//
// It is for a process other than the daemon (the CLI): inside the daemon,
// closing this second handle of the file would drop the POSIX locks the
// daemon's own connections hold on it. The daemon would use Store.Backup.
func BackupFile(ctx context.Context, path, to string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("outbox database: %w", err)
	}
	db, err := sqlx.Open("sqlite", dsn(abs))
	if err != nil {
		return fmt.Errorf("outbox database %s: %w", abs, err)
	}
	defer func() { _ = db.Close() }() // only read: the copy is written and synced by backup
	return backup(ctx, db, to)
}

// backup writes the copy of db's database to the file at to.
func backup(ctx context.Context, db *sqlx.DB, to string) (err error) {
	abs, err := filepath.Abs(to)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(abs); err == nil {
		return fmt.Errorf("backup %s: the file exists; choose a new name", abs)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup %s: %w", abs, err)
	}
	removeStalePartials(abs)
	// An empty private file under a new name: VACUUM INTO fills it and
	// keeps its mode. A killed backup leaves its own, which blocks no other.
	f, err := os.CreateTemp(filepath.Dir(abs), partialPrefix(abs)+"*")
	if err != nil {
		return fmt.Errorf("backup %s: %w", abs, err)
	}
	partial := f.Name()
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup %s: %w", abs, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(partial)
			_ = os.Remove(partial + "-journal")
		}
	}()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, partial); err != nil {
		return fmt.Errorf("backup %s: %w", abs, err)
	}
	if err := checkIntegrity(ctx, partial); err != nil {
		return fmt.Errorf("backup %s: the copy fails its integrity check: %w", abs, err)
	}
	if err := syncFile(partial); err != nil {
		return fmt.Errorf("backup %s: %w", abs, err)
	}
	if err := os.Rename(partial, abs); err != nil {
		return fmt.Errorf("backup %s: %w", abs, err)
	}
	return syncFile(filepath.Dir(abs))
}

// partialPrefix starts the name of the copy being written for the backup
// at abs: a hidden file beside it.
func partialPrefix(abs string) string { return "." + filepath.Base(abs) + ".partial-" }

// stalePartial is how old a copy being written must be to be taken for
// one a killed backup left: no backup writes for an hour without touching
// its file.
const stalePartial = time.Hour

// removeStalePartials removes what killed backups to abs left beside it
// (copies of the outbox, personal data included, and their journals).
func removeStalePartials(abs string) {
	entries, _ := os.ReadDir(filepath.Dir(abs)) // unreadable: the backup itself reports it
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), partialPrefix(abs)) || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > stalePartial {
			_ = os.Remove(filepath.Join(filepath.Dir(abs), e.Name()))
		}
	}
}

// checkIntegrity runs PRAGMA integrity_check on the database file at path,
// opened read-only, and returns what it found unless that is "ok".
func checkIntegrity(ctx context.Context, path string) error {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: "mode=ro"}
	db, err := sqlx.Open("sqlite", u.String())
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }() // opened read-only
	var found []string
	if err := db.SelectContext(ctx, &found, `PRAGMA integrity_check`); err != nil {
		return err
	}
	if len(found) != 1 || found[0] != "ok" {
		return errors.New(strings.Join(found, "; "))
	}
	return nil
}

// syncFile flushes the file or directory at path to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
