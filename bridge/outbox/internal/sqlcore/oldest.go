package sqlcore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// OldestPending returns the earliest CreatedAt of target's pending and
// sending rows; see outbox.Store. The partial index on waiting rows keeps it
// to those rows, however much delivered history is retained.
func (b *Base) OldestPending(ctx context.Context, target string) (time.Time, bool, error) {
	var oldest sql.NullInt64
	err := b.db.GetContext(ctx, &oldest, b.q(`SELECT MIN(created_at) FROM results
		WHERE target = ? AND state IN ('pending', 'sending')`), target)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("oldest waiting result of target %s: %w", target, err)
	}
	if !oldest.Valid {
		return time.Time{}, false, nil
	}
	return FromMillis(oldest), true, nil
}
