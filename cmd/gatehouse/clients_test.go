package main

import (
	"context"
	"crypto/x509"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/db"
)

var (
	clientIDLine = regexp.MustCompile(`^client_id: (gh_[0-9a-f]{32})\n`)
	secretLine   = regexp.MustCompile(`\nclient_secret: ([A-Za-z0-9_-]{43})\n$`)
)

func (h *home) client(slug, clientID string) db.OAuthClient {
	h.t.Helper()
	ws, _ := h.workspace(slug)
	c, err := h.store().OAuthClientByClientID(context.Background(), ws.ID, clientID)
	if err != nil {
		h.t.Fatalf("client %s: %v", clientID, err)
	}
	return c
}

func countClients(t *testing.T, h *home) int {
	t.Helper()
	var n int
	if err := h.store().DB().QueryRow(`SELECT COUNT(*) FROM oauth_clients`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestClientCreate(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")

	r := h.run("", "client", "create", "--workspace", "acme", "--name", "Billing", "--type", "web",
		"--redirect-uri", "https://billing.example.com/cb", "--redirect-uri", "http://localhost:3000/cb", "--first-party",
		"--scope", "openid", "--scope", "offline_access")
	if r.code != 0 {
		t.Fatalf("client create web: exit %d: %s", r.code, r.stderr)
	}
	id, sec := clientIDLine.FindStringSubmatch(r.stdout), secretLine.FindStringSubmatch(r.stdout)
	if id == nil || sec == nil || strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("client create web printed %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "not shown again") {
		t.Errorf("no warning that the secret is shown once: %q", r.stderr)
	}
	c := h.client("acme", id[1])
	kr, err := keys.Load("", h.data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Billing" || c.Kind != "web" || !c.FirstParty || len(c.RedirectURIs) != 2 || !slices.Equal(c.Scopes, []string{"openid", "offline_access"}) {
		t.Errorf("stored %+v", c)
	}
	if strings.Contains(c.SecretHash, sec[1]) || !kr.VerifyHash("oauth_client_secret", sec[1], c.SecretHash) {
		t.Fatal("the stored hash does not verify the printed secret (or holds it)")
	}

	// Public clients: the client_id only; the default scopes.
	out := h.ok("", "client", "create", "--workspace", "acme", "--name", "Phone", "--type", "native", "--redirect-uri", "com.example.phone:/oauth")
	id = clientIDLine.FindStringSubmatch(out)
	if id == nil || strings.Contains(out, "secret") || strings.Count(out, "\n") != 1 {
		t.Fatalf("client create native printed %q", out)
	}
	if c := h.client("acme", id[1]); c.SecretHash != "" || !slices.Equal(c.Scopes, []string{"openid", "email", "profile"}) || c.FirstParty {
		t.Errorf("stored native %+v", c)
	}

	// A master-key rotation keeps the secret working (its hash stays
	// verifiable under the old key, which is kept).
	h.ok("", "keys", "rotate")
	kr2, _ := keys.Load("", h.data)
	if kr2.CurrentID() == kr.CurrentID() || !kr2.VerifyHash("oauth_client_secret", sec[1], h.client("acme", c.ClientID).SecretHash) {
		t.Error("after a master-key rotation the client secret no longer verifies")
	}

	// Refusals: one line naming the flag, nothing stored.
	before := countClients(t, h)
	base := []string{"client", "create", "--workspace", "acme", "--name", "X"}
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"--redirect-uri", []string{"--type", "web", "--redirect-uri", "https://x.example.com/cb#frag"}},
		{"--redirect-uri", []string{"--type", "web", "--redirect-uri", "https://*.example.com/cb"}},
		{"--redirect-uri", []string{"--type", "spa", "--redirect-uri", "http://x.example.com/cb"}},
		{"--redirect-uri", []string{"--type", "native", "--redirect-uri", "javascript:alert(1)"}},
		{"--redirect-uri needs at least one URI", []string{"--type", "web"}},
		{"--type is one of web, spa, native", []string{"--type", "daemon", "--redirect-uri", "https://x.example.com/cb"}},
		{"--scope must include openid", []string{"--type", "web", "--redirect-uri", "https://x.example.com/cb", "--scope", "email"}},
		{`--scope "admin" is not one of`, []string{"--type", "web", "--redirect-uri", "https://x.example.com/cb", "--scope", "openid", "--scope", "admin"}},
		{"--post-logout-redirect-uri", []string{"--type", "web", "--redirect-uri", "https://x.example.com/cb", "--post-logout-redirect-uri", "http://x.example.com/"}},
	} {
		h.fails(tc.want, "", append(append([]string{}, base...), tc.args...)...)
	}
	h.fails("--name is required", "", "client", "create", "--workspace", "acme", "--type", "web", "--redirect-uri", "https://x.example.com/cb")
	h.fails(`no workspace "nope"`, "", "client", "create", "--workspace", "nope", "--name", "X", "--type", "web", "--redirect-uri", "https://x.example.com/cb")
	if n := countClients(t, h); n != before {
		t.Fatalf("%d clients after refused commands, want %d", n, before)
	}
	if out := h.ok("", "help"); !strings.Contains(out, "gatehouse client create --workspace SLUG") || !strings.Contains(out, "keys rotate --signing") {
		t.Error("help does not list client create and keys rotate --signing")
	}
}

