package app_test

// Recovery codes, and malformed input on every second-factor endpoint.

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

var recoveryCodeFormat = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$`)

func TestRecoveryCodes(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	env.User(acme, "bob@acme.test", db.RoleMember, "bob's password 1")
	secret, codes, tok := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	seen := map[string]bool{}
	for _, c := range codes {
		if !recoveryCodeFormat.MatchString(c) || seen[c] {
			t.Fatalf("codes %v: want 10 unique xxxx-xxxx-xxxx-xxxx", codes)
		}
		seen[c] = true
	}
	hashes := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND code_hash LIKE ? AND used_at IS NULL`, alice.ID, env.Keys.CurrentID()+":%")
	if hashes != 10 {
		t.Fatalf("%d keyed hashes stored, want 10", hashes)
	}
	use := func(code string) *http.Response {
		res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "recovery_code": code})
		return res.Response
	}

	t.Run("AnyCaseAndDashes", func(t *testing.T) {
		for i, in := range []string{
			strings.ToUpper(codes[0]),
			strings.ReplaceAll(codes[1], "-", ""),
			strings.ToUpper(strings.ReplaceAll(codes[2], "-", "")),
			" " + strings.ReplaceAll(codes[3], "-", " ") + " ",
		} {
			res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "recovery_code": in})
			amr, _ := res.JSON()["amr"].([]any)
			if res.StatusCode != http.StatusOK || res.JSON()["remaining_recovery_codes"] != float64(9-i) || len(amr) != 2 || amr[1].(map[string]any)["method"] != "recovery_code" {
				t.Fatalf("recovery code %q = %d %s", in, res.StatusCode, res.Body)
			}
		}
		if n := outboxCount(t, env.Store, mail.KindRecoveryUsed, "alice@acme.test"); n != 4 {
			t.Fatalf("%d recovery_code_used emails, want 4", n)
		}
		if n := auditCount(t, env, alice, db.EventRecoveryCodeUsed); n != 4 {
			t.Fatalf("%d mfa.recovery_code.used events, want 4", n)
		}
		res := env.Client().API(http.MethodGet, "/t/acme/api/v1/mfa", tok, nil)
		if res.StatusCode != http.StatusOK || res.JSON()["recovery_codes_remaining"] != float64(6) {
			t.Fatalf("GET /mfa = %d %s", res.StatusCode, res.Body)
		}
	})

	t.Run("UsedCodeRefused", func(t *testing.T) {
		for _, in := range []string{codes[0], strings.ToUpper(codes[1])} {
			res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "recovery_code": in})
			if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_code" {
				t.Fatalf("used code = %d %s", res.StatusCode, res.Body)
			}
		}
	})

	t.Run("WarningAtThreeLeft", func(t *testing.T) {
		page := pendingPage(t, env, "acme", "alice@acme.test", pw)
		res := page.PostForm("/t/acme/login/mfa", map[string][]string{"recovery_code": {codes[4]}, "method": {"recovery"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/mfa?notice=recovery_used&left=5" {
			t.Fatalf("recovery code on the page = %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		doc := page.Get(res.Header.Get("Location")).Doc()
		if doc.Find("[data-testid=recovery-warning]").Length() != 0 || strings.TrimSpace(doc.Find("[data-testid=recovery-remaining]").Text()) != "5" {
			t.Fatal("warning shown with 5 left, or the count is wrong")
		}
		if !strings.Contains(doc.Text(), "5 left") {
			t.Error("the page does not say how many codes are left")
		}
		if use(codes[5]).StatusCode != http.StatusOK {
			t.Fatal("code 5")
		}
		if d := page.Get("/t/acme/account/mfa").Doc(); d.Find("[data-testid=recovery-warning]").Length() != 0 {
			t.Fatal("warning shown with 4 left")
		}
		if use(codes[6]).StatusCode != http.StatusOK {
			t.Fatal("code 6")
		}
		d := page.Get("/t/acme/account/mfa").Doc()
		if w := d.Find("[data-testid=recovery-warning]").Text(); !strings.Contains(w, "3") {
			t.Fatalf("no warning with 3 left (%q)", w)
		}
	})

	t.Run("ScopedToMember", func(t *testing.T) {
		_, bobCodes, _ := enrollAPI(t, env, "acme", "bob@acme.test", "bob's password 1")
		globex := mustWorkspace(t, env, "globex")
		_, globexCodes, _ := enrollAPI(t, env, "globex", "alice@acme.test", "globex password 1")
		before := mfaGuard(t, env, alice).Consecutive
		for _, foreign := range []string{bobCodes[0], globexCodes[0]} {
			if st := use(foreign).StatusCode; st != http.StatusUnauthorized {
				t.Fatalf("another member's code for alice = %d", st)
			}
		}
		if got := mfaGuard(t, env, alice).Consecutive; got != before+2 {
			t.Fatalf("foreign codes were not counted as wrong: %d -> %d", before, got)
		}
		// Still unused by their owners.
		bob, _ := env.Store.UserByEmail(context.Background(), acme.ID, "bob@acme.test")
		galice, _ := env.Store.UserByEmail(context.Background(), globex.ID, "alice@acme.test")
		for _, u := range []db.User{bob, galice} {
			if n, _ := env.Store.RecoveryCodesRemaining(context.Background(), u.WorkspaceID, u.ID); n != 10 {
				t.Fatalf("member %d has %d codes left after alice tried them", u.ID, n)
			}
		}
		// Alice's acme code is nothing in globex either.
		res := loginMFA(env, "globex", map[string]string{"mfa_token": mfaToken(t, env, "globex", "alice@acme.test", "globex password 1"), "recovery_code": codes[9]})
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("acme code in globex = %d", res.StatusCode)
		}
	})

	t.Run("RegenerateVoidsOld", func(t *testing.T) {
		// A fresh aal2 session (the enrollment's may be stale by now).
		res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": nextCode(t, env, secret)})
		fresh := res.JSON()["session_token"].(string)
		res = env.Client().API(http.MethodPost, "/t/acme/api/v1/mfa/recovery-codes", fresh, nil)
		var fresh10 []string
		for _, c := range res.JSON()["recovery_codes"].([]any) {
			fresh10 = append(fresh10, c.(string))
		}
		if res.StatusCode != http.StatusOK || len(fresh10) != 10 {
			t.Fatalf("regenerate = %d %s", res.StatusCode, res.Body)
		}
		if n := outboxCount(t, env.Store, mail.KindRecoveryRegen, "alice@acme.test"); n != 1 {
			t.Fatalf("%d regenerate emails", n)
		}
		if st := use(codes[9]).StatusCode; st != http.StatusUnauthorized {
			t.Fatalf("old unused code after regenerating = %d", st)
		}
		res = loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "recovery_code": fresh10[0]})
		if res.StatusCode != http.StatusOK || res.JSON()["remaining_recovery_codes"] != float64(9) {
			t.Fatalf("new code = %d %s", res.StatusCode, res.Body)
		}
	})
}

