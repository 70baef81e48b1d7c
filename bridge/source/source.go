// Package source is the contract between the core and LMS adapters.
//
// A Source reads completions from an LMS, starting from the position (cursor)
// the core stored for its connection, and hands them to a Sink in batches. The
// Sink enqueues a batch and stores the new cursor in one transaction, so a
// crash neither loses nor duplicates results. Adapters that can also provision
// learners implement Enroller; what the bridge enrolled is kept in an
// enrolment list every Sink offers (Sink.Enrolments).
//
// What a source can do beyond Poll is declared by its adapter for the
// settings it was built from (Capabilities) and checked at start; Built
// carries a source with its declaration.
//
// Adapters live under adapters/ and register their settings type and
// builder there; this package holds only the runtime contract, needs no
// cgo, and must not import any adapter.
package source

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cvbridge/cvbridge/bridge/result"
)

// Source reads completions from one LMS connection.
type Source interface {
	// Poll reads what is new since the sink's stored cursor and commits it
	// through the sink, in as many batches as the source likes. It returns
	// when there is nothing more to read now. An error ends this poll; the
	// next scheduled poll starts again from the last committed cursor.
	Poll(ctx context.Context, sink Sink) error
}

// Watcher is implemented by sources that learn of new input by themselves
// (a file dropped in a folder). Watch runs until ctx ends and calls wake
// whenever a poll should run sooner than the schedule says.
type Watcher interface {
	Watch(ctx context.Context, wake func()) error
}

// Checker is implemented by sources that can verify their link to the LMS
// for `cvbridge check`: reach the database or web service, find the tables,
// try a custom query. It returns notes for the operator (such as a query
// that would scan a whole table, with the index that would help) and an
// error when the source cannot work as configured.
type Checker interface {
	Check(ctx context.Context) (notes []string, err error)
}

// Capabilities is what a source can do beyond Poll. An adapter declares
// it for the settings a source is built from (moodle enrols only with a
// url and token; csvdrop only with an enrol_export), and the core checks
// the configuration against it at start: enrol_codes on a connection that
// cannot enrol is refused with the LMS file's line.
type Capabilities struct {
	// Watch: the source implements Watcher and learns of new input itself.
	Watch bool
	// Enrol: the source implements Enroller and its settings allow
	// enrolment in the LMS.
	Enrol bool
	// Check: the source implements Checker, for `cvbridge check`.
	Check bool
	// DryRun: polled with a dry-run sink (Sink.DryRun), the source changes
	// nothing, so `cvbridge render` may poll it.
	DryRun bool
}

// Verify reports a declared capability whose interface src does not
// implement: a programming error of the adapter, found at start-up.
func (c Capabilities) Verify(src Source) error {
	if _, ok := src.(Watcher); c.Watch && !ok {
		return fmt.Errorf("%T declares watch but is no source.Watcher", src)
	}
	if _, ok := src.(Enroller); c.Enrol && !ok {
		return fmt.Errorf("%T declares enrol but is no source.Enroller", src)
	}
	if _, ok := src.(Checker); c.Check && !ok {
		return fmt.Errorf("%T declares check but is no source.Checker", src)
	}
	return nil
}

// Owner is implemented by a source that owns something no other
// connection may share, such as a drop folder: two connections taking
// files from one folder would each take some of them, under the other's
// settings and target.
type Owner interface {
	// Owns names what it owns, e.g. "drop folder /var/lib/cvbridge/drop";
	// two connections naming the same are refused.
	Owns() []string
}

// Built is a source with the capabilities its adapter declared for it.
type Built struct {
	Source Source
	Caps   Capabilities
}

// Enroller returns the source's enroller, or nil when the source was not
// declared able to enrol, whatever methods its type has.
func (b Built) Enroller() Enroller { return declared[Enroller](b, b.Caps.Enrol) }

// Watcher returns the source's watcher, or nil when the source was not
// declared to watch for input itself.
func (b Built) Watcher() Watcher { return declared[Watcher](b, b.Caps.Watch) }

// Checker returns the source's link checker, or nil without one.
func (b Built) Checker() Checker { return declared[Checker](b, b.Caps.Check) }

// declared returns b's source as a T when the capability is declared (yes)
// and the source implements T (Verify saw to that at build), and T's zero
// value, nil, otherwise.
func declared[T any](b Built, yes bool) T {
	var t T
	if yes {
		t, _ = b.Source.(T)
	}
	return t
}

// Sink is the core's side of a poll.
type Sink interface {
	// Cursor returns the cursor stored by the last commit, or nil.
	Cursor(ctx context.Context) ([]byte, error)
	// Seen reports whether a mark (for example a file's content hash) was
	// committed before.
	Seen(ctx context.Context, mark string) (bool, error)
	// Commit renders and enqueues every completion that fill adds, and
	// stores the checkpoint, in one transaction. If fill returns an error,
	// nothing is enqueued and the cursor does not move. Completions that fail
	// the business or XSD checks are stored as rejected, not returned as errors.
	Commit(ctx context.Context, cp Checkpoint, fill func(add func(result.Completion) error) error) (Summary, error)
	// Enrolments returns the connection's enrolment list: every enrolment
	// and unenrolment the bridge carried out through the connection's
	// Enroller, active and unenrolled entries alike, ordered by person and
	// e-learning code (none when the store keeps no list). A source that
	// cannot list completions (it polls per enrolment) reads it at each
	// poll to know whom to poll: the list is durable as soon as an
	// enrolment is done, so it survives a crash before the source's next
	// commit, and it is shared by every daemon on the same store.
	Enrolments(ctx context.Context) ([]Enrolled, error)
	// ReportProblems keeps the operator's account of input the source could
	// not use. A source that skips bad rows or sets whole files aside
	// (csvdrop's failed directory), or that the LMS hid data from, reports
	// it here, so the dashboard and /metrics show it beside what the poll
	// committed.
	ReportProblems(p Problems)
	// DryRun reports whether the sink only shows what a poll would commit
	// (cvbridge render). A source polled with such a sink must change
	// nothing: no files moved or written, nothing in the LMS touched.
	DryRun() bool
}

