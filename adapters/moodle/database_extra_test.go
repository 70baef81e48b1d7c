package moodle

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDatabaseDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			_, dir := moodleDB(t, d.driver, d.dsn(t))
			ctx := context.Background()
			m := newDBSource(t, d.driver, dir, "  page_size: 2\n", nil)
			sink := newMemSink()
			sink.Dry = true
			sink.SetCursor([]byte(`{"t":1717200150,"id":101}`))
			require.NoError(t, m.Poll(ctx, sink))
			assert.Equal(t, `{"t":1717200150,"id":101}`, string(sink.LastCursor()))
			assert.Empty(t, results(sink))
			assert.Equal(t, 0, sink.Commits())

			// The same source then polls for real from the untouched cursor.
			sink.Dry = false
			require.NoError(t, m.Poll(ctx, sink))
			assert.Len(t, results(sink), 5)
		})
	}
}

func TestDatabaseSessionIsReadOnly(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			direct, dir := moodleDB(t, d.driver, d.dsn(t))
			ctx := context.Background()
			m := newDBSource(t, d.driver, dir, "", nil)
			db, err := m.database(ctx)
			require.NoError(t, err)
			writes := []struct{ name, stmt string }{
				{"update", "UPDATE mdl_user SET idnumber = 'X' WHERE id = 10"},
				{"insert", "INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (500, 10, 4, 1)"},
				{"delete", "DELETE FROM mdl_grade_grades"},
				{"ddl", "CREATE TABLE mdl_bridge_probe (id INT)"},
			}
			for _, w := range writes {
				t.Run(w.name, func(t *testing.T) {
					says := map[string]string{driverPostgres: "read-only transaction", driverMySQL: "READ ONLY transaction"}[d.driver]
					err := readOnly(ctx, db, func(tx *sqlx.Tx) error {
						_, err := tx.ExecContext(ctx, w.stmt)
						return err
					})
					require.Error(t, err, "in the adapter's read-only transaction")
					assert.Contains(t, err.Error(), says)
					// The session itself is read-only: outside a transaction too.
					_, err = db.ExecContext(ctx, w.stmt)
					require.Error(t, err, "in the adapter's session")
					assert.Contains(t, err.Error(), says)
				})
			}
			var idnumber string
			require.NoError(t, direct.Get(&idnumber, "SELECT idnumber FROM mdl_user WHERE id = 10"))
			assert.Equal(t, "P100", idnumber)
			var n int
			require.NoError(t, direct.Get(&n, "SELECT COUNT(*) FROM mdl_grade_grades"))
			assert.Equal(t, 6, n)
		})
	}
}

func TestDatabaseSince(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dir := moodleDB(t, d.driver, d.dsn(t))
			ctx := context.Background()

			// Since T0 the first poll sends the fixture and keeps Carla's
			// (103, no idnumber) and Ethiek's (106, no code) to retry; the
			// cursor passes Dirk's (108, deleted user), never sent.
			sink := newMemSink()
			require.NoError(t, newDBSource(t, d.driver, dir, history+"  lookback: 0s\n", nil).Poll(ctx, sink))
			cur := cursorOf(t, sink)
			assert.Equal(t, [3]any{int64(1717200700), int64(108), []int64{103, 106}}, [3]any{cur.Time, cur.ID, cur.Retry})

			// since = T0+400 (the connection's existing cursor is kept): a
			// back-dated completion inside the lookback window and the retry
			// of 103 are before it and never sent.
			m := newDBSource(t, d.driver, dir, "  lookback: 1h\n  since: 2024-06-01T00:06:40Z\n", nil)
			db.MustExec(`UPDATE mdl_user SET idnumber = 'P102' WHERE id = 12`)
			db.MustExec(db.Rebind(`INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (?, ?, ?, ?)`), 110, 11, 3, t0+399)
			db.MustExec(db.Rebind(`INSERT INTO mdl_course_completions (id, userid, course, timecompleted) VALUES (?, ?, ?, ?)`), 111, 12, 5, t0+400)
			logCompleted(t, db, 110)
			logCompleted(t, db, 111)
			n := len(sink.Queued())
			require.NoError(t, m.Poll(ctx, sink))
			require.Len(t, sink.Queued(), n+1)
			assert.Equal(t, "P102 E-INTRO passed=true dec= text= date=2024-06-01T00:06:40Z remark=", describe(sink.Queued()[n]))
			cur = cursorOf(t, sink)
			assert.Equal(t, [3]any{int64(1717200700), int64(108), []int64{106}}, [3]any{cur.Time, cur.ID, cur.Retry})

			// A fresh connection with since sends nothing older on its first poll.
			fresh := newMemSink()
			require.NoError(t, m.Poll(ctx, fresh))
			assert.Equal(t, []string{
				"P100 E-INTRO passed=true dec= text= date=2024-06-01T00:10:00Z remark=",
				"P100 E-XL passed=true dec= text= date=2024-06-01T00:06:40Z remark=",
				"P102 E-INTRO passed=true dec= text= date=2024-06-01T00:06:40Z remark=",
			}, results(fresh))
		})
	}
}
