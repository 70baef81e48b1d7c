package outbox

import (
	"context"
	"fmt"
)

// BatchFinisher records the outcomes of several attempts in one
// transaction: one commit (and, on SQLite, one fsync) for many rows
// instead of one each. Every Store has it; a delivery.Dispatcher, whose
// store may be a narrower one (a test's), uses it when its store has it
// and calls Finish otherwise.
type BatchFinisher interface {
	// FinishBatch applies every Finish of fs exactly as Finish would, all
	// in one transaction, each row checked against its own lease. errs has
	// one entry per Finish: nil when it was applied, or an error wrapping
	// ErrLeaseLost or ErrNotFound when that row's lease was lost or the row
	// is gone, in which case nothing was written for it while the others
	// were applied. A Finish that is invalid (a state other than delivered,
	// pending or failed; pending without a next attempt time) gets its error
	// in errs too and is skipped. err is non-nil when the transaction
	// failed: then nothing at all was applied and errs is nil.
	FinishBatch(ctx context.Context, fs []Finish) (errs []error, err error)
}

// CheckFinish reports whether f asks for a state Finish may set: delivered,
// failed, probably-delivered, or pending with a next attempt time. Backends share it so that
// Finish and FinishBatch refuse the same things with the same words.
func CheckFinish(f Finish) error {
	switch f.State {
	case StateDelivered, StateFailed, StateProbablyDelivered:
		return nil
	case StatePending:
		if f.NextAttemptAt.IsZero() {
			return fmt.Errorf("finish result #%d: pending needs a next attempt time", f.ID)
		}
		return nil
	default:
		return fmt.Errorf("finish result #%d: state %q is not delivered, pending, failed or probably-delivered", f.ID, f.State)
	}
}