// Recovery codes exist only while MFA is on.
func TestRecoveryCodesNeedMFA(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/recovery-codes", tok, nil)
	if res.StatusCode != http.StatusConflict || res.Body == nil || res.JSON()["recovery_codes"] != nil {
		t.Fatalf("recovery codes before MFA (API) = %d %s, want 409", res.StatusCode, res.Body)
	}
	page := env.Client()
	page.Login("acme", "alice@acme.test", pw)
	if res := page.PostForm("/t/acme/account/mfa/recovery-codes", nil); res.StatusCode != http.StatusConflict {
		t.Fatalf("recovery codes before MFA (page) = %d", res.StatusCode)
	}
	// An abandoned setup is not MFA either.
	c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil)
	if res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/recovery-codes", tok, nil); res.StatusCode != http.StatusConflict {
		t.Fatalf("recovery codes with an unconfirmed setup = %d", res.StatusCode)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?`, alice.ID); n != 0 {
		t.Fatalf("%d recovery codes stored without MFA", n)
	}
	var secret string
	var codes []string
	// Removing the factor removes the codes.
	secret, codes, tok = enrollAPI(t, env, "acme", "alice@acme.test", pw)
	if res := c.API(http.MethodDelete, "/t/acme/api/v1/mfa/totp", tok, map[string]string{"code": nowCode(t, env, secret)}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("remove = %d %s", res.StatusCode, res.Body)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?`, alice.ID); n != 0 {
		t.Fatalf("%d recovery codes left after removing the only factor", n)
	}
	if res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw}); res.JSON()["mfa_required"] != false {
		t.Fatalf("MFA still required after removal: %s", res.Body)
	}
	// Nor do the old codes work for anything.
	res = c.API(http.MethodPost, "/t/acme/api/v1/step-up", tok, map[string]string{"recovery_code": codes[0]})
	if res.StatusCode == http.StatusOK {
		t.Fatal("a recovery code worked after the factor was removed")
	}
}

