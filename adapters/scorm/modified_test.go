package scorm

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/kit/kittest"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
)

// amsterdam is the provider's zone in these tests: 23:30 there in June is
// 21:30 UTC, and 23:30 UTC is already the next day there.
var amsterdam = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		panic(err)
	}
	return loc
}()

// bundledSchema is parsed once for all tests that render.
var bundledSchema = sync.OnceValues(xsdschema.Bundled)

// render renders c as Coachview receives it from a provider in loc whose
// results are rounded with mode.
func render(t *testing.T, loc *time.Location, mode result.Rounding, c result.Completion) string {
	t.Helper()
	schema, err := bundledSchema()
	require.NoError(t, err)
	opts := result.DefaultOptions()
	opts.Location = loc
	opts.Rounding = mode
	r, err := result.NewRenderer(opts, schema)
	require.NoError(t, err)
	out, err := r.Render(c)
	require.NoError(t, err)
	return string(out)
}

func TestZonelessType(t *testing.T) {
	t.Parallel()
	// The names are those lib/pq and go-sql-driver/mysql report through
	// sql.ColumnType.DatabaseTypeName, also for MAX of such a column.
	tests := []struct {
		driver, typeName string
		want             bool
	}{
		{driver: "postgres", typeName: "TIMESTAMP", want: true},
		{driver: "postgres", typeName: "DATE", want: true},
		{driver: "postgres", typeName: "TIMESTAMPTZ", want: false},
		{driver: "mysql", typeName: "DATETIME", want: true},
		{driver: "mysql", typeName: "TIMESTAMP", want: true},
		{driver: "mysql", typeName: "DATE", want: true},
	}
	for _, tc := range tests {
		t.Run(tc.driver+"/"+tc.typeName, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, zonelessType(tc.driver, tc.typeName))
		})
	}
}

// TestCustomPresetTimestampColumn reads a modified timestamp of 23:30 on
// 1 June, Amsterdam time, through each driver and column type: the result
// must be dated that day, not the next.
func TestCustomPresetTimestampColumn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		driver      string
		column      string // the SQL type of the stored time
		stored      string
		modified    string // the query's modified expression
		since       string // the query's cursor condition
		noParseTime bool   // mysql: a DSN without parseTime, so the driver gives text
	}{
		{
			name: "postgres timestamp", driver: "postgres", column: "TIMESTAMP", stored: "2024-06-01 23:30:00",
			modified: "updated", since: "updated >= to_timestamp(:cursor_time) AT TIME ZONE 'Europe/Amsterdam'",
		},
		{
			name: "postgres timestamptz", driver: "postgres", column: "TIMESTAMPTZ", stored: "2024-06-01 23:30:00+02",
			modified: "updated", since: "updated >= to_timestamp(:cursor_time)",
		},
		{
			name: "postgres timestamp holding UTC, returned as an instant", driver: "postgres", column: "TIMESTAMP", stored: "2024-06-01 21:30:00",
			modified: "updated AT TIME ZONE 'UTC'", since: "updated >= to_timestamp(:cursor_time) AT TIME ZONE 'UTC'",
		},
		{
			name: "postgres date", driver: "postgres", column: "DATE", stored: "2024-06-01",
			modified: "updated", since: "updated >= to_timestamp(:cursor_time) AT TIME ZONE 'Europe/Amsterdam'",
		},
		{
			name: "mysql datetime with parseTime", driver: "mysql", column: "DATETIME", stored: "2024-06-01 23:30:00",
			modified: "updated", since: "updated >= FROM_UNIXTIME(:cursor_time)",
		},
		{
			name: "mysql datetime without parseTime", driver: "mysql", column: "DATETIME", stored: "2024-06-01 23:30:00",
			modified: "updated", since: "updated >= FROM_UNIXTIME(:cursor_time)", noParseTime: true,
		},
		{
			name: "mysql datetime holding UTC, returned as Unix seconds", driver: "mysql", column: "DATETIME", stored: "2024-06-01 21:30:00",
			modified: "TIMESTAMPDIFF(SECOND, '1970-01-01', updated)", since: "updated >= FROM_UNIXTIME(:cursor_time)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn, db := database(t, tc.driver)
			_, err := db.Exec("CREATE TABLE stamped (learner VARCHAR(50) NOT NULL, course_code VARCHAR(50) NOT NULL, updated " + tc.column + " NOT NULL)")
			require.NoError(t, err)
			_, err = db.Exec("INSERT INTO stamped VALUES ('T001', 'TS-1', '" + tc.stored + "')")
			require.NoError(t, err)
			if tc.noParseTime {
				cfg, err := mysql.ParseDSN(dsn)
				require.NoError(t, err)
				cfg.ParseTime = false
				dsn = cfg.FormatDSN()
			}
			query := fmt.Sprintf("preset: custom\nquery: |\n  SELECT learner AS person_id, course_code AS elearning_code, 1 AS attempt_key, "+
				"'main' AS sco_key, 'passed' AS lesson_status, '' AS completion_status, '' AS success_status, '' AS score_raw, "+
				"'' AS score_min, '' AS score_max, '' AS score_scaled, %s AS modified FROM stamped WHERE %s\n", tc.modified, tc.since)
			src, _ := newTestSourceIn(t, tc.driver, dsn, query, amsterdam)
			sink := kittest.NewSink()
			require.NoError(t, src.Poll(context.Background(), sink))
			c, ok := results(sink)["T001|TS-1"]
			require.True(t, ok, "%q", summary(sink))

			want := time.Date(2024, 6, 1, 23, 30, 0, 0, amsterdam)
			if tc.column == "DATE" {
				want = time.Date(2024, 6, 1, 0, 0, 0, 0, amsterdam)
			}
			assert.True(t, want.Equal(c.CompletedAt), "completed at %s, want %s", c.CompletedAt, want)
			assert.Contains(t, render(t, amsterdam, result.RoundHalfUp, c), ` Datum="2024-06-01" `)
		})
	}
}
