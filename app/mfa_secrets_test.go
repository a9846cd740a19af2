package app_test

// Secrets at rest, tampered ciphertext, enrollment, step-up, notices and
// audit, and key rotation.

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// A copy of the database (file and WAL) holds neither the TOTP secret, in
// any encoding, nor any recovery code; nor do the logs.
func TestSecretsNotAtRest(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	// Through the pages: the secret is shown on the setup page only.
	page := env.Client()
	page.Login("acme", "alice@acme.test", pw)
	if res := page.PostForm("/t/acme/account/mfa/totp/setup", nil); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/mfa/totp" {
		t.Fatalf("setup = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	doc := page.Get("/t/acme/account/mfa/totp").Doc()
	secret := strings.ReplaceAll(doc.Find("[data-testid=totp-secret]").Text(), " ", "")
	if len(secret) != 32 {
		t.Fatalf("secret on the page = %q", secret)
	}
	res := page.PostForm("/t/acme/account/mfa/totp", url.Values{"code": {nowCode(t, env, secret)}})
	var codes []string
	res.Doc().Find("[data-testid=recovery-codes] code").Each(func(_ int, s *goquery.Selection) { codes = append(codes, s.Text()) })
	if res.StatusCode != http.StatusOK || len(codes) != 10 {
		t.Fatalf("confirm = %d, %d codes", res.StatusCode, len(codes))
	}
	// Never shown again: the setup page redirects, a new setup is refused.
	if r := page.Get("/t/acme/account/mfa/totp"); r.StatusCode != http.StatusSeeOther || strings.Contains(string(r.Body), secret) {
		t.Fatalf("setup page after confirmation = %d", r.StatusCode)
	}
	if r := page.PostForm("/t/acme/account/mfa/totp/setup", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/t/acme/account/mfa" {
		t.Fatalf("second setup = %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	for _, p := range []string{"/t/acme/account/mfa", "/t/acme/account"} {
		body := string(page.Get(p).Body)
		if strings.Contains(body, secret) || strings.Contains(body, codes[0]) {
			t.Fatalf("%s shows the secret or a code", p)
		}
	}
	env.Clock.Advance(30 * time.Second)
	mtok := mfaToken(t, env, "acme", "alice@acme.test", pw)
	sres := loginMFA(env, "acme", map[string]string{"mfa_token": mtok, "code": nowCode(t, env, secret)})
	session := sres.JSON()["session_token"].(string)
	if r := env.Client().API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", session, nil); r.StatusCode != http.StatusConflict || r.JSON()["error"] != "already_enrolled" || strings.Contains(string(r.Body), secret) {
		t.Fatalf("API setup after enrollment = %d %s", r.StatusCode, r.Body)
	}
	// Use a recovery code, regenerate (new codes), sign in again.
	loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "recovery_code": codes[0]})
	r := env.Client().API(http.MethodPost, "/t/acme/api/v1/mfa/recovery-codes", session, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("regenerate = %d", r.StatusCode)
	}
	for _, c := range r.JSON()["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}

	files := dbtest.Contents(t, env.Store)
	if len(files) < 4096 {
		t.Fatalf("read only %d bytes of database", len(files))
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	needles := map[string][]byte{
		"secret": []byte(secret), "secret lowercase": []byte(strings.ToLower(secret)), "secret grouped": []byte(secret[:4] + " " + secret[4:8]),
		"raw secret": raw, "raw secret hex": []byte(hex.EncodeToString(raw)),
	}
	for i, c := range codes {
		needles[fmt.Sprintf("code %d", i)] = []byte(c)
		needles[fmt.Sprintf("code %d without dashes", i)] = []byte(strings.ReplaceAll(c, "-", ""))
		needles[fmt.Sprintf("code %d upper", i)] = []byte(strings.ToUpper(c))
	}
	for name, n := range needles {
		if bytes.Contains(files, n) {
			t.Errorf("the database files contain the %s", name)
		}
		if strings.Contains(env.Logs(), string(n)) {
			t.Errorf("the logs contain the %s", name)
		}
	}
	// The sanity check that the scan works: the member's email is there.
	if !bytes.Contains(files, []byte("alice@acme.test")) {
		t.Fatal("scan found not even the email: reading the wrong file?")
	}
}

// Tampered ciphertext, or ciphertext moved to another member's row, is
// never accepted, and nothing logs the secret.
func TestTamperedSecretRefused(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	bob := env.User(acme, "bob@acme.test", db.RoleMember, "bob's password 1")
	aliceSecret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	bobSecret, _, _ := enrollAPI(t, env, "acme", "bob@acme.test", "bob's password 1")
	var ct []byte
	if err := env.Store.DB().QueryRow(`SELECT secret FROM totp_credentials WHERE user_id = ?`, alice.ID).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	try := func(t *testing.T, email, password, secret string, u db.User) {
		t.Helper()
		before := aal2Sessions(t, env, u)
		code := nextCode(t, env, secret)
		res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", email, password), "code": code})
		if res.StatusCode == http.StatusOK || res.JSON()["session_token"] != nil {
			t.Fatalf("tampered secret accepted (API): %d %s", res.StatusCode, res.Body)
		}
		p := pendingPage(t, env, "acme", email, password)
		if r := challengeWith(env, p, "acme", code); passed(r, "acme") || signedIn(t, p, "acme") {
			t.Fatalf("tampered secret accepted (page): %d", r.StatusCode)
		}
		if aal2Sessions(t, env, u) != before {
			t.Fatal("an aal2 session was made")
		}
	}
	t.Run("FlippedByte", func(t *testing.T) {
		for _, i := range []int{0, len(ct) / 2, len(ct) - 1} {
			bad := bytes.Clone(ct)
			bad[i] ^= 0x80
			env.Store.DB().Exec(`UPDATE totp_credentials SET secret = ? WHERE user_id = ?`, bad, alice.ID)
			try(t, "alice@acme.test", pw, aliceSecret, alice)
		}
	})
	t.Run("MovedToAnotherMember", func(t *testing.T) {
		// Bob's ciphertext (and key id) copied onto alice's row: alice's
		// credential id and user id no longer match its associated data.
		if _, err := env.Store.DB().Exec(`UPDATE totp_credentials SET secret = (SELECT secret FROM totp_credentials WHERE user_id = ?),
			key_id = (SELECT key_id FROM totp_credentials WHERE user_id = ?) WHERE user_id = ?`, bob.ID, bob.ID, alice.ID); err != nil {
			t.Fatal(err)
		}
		try(t, "alice@acme.test", pw, bobSecret, alice)
		try(t, "alice@acme.test", pw, aliceSecret, alice)
	})
	t.Run("UnknownKeyID", func(t *testing.T) {
		env.Store.DB().Exec(`UPDATE totp_credentials SET secret = ?, key_id = 'deadbeef' WHERE user_id = ?`, ct, alice.ID)
		try(t, "alice@acme.test", pw, aliceSecret, alice)
	})
	// Restored, it works again: the refusals were about the ciphertext.
	env.Store.DB().Exec(`UPDATE totp_credentials SET secret = ?, key_id = ? WHERE user_id = ?`, ct, env.Keys.CurrentID(), alice.ID)
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": nextCode(t, env, aliceSecret)}); res.StatusCode != http.StatusOK {
		t.Fatalf("restored secret = %d %s", res.StatusCode, res.Body)
	}
	for _, s := range []string{aliceSecret, bobSecret} {
		if strings.Contains(env.Logs(), s) {
			t.Fatal("a secret was logged")
		}
	}
}