// Checkpoint is what a batch moves the connection's position to.
type Checkpoint struct {
	// Cursor replaces the stored cursor when non-nil.
	Cursor []byte
	// Marks are recorded so that Seen reports them from now on.
	Marks []string
	// Rejected, when set, is told of each completion the core's checks
	// reject (it is stored as rejected and never sent), during the add call
	// that passed it, with the completion's SourceRef and the reason. A
	// source uses it to report such rows where it reports its own bad rows.
	// An error it returns ends the fill and the commit.
	Rejected func(sourceRef, reason string) error
}

// Summary counts what a Commit did with the completions it was given.
type Summary struct {
	Queued    int // new pairs queued for delivery
	Replaced  int // pending payloads replaced by a newer completion
	Waiting   int // newer completions waiting for the send in flight of their pair
	Unchanged int // identical to what was already queued or delivered
	Ignored   int // pair already delivered: recorded, never sent
	Rejected  int // failed the business or XSD checks: recorded, never sent
}

// Add returns the sum of two summaries.
func (s Summary) Add(o Summary) Summary {
	return Summary{
		Queued: s.Queued + o.Queued, Replaced: s.Replaced + o.Replaced, Waiting: s.Waiting + o.Waiting,
		Unchanged: s.Unchanged + o.Unchanged, Ignored: s.Ignored + o.Ignored,
		Rejected: s.Rejected + o.Rejected,
	}
}

// Total is the number of completions the summary covers.
func (s Summary) Total() int {
	return s.Queued + s.Replaced + s.Waiting + s.Unchanged + s.Ignored + s.Rejected
}

// Problems is input of one poll that a source could not use.
type Problems struct {
	// BadRows counts rows skipped because they could not be read; rows
	// the core's checks rejected are in the Summary's Rejected instead.
	BadRows int
	// FailedFiles counts files set aside whole: no row of them enqueued.
	FailedFiles int
	// Skipped counts, by a short stable reason (such as moodle's
	// "members_hidden"), what a source could not read in full because the
	// LMS hid it; the source logs each with the fix.
	Skipped map[string]int
	// Last says, for the operator, what the latest problem was and where
	// to look (a file and its errors file); never a row's personal data.
	Last string
}

// Add returns the sum of two reports, Last being o's when o has one.
func (p Problems) Add(o Problems) Problems {
	last := p.Last
	if o.Last != "" {
		last = o.Last
	}
	var skipped map[string]int
	if len(p.Skipped)+len(o.Skipped) > 0 {
		skipped = map[string]int{}
		for _, m := range []map[string]int{p.Skipped, o.Skipped} {
			for k, n := range m {
				skipped[k] += n
			}
		}
	}
	return Problems{BadRows: p.BadRows + o.BadRows, FailedFiles: p.FailedFiles + o.FailedFiles, Skipped: skipped, Last: last}
}

// Enroller is implemented by adapters that can provision learners in the LMS.
type Enroller interface {
	// Enrol creates or updates the person and gives access to the part.
	// Repeating it is harmless.
	Enrol(ctx context.Context, e Enrolment) error
	// Unenrol removes the person's access to the part. It never deletes the
	// person, and unenrolling someone who is not enrolled is not an error.
	Unenrol(ctx context.Context, personID, elearningCode string) error
}

// Enrolled is one entry of a connection's enrolment list: ids only.
type Enrolled struct {
	PersonID      string // PersoonExterneId, compared case-insensitively
	ElearningCode string
	// Active is true when the bridge last enrolled the person, false when
	// it last unenrolled them.
	Active bool
	// Ref changes whenever the bridge enrols or unenrols the person again,
	// so a source can tell a repeated enrolment from one it has seen.
	Ref int64
}

// PersonKey is the one case-insensitive form of a PersoonExterneId: white
// space around it removed, lower-cased. Enrolment lists, the outbox's
// enrolment table and adapters compare person ids by it; keys already
// stored were made by this same rule.
func PersonKey(personID string) string { return strings.ToLower(strings.TrimSpace(personID)) }

// Enrolment is a person to enrol, as Coachview's enrolment link sends it.
type Enrolment struct {
	PersonID      string
	FirstName     string
	Infix         string // tussenvoegsels, e.g. "van der"
	LastName      string
	Email         string
	ElearningCode string
}

// ErrDryRun is returned by a dry-run sink's Commit (cvbridge render): the
// completions were shown, nothing was stored.
var ErrDryRun = errors.New("dry run: nothing committed")

// PermanentError marks an LMS refusal that retrying will not change; the
// message says what to fix. Errors not wrapped in it are treated as transient.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return fmt.Sprintf("permanent: %v", e.Err) }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is, or wraps, a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
