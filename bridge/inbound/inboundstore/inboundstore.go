// Package inboundstore is the storage contract of inbound enrolments: the
// record types and the Store interface that the inbound packages (webhook
// receiver, enrolment link, OAuth authorisation server, processing worker)
// consume and that the outbox backends (bridge/outbox/sqlite,
// bridge/outbox/postgres) implement in the same database as the outbox.
//
// The package imports no backend and no other inbound package, so the
// backends can assert `var _ inboundstore.Store = (*Store)(nil)` without an
// import cycle, and the conformance suite (bridge/outbox/outboxtest,
// RunInbound) can test them against it.
//
// Beside the messages and tokens, the backends keep the enrolment list
// (EnrolmentList: ids only, written atomically with a message's done
// state by FinishMessage) and delete finished messages after a retention
// (MessagePurger).
//
// Secrets never reach the store in the clear: OAuth codes and tokens are
// kept as the hex SHA-256 of their value (Hash), looked up by that hash.
package inboundstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
	"unicode/utf8"
)

// MaxBody is the largest raw message body a store keeps; longer bodies are
// cut to it (receivers refuse bodies this large before storing anyway).
const MaxBody = 1 << 20

// MaxError is the longest last_error a store keeps, in bytes; longer
// messages are cut on a UTF-8 boundary.
const MaxError = 2000

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// ErrState is returned when a message is not in a state that allows the
// requested change (e.g. retrying a message that did not fail).
var ErrState = errors.New("not in a state that allows this")

// ErrErased is returned when a change needs personal data that was erased
// (e.g. retrying an enrolment whose names and e-mail address are gone).
var ErrErased = errors.New("its personal data was erased")

// ErrNotScrubbed is returned, with the count of what was erased, when an
// erasure committed but the database could not yet remove the erased bytes
// from its write-ahead log (another reader kept it busy); they leave it at
// the next checkpoint.
var ErrNotScrubbed = errors.New("erased, but the erased bytes stay in the database's write-ahead log until its next checkpoint")

// ErrLeaseLost is returned by FinishMessage when the caller no longer holds
// the message's lease (another process claimed it after the lease ran out,
// or it is no longer pending).
var ErrLeaseLost = errors.New("lease lost")

// Action is what an inbound message asks for.
type Action string

// The actions of inbound messages.
const (
	// ActionEnrol creates or updates the person and gives access.
	ActionEnrol Action = "enrol"
	// ActionUnenrol removes the person's access.
	ActionUnenrol Action = "unenrol"
	// ActionIgnore marks an event the configuration says to ignore.
	ActionIgnore Action = "ignore"
	// ActionUnmapped marks an event the configuration does not mention.
	ActionUnmapped Action = "unmapped"
)

// State is where an inbound message is in its processing.
type State string

// The states of inbound messages.
const (
	// StatePending messages wait to be processed (again), possibly leased.
	StatePending State = "pending"
	// StateDone messages were carried out by the LMS.
	StateDone State = "done"
	// StateFailed messages were refused permanently, or could not be
	// carried out in the retry time; LastError says why.
	StateFailed State = "failed"
	// StateIgnored messages are events configured to be ignored.
	StateIgnored State = "ignored"
	// StateUnmapped messages are events the configuration does not map.
	StateUnmapped State = "unmapped"
	// StateSuperseded messages are enrolments or unenrolments a later
	// request for the same person and e-learning code replaced before they
	// were carried out: the last request Coachview sent for a pair decides
	// its final state, so they never are.
	StateSuperseded State = "superseded"
)

// States are all states of inbound messages, in the order reports list them.
var States = []State{StatePending, StateDone, StateFailed, StateIgnored, StateUnmapped, StateSuperseded}

// Terminal reports whether s is a final state.
func (s State) Terminal() bool { return s != StatePending }

// Verification methods recorded in Message.Verified.
const (
	VerifiedBearer    = "bearer"    // enrolment link, OAuth access token
	VerifiedSignature = "signature" // webhook, x-coachview-whsignature
	VerifiedToken     = "token"     // webhook, x-coachview-whtoken
	VerifiedBoth      = "signature+token"
)

// SourceLink is the Source of enrolment-link requests; webhook messages have
// Source "webhook:<subscription name>".
const SourceLink = "link"

// WebhookSource is the Source of messages of the named webhook subscription.
func WebhookSource(subscription string) string { return "webhook:" + subscription }

