package sqlcore

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Migration is one schema version of a backend's embedded migrations.
type Migration struct {
	// Version is the file's number: 1 for 0001_init.sql.
	Version int
	// Name is the file's name, for errors.
	Name string
	// SQL is the file's statements.
	SQL string
	// Then, when set, is the version's step in Go, run after SQL.
	Then Step
}

// Step is the part of a migration SQL cannot do alike on both backends
// (such as filling a column with what a Go function computes), run in the
// migration's transaction after its file's statements.
type Step func(ctx context.Context, tx *sqlx.Tx) error

// Apply runs m's statements and then its step, if any, in tx.
func (m Migration) Apply(ctx context.Context, tx *sqlx.Tx) error {
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if m.Then != nil {
		return m.Then(ctx, tx)
	}
	return nil
}

// LoadMigrations reads a backend's migrations, the files migrations/*.sql
// of fsys named NNNN_description.sql, in version order, and checks that
// they are numbered 1, 2, 3, … without gaps. steps gives, by file name,
// the versions that have a step in Go; each must name a file.
func LoadMigrations(fsys fs.FS, steps map[string]Step) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list embedded migrations: %w", err)
	}
	ms := make([]Migration, 0, len(names))
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("embedded migration %s: name is not NNNN_description.sql", base)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("embedded migration %s: version %q is not a number: %w", base, num, err)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", base, err)
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(body), Then: steps[base]})
	}
	for name := range steps {
		if !slices.ContainsFunc(ms, func(m Migration) bool { return m.Name == name }) {
			return nil, fmt.Errorf("migration step for %s: no such embedded migration", name)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("embedded migration %s: expected version %d", m.Name, i+1)
		}
	}
	return ms, nil
}