// An abandoned or wrongly confirmed enrollment does not turn MFA on; it
// expires after 15 minutes; starting again replaces it.
func TestEnrollmentEdges(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	mfaRequired := func() bool {
		res := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
		return res.JSON()["mfa_required"] == true
	}
	setupSecret := func() string {
		res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("setup = %d %s", res.StatusCode, res.Body)
		}
		return res.JSON()["secret"].(string)
	}
	verify := func(code string) *http.Response {
		return c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", tok, map[string]string{"code": code}).Response
	}

	first := setupSecret()
	if mfaRequired() {
		t.Fatal("an abandoned setup turned MFA on")
	}
	page := env.Client()
	page.Login("acme", "alice@acme.test", pw)
	if !signedIn(t, page, "acme") {
		t.Fatal("page sign-in asked for a factor after an abandoned setup")
	}
	if st := verify(wrongCode(t, env, first)); st.StatusCode != http.StatusBadRequest {
		t.Fatalf("wrong code = %d", st.StatusCode)
	}
	if mfaRequired() || hasTOTP(t, env, alice) {
		t.Fatal("a wrong code turned MFA on")
	}
	// A confirmation code is a guess like a sign-in code (issue 12): it
	// counts toward the member's second-factor lock.
	if g := mfaGuard(t, env, alice); g.Consecutive != 1 || g.WindowFailures != 1 {
		t.Fatalf("a wrong confirmation code was not counted: %+v", g)
	}

	// Starting again replaces it: the first secret's codes no longer confirm.
	second := setupSecret()
	if second == first {
		t.Fatal("same secret twice")
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM totp_credentials WHERE user_id = ?`, alice.ID); n != 1 {
		t.Fatalf("%d enrollment rows, want 1", n)
	}
	if st := verify(nowCode(t, env, first)); st.StatusCode != http.StatusBadRequest {
		t.Fatalf("the replaced secret's code = %d", st.StatusCode)
	}
	// It expires after 15 minutes.
	env.Clock.Advance(15 * time.Minute)
	if st := verify(nowCode(t, env, second)); st.StatusCode != http.StatusBadRequest {
		t.Fatalf("code after 15 minutes = %d, want 400", st.StatusCode)
	}
	if mfaRequired() {
		t.Fatal("an expired setup turned MFA on")
	}
	if r := page.Get("/t/acme/account/mfa/totp"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("expired setup page = %d, want a redirect", r.StatusCode)
	}
	// Just inside 15 minutes it works.
	tok = c.APILogin("acme", "alice@acme.test", pw)
	third := setupSecret()
	env.Clock.Advance(15*time.Minute - time.Second)
	if st := verify(nowCode(t, env, third)); st.StatusCode != http.StatusOK {
		t.Fatalf("code at 14:59 = %d", st.StatusCode)
	}
	if !mfaRequired() {
		t.Fatal("MFA not on after confirmation")
	}
	if n := outboxCount(t, env.Store, mail.KindTOTPEnabled, "alice@acme.test"); n != 1 {
		t.Fatalf("%d totp_enabled emails, want 1", n)
	}
}

// Security changes need a second factor within the last 10 minutes; the
// step-up renews the session token.
func TestStepUp(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, codes, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	page := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if res := challengeWith(env, page, "acme", nextCode(t, env, secret)); !passed(res, "acme") {
		t.Fatal("challenge")
	}
	api := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": nextCode(t, env, secret)}).JSON()["session_token"].(string)
	var hashBefore string
	env.Store.DB().QueryRow(`SELECT password_hash FROM users WHERE id = ?`, alice.ID).Scan(&hashBefore)

	env.Clock.Advance(10*time.Minute + time.Second)
	wantVerify := func(name string, res *http.Response) {
		t.Helper()
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/account/verify?next=") {
			t.Fatalf("%s with a stale aal2 = %d %q, want the verify page", name, res.StatusCode, res.Header.Get("Location"))
		}
	}
	wantVerify("remove", page.PostForm("/t/acme/account/mfa/totp/remove", url.Values{"remove_code": {nextCode(t, env, secret)}}).Response)
	wantVerify("regenerate", page.PostForm("/t/acme/account/mfa/recovery-codes", nil).Response)
	wantVerify("password", page.PostForm("/t/acme/account/password", url.Values{"current_password": {pw}, "new_password": {"a brand new password"}, "confirm_password": {"a brand new password"}}).Response)
	c := env.Client()
	for _, r := range []struct {
		method, path string
		body         any
	}{{http.MethodDelete, "/t/acme/api/v1/mfa/totp", map[string]string{"code": nowCode(t, env, secret)}}, {http.MethodPost, "/t/acme/api/v1/mfa/recovery-codes", nil}} {
		res := c.API(r.method, r.path, api, r.body)
		if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
			t.Fatalf("%s %s with a stale aal2 = %d %s", r.method, r.path, res.StatusCode, res.Body)
		}
	}
	var hashAfter string
	env.Store.DB().QueryRow(`SELECT password_hash FROM users WHERE id = ?`, alice.ID).Scan(&hashAfter)
	if !hasTOTP(t, env, alice) || hashAfter != hashBefore {
		t.Fatal("a refused change happened anyway")
	}
	if n, _ := env.Store.RecoveryCodesRemaining(context.Background(), alice.WorkspaceID, alice.ID); n != 10 || outboxCount(t, env.Store, mail.KindRecoveryRegen, "alice@acme.test") != 0 {
		t.Fatal("codes regenerated without step-up")
	}

	// API step-up: a new token; the old one is dead; the change works.
	res := c.API(http.MethodPost, "/t/acme/api/v1/step-up", api, map[string]string{"code": nextCode(t, env, secret)})
	newAPI, _ := res.JSON()["session_token"].(string)
	if res.StatusCode != http.StatusOK || newAPI == "" || newAPI == api || res.JSON()["aal"] != "aal2" {
		t.Fatalf("step-up = %d %s", res.StatusCode, res.Body)
	}
	if r := c.API(http.MethodGet, "/t/acme/api/v1/session", api, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old token after step-up = %d, want 401", r.StatusCode)
	}
	if r := c.API(http.MethodPost, "/t/acme/api/v1/mfa/recovery-codes", newAPI, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("regenerate after step-up = %d %s", r.StatusCode, r.Body)
	}
	if n := auditCount(t, env, alice, db.EventStepUp); n != 1 {
		t.Fatalf("%d step-up events", n)
	}

	// Page step-up with an old recovery code (regenerated: refused), then a code.
	if r := page.PostForm("/t/acme/account/verify", url.Values{"recovery_code": {codes[0]}, "next": {"/t/acme/account/mfa"}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("step-up with a voided recovery code = %d", r.StatusCode)
	}
	old := page.Cookie("gh_s_acme")
	r := page.PostForm("/t/acme/account/verify", url.Values{"code": {nextCode(t, env, secret)}, "next": {"/t/acme/account/mfa"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/t/acme/account/mfa" {
		t.Fatalf("page step-up = %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if page.Cookie("gh_s_acme") == old || page.Cookie("gh_s_acme") == "" {
		t.Fatal("the session token was not renewed at step-up")
	}
	stale := env.Client()
	stale.SetCookie("gh_s_acme", old)
	if signedIn(t, stale, "acme") {
		t.Fatal("the pre-step-up token still works")
	}
	if r := page.PostForm("/t/acme/account/mfa/recovery-codes", nil); r.StatusCode != http.StatusOK || r.Doc().Find("[data-testid=recovery-codes] li").Length() != 10 {
		t.Fatalf("regenerate after step-up = %d", r.StatusCode)
	}
	if r := page.PostForm("/t/acme/account/password", url.Values{"current_password": {pw}, "new_password": {"a brand new password"}, "confirm_password": {"a brand new password"}}); r.StatusCode != http.StatusSeeOther ||
		r.Header.Get("Location") != "/t/acme/account?notice=password_changed" {
		t.Fatalf("password change after step-up = %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := page.PostForm("/t/acme/account/mfa/totp/remove", url.Values{"remove_code": {nextCode(t, env, secret)}}); r.StatusCode != http.StatusSeeOther ||
		r.Header.Get("Location") != "/t/acme/account/mfa?notice=totp_removed" {
		t.Fatalf("remove after step-up = %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if hasTOTP(t, env, alice) {
		t.Fatal("factor not removed")
	}
	// The window is 10 minutes from the step-up, not from the sign-in.
	if !signedIn(t, page, "acme") {
		t.Fatal("signed out by the removal")
	}
}

// Adding, removing and regenerating email the member; every event is in
// the audit trail and on the portal's "Recent security activity".
func TestMFANoticesAndActivity(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, codes, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": wrongCode(t, env, secret)})
	res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "recovery_code": codes[0]})
	session := res.JSON()["session_token"].(string)
	c := env.Client()
	if r := c.API(http.MethodPost, "/t/acme/api/v1/mfa/recovery-codes", session, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("regenerate = %d", r.StatusCode)
	}
	if r := c.API(http.MethodDelete, "/t/acme/api/v1/mfa/totp", session, map[string]string{"code": nextCode(t, env, secret)}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("remove = %d %s", r.StatusCode, r.Body)
	}
	for _, kind := range []string{mail.KindTOTPEnabled, mail.KindRecoveryUsed, mail.KindRecoveryRegen, mail.KindTOTPRemoved} {
		if n := outboxCount(t, env.Store, kind, "alice@acme.test"); n != 1 {
			t.Errorf("%d %s emails to alice, want 1", n, kind)
		}
	}
	for _, ev := range []string{db.EventTOTPEnrollStarted, db.EventTOTPEnrolled, db.EventRecoveryCodesCreated, db.EventChallengeFailed,
		db.EventChallengePassed, db.EventRecoveryCodeUsed, db.EventRecoveryCodesRegenerate, db.EventTOTPRemoved} {
		if n := auditCount(t, env, alice, ev); n != 1 {
			t.Errorf("%d %s events, want 1", n, ev)
		}
	}
	page := env.Client()
	page.Login("acme", "alice@acme.test", pw) // MFA is off again
	activity := page.Get("/t/acme/account").Doc().Find("[data-testid=activity]").Text()
	for _, want := range []string{"Authenticator app added", "Wrong second-step code", "Recovery code used", "New recovery codes made", "Authenticator app removed", "Second step passed"} {
		if !strings.Contains(activity, want) {
			t.Errorf("recent security activity lacks %q:\n%s", want, activity)
		}
	}
	if strings.Contains(activity, "mfa.") {
		t.Errorf("raw event names on the page:\n%s", activity)
	}
}

// Rotation: a secret made under key A is re-encrypted under B; a server
// with the A+B keyring still signs in with codes and with recovery codes
// hashed under A.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, codes, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	keyA := bytes.Repeat([]byte{7}, 32) // apptest's master key
	keyB := bytes.Repeat([]byte{8}, 32)
	if keys.New(keyA).CurrentID() != env.Keys.CurrentID() {
		t.Fatal("test setup: apptest's key changed")
	}
	kr := keys.New(keyA, keyB)
	ctx := context.Background()
	n, err := app.ReencryptSecrets(ctx, env.Store, kr)
	if err != nil || n != 1 {
		t.Fatalf("ReencryptSecrets = %d, %v", n, err)
	}
	var keyID string
	var ct []byte
	var credID int64
	env.Store.DB().QueryRow(`SELECT id, key_id, secret FROM totp_credentials WHERE user_id = ?`, alice.ID).Scan(&credID, &keyID, &ct)
	onlyB := keys.New(keyB)
	if keyID != onlyB.CurrentID() {
		t.Fatalf("key id after rotation %q, want B's %q", keyID, onlyB.CurrentID())
	}
	pt, err := onlyB.Decrypt(keyID, ct, fmt.Appendf(nil, "totp:%d:%d", credID, alice.ID))
	if err != nil || string(pt) != secret {
		t.Fatalf("decrypt under B: %q %v", pt, err)
	}
	if _, err := keys.New(keyA).Decrypt(keyID, ct, fmt.Appendf(nil, "totp:%d:%d", credID, alice.ID)); err == nil {
		t.Fatal("key A alone still decrypts")
	}
	if n, err := app.ReencryptSecrets(ctx, env.Store, kr); err != nil || n != 0 {
		t.Fatalf("second rotation = %d, %v; want nothing to do", n, err)
	}

	// A server with the A+B keyring, on the same database.
	srv := httptest.NewServer(app.NewServer(env.Config, slog.New(slog.NewTextHandler(io.Discard, nil)), env.Store, kr))
	t.Cleanup(srv.Close)
	rotated := *env
	rotated.HTTP, rotated.Keys = srv, kr
	login := func(body map[string]string) *http.Response {
		c := rotated.Client()
		res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
		tok, _ := res.JSON()["mfa_token"].(string)
		if tok == "" {
			t.Fatalf("login on the rotated server = %d %s", res.StatusCode, res.Body)
		}
		body["mfa_token"] = tok
		return c.API(http.MethodPost, "/t/acme/api/v1/login/mfa", "", body).Response
	}
	if r := login(map[string]string{"code": nextCode(t, env, secret)}); r.StatusCode != http.StatusOK {
		t.Fatalf("code after rotation = %d", r.StatusCode)
	}
	if r := login(map[string]string{"recovery_code": codes[0]}); r.StatusCode != http.StatusOK {
		t.Fatalf("recovery code hashed under A, after rotation = %d", r.StatusCode)
	}
	// A server that lacks B cannot use the rotated secret.
	res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": nextCode(t, env, secret)})
	if res.StatusCode == http.StatusOK {
		t.Fatal("a server without key B accepted a code for a secret under B")
	}
}