// Message is one inbound request or webhook message as stored.
type Message struct {
	ID         int64
	Source     string // SourceLink or WebhookSource(name)
	DedupeKey  string // unique per Source: a retry of the same message has the same key
	ReceivedAt time.Time
	Verified   string // how the sender was authenticated (Verified* constants)
	Event      string // webhook event name; "" for the link
	Body       []byte // raw body, cut to MaxBody

	Action        Action
	PersonID      string
	ElearningCode string
	FirstName     string
	Infix         string
	LastName      string
	Email         string

	State         State
	Attempts      int
	NextAttemptAt time.Time // when a pending message is due; a leased one's lease end
	LeaseOwner    string    // who holds the lease of a pending message being processed
	LeaseUntil    time.Time
	LastError     string
	Requests      int // how many times the message was received (retries included)
	UpdatedAt     time.Time
	// ErasedAt is when the message's names, e-mail address and body were
	// erased (PersonalData); zero while they are kept.
	ErasedAt time.Time
}

// Erased reports whether m's personal data was erased.
func (m Message) Erased() bool { return !m.ErasedAt.IsZero() }

// Duplicate says what SaveMessage does when a message with the same Source
// and DedupeKey is already stored.
type Duplicate int

const (
	// KeepExisting leaves the stored message as it is (webhook retries: the
	// message is processed once).
	KeepExisting Duplicate = iota
	// Rearm makes a stored message that is done or failed pending and due
	// now again, with Attempts reset (the enrolment link: Coachview's user
	// repeats a request to have it carried out again, which the LMS's
	// idempotent enroller makes harmless). A pending message is left as it is.
	Rearm
)

// SaveOutcome is what SaveMessage did.
type SaveOutcome int

const (
	// Inserted means the message is new.
	Inserted SaveOutcome = iota
	// Existed means an equal message was stored and left as it was.
	Existed
	// Rearmed means an equal, finished message was made pending again.
	Rearmed
)

// Finish is the result of one processing attempt of a leased message.
type Finish struct {
	ID            int64
	Owner         string
	State         State     // StatePending (retry at NextAttemptAt), StateDone or StateFailed
	NextAttemptAt time.Time // for StatePending
	Error         string    // why it failed (kept as LastError); "" clears it
	At            time.Time // when the attempt ended
	// Connection is the LMS connection the message was routed to. When it
	// is set, State is StateDone and the message is an enrolment or an
	// unenrolment, FinishMessage also records the message's person and
	// e-learning code in the connection's enrolment list (EnrolmentList)
	// as active or unenrolled, in the same transaction: a done enrolment
	// never exists without its list entry. Otherwise it is not used.
	Connection string
}

// MessageFilter selects messages for ListMessages. Zero fields select all.
type MessageFilter struct {
	State    State
	Source   string
	BeforeID int64 // only messages with a smaller id (paging, newest first)
	Limit    int   // at most this many (0: 100)
}

// MessageStore stores inbound messages and leases them to processors.
type MessageStore interface {
	// SaveMessage stores m (its ID, Requests and UpdatedAt are ignored;
	// ReceivedAt and NextAttemptAt zero mean now) unless a message with the
	// same Source and DedupeKey exists, in which case dup decides. It
	// returns the message as stored afterwards. Every call counts a request.
	SaveMessage(ctx context.Context, m Message, dup Duplicate) (Message, SaveOutcome, error)
	// ClaimMessages leases up to limit pending messages that are due at now
	// to owner until now+lease, oldest due first. A claimed message's
	// NextAttemptAt becomes its lease end, so it is due again if its owner
	// vanishes. Several processes claiming at once get disjoint messages.
	ClaimMessages(ctx context.Context, owner string, limit int, now time.Time, lease time.Duration) ([]Message, error)
	// ClaimMessage leases the pending message id to owner until now+lease
	// whether or not it is due, unless another owner holds an unexpired
	// lease on it; ok is false when it was not claimed (leased elsewhere or
	// not pending).
	ClaimMessage(ctx context.Context, id int64, owner string, now time.Time, lease time.Duration) (m Message, ok bool, err error)
	// FinishMessage records one attempt: it counts it, sets the new state
	// and releases the lease, if f.Owner still holds the message's lease
	// (an expired lease nobody took over still counts); ErrLeaseLost if not,
	// and then nothing is written. A done enrolment or unenrolment with
	// f.Connection set updates the enrolment list too (see Finish).
	FinishMessage(ctx context.Context, f Finish) error
	// GetMessage returns message id, ErrNotFound if there is none.
	GetMessage(ctx context.Context, id int64) (Message, error)
	// ListMessages returns the messages f selects, newest (highest id) first.
	ListMessages(ctx context.Context, f MessageFilter) ([]Message, error)
}

// MessagePurger deletes inbound messages that are of no more use.
type MessagePurger interface {
	// PurgeMessages deletes up to limit messages whose processing ended
	// (done, failed, ignored, unmapped) and that were last changed before
	// before, and returns how many it deleted. Pending messages are never
	// deleted. The enrolment list keeps its entries: their MessageID may
	// then name a deleted message. A webhook resent after its message was
	// deleted is a new message, so before must lie further back than
	// Coachview's resends (about three days).
	PurgeMessages(ctx context.Context, before time.Time, limit int) (int, error)
}

