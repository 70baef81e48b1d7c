package inbound

import (
	"context"
	"errors"
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
	if errors.Is(err, inboundstore.ErrNotScrubbed) {
		if log != nil {
			log.Warn("after erasing personal data", slog.String("note", err.Error()))
		}
		err = nil
	}
	if err != nil {
		return 0, err
	}
	if n > 0 && log != nil {
		log.Info("erased personal data of finished inbound messages", slog.Int("messages", n),
			slog.String("finished_before", before.UTC().Format(time.RFC3339)))
	}
	return n, nil
}

// DefaultKeepMessages is how long inbound messages are kept after their
// processing ended before they are deleted (90 days), when the
// configuration does not say otherwise.
const DefaultKeepMessages = 90 * 24 * time.Hour

// MinKeepMessages is the shortest time finished messages may be kept:
// Coachview resends a webhook for about three days (13 sends, the last
// some 68 hours after the first), and a resend of a deleted message would be
// carried out again.
const MinKeepMessages = 72 * time.Hour

// purgeBatch is how many messages one purge statement deletes, so no
// transaction holds the store for long.
const purgeBatch = 1000

// PurgeMessages deletes the inbound messages whose processing ended more
// than keep before now, in batches, logs how many it deleted and returns
// that number. Pending messages are never deleted; the enrolment list keeps
// its entries. A keep below MinKeepMessages is an error. The daemon calls
// it periodically, with its retention purge of delivered results.
func PurgeMessages(ctx context.Context, store inboundstore.MessagePurger, now time.Time, keep time.Duration, log *slog.Logger) (int, error) {
	if keep < MinKeepMessages {
		return 0, fmt.Errorf("inbound messages are kept %s, less than the %s Coachview resends webhooks for", keep, MinKeepMessages)
	}
	before := now.Add(-keep)
	total := 0
	for {
		n, err := store.PurgeMessages(ctx, before, purgeBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n < purgeBatch {
			break
		}
	}
	if total > 0 && log != nil {
		log.Info("deleted finished inbound messages", slog.Int("messages", total),
			slog.String("finished_before", before.UTC().Format(time.RFC3339)))
	}
	return total, nil
}
