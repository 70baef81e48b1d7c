package admin

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// chartHours is how many hours the dashboard's charts show.
const chartHours = 24

// The size of a chart's drawing area in SVG user units: one bar slot per hour.
const (
	chartSlot   = 10
	chartWidth  = chartHours * chartSlot
	chartHeight = 48
)

// chart is one small server-rendered SVG chart of a target's last hours:
// bars (a count per hour) or a line (a level at each hour's end). It is
// drawn with presentation attributes and the style sheet's classes only,
// so the Content-Security-Policy needs no inline styles.
type chart struct {
	Kind    string // "delivered", "failed" or "backlog": the CSS class and the caption
	Caption string // what it shows in words, with its numbers
	Max     int    // the value the full height stands for
	Bars    []chartBar
	Line    string // polyline points, for a level
	Dots    []chartBar
	Width   int
	Height  int
}

// chartBar is one hour's mark: a bar, or a point of the line, with its tooltip.
type chartBar struct {
	X, Y, W, H string
	Title      string
}

// targetCharts turns a target's hours into its three charts: delivered and
// parked per hour as bars, the backlog as a line. Times of day are in loc.
func targetCharts(hours []outbox.Hour, loc *time.Location) []chart {
	delivered := chart{Kind: "delivered", Width: chartWidth, Height: chartHeight}
	failed := chart{Kind: "failed", Width: chartWidth, Height: chartHeight}
	backlog := chart{Kind: "backlog", Width: chartWidth, Height: chartHeight}
	var sumD, sumF int
	for _, h := range hours {
		delivered.Max, failed.Max, backlog.Max = max(delivered.Max, h.Delivered), max(failed.Max, h.Failed), max(backlog.Max, h.Backlog)
		sumD, sumF = sumD+h.Delivered, sumF+h.Failed
	}
	var points []string
	for i, h := range hours {
		span := h.Start.In(loc).Format("15:04") + "–" + h.Start.Add(time.Hour).In(loc).Format("15:04")
		x := i * chartSlot
		delivered.Bars = append(delivered.Bars, bar(x, h.Delivered, delivered.Max, fmt.Sprintf("%s: %d delivered", span, h.Delivered)))
		failed.Bars = append(failed.Bars, bar(x, h.Failed, failed.Max, fmt.Sprintf("%s: %d parked", span, h.Failed)))
		cx, cy := x+chartSlot/2, chartHeight-scaled(h.Backlog, backlog.Max)
		points = append(points, strconv.Itoa(cx)+","+strconv.Itoa(cy))
		backlog.Dots = append(backlog.Dots, chartBar{X: strconv.Itoa(cx), Y: strconv.Itoa(cy),
			Title: fmt.Sprintf("%s: %d waiting at the end", span, h.Backlog)})
	}
	backlog.Line = strings.Join(points, " ")
	n := len(hours)
	delivered.Caption = fmt.Sprintf("Delivered: %d in %d h, at most %d an hour", sumD, n, delivered.Max)
	failed.Caption = fmt.Sprintf("Parked: %d in %d h, at most %d an hour", sumF, n, failed.Max)
	last := 0
	if n > 0 {
		last = hours[n-1].Backlog
	}
	backlog.Caption = fmt.Sprintf("Waiting: %d now, at most %d", last, backlog.Max)
	return []chart{delivered, failed, backlog}
}

// bar is the bar of value v in the slot at x, scaled so that top is full height.
func bar(x, v, top int, title string) chartBar {
	h := scaled(v, top)
	return chartBar{X: strconv.Itoa(x + 1), Y: strconv.Itoa(chartHeight - h), W: strconv.Itoa(chartSlot - 2),
		H: strconv.Itoa(h), Title: title}
}

// scaled is v's height in the drawing area when top fills it; a value
// above zero is at least one unit high, so it shows.
func scaled(v, top int) int {
	if v <= 0 || top <= 0 {
		return 0
	}
	return max(1, v*chartHeight/top)
}
