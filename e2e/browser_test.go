// Package e2e drives the real Gatehouse pages in headless Chromium through
// chromedp: the whole application (apptest) on a real SQLite file, a real
// browser, real clicks. See ../shared/TOOLING.md item 1.
//
// The tests need /usr/bin/chromium. Without it they skip, except under CI
// (CI set), where a missing browser is a failure. Screenshots go to
// $ARTIFACTS, or to <repo>/artifacts.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// testTimeout bounds one test's browser work, so a hung page fails the
	// test instead of the whole run.
	testTimeout = 60 * time.Second
)

// browser is one headless Chromium with one tab, plus everything its pages
// wrote to the console.
type browser struct {
	t       *testing.T
	ctx     context.Context
	console *consoleLog
}

// shared is the package's one Chromium, started by the first test that
// needs it and stopped by TestMain. Each test gets a browser context of its
// own in it (cookies, storage, cache and permissions as fresh as a new
// profile's): starting a Chromium per test cost 2 to 7 s each under -race,
// about 75 s of the package's time.
var shared struct {
	once sync.Once
	ctx  context.Context // the browser's first tab
	stop func()
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// sharedBrowser starts the shared Chromium once and returns its context.
func sharedBrowser() (context.Context, error) {
	shared.once.Do(func() {
		profile, err := os.MkdirTemp("", "gatehouse-e2e-chromium-")
		if err != nil {
			shared.err = err
			return
		}
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(chromiumPath),
			chromedp.UserDataDir(profile),
			chromedp.Headless,
			chromedp.NoSandbox, // required as root
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("disable-extensions", true),
			chromedp.Flag("lang", "en-US"),
		}
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		// The browser's protocol errors go to the test binary's output
		// (they are not one test's).
		ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "chromedp: "+format+"\n", args...)
		}))
		shared.ctx = ctx
		shared.stop = func() {
			cancel()
			acancel()
			os.RemoveAll(profile)
		}
		start := time.Now()
		// On this context itself: the browser lives as long as the one
		// the first Do gets.
		shared.err = chromedp.Do(ctx)
		chromiumStart = time.Since(start)
	})
	return shared.ctx, shared.err
}

// chromiumStart is how long the shared Chromium took to start.
var chromiumStart time.Duration

// newBrowser opens a tab in a browser context of its own (width x height
// viewport) in the shared Chromium, closed when the test ends.
func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %s is missing (%v): install the chromium package", chromiumPath, err)
		}
		t.Skipf("browser test skipped: %s not found (apt-get install chromium; under CI this is a failure)", chromiumPath)
	}
	root, err := sharedBrowser()
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("chromium started in %v (shared)", chromiumStart.Round(time.Millisecond))
	tab, closeTab := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	// The deadline bounds every action of the test.
	ctx, cancel := context.WithTimeout(tab, testTimeout)
	t.Cleanup(func() {
		cancel()
		closeTab()
	})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	return &browser{t: t, ctx: ctx, console: watchConsole(ctx)}
}

// tab opens a new tab with its own cookies (a separate browser context), as
// a second person on another computer would have.
func (b *browser) tab() *browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab: %v", err)
	}
	return &browser{t: b.t, ctx: ctx, console: watchConsole(ctx)}
}

// do runs actions and fails the test on the first error.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

// run runs one action that returns a value.
func run[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	if errors.Is(err, context.DeadlineExceeded) {
		b.screenshot("failure-" + sanitize(b.t.Name()))
	}
	b.t.Fatalf("%s: %v (page %s)", what, err, loc)
}

// text returns the visible text of the first element the selector matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, "text of "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// path returns the path and query of the current page.
func (b *browser) path() string {
	b.t.Helper()
	loc := run(b, "location", chromedp.Location())
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatalf("location %q: %v", loc, err)
	}
	return u.RequestURI()
}

// submit clicks a button that submits a form and waits until the next page
// has loaded.
func (b *browser) submit(sel string) {
	b.t.Helper()
	if _, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.fail("submit with "+sel, err)
	}
}

