package dashboard

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"

	"github.com/kitrun/kitrun/bench/history"
	"github.com/kitrun/kitrun/bench/history/historytest"
)

// This file tests the page in a real browser: Debian's headless Chromium,
// driven with chromedp.

// browserTimeout bounds each browser session: a page that never finishes
// rendering fails the test instead of hanging it.
const browserTimeout = 90 * time.Second

// pageTimeout bounds drawing one page (a year's page takes 0.6 s here).
const pageTimeout = 30 * time.Second

// requireChromium returns the browser to drive. It skips the test when
// there is none, except under CI, where a missing browser is a failure
// (`make deps` installs it).
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-headless-shell", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI: chromium not installed (run `make deps`)")
	}
	t.Skip("chromium not installed (run `make deps`)")
	return ""
}

// browser is one headless Chromium with a fresh profile, collecting every
// console error and uncaught exception of the pages it shows.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T, width, height int) *browser {
	exe := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // as root
		chromedp.Headless,
		chromedp.DisableGPU,
		// This network is closed: Chromium's background services would
		// only time out.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	b := &browser{ctx: bctx}
	// Subscribe before the first page: the browser starts here.
	messages := chromedp.Console(bctx)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// open loads a page and waits until its script has drawn it.
func (b *browser) open(t *testing.T, path string) {
	t.Helper()
	path, fragment, _ := strings.Cut(path, "#")
	if fragment != "" {
		fragment = "#" + fragment
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b.ctx, chromedp.Navigate("file://"+abs+fragment)); err != nil {
		t.Fatalf("loading %s: %v (console: %v)", path, err, b.consoleErrors())
	}
	// The script marks the body when it has drawn the page; an exception
	// before that fails the test at once rather than at the deadline.
	deadline := time.Now().Add(pageTimeout)
	for {
		ready, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.body !== null && document.body.getAttribute("data-ready") === "1"`))
		if err != nil {
			t.Fatalf("loading %s: %v (console: %v)", path, err, b.consoleErrors())
		}
		if ready {
			return
		}
		if errs := b.consoleErrors(); len(errs) > 0 {
			t.Fatalf("loading %s: console errors before the page was drawn: %v", path, errs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("loading %s: not drawn within %v", path, pageTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) count(t *testing.T, selector string) int {
	t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", selector)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (b *browser) selectValue(t *testing.T, id, value string) {
	t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.ID(id), value)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.getElementById(%q).dispatchEvent(new Event("change"))`, id))); err != nil {
		t.Fatal(err)
	}
}

// screenshot keeps a full-page screenshot as a test artifact: in
// $KITRUN_TEST_ARTIFACTS when set (make test sets out/artifacts), else in
// the system's temporary directory; the path is logged.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("KITRUN_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "kitrun-test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// fixtureSite records a small generated history, configuration 0 (spec0,
// q35) 25% slower from run 8 on, and builds its dashboard.
func fixtureSite(t *testing.T, runs, configs, samples, sampleRuns int) (string, Stats) {
	t.Helper()
	dir := t.TempDir()
	s, err := history.Open(filepath.Join(dir, "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = historytest.Fill(context.Background(), s, historytest.Options{Runs: runs, Configs: configs, Samples: samples, Seed: 1,
		Step: func(c, n int) float64 {
			if c == 0 && n >= 8 {
				return 0.25
			}
			return 0
		}})
	if err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(dir, "site")
	st, err := Build(context.Background(), s, Options{Dir: site, SampleRuns: sampleRuns})
	if err != nil {
		t.Fatal(err)
	}
	return site, st
}

