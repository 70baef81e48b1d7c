package inbound

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// DefaultPersonalDataRetention is how long the names, e-mail addresses and
// raw bodies of inbound messages are kept after their processing ended (30
// days), when the configuration does not say otherwise.
const DefaultPersonalDataRetention = 30 * 24 * time.Hour

// ErasePersonalData erases the names, e-mail addresses and raw bodies of the
// inbound messages whose processing ended (done, failed, ignored, unmapped)
// more than retention before now, logs how many it erased, and returns that
// number. A retention of 0 erases them as soon as their processing ended;
// a negative one is an error. Pending messages keep their data: processing
// still needs it. The daemon calls it periodically, e.g. with its retention
// purge of delivered results.
func ErasePersonalData(ctx context.Context, store inboundstore.PersonalData, now time.Time, retention time.Duration, log *slog.Logger) (int, error) {
	if retention < 0 {
		return 0, fmt.Errorf("inbound personal data retention %s is negative", retention)
	}
	before := now.Add(-retention)
	n, err := store.ErasePersonalData(ctx, before)
	if err != nil {
		return 0, err
	}
	if n > 0 && log != nil {
		log.Info("erased personal data of finished inbound messages", slog.Int("messages", n),
			slog.String("finished_before", before.UTC().Format(time.RFC3339)))
	}
	return n, nil
}
