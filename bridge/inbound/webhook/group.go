package webhook

import (
	"context"
	"sync"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// BatchSaver is a store that saves several messages in one transaction:
// every message as SaveMessage saves one, in the order given, all or none.
// The SQLite and PostgreSQL outbox backends implement it; with it, a
// receiver commits the messages of concurrent requests together.
type BatchSaver interface {
	SaveMessages(ctx context.Context, ms []inboundstore.Message, dup inboundstore.Duplicate) ([]inboundstore.Message, []inboundstore.SaveOutcome, error)
}

// maxGroup bounds how many messages one transaction saves.
const maxGroup = 256

// groupCommit saves the messages of concurrent requests together (group
// commit). A message that arrives while no transaction runs is saved at
// once, alone; the messages that arrive while a transaction commits are
// saved in the next one, together. On SQLite, where each commit is an
// fsync and writers take turns, a transaction per message would cap the
// receiver at one message per fsync; grouped, a burst costs one fsync per
// group. Each request still waits for its own message's commit, so a 200
// still means the message is durable.
type groupCommit struct {
	batch  BatchSaver
	single inboundstore.MessageStore

	mu      sync.Mutex
	queue   []*saveCall
	running bool // a goroutine is committing the queue
}

// saveCall is one request's message waiting to be saved.
type saveCall struct {
	m    inboundstore.Message
	done chan saveResult // buffered: the committer never blocks on it
}

// saveResult is what saving one message gave.
type saveResult struct {
	m       inboundstore.Message
	outcome inboundstore.SaveOutcome
	err     error
}

// save queues m (a duplicate of a stored message is kept as it is) and
// waits until the transaction holding it ended.
func (g *groupCommit) save(m inboundstore.Message) saveResult {
	c := &saveCall{m: m, done: make(chan saveResult, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if !g.running {
		// The committer lives only while there is something to save, so a
		// receiver replaced on reload leaves no goroutine behind.
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	return <-c.done
}

// run commits the queue, a group at a time, until it is empty.
func (g *groupCommit) run() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		if n == 0 {
			g.running = false
			g.queue = nil
			g.mu.Unlock()
			return
		}
		calls := make([]*saveCall, n)
		copy(calls, g.queue)
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.commit(calls)
	}
}

// commit saves the messages of calls in one transaction and answers each.
// If that fails for a group, each message is saved alone, so that one
// message the store refuses fails only its own request.
func (g *groupCommit) commit(calls []*saveCall) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ms := make([]inboundstore.Message, len(calls))
	for i, c := range calls {
		ms[i] = c.m
	}
	saved, outcomes, err := g.batch.SaveMessages(ctx, ms, inboundstore.KeepExisting)
	if err == nil {
		for i, c := range calls {
			c.done <- saveResult{m: saved[i], outcome: outcomes[i]}
		}
		return
	}
	if len(calls) == 1 {
		calls[0].done <- saveResult{err: err}
		return
	}
	for _, c := range calls {
		m, outcome, err := g.single.SaveMessage(ctx, c.m, inboundstore.KeepExisting)
		c.done <- saveResult{m: m, outcome: outcome, err: err}
	}
}
