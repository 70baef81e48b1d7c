package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cvbridge/cvbridge/bridge/delivery"
)

func cmdTarget(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: cvbridge target pause|resume|status [flags] [NAME]"}
	}
	fs := newFlags("target " + args[0])
	cfgPath := configFlag(fs)
	reason := fs.String("reason", "paused by the operator", "with pause: why, shown in status")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, store, err := openConfiguredStore(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer store.Close()
	names := fs.Args()
	if args[0] == "status" && len(names) == 0 {
		names = cfg.TargetNames()
	}
	if len(names) == 0 {
		return usageError{fmt.Sprintf("usage: cvbridge target %s NAME", args[0])}
	}
	for _, n := range names {
		if _, ok := cfg.Targets[n]; !ok {
			return usageError{fmt.Sprintf("unknown target %q (configured: %v)", n, cfg.TargetNames())}
		}
	}
	switch args[0] {
	case "pause":
		for _, n := range names {
			if err := delivery.Pause(ctx, store, n, *reason, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(out, "target %s paused: nothing is sent until `cvbridge target resume %s`\n", n, n)
		}
	case "resume":
		for _, n := range names {
			if err := delivery.Resume(ctx, store, n); err != nil {
				return err
			}
			fmt.Fprintf(out, "target %s resumed: the running daemon sends its queue within its poll interval\n", n)
		}
	case "status":
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TARGET\tSTATE\tPENDING\tFAILED\tDELIVERED\tSINCE\tNEXT PROBE\tREASON")
		for _, n := range names {
			st, err := store.TargetState(ctx, n)
			if err != nil {
				return err
			}
			counts, err := store.Counts(ctx, n)
			if err != nil {
				return err
			}
			state := "active"
			if st.Paused {
				state = "paused"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", n, state, counts["pending"]+counts["sending"],
				counts["failed"], counts["delivered"], fmtTime(st.PausedAt), fmtTime(st.NextProbeAt), st.Reason)
		}
		return tw.Flush()
	default:
		return usageError{fmt.Sprintf("unknown target command %q (pause, resume, status)", args[0])}
	}
	return nil
}