// 20 concurrent redemptions of one recovery code through the API, each
// with its own mfa_token: exactly one 200.
func TestRecoveryCodeConcurrent(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	_, codes, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	const n = 20
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = mfaToken(t, env, "acme", "alice@acme.test", pw)
	}
	before := aal2Sessions(t, env, alice)
	c := env.Client()
	statuses := race(n, func(i int) (*http.Request, *http.Client) {
		req, _ := http.NewRequest(http.MethodPost, c.URL("/t/acme/api/v1/login/mfa"), strings.NewReader(jsonBody(map[string]string{"mfa_token": tokens[i], "recovery_code": codes[0]})))
		req.Header.Set("Content-Type", "application/json")
		return req, c.Client
	})
	wins := 0
	for _, st := range statuses {
		switch st {
		case http.StatusOK:
			wins++
		case http.StatusUnauthorized, http.StatusTooManyRequests:
		default:
			t.Errorf("status %d, want 200, 401 or 429", st)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent redemptions of one code won (%v), want exactly 1", wins, n, statuses)
	}
	if got := aal2Sessions(t, env, alice) - before; got != 1 {
		t.Fatalf("%d new aal2 sessions, want 1", got)
	}
	if n, _ := env.Store.RecoveryCodesRemaining(context.Background(), alice.WorkspaceID, alice.ID); n != 9 {
		t.Fatalf("%d codes left, want 9", n)
	}
	if n := outboxCount(t, env.Store, mail.KindRecoveryUsed, "alice@acme.test"); n != 1 {
		t.Fatalf("%d recovery_code_used emails, want 1", n)
	}
}

