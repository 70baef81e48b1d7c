package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// How many rows each dashboard section shows at most.
const (
	maxParked     = 50
	maxRetrying   = 50
	pendingScan   = 200 // newest pending rows scanned for ones that failed before
	maxEnrolments = 50
)

//go:embed dashboard.html
var dashboardHTML string

//go:embed style.css
var styleCSS string

// contentSecurityPolicy allows nothing but the inline style sheet (by its
// hash) and forms posting back to this origin: no script, no images, no
// frames, no external anything.
var contentSecurityPolicy = func() string {
	sum := sha256.Sum256([]byte(styleCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

var pages = template.Must(template.New("dashboard.html").Funcs(template.FuncMap{
	"when":  func(p page, t time.Time) string { return p.when(t) },
	"since": func(p page, t time.Time) string { return p.since(t) },
}).Parse(dashboardHTML))

// page is what the dashboard template renders.
type page struct {
	Title      string
	Version    string
	Now        time.Time
	Location   *time.Location // the zone times are shown in
	CSS        template.CSS
	CSRF       string
	Notice     string
	Problems   []string // sections that could not be read
	Message    string   // set for an action's error page instead of the dashboard
	States     []outbox.State
	Totals     []stateCount
	Targets    []targetView
	Conns      []intake.Status
	Retrying   []outbox.Item
	Parked     []parkedView
	ParkedAll  int
	Probable   []outbox.Item // probably-delivered results, for the operator to confirm or retry
	Enrolments enrolmentsView
}

type stateCount struct {
	State outbox.State
	N     int
}

type targetView struct {
	Name        string
	State       outbox.TargetState
	Manual      bool                  // paused by the operator: no probes
	Circuit     delivery.CircuitState // closed when this process does not deliver to it
	Counts      map[outbox.State]int  // nil when they could not be read
	Oldest      time.Time             // zero when nothing waits
	Charts      []chart               // the last chartHours hours; nil when they could not be read
	Unavailable bool                  // its state could not be read
}

type parkedView struct {
	Item outbox.Item
	Last *outbox.Attempt // nil when it was never attempted
}

type enrolmentsView struct {
	Enabled bool
	Items   []Enrolment
}

// dashboard renders the HTML dashboard. A section the store cannot read
// is reported on the page, which is then served with status 503.
func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	p := h.newPage("cvbridge")
	p.CSRF = h.csrf.token(h.csrf.ensure(w, r))
	p.Notice = notice(r, h.opts.Targets())
	problem := func(section string, err error) {
		p.Problems = append(p.Problems, fmt.Sprintf("%s: %v", section, err))
	}

	if counts, err := h.opts.Store.Counts(ctx, ""); err != nil {
		problem("outbox counts", err)
	} else {
		p.Totals = ordered(counts)
		p.ParkedAll = counts[outbox.StateFailed]
	}
	for _, name := range h.opts.Targets() {
		p.Targets = append(p.Targets, h.target(ctx, name, problem))
	}
	p.Conns = h.opts.Connections()

	if items, err := h.opts.Store.List(ctx, outbox.Filter{State: outbox.StatePending, Limit: pendingScan}); err != nil {
		problem("retrying results", err)
	} else {
		for _, it := range items {
			if it.LastError != "" && len(p.Retrying) < maxRetrying {
				p.Retrying = append(p.Retrying, it)
			}
		}
	}
	if items, err := h.opts.Store.List(ctx, outbox.Filter{State: outbox.StateFailed, Limit: maxParked}); err != nil {
		problem("parked results", err)
	} else {
		for _, it := range items {
			pv := parkedView{Item: it}
			_, attempts, err := h.opts.Store.Get(ctx, it.ID)
			if err != nil {
				problem(fmt.Sprintf("attempts of result #%d", it.ID), err)
			} else if len(attempts) > 0 {
				pv.Last = &attempts[len(attempts)-1]
			}
			p.Parked = append(p.Parked, pv)
		}
	}
	if items, err := h.opts.Store.List(ctx, outbox.Filter{State: outbox.StateProbablyDelivered, Limit: maxParked}); err != nil {
		problem("probably delivered results", err)
	} else {
		p.Probable = items
	}
	if h.opts.Enrolments != nil {
		p.Enrolments.Enabled = true
		items, err := h.opts.Enrolments.RecentEnrolments(ctx, maxEnrolments)
		if err != nil {
			problem("inbound enrolments", err)
		}
		p.Enrolments.Items = items
	}
	status := http.StatusOK
	if len(p.Problems) > 0 {
		status = http.StatusServiceUnavailable
	}
	h.render(w, status, p)
}

// target reads one target's state, counts and oldest waiting result.
func (h *Handler) target(ctx context.Context, name string, problem func(string, error)) targetView {
	tv := targetView{Name: name}
	st, err := h.opts.Store.TargetState(ctx, name)
	if err != nil {
		problem("state of target "+name, err)
		tv.Unavailable = true
	}
	tv.State, tv.Manual = st, delivery.PausedManually(st)
	tv.Circuit, _ = h.opts.Circuit(name)
	counts, err := h.opts.Store.Counts(ctx, name)
	if err != nil {
		problem("counts of target "+name, err)
	} else {
		tv.Counts = counts
	}
	oldest, ok, err := h.opts.Store.OldestPending(ctx, name)
	if err != nil {
		problem("oldest waiting result of target "+name, err)
	} else if ok {
		tv.Oldest = oldest
	}
	now := h.opts.Clock.Now()
	hours, err := h.opts.Store.Hours(ctx, name, now.Add(-(chartHours-1)*time.Hour), now)
	if err != nil {
		problem("history of target "+name, err)
	} else {
		tv.Charts = targetCharts(hours, h.opts.Location)
	}
	return tv
}

// ordered lists counts in the order of outbox.States.
func ordered(counts map[outbox.State]int) []stateCount {
	out := make([]stateCount, 0, len(outbox.States))
	for _, s := range outbox.States {
		out = append(out, stateCount{State: s, N: counts[s]})
	}
	return out
}

// notice is the confirmation of the action that redirected here, built
// from known words only.
func notice(r *http.Request, targets []string) string {
	q := r.URL.Query()
	if t := q.Get("target"); t != "" {
		for _, name := range targets {
			if name != t {
				continue
			}
			switch q.Get("done") {
			case "paused":
				return fmt.Sprintf("Target %s is paused: nothing is sent to it until you resume it.", name)
			case "resumed":
				return fmt.Sprintf("Target %s is resumed: its queue is sent again.", name)
			}
		}
		return ""
	}
	id, err := strconv.ParseInt(q.Get("result"), 10, 64)
	if err != nil || id <= 0 {
		return ""
	}
	switch q.Get("done") {
	case "retried":
		return fmt.Sprintf("Result #%d is queued again and will be sent shortly.", id)
	case "cancelled":
		return fmt.Sprintf("Result #%d is cancelled and will not be sent.", id)
	case "confirmed":
		return fmt.Sprintf("Result #%d is recorded as delivered and will not be sent again.", id)
	}
	return ""
}

// message renders a short page explaining why an action did nothing.
func (h *Handler) message(w http.ResponseWriter, status int, msg string) {
	p := h.newPage("cvbridge: " + http.StatusText(status))
	p.Message = msg
	h.render(w, status, p)
}

func (h *Handler) newPage(title string) page {
	return page{
		Title: title, Version: h.opts.Version, Now: h.opts.Clock.Now(), Location: h.opts.Location,
		CSS: template.CSS(styleCSS), States: outbox.States,
	}
}

// render executes the template into a buffer first, so a template error
// becomes a clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, status int, p page) {
	var buf bytes.Buffer
	if err := pages.Execute(&buf, p); err != nil {
		h.log.Error("admin: rendering the dashboard failed", "error", err)
		text(w, http.StatusInternalServerError, "the dashboard could not be rendered; see the log\n")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// timeLayout is how the dashboard writes a time, in the configuration's zone.
const timeLayout = "2006-01-02 15:04:05 MST"

// when writes t with how far it is from the page's time, or a dash for a zero time.
func (p page) when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := t.Sub(p.Now)
	rel := "now"
	switch {
	case d >= time.Second:
		rel = "in " + span(d)
	case d <= -time.Second:
		rel = span(-d) + " ago"
	}
	return t.In(p.Location).Format(timeLayout) + " (" + rel + ")"
}

// since writes how long ago t was, as an age, or a dash for a zero time.
func (p page) since(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return span(max(0, p.Now.Sub(t)))
}

// span writes a duration the way a person reads it: "45s", "12m", "3h 5m", "4d 2h".
func span(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
