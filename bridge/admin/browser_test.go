package admin_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium for the test, or skips the test when
// it is not installed (and fails it when CI is set, where it must be).
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := chromiumPath + " is missing, so the dashboard's browser test cannot run: apt-get install -y chromium"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so a missing browser is a failure")
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // root in a container: the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	return bctx
}

// TestBrowserRetriesAParkedResult drives the dashboard in a real headless
// Chromium: the page loads with its style sheet allowed by the CSP, shows
// the parked result with Coachview's answer, and its Retry button (a real
// form submission, cookie and token included) re-queues the result.
func TestBrowserRetriesAParkedResult(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
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
