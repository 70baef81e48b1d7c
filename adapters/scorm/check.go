package scorm

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cvbridge/cvbridge/adapters/internal/sqlplan"
	"github.com/cvbridge/cvbridge/adapters/scorm/cmi"
)

// Check verifies the link for `cvbridge check`: the database answers, the
// Moodle tables (either schema) or the custom query's columns are there,
// the configured statements compile, and the query that finds changes does
// not scan a whole table; when it would, a note names the index that helps.
func (s *Source) Check(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("scorm: cannot reach the %s database from %s: %w", s.cfg.Driver, dsnOrigin(s.cfg), err)
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("scorm: begin read-only transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // read-only
	if s.cfg.Driver == "postgres" {
		// Plan as if tables were large: a sequential scan then means no index fits.
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return nil, fmt.Errorf("scorm: %w", err)
		}
	}
	now := s.clock.Now().Unix()
	var notes []string
	var scanQuery string
	var scanArgs []any
	var hint func(tables string) string
	if s.cfg.Preset == presetCustom {
		c := customSQL{driver: s.cfg.Driver, query: s.cfg.query}
		q, args := c.probe()
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("scorm: the custom query fails: %w", err)
		}
		cols, err := rows.Columns()
		_ = rows.Close() // read only: only the columns were wanted
		if err != nil {
			return nil, fmt.Errorf("scorm: the custom query's columns: %w", err)
		}
		var missing []string
		for _, want := range customColumns {
			if !slices.ContainsFunc(cols, func(c string) bool { return strings.EqualFold(c, want) }) {
				missing = append(missing, want)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("scorm: the custom query lacks column(s) %s (it returns %s); alias them, e.g. \"AS %s\"",
				strings.Join(missing, ", "), strings.Join(cols, ", "), missing[0])
		}
		scanQuery, scanArgs = c.pairs(now, true, [2]string{}, s.cfg.PageSize)
		col := cursorColumn(s.cfg.Query)
		hint = func(tables string) string {
			if col == "" {
				return fmt.Sprintf("an index on %s over the column the query compares with :cursor_time", tables)
			}
			return fmt.Sprintf("an index on %s (%s)", tables, col)
		}
	} else {
		sch, err := s.detect(ctx)
		if err != nil {
			return nil, err
		}
		notes = append(notes, "Moodle SCORM schema: "+sch.String())
		m := moodleSQL{driver: s.cfg.Driver, prefix: s.cfg.Prefix, schema: sch}
		elems := make([]any, 0, len(elementsAny())+2)
		elems = append(append(elems, elementsAny()...), 0, 0)
		for _, st := range []struct {
			what string
			q    string
			args []any
		}{
			{"values", m.values(1), elems},
			{"users", m.users(s.cfg.PersonField, 1), []any{0}},
			{"packages", m.packages(1), []any{0}},
			{"SCOs", m.scoes(1), []any{0}},
		} {
			if err := sqlplan.ExplainOnly(ctx, tx, st.q, st.args); err != nil {
				return nil, fmt.Errorf("scorm: reading %s from Moodle's tables fails: %w", st.what, err)
			}
		}
		scanQuery, scanArgs = m.pairs(true), []any{now, s.cfg.PageSize}
		t := m.trackTable()
		hint = func(string) string {
			return fmt.Sprintf("an index on %s (timemodified), e.g. CREATE INDEX %s_cvb_tm_ix ON %s (timemodified)", t, t, t)
		}
	}
	scans, err := sqlplan.FullScans(ctx, tx, s.cfg.Driver, scanQuery, scanArgs)
	if err != nil {
		return nil, fmt.Errorf("scorm: the query that finds changed results fails: %w", err)
	}
	if len(scans) > 0 {
		tables := strings.Join(scans, ", ")
		notes = append(notes, fmt.Sprintf("the query finding changed results reads all of %s on every poll; %s would help", tables, hint(tables)))
	}
	if s.cfg.enrol != nil {
		if err := s.checkEnrol(ctx); err != nil {
			return nil, err
		}
	}
	return notes, nil
}

// checkEnrol has the database plan enrol_sql and unenrol_sql, in a
// transaction that may write (MariaDB refuses to plan an INSERT in a
// read-only one) and is rolled back; EXPLAIN runs nothing.
func (s *Source) checkEnrol(ctx context.Context) error {
	tx, err := s.enrolDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("scorm: begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // nothing to keep
	for _, st := range []struct {
		key string
		n   *namedSQL
	}{{"enrol_sql", s.cfg.enrol}, {"unenrol_sql", s.cfg.unenrol}} {
		q, args := st.n.bind(s.cfg.Driver, map[string]any{})
		if err := sqlplan.ExplainOnly(ctx, tx, q, args); err != nil {
			return fmt.Errorf("scorm: %s does not compile: %w", st.key, err)
		}
	}
	return nil
}

func elementsAny() []any {
	out := make([]any, 0, 10)
	for _, e := range cmi.Elements {
		out = append(out, e)
	}
	return out
}

// cursorRE finds the column a custom query compares with :cursor_time,
// possibly through a conversion such as to_timestamp(:cursor_time).
var cursorRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.]*)\s*>=?\s*(?:[A-Za-z_]+\s*\(\s*)?:cursor_time`)

// cursorColumn returns that column without its table alias, or "".
func cursorColumn(query string) string {
	m := cursorRE.FindStringSubmatch(query)
	if m == nil {
		return ""
	}
	c := m[1]
	if i := strings.LastIndexByte(c, '.'); i >= 0 {
		c = c[i+1:]
	}
	return c
}
