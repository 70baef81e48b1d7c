// Package delivery owns the per-target dispatcher that posts queued results
// to Coachview's results link and applies Coachview's answers: it classifies
// each answer (Class, Classify), schedules retries for the ones worth
// retrying, parks the ones that are not, pauses the whole target when
// Coachview refuses the signature, and opens the target's circuit
// (CircuitState) when Coachview is unreachable, so that a backlog is not
// sent at it result by result. Its Settings are the delivery keys of a
// target's configuration.
//
// It records every outcome through the outbox store but owns no storage, and
// it never renders, validates or changes a message body: it sends the bytes
// it is given, signed.
package delivery
