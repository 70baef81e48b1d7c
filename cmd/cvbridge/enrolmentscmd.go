package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// cmdEnrolments lists the bridge-tracked enrolment list: who the bridge
// enrolled or unenrolled, in which LMS connection, for which e-learning
// code. Ids only; it changes nothing.
func cmdEnrolments(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	fs := newFlags("enrolments")
	cfgPath := configFlag(fs)
	var f inboundstore.EnrolmentFilter
	fs.StringVar(&f.Connection, "connection", "", "only this LMS connection's enrolments")
	fs.StringVar(&f.PersonID, "person", "", "only this PersoonExterneId (compared case-insensitively)")
	fs.StringVar(&f.ElearningCode, "code", "", "only this Elearningcode")
	state := fs.String("state", "", "only enrolments in this state (active, unenrolled)")
	fs.IntVar(&f.Limit, "limit", 100, "list at most this many (0: all); the count covers them all")
	countOnly := fs.Bool("count", false, "print only the counts")
	if err := parse(fs, args); err != nil {
		return err
	}
	f.State = inboundstore.EnrolmentState(*state)
	if f.State != "" && !f.State.Valid() {
		return usageError{fmt.Sprintf("unknown state %q (active, unenrolled)", *state)}
	}
	if f.Limit < 0 {
		return usageError{"--limit must not be negative"}
	}
	cfg, store, err := openConfiguredStore(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer closeInto(&cmdErr, store)
	list, ok := store.(inboundstore.EnrolmentList)
	if !ok {
		return fmt.Errorf("the %s outbox keeps no enrolment list", cfg.Storage.Driver)
	}
	if f.Connection != "" {
		if _, known := cfg.Connection(f.Connection); !known {
			_, _ = fmt.Fprintf(out, "note: %s configures no LMS connection %q; its enrolments are listed all the same\n", cfg.File, f.Connection)
		}
	}
	counts := map[inboundstore.EnrolmentState]int{}
	for _, st := range []inboundstore.EnrolmentState{inboundstore.EnrolmentActive, inboundstore.EnrolmentUnenrolled} {
		if f.State != "" && f.State != st {
			continue
		}
		byState := f
		byState.State = st
		if counts[st], err = list.CountEnrolments(ctx, byState); err != nil {
			return err
		}
	}
	total := counts[inboundstore.EnrolmentActive] + counts[inboundstore.EnrolmentUnenrolled]
	if !*countOnly && total > 0 {
		es, err := list.ListEnrolments(ctx, f)
		if err != nil {
			return err
		}
		if err := printEnrolments(out, es, cfg.Location); err != nil {
			return err
		}
		if len(es) < total {
			_, _ = fmt.Fprintf(out, "showing %d; --limit 0 lists them all\n", len(es))
		}
	}
	noun := "enrolments"
	if total == 1 {
		noun = "enrolment"
	}
	_, err = fmt.Fprintf(out, "%d %s: %d active, %d unenrolled\n", total, noun,
		counts[inboundstore.EnrolmentActive], counts[inboundstore.EnrolmentUnenrolled])
	return err
}

// printEnrolments prints the list as a table: ids, states and times only.
func printEnrolments(out io.Writer, es []inboundstore.Enrolment, loc *time.Location) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "CONNECTION\tPERSON\tCODE\tSTATE\tSINCE\tFIRST\tMESSAGE")
	for _, e := range es {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", e.Connection, e.PersonID, e.ElearningCode, e.State,
			fmtTime(e.UpdatedAt, loc), fmtTime(e.CreatedAt, loc), e.MessageID)
	}
	return tw.Flush()
}
