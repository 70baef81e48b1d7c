// Package sqlplan asks PostgreSQL or MariaDB/MySQL how they would run a
// query, for the adapters' `cvbridge check`: whether a statement compiles,
// and which tables its plan reads whole. It runs EXPLAIN only, never the
// statement itself.
package sqlplan

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Querier is what the functions need of a transaction: *sql.Tx and
// *sqlx.Tx have it.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ExplainOnly has the database plan a statement without running it, so a
// statement that does not compile fails here.
func ExplainOnly(ctx context.Context, tx Querier, q string, args []any) error {
	rows, err := tx.QueryContext(ctx, "EXPLAIN "+q, args...)
	if err != nil {
		return err
	}
	return rows.Close()
}

// FullScans returns the tables the plan of q reads whole, or through the
// whole of an index (an index walked from one end without a condition that
// bounds it). driver is "postgres" or "mysql". On PostgreSQL, plan inside a
// transaction with SET LOCAL enable_seqscan = off to plan as if tables were
// large: a sequential scan then means no index fits.
func FullScans(ctx context.Context, tx Querier, driver, q string, args []any) ([]string, error) {
	if driver == "postgres" {
		return postgresScans(ctx, tx, q, args)
	}
	return mysqlScans(ctx, tx, q, args)
}

func postgresScans(ctx context.Context, tx Querier, q string, args []any) ([]string, error) {
	var plan string
	if err := tx.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+q, args...).Scan(&plan); err != nil {
		return nil, err
	}
	var doc []map[string]any
	if err := json.Unmarshal([]byte(plan), &doc); err != nil {
		return nil, fmt.Errorf("read the plan: %w", err)
	}
	var out []string
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		switch n["Node Type"] {
		case "Index Scan", "Index Only Scan", "Bitmap Index Scan":
			if _, cond := n["Index Cond"]; cond {
				break
			}
			fallthrough // an index read from end to end
		case "Seq Scan":
			if t, ok := n["Relation Name"].(string); ok && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				if km, ok := k.(map[string]any); ok {
					walk(km)
				}
			}
		}
	}
	for _, d := range doc {
		if p, ok := d["Plan"].(map[string]any); ok {
			walk(p)
		}
	}
	return out, nil
}

func mysqlScans(ctx context.Context, tx Querier, q string, args []any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "EXPLAIN "+q, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }() // read only; rows.Err is checked
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		var table, typ string
		for i, c := range cols {
			switch strings.ToLower(c) {
			case "table":
				table = vals[i].String
			case "type":
				typ = vals[i].String
			}
		}
		// ALL reads the table, index the whole of an index.
		if (strings.EqualFold(typ, "ALL") || strings.EqualFold(typ, "index")) && table != "" && !strings.HasPrefix(table, "<") && !slices.Contains(out, table) {
			out = append(out, table)
		}
	}
	return out, rows.Err()
}
