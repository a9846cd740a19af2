package db_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

func TestWebAuthnHandle(t *testing.T) {
	store, _ := dbtest.New(t)
	ctx := context.Background()
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	other, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	u, _ := store.CreateUser(ctx, ws.ID, "a@acme.test", db.RoleMember, "h", db.Meta{}, 0)
	h1, err := store.WebAuthnHandle(ctx, ws.ID, u.ID)
	if err != nil || len(h1) != 64 {
		t.Fatalf("handle = %x, %v", h1, err)
	}
	h2, _ := store.WebAuthnHandle(ctx, ws.ID, u.ID)
	if !bytes.Equal(h1, h2) {
		t.Fatal("the handle changed on second use")
	}
	if got, err := store.UserByWebAuthnHandle(ctx, ws.ID, h1); err != nil || got.ID != u.ID {
		t.Fatalf("by handle = %+v, %v", got, err)
	}
	if _, err := store.UserByWebAuthnHandle(ctx, other.ID, h1); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("handle in another workspace: %v, want ErrNotFound", err)
	}
	if _, err := store.WebAuthnHandle(ctx, other.ID, u.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("handle of another workspace's member: %v", err)
	}
}

func TestWebAuthnCredentialScoped(t *testing.T) {
	store, _ := dbtest.New(t)
	ctx := context.Background()
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	other, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	u, _ := store.CreateUser(ctx, ws.ID, "a@acme.test", db.RoleMember, "h", db.Meta{}, 0)
	v, _ := store.CreateUser(ctx, other.ID, "a@acme.test", db.RoleMember, "h", db.Meta{}, 0)
	c := db.WebAuthnCredential{WorkspaceID: ws.ID, UserID: u.ID, Name: "YubiKey", CredentialID: []byte("cred-1"), PublicKey: []byte("pk"), SignCount: 3, Transports: []string{"usb", "nfc"}}
	added, err := store.AddWebAuthnCredential(ctx, c, nil, db.Meta{}, db.OutboxMessage{})
	if err != nil || added.ID == 0 || len(added.Transports) != 2 || added.SignCount != 3 {
		t.Fatalf("add = %+v, %v", added, err)
	}
	if _, err := store.AddWebAuthnCredential(ctx, c, nil, db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("same credential id twice: %v", err)
	}
	// The same credential id in another workspace is another credential.
	c2 := c
	c2.WorkspaceID, c2.UserID = other.ID, v.ID
	if _, err := store.AddWebAuthnCredential(ctx, c2, nil, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	got, err := store.WebAuthnCredentialByCredentialID(ctx, ws.ID, []byte("cred-1"))
	if err != nil || got.UserID != u.ID {
		t.Fatalf("lookup = %+v, %v", got, err)
	}
	if err := store.RenameWebAuthnCredential(ctx, other.ID, v.ID, added.ID, "stolen", db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("rename across workspaces: %v", err)
	}
	if err := store.RenameWebAuthnCredential(ctx, ws.ID, u.ID, added.ID, "Desk key", db.Meta{}); err != nil {
		t.Fatal(err)
	}
	list, _ := store.WebAuthnCredentials(ctx, ws.ID, u.ID)
	if len(list) != 1 || list[0].Name != "Desk key" {
		t.Fatalf("list = %+v", list)
	}
}

// A ceremony works once, even with racing requests, and not after expiry,
// nor for another kind, member or workspace.
func TestCeremonySingleUse(t *testing.T) {
	store, clock := dbtest.New(t)
	ctx := context.Background()
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	other, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	u, _ := store.CreateUser(ctx, ws.ID, "a@acme.test", db.RoleMember, "h", db.Meta{}, 0)
	mk := func(id string) {
		if err := store.CreateCeremony(ctx, db.Ceremony{ID: id, WorkspaceID: ws.ID, UserID: u.ID, Kind: db.CeremonyRegister, SessionData: "{}", ExpiresAt: clock.Now().Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	mk("c1")
	if _, err := store.UseCeremony(ctx, other.ID, "c1", db.CeremonyRegister, 0); !errors.Is(err, db.ErrCeremonyGone) {
		t.Fatalf("other workspace: %v", err)
	}
	if _, err := store.UseCeremony(ctx, ws.ID, "c1", db.CeremonySecondFactor, 0); !errors.Is(err, db.ErrCeremonyGone) {
		t.Fatalf("other kind: %v", err)
	}
	if _, err := store.UseCeremony(ctx, ws.ID, "c1", db.CeremonyRegister, u.ID+1); !errors.Is(err, db.ErrCeremonyGone) {
		t.Fatalf("other member: %v", err)
	}
	var wg sync.WaitGroup
	wins := make(chan struct{}, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := store.UseCeremony(ctx, ws.ID, "c1", db.CeremonyRegister, u.ID); err == nil {
				wins <- struct{}{}
			}
		}()
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d racing uses won, want 1", len(wins))
	}
	mk("c2")
	clock.Advance(5 * time.Minute)
	if _, err := store.UseCeremony(ctx, ws.ID, "c2", db.CeremonyRegister, u.ID); !errors.Is(err, db.ErrCeremonyGone) {
		t.Fatalf("expired: %v", err)
	}
}