// navigate opens a URL and waits for it to load.
func (b *browser) navigate(u string) {
	b.t.Helper()
	b.do("navigate to "+u, chromedp.Navigate(u))
}

// screenshot saves a full-page PNG as a test artifact and logs its path.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100 => PNG
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	dir := artifactDir(b.t)
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("write %s: %v", p, err)
		return ""
	}
	b.t.Logf("artifact: %s (%d bytes)", p, len(png))
	return p
}

// noHorizontalScroll fails if the page is wider than the viewport, which
// on a phone means content is cut off or the page pans sideways.
func (b *browser) noHorizontalScroll(page string) {
	b.t.Helper()
	w := run(b, "page width", chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`))
	if len(w) == 2 && w[0] > w[1] {
		b.t.Errorf("%s: page is %dpx wide in a %dpx viewport (scrolls sideways)", page, w[0], w[1])
	}
}

// a11yScript lists basic accessibility problems of the current page: every
// form control and link has an accessible name, aria-describedby points at
// elements that exist, ids are unique, one h1, a page language.
const a11yScript = `(() => {
	const problems = [];
	if (!document.documentElement.lang) problems.push("<html> has no lang");
	const h1 = document.querySelectorAll("h1").length;
	if (h1 !== 1) problems.push(h1 + " <h1> elements, want 1");
	if (!document.title.trim()) problems.push("empty <title>");
	const what = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.name ? "[name=" + el.name + "]" : "");
	for (const el of document.querySelectorAll("input, select, textarea, button")) {
		if (el.type === "hidden" || el.hidden) continue;
		let name = el.getAttribute("aria-label") || "";
		if (!name && el.labels) name = [...el.labels].map(l => l.textContent).join(" ");
		if (!name && el.tagName === "BUTTON") name = el.textContent;
		if (!name.trim()) problems.push(what(el) + " has no label");
	}
	for (const a of document.querySelectorAll("a[href]")) {
		if (!(a.textContent.trim() || a.getAttribute("aria-label"))) problems.push("link to " + a.getAttribute("href") + " has no text");
	}
	for (const el of document.querySelectorAll("[aria-describedby], [aria-labelledby]")) {
		for (const attr of ["aria-describedby", "aria-labelledby"]) {
			for (const id of (el.getAttribute(attr) || "").split(/\s+/).filter(Boolean)) {
				if (!document.getElementById(id)) problems.push(what(el) + " " + attr + " names missing #" + id);
			}
		}
	}
	const seen = new Set();
	for (const el of document.querySelectorAll("[id]")) {
		if (seen.has(el.id)) problems.push("duplicate id " + el.id);
		seen.add(el.id);
	}
	return problems;
})()`

// checkPage fails the test on basic accessibility problems of the current
// page.
func (b *browser) checkPage(page string) {
	b.t.Helper()
	for _, p := range run(b, "accessibility check", chromedp.Evaluate[[]string](a11yScript)) {
		b.t.Errorf("%s (%s): %s", page, b.path(), p)
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(s string) string { return unsafeName.ReplaceAllString(s, "_") }

// artifactDir is $ARTIFACTS, or <repo>/artifacts (gitignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		root := wd
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				root = wd
				break
			}
			root = parent
		}
		dir = filepath.Join(root, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

// consoleLog collects every console message, exception and browser log
// entry of one tab, from its start to the end of the test.
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func watchConsole(ctx context.Context) *consoleLog {
	l := &consoleLog{}
	msgs := chromedp.Console(ctx) // subscribes now, before any navigation
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *consoleLog) all() []chromedp.ConsoleMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), l.msgs...)
}

// isBrokenSubresource reports whether a console message says that the
// stylesheet, the script or the icon of a page failed to load. (A page's
// own 4xx status, such as 422 for a form with errors, is expected.)
func isBrokenSubresource(m chromedp.ConsoleMessage) bool {
	if m.Type != chromedp.ConsoleError || !strings.Contains(m.Text, "Failed to load resource") {
		return false
	}
	u, err := url.Parse(m.URL)
	return err != nil || strings.HasPrefix(u.Path, "/assets/") || u.Path == "/favicon.ico"
}

// isCSPViolation reports whether a console message is Chromium's report of
// something the Content-Security-Policy blocked.
func isCSPViolation(m chromedp.ConsoleMessage) bool {
	return strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy")
}

// checkConsole fails the test on CSP violations and uncaught exceptions,
// and logs everything else the pages wrote. Messages arrive asynchronously,
// so it first gives the browser a moment to flush them.
func (b *browser) checkConsole() {
	b.t.Helper()
	// A round trip to the page makes the browser deliver what it queued.
	chromedp.Run(b.ctx, chromedp.Evaluate[int](`1`))
	time.Sleep(100 * time.Millisecond)
	for _, m := range b.console.all() {
		switch {
		case isCSPViolation(m):
			b.t.Errorf("CSP violation on %s: %s", m.URL, m)
		case m.IsException():
			b.t.Errorf("uncaught exception on %s:%d: %s", m.URL, m.Line+1, m)
		case isBrokenSubresource(m):
			b.t.Errorf("broken link to a page resource: %s: %s", m.URL, m.Text)
		default:
			b.t.Logf("console %s [%s] (%s): %s", m.Type, m.Source, m.URL, m.Text)
		}
	}
}

// startApp runs Gatehouse with its base URL on localhost (the name the
// browser uses, so that links in emails work), and returns that base URL.
func startApp(t *testing.T) (*apptest.Env, string) {
	t.Helper()
	var base string
	env := apptest.New(t, func(c *app.Config) {
		_, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			t.Fatalf("app address %q: %v", c.Addr, err)
		}
		base = "http://localhost:" + port
		u, err := app.ParseBaseURL(base)
		if err != nil {
			t.Fatal(err)
		}
		c.BaseURL = u
	})
	return env, base
}

const password = "correct horse battery staple"

// signIn fills the sign-in form and submits it.
func (b *browser) signIn(base, slug, email, pw string) {
	b.t.Helper()
	b.navigate(base + "/t/" + slug + "/login")
	b.do("fill sign-in form",
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), pw),
	)
	b.submit(`[data-testid=sign-in]`)
}

// (a) A member signs in through the real form, lands on the portal, sees
// their email, and signs out again.
func TestBrowserSignInAndOut(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)

	b := newBrowser(t, 1024, 768)
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/t/acme/account" {
		t.Errorf("after sign-in the page is %s, want /t/acme/account", got)
	}
	if got := b.text(`[data-testid=account-email]`); got != "alice@acme.test" {
		t.Errorf("account email = %q, want alice@acme.test", got)
	}
	if got := run(b, "title", chromedp.Title()); !strings.Contains(got, "Acme Corp") {
		t.Errorf("title = %q, want the workspace name in it", got)
	}
	b.checkPage("portal")
	b.screenshot("a-portal")

	b.submit(`[data-testid=sign-out]`)
	b.do("sign-in page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login") {
		t.Errorf("after sign-out the page is %s, want /t/acme/login", got)
	}
	if got := b.text(`main [role=status]`); got != "You are signed out." {
		t.Errorf("sign-out notice = %q, want %q", got, "You are signed out.")
	}
	b.checkPage("sign-in page")
	b.screenshot("a-signed-out")

	// The portal is really closed: it sends the browser back to sign in.
	b.navigate(base + "/t/acme/account")
	b.do("back at sign-in", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login") {
		t.Errorf("portal after sign-out shows %s, want the sign-in page", got)
	}
	b.checkConsole()
}

// (b) A wrong password shows the error, keeps the typed email and empties
// the password field.
func TestBrowserWrongPassword(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)

	b := newBrowser(t, 1024, 768)
	b.signIn(base, "acme", "alice@acme.test", "not the password")
	b.do("error shown", chromedp.WaitVisible(chromedp.CSS(`.alert.error[role=alert]`)))
	if got := b.text(`.alert.error`); got != "That email and password don't match." {
		t.Errorf("error = %q", got)
	}
	if got := run(b, "email value", chromedp.Value(chromedp.ID("email"))); got != "alice@acme.test" {
		t.Errorf("email field = %q, want the typed email kept", got)
	}
	if got := run(b, "password value", chromedp.Value(chromedp.ID("password"))); got != "" {
		t.Errorf("password field = %q, want it empty", got)
	}
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login") {
		t.Errorf("page = %s, want the sign-in page", got)
	}
	b.checkPage("sign-in page with an error")
	b.screenshot("b-wrong-password")

	// The form still works: the right password now signs in.
	b.do("retype password", chromedp.SendKeys(chromedp.ID("password"), password))
	b.submit(`[data-testid=sign-in]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	b.checkConsole()
}