// Malformed input on the second-factor endpoints: 400 or 401, never 500,
// never accepted, never counted as a failure, and the state it was aimed
// at still works afterwards.
func TestMFAMalformedInput(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	env.User(acme, "carol@acme.test", db.RoleMember, "carol's password")
	secret, codes, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	big := strings.Repeat("9", 10<<10)
	junkValues := []string{"", " ", big, "١٢٣٤٥٦", "１２３４５６", "12345６", "💥💥💥💥💥💥", "' OR 1=1 --", "123456'; DROP TABLE totp_credentials; --",
		"%00", "12\x0034", "null", strings.ToUpper(codes[0]) + "-0000", "<script>alert(1)</script>"}
	bodies := func(extra map[string]any) []string {
		var out []string
		with := func(m map[string]any) map[string]any {
			for k, v := range extra {
				m[k] = v
			}
			return m
		}
		for _, v := range junkValues {
			out = append(out, jsonBody(with(map[string]any{"code": v})), jsonBody(with(map[string]any{"recovery_code": v})))
		}
		out = append(out,
			"", "{}", "null", "[]", `"123456"`, "not json", "{", big,
			jsonBody([]any{with(map[string]any{"code": nowCode(t, env, secret)})}),
			jsonBody(with(map[string]any{"code": []string{"123456"}})),
			jsonBody(with(map[string]any{"code": 123456})),
			jsonBody(with(map[string]any{"code": map[string]any{"$ne": ""}})),
			jsonBody(with(map[string]any{"recovery_code": []string{codes[1]}})),
			jsonBody(with(map[string]any{"code": nil, "recovery_code": nil})),
			jsonBody(with(map[string]any{}))+`{"code":"123456"}`,
		)
		return out
	}
	check := func(t *testing.T, name string, res *http.Response, body []byte) {
		t.Helper()
		if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("%s = %d %.200s, want 400/401", name, res.StatusCode, body)
		}
	}
	send := func(method, path, token, body string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, env.HTTP.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		r := env.Client().Do(req)
		return r.Response, r.Body
	}
	notCounted := func(t *testing.T) {
		t.Helper()
		if g := mfaGuard(t, env, alice); g.Consecutive != 0 || g.WindowFailures != 0 {
			t.Fatalf("malformed input was counted as a failure: %+v", g)
		}
	}

	t.Run("LoginMFA", func(t *testing.T) {
		mtok := mfaToken(t, env, "acme", "alice@acme.test", pw)
		for _, b := range bodies(map[string]any{"mfa_token": mtok}) {
			res, body := send(http.MethodPost, "/t/acme/api/v1/login/mfa", "", b)
			check(t, "login/mfa "+truncate(b), res, body)
		}
		notCounted(t)
		if n := queryInt(t, env, `SELECT COALESCE(MAX(failures), 0) FROM mfa_challenges WHERE user_id = ?`, alice.ID); n != 0 {
			t.Fatalf("challenge failures = %d after malformed input", n)
		}
		// The page challenge too.
		page := pendingPage(t, env, "acme", "alice@acme.test", pw)
		for _, v := range junkValues {
			for _, field := range []string{"code", "recovery_code"} {
				res := page.PostForm("/t/acme/login/mfa", map[string][]string{field: {v}})
				if res.StatusCode != http.StatusUnprocessableEntity {
					t.Errorf("page %s=%.20q = %d, want 422", field, v, res.StatusCode)
				}
			}
		}
		notCounted(t)
		// Still open and still good.
		if res := loginMFA(env, "acme", map[string]string{"mfa_token": mtok, "code": nextCode(t, env, secret)}); res.StatusCode != http.StatusOK {
			t.Fatalf("right code after the junk = %d %s", res.StatusCode, res.Body)
		}
		if res := challengeWith(env, page, "acme", nextCode(t, env, secret)); !passed(res, "acme") {
			t.Fatalf("page: right code after the junk = %d", res.StatusCode)
		}
	})

	t.Run("StepUpAndDelete", func(t *testing.T) {
		session := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": nextCode(t, env, secret)}).JSON()["session_token"].(string)
		for _, b := range bodies(nil) {
			res, body := send(http.MethodPost, "/t/acme/api/v1/step-up", session, b)
			check(t, "step-up "+truncate(b), res, body)
			res, body = send(http.MethodDelete, "/t/acme/api/v1/mfa/totp", session, b)
			check(t, "DELETE /mfa/totp "+truncate(b), res, body)
		}
		notCounted(t)
		if !hasTOTP(t, env, alice) {
			t.Fatal("malformed input removed the factor")
		}
		if n, _ := env.Store.RecoveryCodesRemaining(context.Background(), alice.WorkspaceID, alice.ID); n != 10 {
			t.Fatalf("malformed input spent recovery codes: %d left", n)
		}
		// The session survived and still works.
		if res := env.Client().API(http.MethodGet, "/t/acme/api/v1/session", session, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("session after junk = %d", res.StatusCode)
		}
	})

	t.Run("VerifySetup", func(t *testing.T) {
		c := env.Client()
		btok := c.APILogin("acme", "carol@acme.test", "carol's password")
		if res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", btok, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("setup = %d", res.StatusCode)
		}
		for _, b := range bodies(nil) {
			res, body := send(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", btok, b)
			check(t, "verify-setup "+truncate(b), res, body)
		}
		if n := queryInt(t, env, `SELECT COUNT(*) FROM totp_credentials t JOIN users u ON u.id = t.user_id WHERE u.email = 'carol@acme.test' AND t.confirmed_at IS NOT NULL`); n != 0 {
			t.Fatal("junk confirmed an enrollment")
		}
		if res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "carol@acme.test", "password": "carol's password"}); res.JSON()["mfa_required"] != false {
			t.Fatal("junk turned MFA on")
		}
	})
	if strings.Contains(env.Logs(), `"level":"ERROR"`) {
		t.Fatalf("errors logged:\n%s", grepLines(env.Logs(), `"level":"ERROR"`))
	}
}

// hasTOTP reports whether the member has a confirmed authenticator app.
func hasTOTP(t testing.TB, env *apptest.Env, u db.User) bool {
	return queryInt(t, env, `SELECT COUNT(*) FROM totp_credentials WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL`, u.WorkspaceID, u.ID) > 0
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
