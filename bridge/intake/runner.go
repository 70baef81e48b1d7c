package intake

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Job is one LMS connection to poll.
type Job struct {
	Name     string
	Source   source.Source
	Sink     source.Sink
	Schedule cron.Schedule
}

// Status is what the operator sees of a job.
type Status struct {
	Name        string
	Running     bool
	LastStart   time.Time
	LastEnd     time.Time
	LastError   string
	LastSummary source.Summary
	NextRun     time.Time
	Polls       int
}

// Runner polls each job on its schedule, when its source's watcher wakes
// it, and once at start. Polls of one job never overlap; a wake-up during a
// poll runs one more poll after it.
type Runner struct {
	jobs  []*jobState
	log   *slog.Logger
	clock clock.Clock
}

type jobState struct {
	Job
	wake chan struct{}

	mu     sync.Mutex
	status Status
}

// NewRunner returns a runner for jobs.
func NewRunner(jobs []Job, log *slog.Logger, clk clock.Clock) *Runner {
	if log == nil {
		log = slog.Default()
	}
	if clk == nil {
		clk = clock.System{}
	}
	r := &Runner{log: log, clock: clk}
	for _, j := range jobs {
		r.jobs = append(r.jobs, &jobState{Job: j, wake: make(chan struct{}, 1), status: Status{Name: j.Name}})
	}
	return r
}

// Run polls until ctx ends, then waits for running polls to return.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, j := range r.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, j)
		}()
		if w, ok := j.Source.(source.Watcher); ok {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.Watch(ctx, j.trigger); err != nil && ctx.Err() == nil {
					r.log.Error("watch stopped; the schedule still polls", "connection", j.Name, "error", err)
				}
			}()
		}
	}
	wg.Wait()
}

// Trigger asks for a poll of the named job as soon as possible. It reports
// whether the job exists.
func (r *Runner) Trigger(name string) bool {
	for _, j := range r.jobs {
		if j.Name == name {
			j.trigger()
			return true
		}
	}
	return false
}

// Statuses returns each job's status, in configuration order.
func (r *Runner) Statuses() []Status {
	out := make([]Status, 0, len(r.jobs))
	for _, j := range r.jobs {
		j.mu.Lock()
		out = append(out, j.status)
		j.mu.Unlock()
	}
	return out
}

func (j *jobState) trigger() {
	select {
	case j.wake <- struct{}{}:
	default: // a poll is already asked for
	}
}

func (r *Runner) loop(ctx context.Context, j *jobState) {
	j.trigger() // poll once at start
	for {
		next := j.Schedule.Next(r.clock.Now())
		j.mu.Lock()
		j.status.NextRun = next
		j.mu.Unlock()
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-j.wake:
		case <-timer.C:
		}
		timer.Stop()
		r.poll(ctx, j)
	}
}

func (r *Runner) poll(ctx context.Context, j *jobState) {
	start := r.clock.Now()
	j.mu.Lock()
	j.status.Running, j.status.LastStart = true, start
	j.mu.Unlock()

	counting := &countingSink{Sink: j.Sink}
	err := j.Source.Poll(ctx, counting)

	j.mu.Lock()
	defer j.mu.Unlock()
	j.status.Running, j.status.LastEnd = false, r.clock.Now()
	j.status.Polls++
	j.status.LastSummary = counting.sum
	j.status.LastError = ""
	if err != nil && !errors.Is(err, context.Canceled) {
		j.status.LastError = err.Error()
		r.log.Error("poll failed; the next poll starts again from the last committed position",
			"connection", j.Name, "error", err)
	}
}

// countingSink adds up what one poll committed.
type countingSink struct {
	source.Sink
	sum source.Summary
}

func (c *countingSink) Commit(ctx context.Context, cp source.Checkpoint, fill func(add func(result.Completion) error) error) (source.Summary, error) {
	s, err := c.Sink.Commit(ctx, cp, fill)
	c.sum = c.sum.Add(s)
	return s, err
}
