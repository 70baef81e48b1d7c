package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// inboundAdmin is what the inbox, oauth and forget commands need of the store.
type inboundAdmin interface {
	inboundstore.Store
	inboundstore.MessageAdmin
	inboundstore.PersonalData
}

// openInboundStore opens the configured store as an inbound store; the
// caller closes it. loc is the configuration's time zone, for times shown.
func openInboundStore(ctx context.Context, cfgPath string) (in inboundAdmin, closer io.Closer, loc *time.Location, err error) {
	cfg, store, err := openConfiguredStore(ctx, cfgPath)
	if err != nil {
		return nil, nil, nil, err
	}
	in, ok := store.(inboundAdmin)
	if !ok {
		_ = store.Close() // never used: the refusal is the error
		return nil, nil, nil, fmt.Errorf("the %s outbox keeps no inbound enrolments", cfg.Storage.Driver)
	}
	return in, store, cfg.Location, nil
}

// cmdInbox lists, shows and retries inbound enrolment messages.
func cmdInbox(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	if err := subcommand("inbox", args); err != nil {
		return err
	}
	fs := newFlags("inbox " + args[0])
	cfgPath := configFlag(fs)
	switch args[0] {
	case "list":
		var f inboundstore.MessageFilter
		state := fs.String("state", "", "only messages in this state (pending, done, failed, ignored, unmapped)")
		fs.StringVar(&f.Source, "source", "", "only messages from this source (link, or webhook:NAME)")
		fs.IntVar(&f.Limit, "limit", 50, "at most this many")
		fs.Int64Var(&f.BeforeID, "before", 0, "only messages with a smaller id (the next page)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		f.State = inboundstore.State(*state)
		if f.State != "" && !slices.Contains(inboundstore.States, f.State) {
			return usageError{fmt.Sprintf("unknown state %q (pending, done, failed, ignored, unmapped, superseded)", *state)}
		}
		if f.Source != "" && f.Source != inboundstore.SourceLink && !strings.HasPrefix(f.Source, inboundstore.WebhookSource("")) {
			return usageError{fmt.Sprintf("unknown source %q (link, or webhook:NAME)", f.Source)}
		}
		if f.Limit <= 0 {
			return usageError{"--limit must be positive"}
		}
		store, closer, loc, err := openInboundStore(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer closeInto(&cmdErr, closer)
		ms, err := store.ListMessages(ctx, f)
		if err != nil {
			return err
		}
		return printMessages(out, ms, loc)
	default: // show, retry
		body := false
		if args[0] == "show" {
			fs.BoolVar(&body, "body", false, "print the raw body too (it may hold personal data)")
		}
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return usageError{fmt.Sprintf("inbox %s: no message id given", args[0])}
		}
		ids := make([]int64, fs.NArg())
		for i, a := range fs.Args() {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil || id <= 0 {
				return usageError{fmt.Sprintf("%q is not a message id", a)}
			}
			ids[i] = id
		}
		store, closer, loc, err := openInboundStore(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer closeInto(&cmdErr, closer)
		var errs []error
		for _, id := range ids {
			if args[0] == "show" {
				errs = append(errs, showMessage(ctx, store, id, body, out, loc))
				continue
			}
			m, err := store.RetryMessage(ctx, id, time.Now())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			_, _ = fmt.Fprintf(out, "inbound message %d (%s %s for %s) is pending again; the running daemon carries it out within its poll interval\n",
				m.ID, m.Action, m.ElearningCode, m.PersonID)
		}
		return errors.Join(errs...)
	}
}

// printMessages lists messages without names or e-mail addresses.
func printMessages(out io.Writer, ms []inboundstore.Message, loc *time.Location) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ID\tRECEIVED\tSOURCE\tACTION\tCODE\tPERSON\tSTATE\tTRIES\tNOTE")
	for _, m := range ms {
		_, _ = fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.ID, fmtTime(m.ReceivedAt, loc), m.Source, m.Action,
			dash(m.ElearningCode), dash(m.PersonID), m.State, m.Attempts, truncate(messageNote(m), 70))
	}
	return tw.Flush()
}

// messageNote is what the list says about a message: its last error, or
// for an unmapped one the event name the configuration does not know.
func messageNote(m inboundstore.Message) string {
	if m.State == inboundstore.StateUnmapped && m.LastError == "" {
		return "event " + strconv.Quote(m.Event) + " is not mapped"
	}
	return m.LastError
}

// showMessage prints one message, names and e-mail address included.
func showMessage(ctx context.Context, store inboundstore.MessageStore, id int64, body bool, out io.Writer, loc *time.Location) error {
	m, err := store.GetMessage(ctx, id)
	if err != nil {
		return err
	}
	personal := [][2]string{{"first name", m.FirstName}, {"infix", m.Infix}, {"last name", m.LastName}, {"e-mail", m.Email}}
	if m.Erased() {
		personal = [][2]string{{"personal data", "erased " + fmtTime(m.ErasedAt, loc)}}
	}
	lease := "-"
	if m.LeaseOwner != "" {
		lease = m.LeaseOwner + " until " + fmtTime(m.LeaseUntil, loc)
	}
	rows := [][2]string{
		{"id", strconv.FormatInt(m.ID, 10)}, {"source", m.Source}, {"event", dash(m.Event)}, {"verified by", m.Verified},
		{"action", string(m.Action)}, {"person", dash(m.PersonID)}, {"elearningcode", dash(m.ElearningCode)},
	}
	rows = append(rows, personal...)
	rows = append(rows, [][2]string{
		{"state", string(m.State)}, {"attempts", strconv.Itoa(m.Attempts)}, {"received", fmtTime(m.ReceivedAt, loc)},
		{"times received", strconv.Itoa(m.Requests)}, {"updated", fmtTime(m.UpdatedAt, loc)},
		{"next attempt", fmtTime(m.NextAttemptAt, loc)}, {"lease", lease}, {"last error", dash(m.LastError)},
	}...)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		_, _ = fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if body && len(m.Body) > 0 {
		_, _ = fmt.Fprintf(out, "\nbody:\n%s\n", m.Body)
	}
	return nil
}

