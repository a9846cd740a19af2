package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// TestRestoreBackupTakenUnderLoad: a backup taken while members sign in
// is restored as docs/OPERATIONS.md says (the copy in place, the same
// master key) and a member signs in there with a code from the
// authenticator app enrolled before it.
func TestRestoreBackupTakenUnderLoad(t *testing.T) {
	env, acme, _ := setup(t)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	for i := range 5 {
		env.User(acme, "load"+string(rune('a'+i))+"@acme.test", db.RoleMember, pw)
	}
	ctx := context.Background()
	var stop atomic.Bool
	var signIns atomic.Int64
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			c := env.Client()
			for !stop.Load() {
				res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "load" + string(rune('a'+i)) + "@acme.test", "password": pw})
				if res.StatusCode == http.StatusOK {
					signIns.Add(1)
				}
			}
		})
	}
	for signIns.Load() < 5 {
		time.Sleep(10 * time.Millisecond) // the load is running
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	err := env.Store.Backup(ctx, path)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup under load: %v", err)
	}

	// The restored copy, served with the same master key.
	store := dbtest.Restore(t, path)
	clock := dbtest.NewClock(env.Clock.Now())
	store.Now = clock.Now
	hs := httptest.NewUnstartedServer(nil)
	base, _ := app.ParseBaseURL("http://" + hs.Listener.Addr().String())
	cfg := app.Config{Addr: hs.Listener.Addr().String(), DataDir: t.TempDir(), BaseURL: base, Dev: true, PasswordHash: apptest.FastHash}
	hs.Config.Handler = app.NewServer(cfg, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), store, env.Keys)
	hs.Start()
	t.Cleanup(hs.Close)
	restored := &apptest.Env{T: t, Store: store, Clock: clock, Keys: env.Keys, Config: cfg, HTTP: hs}
	tok := mfaToken(t, restored, "acme", "alice@acme.test", pw)
	clock.Advance(30 * time.Second)
	code := totpAt(t, secret, mfa.Step(clock.Now()))
	res := restored.Client().API(http.MethodPost, "/t/acme/api/v1/login/mfa", "", map[string]string{"mfa_token": tok, "code": code})
	if res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" {
		t.Fatalf("TOTP sign-in on the restored copy = %d %s", res.StatusCode, res.Body)
	}
}
