package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

// newStaffLink creates a staff member and returns their enrollment path.
func newStaffLink(t *testing.T, ctx context.Context, envStore *db.Store, kr interface {
	HashToken(purpose, token string) string
}, hasher *auth.Hasher, email string, now time.Time) string {
	t.Helper()
	hash, err := hasher.Hash(ctx, password)
	if err != nil {
		t.Fatal(err)
	}
	token := auth.NewToken()
	if _, err := envStore.CreateStaff(ctx, email, db.StaffRole, hash, app.StaffEnrollmentHash(kr, token), now.Add(app.StaffEnrollmentTTL)); err != nil {
		t.Fatal(err)
	}
	return "/support/enroll/" + token
}

// staffSignIn signs a staff member in at /support/login; the challenge
// follows.
func (b *browser) staffSignIn(base, email string) {
	b.t.Helper()
	b.navigate(base + "/support/login")
	b.do("fill the support sign-in",
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	b.submit(`[data-testid=sign-in]`)
}

var e2eCancelRE = regexp.MustCompile(`https?://\S+(/t/acme/reset/cancel/[A-Za-z0-9_-]{43})`)

// Two staff members in two browsers: Sam enrolls a security key through
// his enrollment link and signs in with it; Tina enrolls an authenticator
// app. Sam finds Alice, opens a reset case with the identity check; the
// case page offers him no Approve; Tina approves it; Alice receives the
// email, follows its cancel link and cancels. Screenshots of the
// enrollment page, the search, the case and the member's cancel page.
func TestBrowserSupportCase(t *testing.T) {
	env, base := startApp(t)
	ctx := context.Background()
	acme := env.Workspace("acme", "Acme Corp")
	env.User(acme, "alice@acme.test", "member", password)
	hasher := auth.NewHasher(env.Config.PasswordHash)
	now := env.Clock.Now()

	// Sam: a security key through the enrollment page.
	sam := newBrowser(t, 1280, 900)
	sam.authenticator(false)
	sam.navigate(base + newStaffLink(t, ctx, env.Store, env.Keys, hasher, "sam@gatehouse.test", now))
	sam.do("enrollment page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=staff-add-key]`)))
	sam.checkPage("staff enrollment")
	sam.screenshot("support-staff-enroll")
	sam.do("add the key",
		chromedp.SendKeys(chromedp.ID("key_name"), "Sam's YubiKey"),
		chromedp.Click(chromedp.CSS(`[data-testid=staff-add-key]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-wa-codes] [data-testid=recovery-codes] li`)),
	)
	codes := run(sam, "codes", chromedp.Evaluate[[]string](`[...document.querySelectorAll("[data-testid=recovery-codes] li")].map(li => li.textContent.trim())`))
	if len(codes) != 10 {
		t.Fatalf("staff enrollment shows %d recovery codes", len(codes))
	}
	sam.do("tick I saved", chromedp.Click(chromedp.ID("wa-saved")))
	sam.submit(`[data-wa-codes] [data-testid=codes-saved]`)
	if got := sam.path(); !strings.HasPrefix(got, "/support/login") {
		t.Fatalf("after enrolling the page is %s, want the support sign-in", got)
	}
	sam.staffSignIn(base, "sam@gatehouse.test")
	sam.do("key challenge", chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)), chromedp.Click(chromedp.CSS(`[data-testid=use-key]`)))
	sam.do("console", chromedp.WaitVisible(chromedp.CSS(`form[role=search]`)))
	if got := sam.path(); got != "/support/members" {
		t.Fatalf("after the key the page is %s, want /support/members", got)
	}

	// Tina: an authenticator app through the same kind of link.
	tina := newBrowser(t, 1280, 900)
	tina.navigate(base + newStaffLink(t, ctx, env.Store, env.Keys, hasher, "tina@gatehouse.test", now))
	tina.submit(`[data-testid=staff-enroll-start]`)
	tina.do("QR page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=totp-secret]`)))
	secret := strings.ReplaceAll(tina.text(`[data-testid=totp-secret]`), " ", "")
	tina.do("first code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	tina.submit(`[data-testid=confirm-totp]`)
	tina.do("codes", chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes] li`)))
	env.Clock.Advance(30 * time.Second)
	tina.staffSignIn(base, "tina@gatehouse.test")
	tina.do("code challenge", chromedp.WaitVisible(chromedp.ID("code")), chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	tina.submit(`[data-testid=verify]`)
	tina.do("console", chromedp.WaitVisible(chromedp.CSS(`form[role=search]`)))

	// Sam finds Alice and opens the case.
	sam.do("search", chromedp.SendKeys(chromedp.ID("email"), "alice@acme.test"))
	sam.submit(`[data-testid=support-search]`)
	sam.do("results", chromedp.WaitVisible(chromedp.CSS(`[data-testid=support-results]`)))
	sam.checkPage("member search")
	sam.screenshot("support-search")
	sam.do("open a case", chromedp.Click(chromedp.CSS(`[data-testid=case-new]`)), chromedp.WaitVisible(chromedp.ID("method")))
	sam.do("identity check",
		chromedp.SetValue(chromedp.ID("method"), "video_id_document"),
		chromedp.SendKeys(chromedp.ID("evidence_ref"), "TICKET-4711"),
		chromedp.SendKeys(chromedp.ID("notes"), "Passport checked on a video call; the face matched the HR photo."),
	)
	sam.submit(`[data-testid=case-open]`)
	sam.do("case page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=case-status]`)))
	if got := sam.text(`[data-testid=case-status]`); got != "Awaiting approval" {
		t.Errorf("status after opening = %q", got)
	}
	if n := run(sam, "approve offered", chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=case-approve]").length`)); n != 0 {
		t.Error("the opener is offered Approve")
	}
	casePath := sam.path()

	// Tina approves.
	tina.navigate(base + casePath)
	tina.do("approve", chromedp.WaitVisible(chromedp.CSS(`[data-testid=case-approve]`)))
	tina.submit(`[data-testid=case-approve]`)
	tina.do("scheduled", chromedp.WaitVisible(chromedp.CSS(`[data-testid=case-status]`)))
	if got := tina.text(`[data-testid=case-status]`); got != "Scheduled" {
		t.Errorf("status after approval = %q", got)
	}
	if got := tina.text(`[data-testid=case-timeline]`); !strings.Contains(got, "opened") || !strings.Contains(got, "approved") || !strings.Contains(got, "tina@gatehouse.test") {
		t.Errorf("timeline = %q", got)
	}
	tina.checkPage("case page")
	tina.noHorizontalScroll("case page")
	tina.screenshot("support-case")

	// Alice cancels by the emailed link.
	msgs, err := env.Store.OutboxMessages(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	var path string
	for _, m := range msgs {
		if m.Kind == mail.KindSupportResetScheduled && m.To == "alice@acme.test" {
			path = e2eCancelRE.FindStringSubmatch(m.Text)[1]
		}
	}
	if path == "" {
		t.Fatal("no reset email to Alice")
	}
	alice := newBrowser(t, 390, 844)
	alice.navigate(base + path)
	alice.do("cancel page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=reset-cancel]`)))
	alice.checkPage("cancel page")
	alice.noHorizontalScroll("cancel page")
	alice.screenshot("support-reset-cancel-phone")
	alice.submit(`[data-testid=reset-cancel]`)
	alice.do("cancelled", chromedp.WaitVisible(chromedp.CSS(`[data-testid=reset-cancelled]`)))
	tina.navigate(base + casePath)
	if got := tina.text(`[data-testid=case-status]`); got != "Cancelled by the member" {
		t.Errorf("status after Alice cancelled = %q", got)
	}
}
