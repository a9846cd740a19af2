package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestPasswordChange(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c, other := env.Client(), env.Client()
	c.Login("acme", "alice@acme.test", pw)
	other.Login("acme", "alice@acme.test", pw)
	before := c.Cookie("gh_s_acme")

	for name, f := range map[string]url.Values{
		"WrongCurrent": {"current_password": {"not my password"}, "new_password": {"a new passphrase"}, "confirm_password": {"a new passphrase"}},
		"Mismatch":     {"current_password": {pw}, "new_password": {"a new passphrase"}, "confirm_password": {"another passphrase"}},
		"TooShort":     {"current_password": {pw}, "new_password": {"short"}, "confirm_password": {"short"}},
		"TooLong":      {"current_password": {pw}, "new_password": {strings.Repeat("x", 257)}, "confirm_password": {strings.Repeat("x", 257)}},
		"Empty":        {},
	} {
		res := c.PostForm("/t/acme/account/password", f)
		if res.StatusCode != http.StatusUnprocessableEntity || res.Doc().Find(".field-error").Length() == 0 {
			t.Errorf("%s: %d, want 422 with a field error", name, res.StatusCode)
		}
		if res.Doc().Find(`input[type=password][value!=""]`).Length() != 0 {
			t.Errorf("%s: a password field was refilled", name)
		}
	}
	if !signedIn(t, other, "acme") {
		t.Fatal("a refused change ended another session")
	}
	if n := countRows(t, env, "outbox"); n != 0 {
		t.Fatalf("refused changes queued %d emails", n)
	}

	res := c.PostForm("/t/acme/account/password", url.Values{"current_password": {pw}, "new_password": {"a new passphrase"}, "confirm_password": {"a new passphrase"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("change = %d: %s", res.StatusCode, res.Body)
	}
	after := c.Cookie("gh_s_acme")
	if after == before || after == "" {
		t.Fatal("the session token was not renewed")
	}
	if !signedIn(t, c, "acme") {
		t.Fatal("changing the password signed out the session that did it")
	}
	if signedIn(t, other, "acme") {
		t.Fatal("another session survived a password change")
	}
	old := env.Client()
	old.SetCookie("gh_s_acme", before)
	if signedIn(t, old, "acme") {
		t.Fatal("the pre-change token still works")
	}
	if res := env.Client().PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {pw}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("old password = %d, want 422", res.StatusCode)
	}
	env.Client().Login("acme", "alice@acme.test", "a new passphrase")
	// The other workspace's alice keeps her own password.
	env.Client().Login("globex", "alice@acme.test", "globex password 1")
	var kind, to string
	env.Store.DB().QueryRow(`SELECT kind, to_addr FROM outbox`).Scan(&kind, &to)
	if kind != "password_changed" || to != "alice@acme.test" {
		t.Fatalf("outbox = %q to %q, want one password_changed notice", kind, to)
	}
}

// Guessing the current password through the change form is throttled like
// sign-in.
func TestPasswordChangeThrottled(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	var last int
	for range 11 {
		last = c.PostForm("/t/acme/account/password", url.Values{"current_password": {"guess guess"}, "new_password": {"a new passphrase"}, "confirm_password": {"a new passphrase"}}).StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("11th wrong current password = %d, want 429", last)
	}
}
