package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/cvbridge/cvbridge/bridge/delivery"
)

// circuitTimeout bounds asking the running daemon for its circuits.
const circuitTimeout = 3 * time.Second

func cmdTarget(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	if err := subcommand("target", args); err != nil {
		return err
	}
	fs := newFlags("target " + args[0])
	cfgPath := configFlag(fs)
	reason := "paused by the operator"
	if args[0] == "pause" {
		fs.StringVar(&reason, "reason", reason, "why, shown in status")
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if args[0] != "status" && fs.NArg() == 0 {
		return usageError{fmt.Sprintf("target %s: no target name given", args[0])}
	}
	cfg, store, err := openStoreFor(ctx, *cfgPath, args[0] == "pause")
	if err != nil {
		return err
	}
	defer closeInto(&cmdErr, store)
	names := fs.Args()
	if len(names) == 0 { // status of every target
		names = cfg.TargetNames()
	}
	for _, n := range names {
		if _, ok := cfg.Targets[n]; !ok {
			return usageError{fmt.Sprintf("unknown target %q (configured: %v)", n, cfg.TargetNames())}
		}
	}
	switch args[0] {
	case "pause":
		for _, n := range names {
			if err := delivery.Pause(ctx, store, n, reason, time.Now()); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(out, "target %s paused: a running daemon claims nothing more (requests in flight finish) until `cvbridge target resume %s`\n", n, n)
		}
	case "resume":
		for _, n := range names {
			st, err := store.TargetState(ctx, n)
			if err != nil {
				return err
			}
			if !st.Paused {
				_, _ = fmt.Fprintf(out, "target %s was not paused: nothing changed\n", n)
				continue
			}
			if err := delivery.Resume(ctx, store, n); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(out, "target %s resumed: the running daemon sends its queue within its poll interval\n", n)
		}
	case "status":
		// The circuits live in the running daemon's memory: ask its admin listener.
		circuits, cerr := daemonCircuits(ctx, cfg.Admin.Listen)
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "TARGET\tSTATE\tCIRCUIT\tPENDING\tFAILED\tDELIVERED\tSINCE\tNEXT PROBE\tREASON")
		for _, n := range names {
			st, err := store.TargetState(ctx, n)
			if err != nil {
				return err
			}
			counts, err := store.Counts(ctx, n)
			if err != nil {
				return err
			}
			state, since, next, why := "active", st.PausedAt, st.NextProbeAt, st.Reason
			if st.Paused {
				state = "paused"
			}
			circuit := "unknown"
			if c, ok := circuits[n]; ok {
				circuit = "closed"
				if c.Open {
					circuit = "open"
					if !st.Paused {
						since, next = c.OpenedAt, c.NextProbe
						why = fmt.Sprintf("Coachview looks unreachable, one probe at a time: %s (%d failures in a row)", c.Reason, c.Failures)
					}
				}
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", n, state, circuit, counts["pending"]+counts["sending"],
				counts["failed"], counts["delivered"], fmtTime(since, cfg.Location), fmtTime(next, cfg.Location), why)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if cerr != nil {
			_, err = fmt.Fprintf(out, "circuit unknown: %v\n", cerr)
		}
		return err
	}
	return nil
}

// daemonCircuits asks the daemon listening on the admin address listen for
// its targets' circuit breakers (GET /circuits). An unspecified host (a
// listener on every interface) is asked on loopback.
func daemonCircuits(ctx context.Context, listen string) (map[string]delivery.CircuitState, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return nil, fmt.Errorf("admin.listen %q names no fixed port to ask the running daemon on", listen)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	addr := "http://" + net.JoinHostPort(host, port) + "/circuits"
	ctx, cancel := context.WithTimeout(ctx, circuitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // it names the address already
		}
		return nil, fmt.Errorf("no running daemon answered at %s: %w", addr, err)
	}
	defer func() { _ = resp.Body.Close() }() // a read-only GET: nothing to lose
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	var circuits map[string]delivery.CircuitState
	if err := json.NewDecoder(resp.Body).Decode(&circuits); err != nil {
		return nil, fmt.Errorf("reading %s: %w", addr, err)
	}
	return circuits, nil
}