func TestPageInChromium(t *testing.T) {
	const runs, configs, samples, sampleRuns = 12, 3, 5, 5
	site, _ := fixtureSite(t, runs, configs, samples, sampleRuns)
	b := newBrowser(t, 1280, 1000)
	b.open(t, filepath.Join(site, "index.html"))

	// boot.all_ready is shown first: every sample of the newest runs, a
	// median point for each older run, per configuration.
	if got, want := b.count(t, "circle.sample"), configs*sampleRuns*samples; got != want {
		t.Errorf("%d sample points drawn, want %d", got, want)
	}
	if got, want := b.count(t, "circle.median-pt"), configs*(runs-sampleRuns); got != want {
		t.Errorf("%d median points drawn, want %d", got, want)
	}
	if got := b.count(t, ".chart"); got != configs {
		t.Errorf("%d charts, want %d", got, configs)
	}
	// Every point links to its run's raw results, which exist.
	hrefs, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#charts a")).map(a => a.getAttribute("href"))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(hrefs) != configs*runs {
		t.Errorf("%d links, want one per point (%d)", len(hrefs), configs*runs)
	}
	for _, h := range hrefs {
		if _, err := os.Stat(filepath.Join(site, h)); err != nil {
			t.Errorf("link %s: %v", h, err)
			break
		}
	}
	// The step of spec0 is marked at its run (run IDs start at 1).
	changeRuns, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('.chart[data-config^="spec0/"] line.change')).map(l => l.getAttribute("data-run"))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(changeRuns) != 1 || changeRuns[0] != "9" {
		t.Errorf("spec0's change points at runs %v, want [9]", changeRuns)
	}
	if got := b.count(t, `.chart:not([data-config^="spec0/"]) line.change`); got != 0 {
		t.Errorf("%d change points on unchanged configurations", got)
	}
	if got := b.count(t, ".waterfall"); got != configs {
		t.Errorf("%d waterfalls, want %d", got, configs)
	}
	if got := b.count(t, "#memory rect.part"); got == 0 {
		t.Error("no memory breakdown drawn")
	}
	b.screenshot(t, "dashboard-desktop.png")

	// Filters: machine microvm is configuration 1 only.
	b.selectValue(t, "f-machine", "microvm")
	if got, want := b.count(t, "circle.sample"), sampleRuns*samples; got != want {
		t.Errorf("machine=microvm: %d sample points, want %d", got, want)
	}
	if got := b.count(t, ".waterfall"); got != 1 {
		t.Errorf("machine=microvm: %d waterfalls, want 1", got)
	}
	b.selectValue(t, "f-machine", "")
	b.selectValue(t, "f-spec", "spec2")
	if got := b.count(t, ".chart"); got != 1 {
		t.Errorf("spec=spec2: %d charts, want 1", got)
	}
	b.selectValue(t, "f-spec", "")
	b.selectValue(t, "f-range", "30")
	b.selectValue(t, "f-metric", "mem.guest_used")
	if got, want := b.count(t, "circle.sample"), configs*sampleRuns*samples; got != want {
		t.Errorf("metric mem.guest_used: %d sample points, want %d", got, want)
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestPageOnAPhone: at a phone's width the page fits without scrolling
// sideways.
func TestPageOnAPhone(t *testing.T) {
	site, _ := fixtureSite(t, 12, 3, 5, 5)
	b := newBrowser(t, 1280, 1000)
	if err := chromedp.Do(b.ctx, chromedp.Emulate(device.IPhone13)); err != nil {
		t.Fatal(err)
	}
	b.open(t, filepath.Join(site, "index.html"))
	widths, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
	if err != nil {
		t.Fatal(err)
	}
	scrollWidth, innerWidth := widths[0], widths[1]
	if innerWidth != 390 {
		t.Fatalf("window %d px wide, want the iPhone 13's 390", innerWidth)
	}
	if scrollWidth > innerWidth {
		t.Errorf("page is %d px wide in a %d px window", scrollWidth, innerWidth)
	}
	b.screenshot(t, "dashboard-phone.png")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestNightlySite checks a site `make nightly` built (make test's nightly
// check sets KITRUN_NIGHTLY_SITE): the page loads without errors and shows
// a change point of KITRUN_NIGHTLY_METRIC (default boot.all_ready) for
// KITRUN_NIGHTLY_CONFIG, the configuration and metric the check flagged.
func TestNightlySite(t *testing.T) {
	site := os.Getenv("KITRUN_NIGHTLY_SITE")
	if site == "" {
		t.Skip("KITRUN_NIGHTLY_SITE not set: run by `make nightly-test`")
	}
	config, metric := os.Getenv("KITRUN_NIGHTLY_CONFIG"), os.Getenv("KITRUN_NIGHTLY_METRIC")
	if metric == "" {
		metric = "boot.all_ready"
	}
	b := newBrowser(t, 1280, 1000)
	// The page takes its filters from the URL's fragment.
	b.open(t, filepath.Join(site, "index.html")+"#metric="+metric)
	if got := b.count(t, `.chart h3`); got == 0 {
		t.Fatalf("no chart of %s", metric)
	}
	sel := `.chart line.change`
	if config != "" {
		sel = fmt.Sprintf(`.chart[data-config=%q] line.change`, config)
	}
	if got := b.count(t, sel); got < 1 {
		t.Errorf("no change point drawn (%s)", sel)
	}
	if got := b.count(t, "circle.sample"); got == 0 {
		t.Error("no samples drawn")
	}
	b.screenshot(t, "nightly.png")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestEmptyHistoryPage: a history with no runs yet (the first nightly
// failed before recording) still makes a page that loads and says so.
func TestEmptyHistoryPage(t *testing.T) {
	dir := t.TempDir()
	s, err := history.Open(filepath.Join(dir, "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	site := filepath.Join(dir, "site")
	if _, err := Build(context.Background(), s, Options{Dir: site}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, 1280, 800)
	b.open(t, filepath.Join(site, "index.html"))
	text, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("summary").textContent`))
	if err != nil || text != "no runs recorded yet" {
		t.Errorf("summary %q (%v)", text, err)
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}
