package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// openConfiguredStore loads the configuration named by the flag and opens
// its store, which must exist: a command never creates an empty SQLite
// outbox beside the one the service uses (a wrong --config, or a shell that
// resolves the path differently, shows up as an error, not as an empty list).
func openConfiguredStore(ctx context.Context, cfgPath string) (*config.Config, outbox.Store, error) {
	return openStoreFor(ctx, cfgPath, false)
}

// openStoreFor is openConfiguredStore; with create set, a missing SQLite
// outbox is created (pausing a target before the daemon first ran).
func openStoreFor(ctx context.Context, cfgPath string, create bool) (*config.Config, outbox.Store, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Storage.Driver == "sqlite" && !create {
		if _, err := os.Stat(cfg.Storage.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("there is no outbox at %s (storage.path of %s): the daemon has not run with this configuration yet, or this is not the configuration the service uses", cfg.Storage.Path, cfg.File)
		}
	}
	store, err := daemon.OpenStore(ctx, cfg, clock.System{})
	if err != nil {
		return nil, nil, err
	}
	return cfg, store, nil
}

func cmdOutbox(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	if err := subcommand("outbox", args); err != nil {
		return err
	}
	fs := newFlags("outbox " + args[0])
	cfgPath := configFlag(fs)
	switch args[0] {
	case "list":
		var f outbox.Filter
		state := fs.String("state", "", "only results in this state ("+stateNames()+")")
		fs.StringVar(&f.PersonID, "person", "", "only this PersoonExterneId")
		fs.StringVar(&f.ElearningCode, "code", "", "only this Elearningcode")
		fs.StringVar(&f.Target, "target", "", "only this target")
		fs.StringVar(&f.Connection, "connection", "", "only this LMS connection")
		fs.IntVar(&f.Limit, "limit", 50, "at most this many")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		f.State = outbox.State(*state)
		if f.State != "" && !f.State.Valid() {
			return usageError{fmt.Sprintf("unknown state %q", *state)}
		}
		cfg, store, err := openConfiguredStore(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer closeInto(&cmdErr, store)
		items, err := store.List(ctx, f)
		if err != nil {
			return err
		}
		if _, ok := cfg.Targets[f.Target]; f.Target != "" && !ok && len(items) == 0 {
			// Listed all the same: a target renamed or removed may have left results.
			return usageError{fmt.Sprintf("no results of target %q, which is not configured (configured: %v)", f.Target, cfg.TargetNames())}
		}
		return printItems(out, items, cfg.Location)
	default: // show, retry, cancel, confirm
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return usageError{fmt.Sprintf("outbox %s: no result id given", args[0])}
		}
		ids := make([]int64, fs.NArg())
		for i, a := range fs.Args() {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return usageError{fmt.Sprintf("outbox %s: %q is not a result id", args[0], a)}
			}
			ids[i] = id
		}
		cfg, store, err := openConfiguredStore(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer closeInto(&cmdErr, store)
		var errs []error
		for _, id := range ids {
			errs = append(errs, outboxAction(ctx, store, args[0], id, out, cfg.Location))
		}
		return errors.Join(errs...)
	}
}

func outboxAction(ctx context.Context, store outbox.Store, action string, id int64, out io.Writer, loc *time.Location) error {
	now := time.Now()
	switch action {
	case "show":
		item, attempts, err := store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("result %d: %w", id, err)
		}
		return printItem(out, item, attempts, loc)
	case "retry":
		if err := store.Retry(ctx, id, now); err != nil {
			return fmt.Errorf("result %d: %w", id, err)
		}
		_, _ = fmt.Fprintf(out, "result %d queued again; the running daemon sends it within its poll interval\n", id)
	case "cancel":
		if err := store.Cancel(ctx, id, now); err != nil {
			return fmt.Errorf("result %d: %w", id, err)
		}
		_, _ = fmt.Fprintf(out, "result %d cancelled\n", id)
	case "confirm":
		if err := store.Confirm(ctx, id, now); err != nil {
			return fmt.Errorf("result %d: %w", id, err)
		}
		_, _ = fmt.Fprintf(out, "result %d recorded as delivered; it is not sent again\n", id)
	}
	return nil
}

// stateNames lists the outbox's states for a flag's help.
func stateNames() string {
	names := make([]string, len(outbox.States))
	for i, st := range outbox.States {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

func printItems(out io.Writer, items []outbox.Item, loc *time.Location) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ID\tSTATE\tTARGET\tCODE\tPERSON\tTRIES\tSTATUS\tNEXT/DONE\tNOTE")
	for _, it := range items {
		when := it.NextAttemptAt
		if it.State == outbox.StateDelivered {
			when = it.DeliveredAt
		}
		_, _ = fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", it.ID, it.State, it.Target, it.ElearningCode,
			it.PersonID, it.Tries, statusText(it.LastStatus), fmtTime(when, loc), truncate(it.LastError, 70))
	}
	return tw.Flush()
}

func printItem(out io.Writer, it outbox.Item, attempts []outbox.Attempt, loc *time.Location) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	rows := [][2]string{
		{"id", strconv.FormatInt(it.ID, 10)}, {"state", string(it.State)}, {"target", it.Target},
		{"connection", it.Connection}, {"elearningcode", it.ElearningCode}, {"person", it.PersonID},
		{"source", it.SourceRef}, {"completed", fmtTime(it.CompletedAt, loc)}, {"created", fmtTime(it.CreatedAt, loc)},
		{"tries", strconv.Itoa(it.Tries)}, {"next attempt", fmtTime(it.NextAttemptAt, loc)},
		{"delivered", fmtTime(it.DeliveredAt, loc)}, {"last status", statusText(it.LastStatus)}, {"note", it.LastError},
	}
	if it.OutcomeUnknown {
		rows = append(rows, [2]string{"outcome", "an attempt's answer never arrived: Coachview may have registered it"})
	}
	if it.WaitingID != 0 {
		rows = append(rows, [2]string{"waiting", fmt.Sprintf("result #%d, a newer completion, is sent next unless Coachview accepts this one", it.WaitingID)})
	}
	for _, r := range rows {
		_, _ = fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(it.Body) > 0 {
		_, _ = fmt.Fprintf(out, "\nbody:\n%s", it.Body)
	}
	if len(attempts) > 0 {
		_, _ = fmt.Fprintln(out, "\nattempts:")
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, a := range attempts {
			_, _ = fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", fmtTime(a.At, loc), statusText(a.Status), a.Class,
				a.Duration.Round(time.Millisecond), truncate(a.Error+a.Response, 100))
		}
		return tw.Flush()
	}
	return nil
}

func statusText(s int) string {
	if s == 0 {
		return "-"
	}
	return strconv.Itoa(s)
}

// fmtTime shows t in loc, the configuration's time zone (the provider's,
// in which completion dates are sent), with the zone's abbreviation.
func fmtTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
