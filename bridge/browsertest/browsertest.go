// Package browsertest starts a real headless Chromium for tests that must
// see a page as a browser does: its Content-Security-Policy, its form
// submissions, its redirects. It is used by tests only.
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package puts the browser.
const ChromiumPath = "/usr/bin/chromium"

// New starts a headless Chromium for the test and returns its context, or
// skips the test when the browser is not installed (and fails it when CI is
// set, where it must be). opts add to the allocator's options, such as
// IgnoreCertificateErrors for a test server's own certificate.
func New(t *testing.T, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		msg := ChromiumPath + " is missing, so this browser test cannot run: apt-get install -y chromium"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so a missing browser is a failure")
		}
		t.Skip(msg)
	}
	all := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.NoSandbox, // root in a container: the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
	)
	all = append(all, opts...)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, all...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	return bctx
}

// IgnoreCertificateErrors lets the browser accept httptest's self-signed
// TLS certificates.
var IgnoreCertificateErrors = chromedp.Flag("ignore-certificate-errors", true)