// EnrolmentState is where an entry of the enrolment list stands.
type EnrolmentState string

// The states of enrolment list entries.
const (
	// EnrolmentActive entries were last enrolled by the bridge.
	EnrolmentActive EnrolmentState = "active"
	// EnrolmentUnenrolled entries were last unenrolled by the bridge.
	EnrolmentUnenrolled EnrolmentState = "unenrolled"
)

// Valid reports whether s is a known enrolment state.
func (s EnrolmentState) Valid() bool { return s == EnrolmentActive || s == EnrolmentUnenrolled }

// Enrolment is one entry of the bridge-tracked enrolment list: a person's
// access to an e-learning part in one LMS connection, as the bridge last
// set it there through the connection's enroller. It holds ids only (what
// Coachview needs), never names or e-mail addresses. The key is
// (Connection, PersonID compared case-insensitively, ElearningCode).
type Enrolment struct {
	Connection    string
	PersonID      string // as the message that last changed the entry gave it
	ElearningCode string
	State         EnrolmentState
	// MessageID is the inbound message that last changed the entry (it may
	// have been purged since); it changes whenever the bridge enrols or
	// unenrols the person again.
	MessageID int64
	CreatedAt time.Time // when the bridge first enrolled or unenrolled the pair
	UpdatedAt time.Time // when the entry last changed
}

// EnrolmentFilter selects enrolment list entries. Zero fields select all.
type EnrolmentFilter struct {
	Connection    string
	PersonID      string // compared case-insensitively
	ElearningCode string
	State         EnrolmentState
	Limit         int // at most this many (0: all)
}

// EnrolmentList is the bridge-tracked list of enrolments, written by
// FinishMessage (see Finish.Connection) and read by the LMS adapters that
// poll per enrolment and by the operator.
type EnrolmentList interface {
	// ListEnrolments returns the entries f selects, ordered by connection,
	// person (case-insensitively) and e-learning code.
	ListEnrolments(ctx context.Context, f EnrolmentFilter) ([]Enrolment, error)
	// CountEnrolments returns how many entries f selects, ignoring f.Limit.
	CountEnrolments(ctx context.Context, f EnrolmentFilter) (int, error)
}

// TokenKind names which secret of a Token a hash is looked up by.
type TokenKind string

// The kinds of OAuth secrets.
const (
	KindCode    TokenKind = "code"
	KindAccess  TokenKind = "access"
	KindRefresh TokenKind = "refresh"
)

// Token is one OAuth grant record: an authorization code (CodeHash set) or
// an access token with its refresh token (AccessHash, RefreshHash set). All
// records issued from one authorization share a GrantID.
type Token struct {
	ID                  int64
	GrantID             string
	ClientID            string
	UserID              string
	RedirectURI         string
	Scope               string
	CodeHash            string
	CodeChallenge       string
	CodeChallengeMethod string
	CodeExpiresAt       time.Time // zero: never
	AccessHash          string
	AccessExpiresAt     time.Time // zero: never
	RefreshHash         string
	RefreshExpiresAt    time.Time // zero: never
	CreatedAt           time.Time
	RevokedAt           time.Time // zero: not revoked
	RevokeReason        string
}

