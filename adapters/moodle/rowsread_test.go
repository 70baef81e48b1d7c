package moodle

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// TestDatabasePollReadsWhatItSends: on PostgreSQL, a first poll that sends
// the newest 2,000 of 20,000 completions reads a few rows in all tables
// per completion it sends (the page's index entries and one lookup by key
// in each joined table), not the users or grades whole through the hash
// joins the planner picks by its statistics once it expects a few thousand
// rows. Rows read are PostgreSQL's own count (pg_stat_user_tables).
func TestDatabasePollReadsWhatItSends(t *testing.T) {
	t.Parallel()
	db, dir := moodleDB(t, driverPostgres, testdb.Postgres(t))
	grow(t, db, driverPostgres, 20000)
	// grow's completions are dated T0+1000 … T0+20999.
	since := time.Unix(t0+19000, 0).UTC().Format(time.RFC3339)
	m := newDBSourceAt(t, driverPostgres, dir, "  page_size: 500\n  since: "+since+"\n", clock.NewFake(time.Unix(t0+30000, 0)))
	sink := newMemSink()
	before := tuplesRead(t, db)
	require.NoError(t, m.Poll(context.Background(), sink))
	require.NoError(t, m.Close()) // its backend exits and reports its statistics
	read := tuplesAfter(t, db, before)
	require.Len(t, sink.Queued(), 2000)
	assert.LessOrEqual(t, read, int64(5*2000), fmt.Sprintf("rows read for 2,000 completions sent: %d", read))
}

// TestDatabasePageOfDeletedUsersMovesOn: a page is chosen from the
// completions alone, those of deleted users included, which are then
// passed over; a page holding only such completions does not end the poll,
// and the cursor moves past them.
func TestDatabasePageOfDeletedUsersMovesOn(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dir := moodleDB(t, d.driver, d.dsn(t))
			db.MustExec("UPDATE mdl_user SET deleted = 1 WHERE id = 11") // Bram: 102, the second completion
			sink := newMemSink()
			require.NoError(t, newDBSource(t, d.driver, dir, history+"  page_size: 1\n", nil).Poll(context.Background(), sink))
			assert.Equal(t, []string{
				"P100 E-INTRO passed=true dec= text= date=2024-06-01T00:10:00Z remark=",
				"P100 E-VCA passed=true dec= text= date=2024-06-01T00:01:40Z remark=",
				"P100 E-XL passed=true dec= text= date=2024-06-01T00:06:40Z remark=",
				"P104 E-VCA passed=true dec= text= date=2024-06-01T00:05:00Z remark=",
			}, results(sink))
			cur := cursorOf(t, sink)
			assert.Equal(t, [2]int64{t0 + 700, 108}, [2]int64{cur.Time, cur.ID})
		})
	}
}
