// Package kittest holds what adapter tests share: Sink, an in-memory
// source.Sink with the core sink's all-or-nothing Commit.
package kittest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Sink is an in-memory source.Sink for adapter tests. Like the core's sink
// it stores completions, marks and the cursor only when fill succeeds, and
// keeps one current completion per pair (person, by source.PersonKey, and
// e-learning code), counting a completion identical to the current one as
// unchanged. It offers the enrolment list a test sets (SetEnrolments,
// Record), keeps problem reports, and plays a dry-run sink when Dry is set.
//
// The exported fields are set before a poll and change what the sink does;
// the methods are safe for concurrent use.
type Sink struct {
	// Dry makes the sink a dry-run sink: Commit runs fill, then returns
	// source.ErrDryRun and stores nothing.
	Dry bool
	// Reject, when set, plays the core's checks: a non-empty reason
	// rejects the completion, which is reported through
	// Checkpoint.Rejected and still stored.
	Reject func(c result.Completion) string
	// SeenErr is returned by Seen.
	SeenErr error
	// CommitErr is returned by Commit after fill succeeded, as a failed
	// transaction; nothing is stored.
	CommitErr error
	// BeforeFill runs inside Commit before fill; AfterCommit once a
	// commit succeeded; OnAdd after the n-th completion of a fill.
	BeforeFill, AfterCommit func()
	OnAdd                   func(n int)
	// FillTwice calls fill twice, as a sink retrying its transaction would.
	FillTwice bool
	// CountOnly counts completions without keeping them: Added, Queued
	// and Latest stay empty, and every completion counts as queued.
	CountOnly bool

	mu       sync.Mutex
	cursor   []byte
	marks    map[string]bool
	latest   map[[2]string]result.Completion
	added    []result.Completion // every completion of committed fills
	queued   []result.Completion // the new or changed ones
	count    int
	commits  int
	problems []source.Problems
	list     []source.Enrolled
}

var _ source.Sink = (*Sink)(nil)

// NewSink returns an empty sink.
func NewSink() *Sink {
	return &Sink{marks: map[string]bool{}, latest: map[[2]string]result.Completion{}}
}

// Cursor returns the cursor stored by the last commit, or nil.
func (s *Sink) Cursor(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor, nil
}

// LastCursor returns the cursor stored by the last commit, or nil.
func (s *Sink) LastCursor() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor
}

// SetCursor stores cursor as if a commit had.
func (s *Sink) SetCursor(cursor []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursor = cursor
}

// Seen reports whether mark was committed, or SeenErr.
func (s *Sink) Seen(_ context.Context, mark string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marks[mark], s.SeenErr
}

// DryRun reports Dry.
func (s *Sink) DryRun() bool { return s.Dry }

// Commit runs fill and stores what it added, the marks and the cursor, all
// or nothing.
func (s *Sink) Commit(_ context.Context, cp source.Checkpoint, fill func(add func(result.Completion) error) error) (source.Summary, error) {
	if s.BeforeFill != nil {
		s.BeforeFill()
	}
	var staged []result.Completion
	var rejected map[int]bool
	n := 0
	add := func(c result.Completion) error {
		n++
		if s.OnAdd != nil {
			s.OnAdd(n)
		}
		if !s.CountOnly {
			staged = append(staged, c)
		}
		if s.Reject != nil {
			if reason := s.Reject(c); reason != "" {
				if rejected == nil {
					rejected = map[int]bool{}
				}
				rejected[n-1] = true
				if cp.Rejected != nil {
					return cp.Rejected(c.SourceRef, reason)
				}
			}
		}
		return nil
	}
	if s.FillTwice {
		if err := fill(add); err != nil {
			return source.Summary{}, fmt.Errorf("fill: %w", err)
		}
		staged, rejected, n = nil, nil, 0
	}
	if err := fill(add); err != nil {
		return source.Summary{}, fmt.Errorf("fill: %w", err)
	}
	if s.Dry {
		return source.Summary{}, source.ErrDryRun
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.CommitErr != nil {
		return source.Summary{}, s.CommitErr
	}
	var sum source.Summary
	if s.CountOnly {
		sum.Queued = n
	}
	for i, c := range staged { // empty with CountOnly, else the n added
		if rejected[i] {
			sum.Rejected++
			continue
		}
		key := [2]string{source.PersonKey(c.PersonID), c.ElearningCode}
		if old, ok := s.latest[key]; ok && old == c {
			sum.Unchanged++
			continue
		}
		s.latest[key] = c
		s.queued = append(s.queued, c)
		sum.Queued++
	}
	s.added = append(s.added, staged...)
	s.count += n
	s.commits++
	for _, m := range cp.Marks {
		s.marks[m] = true
	}
	if cp.Cursor != nil {
		s.cursor = cp.Cursor
	}
	if s.AfterCommit != nil {
		s.AfterCommit()
	}
	return sum, nil
}

// Added returns every completion of the committed fills, in order,
// repeated and rejected ones included.
func (s *Sink) Added() []result.Completion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.added)
}

// Count is how many completions the committed fills added.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Queued returns the completions that were new or changed for their pair
// when committed, in order.
func (s *Sink) Queued() []result.Completion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queued)
}

// Latest returns the current completion of every pair, in no order.
func (s *Sink) Latest() []result.Completion {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]result.Completion, 0, len(s.latest))
	for _, c := range s.latest {
		out = append(out, c)
	}
	return out
}

// Commits is how many commits succeeded.
func (s *Sink) Commits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// Marks returns the committed marks, sorted.
func (s *Sink) Marks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.marks))
	for m := range s.marks {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// ReportProblems keeps a source's report of input it could not use.
func (s *Sink) ReportProblems(p source.Problems) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, p)
}

// Problems returns the reports, in order.
func (s *Sink) Problems() []source.Problems {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// Enrolments returns the enrolment list the sink offers.
func (s *Sink) Enrolments(context.Context) ([]source.Enrolled, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list), nil
}

// SetEnrolments replaces the enrolment list.
func (s *Sink) SetEnrolments(list []source.Enrolled) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = slices.Clone(list)
}

// Record sets the list entry of person and code, as the core does when an
// enrolment or unenrolment is done, with a new Ref.
func (s *Sink) Record(person, code string, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := int64(len(s.list) + 1)
	for _, e := range s.list {
		ref = max(ref, e.Ref+1)
	}
	entry := source.Enrolled{PersonID: person, ElearningCode: code, Active: active, Ref: ref}
	for i, e := range s.list {
		if source.PersonKey(e.PersonID) == source.PersonKey(person) && e.ElearningCode == code {
			s.list[i] = entry
			return
		}
	}
	s.list = append(s.list, entry)
}