// Revoked reports whether t was revoked (or, for a code, consumed).
func (t Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// Reasons recorded when a token is revoked.
const (
	ReasonConsumed = "code exchanged"
	ReasonRotated  = "refresh token rotated"
	ReasonReuse    = "grant revoked: a used code or rotated refresh token was presented again"
	ReasonOperator = "revoked by operator"
)

// TokenFilter selects tokens for ListTokens.
type TokenFilter struct {
	ClientID string // "" for every client
	// Active selects only records neither revoked nor fully expired at Now.
	Active bool
	Now    time.Time
}

// TokenStore stores hashed OAuth codes and tokens.
type TokenStore interface {
	// CreateToken stores t (ID and CreatedAt zero: assigned) and returns it
	// as stored. Hashes must be unique per kind.
	CreateToken(ctx context.Context, t Token) (Token, error)
	// TokenByHash returns the record whose secret of kind hashes to hash,
	// revoked or not; ErrNotFound if none.
	TokenByHash(ctx context.Context, kind TokenKind, hash string) (Token, error)
	// RevokeToken revokes the unrevoked record whose secret of kind hashes
	// to hash, at now, with reason; revoked is false when there was no such
	// unrevoked record (already revoked, consumed or unknown). Exchanging a
	// code is RevokeToken(KindCode, …, ReasonConsumed): only one of several
	// concurrent exchanges gets revoked == true.
	RevokeToken(ctx context.Context, kind TokenKind, hash string, now time.Time, reason string) (revoked bool, err error)
	// RotateRefresh revokes the unrevoked record holding refresh token
	// oldHash (ReasonRotated) and stores next, in one transaction; ok is
	// false, and nothing changes, when that record was already revoked.
	RotateRefresh(ctx context.Context, oldHash string, next Token, now time.Time) (stored Token, ok bool, err error)
	// RevokeGrant revokes every unrevoked record of grant and returns how many.
	RevokeGrant(ctx context.Context, grantID string, now time.Time, reason string) (int, error)
	// RevokeClient revokes every unrevoked record of client and returns how many.
	RevokeClient(ctx context.Context, clientID string, now time.Time, reason string) (int, error)
	// ListTokens returns the records f selects, newest first.
	ListTokens(ctx context.Context, f TokenFilter) ([]Token, error)
	// PurgeTokens deletes, and returns how many, the records all of whose
	// secrets expired before cutoff, and the records of grants wholly dead
	// before cutoff (each record revoked or expired). A revoked record of a
	// living grant stays until it expires, so that a used code or rotated
	// refresh token presented again is still recognised as reuse.
	PurgeTokens(ctx context.Context, cutoff time.Time) (int, error)
}

// MessageAdmin is what the operator's commands change in stored messages.
type MessageAdmin interface {
	// RetryMessage makes the failed message id pending and due at now,
	// with Attempts reset and LastError kept until the next attempt
	// replaces it, and returns it as stored. It returns an error wrapping
	// ErrNotFound for an unknown id, ErrState for a message that is not
	// failed, and ErrErased for an enrolment whose personal data was erased
	// (the LMS would get a person without a name).
	RetryMessage(ctx context.Context, id int64, now time.Time) (Message, error)
}

// ErasedKeyPrefix starts the dedupe key an erased enrolment-link message is
// given in place of its own: the link's key is a hash of the names and
// e-mail address, which would let anyone holding a guess confirm it. The
// new key ("erased:<id>") is unique, so a later, equal request is stored as
// a new message and carried out with the data it brings. Webhook messages
// keep their key (a hash of the whole message or Coachview's event id), so
// a late resend of an erased message is still recognised and not carried
// out again.
const ErasedKeyPrefix = "erased:"

// ForgetReport is what ForgetPerson erased and what it left.
type ForgetReport struct {
	// Messages counts the inbound messages of the person whose names,
	// e-mail address and raw body were erased (now or before).
	Messages int
	// Cancelled counts those of them that were still pending: they are
	// failed without being carried out, as their personal data is gone.
	Cancelled int
	// Delivered counts the delivered outbox results of the person whose
	// XML body (remarks, grades, dates) and Coachview's response texts were
	// erased. Each row keeps its target, connection, e-learning code,
	// PersoonExterneId, state, times and body hash: the bridge needs them
	// never to send Coachview a second result for the same pair.
	Delivered int
	// History counts the person's rejected, ignored and cancelled results,
	// deleted with their attempts (no rule of the bridge needs them).
	History int
	// Undelivered lists the person's pending, sending, failed and waiting results:
	// they keep their XML body, which is still to be delivered. Deliver or
	// cancel them (`cvbridge outbox cancel`) and run forget again.
	Undelivered []int64
	// NotScrubbed says why the erased bytes may still be in the database's
	// write-ahead log ("" when they are gone); see docs/privacy.md.
	NotScrubbed string
}

// PersonalData erases the personal data the store keeps: the names and
// e-mail addresses of inbound messages, their raw bodies, and the XML of a
// person's results. Erasure blanks first name, infix, last name and e-mail
// address, sets the raw body to nothing (the columns keep every field the
// bridge uses: action, person id, e-learning code, event, state, errors)
// and records ErasedAt.
type PersonalData interface {
	// ErasePersonalData erases the personal data of the messages whose
	// processing ended (done, failed, ignored, unmapped) and that were last
	// changed before before, and returns how many it erased; erased
	// messages are not counted again.
	ErasePersonalData(ctx context.Context, before time.Time) (int, error)
	// ForgetPerson erases the personal data of every inbound message and
	// outbox result of the person (PersoonExterneId, compared
	// case-insensitively, as Coachview does) and reports what it erased
	// and what remains; see ForgetReport.
	ForgetPerson(ctx context.Context, personID string) (ForgetReport, error)
}

// Store is everything the inbound packages need from storage.
type Store interface {
	MessageStore
	TokenStore
}

// Hash is the stored form of an OAuth secret: hex SHA-256 of its value.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
