package admin_test

import (
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/browsertest"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// TestBrowserRetriesAParkedResult drives the dashboard in a real headless
// Chromium: the page loads with its style sheet allowed by the CSP, shows
// the parked result with Coachview's answer, and its Retry button (a real
// form submission, cookie and token included) re-queues the result.
func TestBrowserRetriesAParkedResult(t *testing.T) {
	t.Parallel()
	ctx := browsertest.New(t)
	f := newFixture(t, nil)
	row := "#result-" + strconv.FormatInt(f.parked, 10)

	run := func(name string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		require.NoError(t, err, name)
		return v
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(f.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(row)),
	))
	assert.Equal(t, "cvbridge", run("title", chromedp.Title()))
	assert.Equal(t, "p-parked", run("person", chromedp.Text(chromedp.CSS(row+" td:nth-child(5)"))))
	assert.Contains(t, run("why", chromedp.Text(chromedp.CSS(row+" td.msg"))), coachviewAnswer)
	// Read through DevTools, not page script: 600 only if the inline style
	// sheet passed the Content-Security-Policy (Chromium's own th is bold, 700).
	assert.Equal(t, "600", run("th weight", chromedp.Evaluate[string](`getComputedStyle(document.querySelector("th")).fontWeight`)),
		"the CSP blocked the dashboard's style sheet")
	require.Equal(t, outbox.StateFailed, f.state(f.parked))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row+` button[name="retry"]`)),
		chromedp.WaitVisible(chromedp.ID("notice")),
	))
	assert.Equal(t, "Result #"+strconv.FormatInt(f.parked, 10)+" is queued again and will be sent shortly.",
		run("notice", chromedp.Text(chromedp.ID("notice"))))
	it, _, err := f.store.Get(t.Context(), f.parked)
	require.NoError(t, err)
	assert.Equal(t, outbox.StatePending, it.State)
	assert.True(t, it.NextAttemptAt.Equal(f.clk.Now()), "due at once")
	assert.Equal(t, []string{"acme"}, f.requeuedTargets())

	// Back on the dashboard the row is no longer parked.
	parkedRows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#parked tbody tr").length`))
	require.NoError(t, err)
	assert.Zero(t, parkedRows)
}

// TestBrowserChartsAndPauseButton loads the dashboard with its charts in a
// real headless Chromium: the inline SVG charts draw (their bars and line
// take their colours from the style sheet the CSP allows by hash, so the
// computed fill proves the sheet applied to them), and a target's Pause
// button, then its Resume button, change the target through a real form
// submission.
func TestBrowserChartsAndPauseButton(t *testing.T) {
	t.Parallel()
	ctx := browsertest.New(t)
	f := newFixture(t, nil)
	str := func(name string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		require.NoError(t, err, name)
		return v
	}
	num := func(name, expr string) int {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		require.NoError(t, err, name)
		return v
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(f.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#charts-acme svg")),
	))
	assert.Equal(t, 3, num("charts", `document.querySelectorAll("#charts-acme svg").length`))
	assert.Equal(t, 24, num("bars", `document.querySelectorAll("#charts-acme .chart.delivered rect").length`))
	// The delivered bar of the current hour is drawn full height, in the style sheet's green.
	assert.Equal(t, 48, num("bar height", `Math.round(document.querySelector("#charts-acme .chart.delivered rect:last-of-type").getBBox().height)`))
	assert.Equal(t, "rgb(26, 127, 55)", str("bar fill",
		chromedp.Evaluate[string](`getComputedStyle(document.querySelector("#charts-acme .chart.delivered rect")).fill`)),
		"the CSP blocked the style sheet for the charts")
	assert.Equal(t, "none", str("line fill",
		chromedp.Evaluate[string](`getComputedStyle(document.querySelector("#charts-acme .chart.backlog polyline")).fill`)))
	// 240 units wide plus the style sheet's 1px border on each side.
	assert.Equal(t, 242, num("chart width", `Math.round(document.querySelector("#charts-acme svg").getBoundingClientRect().width)`))
	assert.Contains(t, str("caption", chromedp.Text(chromedp.CSS("#charts-acme .chart.delivered figcaption"))), "Delivered: 1 in 24 h")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#target-acme button[name="pause"]`)),
		chromedp.WaitVisible(chromedp.ID("notice")),
	))
	assert.Equal(t, "Target acme is paused: nothing is sent to it until you resume it.", str("notice", chromedp.Text(chromedp.ID("notice"))))
	st, err := f.store.TargetState(t.Context(), "acme")
	require.NoError(t, err)
	assert.True(t, st.Paused)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#target-acme button[name="resume"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#target-acme button[name="pause"]`)),
	))
	st, err = f.store.TargetState(t.Context(), "acme")
	require.NoError(t, err)
	assert.False(t, st.Paused)
	assert.Equal(t, []string{"acme"}, f.requeuedTargets())
}
