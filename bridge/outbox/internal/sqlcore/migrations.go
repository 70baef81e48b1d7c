package sqlcore

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one schema version of a backend's embedded migrations.
type Migration struct {
	// Version is the file's number: 1 for 0001_init.sql.
	Version int
	// Name is the file's name, for errors.
	Name string
	// SQL is the file's statements.
	SQL string
}

// LoadMigrations reads a backend's migrations, the files migrations/*.sql
// of fsys named NNNN_description.sql, in version order, and checks that
// they are numbered 1, 2, 3, … without gaps.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
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
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("embedded migration %s: expected version %d", m.Name, i+1)
		}
	}
	return ms, nil
}

// NewerSchemaError is the refusal of a database at schema version current,
// written by a newer cvbridge than this build, which knows versions up to
// latest.
func NewerSchemaError(current int64, latest int) error {
	return fmt.Errorf("database schema %d is newer than this cvbridge knows (%d): upgrade cvbridge or restore a matching backup",
		current, latest)
}