// (c) An admin invites someone; the invitee follows the link from the dev
// mailbox in their own browser, chooses a password and lands on the portal.
func TestBrowserInvitation(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "owner@acme.test", "owner", password)

	secret := enrollByAPI(t, env, "acme", "owner@acme.test")

	admin := newBrowser(t, 1024, 768)
	admin.signIn(base, "acme", "owner@acme.test", password)
	admin.challengePage()
	admin.do("code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	admin.submit(`[data-testid=verify]`)
	admin.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	// An invitation is an admin change: 15 minutes after the sign-in the
	// owner confirms with a fresh code first, then the form is sent.
	env.Clock.Advance(15 * time.Minute)
	admin.navigate(base + "/t/acme/admin/members")
	admin.do("invite form",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=members]`)),
		chromedp.SendKeys(chromedp.ID("email"), "bob@acme.test"),
	)
	admin.submit(`form[action$="/admin/invitations"] button[type=submit]`)
	admin.do("step-up page", chromedp.WaitVisible(chromedp.ID("code")))
	if got := admin.path(); !strings.HasPrefix(got, "/t/acme/account/verify") {
		t.Errorf("inviting with a stale second factor went to %s, want the verify page", got)
	}
	if msgs, _ := env.Store.OutboxMessages(context.Background(), 10); len(msgs) != 1 || msgs[0].Kind != "totp_enabled" {
		t.Errorf("outbox after an invitation without a fresh second factor = %+v, want only the enrollment's notice", msgs)
	}
	admin.screenshot("c-invite-step-up")
	admin.do("fresh code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	admin.submit(`[data-testid=verify]`)
	admin.do("invite form",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=members]`)),
		chromedp.SendKeys(chromedp.ID("email"), "bob@acme.test"),
		chromedp.SetValue(chromedp.ID("role"), "admin"),
	)
	admin.submit(`form[action$="/admin/invitations"] button[type=submit]`)
	admin.do("invitation sent", chromedp.WaitVisible(chromedp.CSS(`main [role=status]`)))
	if got := admin.text(`main [role=status]`); got != "The invitation is on its way." {
		t.Errorf("notice after inviting = %q", got)
	}
	if got := admin.text(`main`); !strings.Contains(got, "bob@acme.test (admin)") {
		t.Errorf("open invitations do not list bob@acme.test (admin):\n%s", got)
	}
	admin.checkPage("admin members page")
	admin.screenshot("c-admin")

	// Bob has his own browser profile: no cookies of the admin.
	bob := admin.tab()
	bob.navigate(base + "/dev/mailbox")
	bob.do("mailbox", chromedp.WaitVisible(chromedp.CSS(`[data-testid=mailbox]`)))
	row := bob.text(`[data-testid=mailbox] tbody tr`)
	if !strings.Contains(row, "bob@acme.test") {
		t.Fatalf("newest mail is not to bob@acme.test: %q", row)
	}
	bob.checkPage("dev mailbox")
	bob.submit(`[data-testid=mailbox] tbody tr a`)
	bob.checkPage("dev mailbox message")
	link := bob.text(`[data-testid=mail-link]`)
	if !strings.HasPrefix(link, base+"/t/acme/invite/") {
		t.Fatalf("invitation link = %q, want %s/t/acme/invite/…", link, base)
	}
	bob.submit(`[data-testid=mail-link]`)
	bob.do("invitation page", chromedp.WaitVisible(chromedp.ID("confirm_password")))
	if got := bob.text(`main`); !strings.Contains(got, "bob@acme.test") {
		t.Errorf("invitation page does not name bob@acme.test:\n%s", got)
	}
	bob.checkPage("invitation page")
	bob.screenshot("c-invitation")
	bob.do("choose password",
		chromedp.SendKeys(chromedp.ID("password"), "bobs new passphrase"),
		chromedp.SendKeys(chromedp.ID("confirm_password"), "bobs new passphrase"),
	)
	bob.submit(`main form button[type=submit]`)
	bob.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := bob.path(); got != "/t/acme/account?notice=welcome" {
		t.Errorf("after accepting the page is %s, want /t/acme/account?notice=welcome", got)
	}
	if got := bob.text(`[data-testid=account-email]`); got != "bob@acme.test" {
		t.Errorf("portal email = %q, want bob@acme.test", got)
	}
	if got := bob.text(`main [role=status]`); got != "Welcome! Your account is ready." {
		t.Errorf("welcome notice = %q", got)
	}
	bob.checkPage("portal after joining")
	bob.screenshot("c-portal")

	// The link is single use.
	bob.navigate(link)
	if got := bob.text(`h1`); got != "This invitation can't be used" {
		t.Errorf("second use of the link shows %q", got)
	}
	admin.checkConsole()
	bob.checkConsole()
}