// signingKeys reads every signing key row.
func signingKeys(t *testing.T, h *home) []db.SigningKey {
	t.Helper()
	ks, err := h.store().AllSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestKeysRotateSigning(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("", "workspace", "create", "--slug", "globex", "--name", "Globex")
	acme, _ := h.workspace("acme")
	kr1, _ := keys.Load("", h.data)

	out := h.ok("", "keys", "rotate", "--signing")
	if !regexp.MustCompile(`^acme: new signing key \S+\nglobex: new signing key \S+\nrotated the signing keys of 2 workspaces\n$`).MatchString(out) {
		t.Fatalf("keys rotate --signing printed %q", out)
	}
	if ks := signingKeys(t, h); len(ks) != 2 || ks[0].Alg != "RS256" {
		t.Fatalf("signing keys after the first rotation: %d (%v)", len(ks), ks)
	}
	// The master key is untouched.
	if kr, _ := keys.Load("", h.data); len(kr.IDs()) != 1 || kr.CurrentID() != kr1.CurrentID() {
		t.Fatal("keys rotate --signing changed the master key")
	}

	out = h.ok("", "keys", "rotate", "--signing", "--workspace", "acme", "--alg", "ES256")
	if !strings.HasPrefix(out, "acme: new signing key ") || strings.Contains(out, "globex") {
		t.Fatalf("one workspace's rotation printed %q", out)
	}
	var acmeKeys []db.SigningKey
	for _, k := range signingKeys(t, h) {
		if k.WorkspaceID == acme.ID {
			acmeKeys = append(acmeKeys, k)
		}
	}
	if len(acmeKeys) != 2 || acmeKeys[0].RetiredAt.IsZero() || acmeKeys[0].PublishUntil.IsZero() ||
		acmeKeys[1].Alg != "ES256" || !acmeKeys[1].RetiredAt.IsZero() {
		t.Fatalf("acme's keys after an ES256 rotation: %+v", acmeKeys)
	}

	n := len(signingKeys(t, h))
	h.fails(`--alg "HS256" must be RS256 or ES256`, "", "keys", "rotate", "--signing", "--alg", "HS256")
	h.fails(`no workspace "nope"`, "", "keys", "rotate", "--signing", "--workspace", "nope")
	h.fails("--workspace and --alg go with --signing", "", "keys", "rotate", "--alg", "ES256")
	if len(signingKeys(t, h)) != n {
		t.Fatal("a refused rotation added keys")
	}
	if kr, _ := keys.Load("", h.data); len(kr.IDs()) != 1 {
		t.Fatal("a refused signing rotation rotated the master key")
	}
}

// The master-key rotation re-encrypts the signing keys' private halves,
// retired ones included, bound to their id and workspace.
func TestKeysRotateCoversSigningKeys(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("", "keys", "rotate", "--signing")
	h.ok("", "keys", "rotate", "--signing", "--alg", "ES256") // one retired, one current
	kr1, _ := keys.Load("", h.data)
	before := signingKeys(t, h)
	if len(before) != 2 || before[0].MasterKeyID != kr1.CurrentID() {
		t.Fatalf("signing keys before: %+v", before)
	}

	out := h.ok("", "keys", "rotate")
	if !regexp.MustCompile(`^current key [0-9a-f]{8}; re-encrypted 2 secrets; 2 keys kept\n$`).MatchString(out) {
		t.Fatalf("keys rotate printed %q", out)
	}
	kr2, _ := keys.Load("", h.data)
	for i, k := range signingKeys(t, h) {
		if k.ID != before[i].ID || k.MasterKeyID != kr2.CurrentID() || string(k.Private) == string(before[i].Private) ||
			string(k.PublicJWK) != string(before[i].PublicJWK) {
			t.Fatalf("key %s after rotation: master key %s (want %s)", k.ID, k.MasterKeyID, kr2.CurrentID())
		}
		der, err := kr2.Decrypt(k.MasterKeyID, k.Private, app.SigningKeyAAD(k))
		if err != nil {
			t.Fatalf("decrypt key %s: %v", k.ID, err)
		}
		if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
			t.Fatalf("key %s: %v", k.ID, err)
		}
		// Bound to its workspace: the same ciphertext under another
		// workspace's id does not open.
		other := k
		other.WorkspaceID++
		if _, err := kr2.Decrypt(k.MasterKeyID, k.Private, app.SigningKeyAAD(other)); err == nil {
			t.Fatal("a signing key opens with another workspace's associated data")
		}
	}
	// A second rotation moves them to the third key.
	if out := h.ok("", "keys", "rotate"); !strings.Contains(out, "re-encrypted 2 secrets; 3 keys kept") {
		t.Fatalf("second rotation: %q", out)
	}
}