// cmdOAuth lists and revokes the enrolment link's OAuth grants.
func cmdOAuth(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	if err := subcommand("oauth", args); err != nil {
		return err
	}
	fs := newFlags("oauth " + args[0])
	cfgPath := configFlag(fs)
	switch args[0] {
	case "list":
		var f inboundstore.TokenFilter
		fs.StringVar(&f.ClientID, "client", "", "only this client's grants")
		fs.BoolVar(&f.Active, "active", false, "only codes and tokens that are neither revoked nor expired")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		f.Now = time.Now()
		store, closer, loc, err := openInboundStore(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer closeInto(&cmdErr, closer)
		ts, err := store.ListTokens(ctx, f)
		if err != nil {
			return err
		}
		return printTokens(out, ts, f.Now, loc)
	default: // revoke
		client := fs.String("client", "", "revoke every code and token of this client")
		grant := fs.String("grant", "", "revoke every code and token of this grant (see oauth list)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if (*client == "") == (*grant == "") {
			return usageError{"oauth revoke: give --client ID or --grant ID"}
		}
		store, closer, _, err := openInboundStore(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer closeInto(&cmdErr, closer)
		now := time.Now()
		var n int
		what := fmt.Sprintf("client %q", *client)
		if *client != "" {
			n, err = store.RevokeClient(ctx, *client, now, inboundstore.ReasonOperator)
		} else {
			what = fmt.Sprintf("grant %q", *grant)
			n, err = store.RevokeGrant(ctx, *grant, now, inboundstore.ReasonOperator)
		}
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(out, "revoked %d code and token record(s) of %s; the client must be authorised again\n", n, what)
		return nil
	}
}

// printTokens lists OAuth records: never their secrets or hashes.
func printTokens(out io.Writer, ts []inboundstore.Token, now time.Time, loc *time.Location) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ID\tGRANT\tCLIENT\tKIND\tCREATED\tEXPIRES\tSTATUS")
	for _, t := range ts {
		kind, expires := "code", t.CodeExpiresAt
		if t.CodeHash == "" {
			kind, expires = "access", t.AccessExpiresAt
			if t.RefreshHash != "" {
				kind, expires = "access+refresh", t.RefreshExpiresAt
			}
		}
		status := "active"
		switch {
		case t.Revoked():
			status = "revoked " + fmtTime(t.RevokedAt, loc) + ": " + t.RevokeReason
		case !expires.IsZero() && !now.Before(expires):
			status = "expired"
		case kind == "access+refresh" && !t.AccessExpiresAt.IsZero() && !now.Before(t.AccessExpiresAt):
			status = "active (access token expired, refresh token valid)"
		}
		_, _ = fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.GrantID, t.ClientID, kind, fmtTime(t.CreatedAt, loc), fmtTime(expires, loc), status)
	}
	return tw.Flush()
}

// cmdForget erases a person's personal data from the store.
func cmdForget(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	fs := newFlags("forget")
	cfgPath := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || strings.TrimSpace(fs.Arg(0)) == "" {
		return usageError{"forget: give one PersoonExterneId"}
	}
	person := fs.Arg(0)
	store, closer, _, err := openInboundStore(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer closeInto(&cmdErr, closer)
	rep, err := store.ForgetPerson(ctx, person)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "person %s:\n", person)
	_, _ = fmt.Fprintf(out, "  inbound messages erased (names, e-mail address, body): %d", rep.Messages)
	if rep.Cancelled > 0 {
		_, _ = fmt.Fprintf(out, ", of which %d pending, now failed without being carried out", rep.Cancelled)
	}
	_, _ = fmt.Fprintf(out, "\n  delivered results erased (XML body, Coachview's responses): %d\n", rep.Delivered)
	_, _ = fmt.Fprintf(out, "  rejected, ignored and cancelled results deleted: %d\n", rep.History)
	_, _ = fmt.Fprintln(out, "kept: the PersoonExterneId with each e-learning code, state and time of its messages, results and")
	_, _ = fmt.Fprintln(out, "  enrolment list entries; the bridge needs them never to send Coachview a second result for the")
	_, _ = fmt.Fprintln(out, "  same person and course, and to know whose completions to poll.")
	if len(rep.Undelivered) > 0 {
		ids := make([]string, len(rep.Undelivered))
		for i, id := range rep.Undelivered {
			ids[i] = strconv.FormatInt(id, 10)
		}
		_, _ = fmt.Fprintf(out, "not erased: %d undelivered result(s) keep their XML body until delivered: %s\n", len(ids), strings.Join(ids, " "))
		_, _ = fmt.Fprintln(out, "  cancel them (cvbridge outbox cancel ID...) and run forget again to erase them now.")
	}
	if rep.NotScrubbed != "" {
		_, _ = fmt.Fprintf(out, "note: %s\n", rep.NotScrubbed)
	}
	_, _ = fmt.Fprintln(out, "not in the bridge's reach: the LMS's own copy of the person, export files, logs and backups (docs/privacy.md).")
	return nil
}

// dash shows an empty value as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
