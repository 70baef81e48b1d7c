package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/inbound/listen"
	"github.com/cvbridge/cvbridge/bridge/inbound/webhook"
)

// sink serves the webhook subscriptions of a cvbridge configuration the way
// `cvbridge run` does (the public server with its timeouts, body cap and
// access log; the same receivers, which read, verify and map each message
// and log it) but stores nothing: the bare handler the inbound benchmark
// sets beside the daemon, so that the difference between the two is the
// cost of durable storage. It prints "sink listening on http://ADDR/" on
// stdout, logs like the daemon on stderr, and stops on SIGTERM or SIGINT.
func sink(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "cvbridge configuration whose inbound.webhooks to serve (required)")
	addr := fs.String("listen", "127.0.0.1:0", "address to listen on, plain HTTP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return errors.New("sink: -config is required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if len(cfg.Inbound.Webhooks) == 0 {
		return fmt.Errorf("sink: %s has no inbound.webhooks to serve", *cfgPath)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config.Load
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	mux := http.NewServeMux()
	store := &discardStore{}
	for i, wc := range cfg.Inbound.Webhooks {
		r, err := webhook.New(wc, store, nil, log)
		if err != nil {
			return fmt.Errorf("sink: inbound.webhooks[%d]: %w", i, err)
		}
		mux.Handle(r.Path(), r)
	}
	pc := cfg.Public.Config
	pc.Addr = *addr
	srv := listen.NewServer(pc, mux, log)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// The benchmark reads the address from this line: without it, no sink.
	if _, err := fmt.Fprintf(out, "sink listening on http://%s/\n", ln.Addr()); err != nil {
		return errors.Join(fmt.Errorf("sink: %w", err), ln.Close())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("sink: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("sink: shut down: %w", err)
	}
	log.Info("sink stopped", slog.Int64("messages", store.saved.Load()))
	return nil
}

// discardStore is the sink's inboundstore.MessageStore: it accepts every
// message as new and keeps none of it. The receiver only saves.
type discardStore struct {
	saved atomic.Int64
}

var _ inboundstore.MessageStore = (*discardStore)(nil)

// errKeepsNothing answers everything but SaveMessage: the sink has no
// messages to claim, list or read.
var errKeepsNothing = errors.New("the benchmark sink keeps no messages")

// SaveMessage counts m and returns it as if stored, with a new id.
func (s *discardStore) SaveMessage(_ context.Context, m inboundstore.Message, _ inboundstore.Duplicate) (inboundstore.Message, inboundstore.SaveOutcome, error) {
	m.ID = s.saved.Add(1)
	m.Requests = 1
	return m, inboundstore.Inserted, nil
}

func (s *discardStore) ClaimMessages(context.Context, string, int, time.Time, time.Duration) ([]inboundstore.Message, error) {
	return nil, errKeepsNothing
}

func (s *discardStore) ClaimMessage(context.Context, int64, string, time.Time, time.Duration) (inboundstore.Message, bool, error) {
	return inboundstore.Message{}, false, errKeepsNothing
}

func (s *discardStore) FinishMessage(context.Context, inboundstore.Finish) error {
	return errKeepsNothing
}

func (s *discardStore) GetMessage(context.Context, int64) (inboundstore.Message, error) {
	return inboundstore.Message{}, errKeepsNothing
}

func (s *discardStore) ListMessages(context.Context, inboundstore.MessageFilter) ([]inboundstore.Message, error) {
	return nil, errKeepsNothing
}
