package scorm

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/kit/kittest"
)

// TestMoodleSessionIsReadOnly: on a Moodle database the reading pool's
// sessions are read-only, as the moodle adapter's, so not even a statement
// outside the adapter's read-only transactions can write or run DDL; the
// enrolling pool still writes.
func TestMoodleSessionIsReadOnly(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			dsn, db := database(t, driver, "moodle_common.sql", "moodle_attempt.sql")
			src, _ := newTestSource(t, driver, dsn, "preset: moodle\n")
			s := src.(*Source)
			ctx := context.Background()
			_, err := s.db.ExecContext(ctx, "CREATE TABLE cvbridge_write_probe (id INT)")
			require.Error(t, err, "DDL through the reading pool")
			_, err = s.db.ExecContext(ctx, "DELETE FROM mdl_scorm_attempt")
			require.Error(t, err, "a write through the reading pool")
			var n int
			require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM mdl_scorm_attempt").Scan(&n))
			assert.Positive(t, n)
			require.NoError(t, src.Poll(ctx, kittest.NewSink()), "reading still works")
		})
	}
}