// Phone width: the sign-in page and the portal fit a 390px screen.
func TestBrowserPhone(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "owner@acme.test", "owner", password)

	b := newBrowser(t, 390, 844)
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.navigate(base + "/t/acme/login")
	b.noHorizontalScroll("sign-in page")
	b.screenshot("phone-sign-in")
	b.signIn(base, "acme", "owner@acme.test", password)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	b.noHorizontalScroll("portal")
	b.screenshot("phone-portal")
	b.navigate(base + "/t/acme/admin/members")
	b.do("admin", chromedp.WaitVisible(chromedp.CSS(`[data-testid=members]`)))
	b.noHorizontalScroll("admin page")
	b.screenshot("phone-admin")
	b.checkConsole()
}

// (d) The checks above are only worth something if they see problems: here
// a page is made to break the Content-Security-Policy and the accessibility
// rules on purpose, and the checks must notice.
func TestBrowserChecksDetectProblems(t *testing.T) {
	_, base := startApp(t)
	b := newBrowser(t, 800, 600)
	b.navigate(base + "/")
	if got := run(b, "a11y check", chromedp.Evaluate[[]string](a11yScript)); len(got) != 0 {
		t.Errorf("start page: unexpected accessibility problems %q", got)
	}
	// DevTools' own evaluation is exempt from CSP, but the inline script it
	// inserts is not: the page's policy must refuse to run it.
	b.do("break the page", chromedp.Evaluate[chromedp.Void](`
		const s = document.createElement("script");
		s.textContent = "window.inlineRan = true";
		document.body.appendChild(s);
		const i = document.createElement("input");
		i.id = "unlabelled";
		document.querySelector("main").appendChild(i);`))
	if run(b, "inline ran?", chromedp.Evaluate[bool](`window.inlineRan === true`)) {
		t.Errorf("an inline script ran: the Content-Security-Policy is not enforced")
	}
	got := run(b, "a11y check", chromedp.Evaluate[[]string](a11yScript))
	if !slices.Contains(got, "input#unlabelled has no label") {
		t.Errorf("accessibility check missed an input without a label: %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.ContainsFunc(b.console.all(), isCSPViolation) {
		if time.Now().After(deadline) {
			t.Fatalf("no CSP violation reported on the console; messages: %v", b.console.all())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
