package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxcopy"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
)

// cmdMigrate applies the store's schema migrations, for operators who run
// with `storage.migrate: false` and upgrade the schema as a separate step.
func cmdMigrate(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	fs := newFlags("migrate")
	cfgPath := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	switch cfg.Storage.Driver {
	case "postgres":
		s, err := postgres.Open(ctx, cfg.Storage.DSN) // Open migrates, under an advisory lock
		if err != nil {
			return fmt.Errorf("migrate the PostgreSQL outbox: %w", err)
		}
		defer closeInto(&cmdErr, s)
		_, _ = fmt.Fprintf(out, "PostgreSQL outbox schema is at version %d\n", postgres.LatestSchema())
	default:
		s, err := sqlite.Open(ctx, cfg.Storage.Path) // SQLite migrates when it opens
		if err != nil {
			return err
		}
		defer closeInto(&cmdErr, s)
		_, _ = fmt.Fprintf(out, "SQLite outbox %s is up to date\n", cfg.Storage.Path)
	}
	return nil
}

// cmdStorage moves an SQLite outbox into the configured PostgreSQL one
// (copy), or writes an online copy of the SQLite outbox (backup).
func cmdStorage(ctx context.Context, args []string, out io.Writer) error {
	if err := subcommand("storage", args); err != nil {
		return err
	}
	if args[0] == "copy" {
		return storageCopy(ctx, args[1:], out)
	}
	return storageBackup(ctx, args[1:], out)
}

// storageBackup writes a consistent copy of the configured SQLite outbox
// while the daemon runs, and checks it.
func storageBackup(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("storage backup")
	cfgPath := configFlag(fs)
	to := fs.String("to", "", "the file to write the copy to (required; must not exist)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usageError{"storage backup: --to is required"}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Storage.Driver == "postgres" {
		return usageError{fmt.Sprintf("%s: the outbox is in PostgreSQL: back it up with pg_dump (README, \"Backups and restore\")", cfg.File)}
	}
	if err := sqlite.BackupFile(ctx, cfg.Storage.Path, *to); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "wrote a consistent copy of %s to %s (integrity check: ok)\n", cfg.Storage.Path, *to)
	return nil
}

// storageCopy moves an SQLite outbox into the configured PostgreSQL one.
func storageCopy(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	fs := newFlags("storage copy")
	cfgPath := configFlag(fs)
	from := fs.String("from", "", "the SQLite outbox to copy (required; stop the daemon using it first)")
	force := fs.Bool("force", false, "replace what the PostgreSQL outbox already holds")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" {
		return usageError{"storage copy: --from is required"}
	}
	if _, err := os.Stat(*from); err != nil {
		return fmt.Errorf("the SQLite outbox to copy: %w", err)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Storage.Driver != "postgres" {
		return usageError{fmt.Sprintf("%s: storage.driver must be postgres to copy into it (it is %s)", cfg.File, cfg.Storage.Driver)}
	}
	src, err := sqlite.Open(ctx, *from)
	if err != nil {
		return err
	}
	defer closeInto(&cmdErr, src)
	dst, err := postgres.Open(ctx, cfg.Storage.DSN)
	if err != nil {
		return fmt.Errorf("open the PostgreSQL outbox: %w", err)
	}
	defer closeInto(&cmdErr, dst)
	rep, err := outboxcopy.Copy(ctx, src, dst, outboxcopy.Options{Force: *force, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "copied %s\n", rep.Copied)
	if *force {
		_, _ = fmt.Fprintf(out, "replaced %s\n", rep.Replaced)
	}
	_, _ = fmt.Fprintln(out, "set storage.driver: postgres in every daemon's configuration and start them")
	return nil
}
