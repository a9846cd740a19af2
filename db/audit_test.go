package db_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

func TestAuditEventsFilter(t *testing.T) {
	store, clock := dbtest.New(t)
	ctx := context.Background()
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	other, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	add := func(wsID, actor, subject int64, event string, hours int) {
		t.Helper()
		clock.Set(start.Add(time.Duration(hours) * time.Hour))
		if err := store.Audit(ctx, db.AuditEvent{WorkspaceID: wsID, ActorUserID: actor, SubjectUserID: subject, Event: event}); err != nil {
			t.Fatal(err)
		}
	}
	add(ws.ID, 7, 7, "mfa.totp.enrolled", 0)
	add(ws.ID, 8, 7, "mfa_other.x", 1) // not under "mfa."
	add(ws.ID, 0, 9, "mfax.y", 2)      // nor this
	add(ws.ID, 9, 0, "mfa.step_up", 3)
	add(other.ID, 7, 7, "mfa.totp.enrolled", 4)
	list := func(f db.AuditFilter) string {
		t.Helper()
		f.Limit = 100
		evs, err := store.AuditEvents(ctx, ws.ID, f)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ev := range evs {
			if ev.WorkspaceID != ws.ID {
				t.Fatalf("AuditEvents(%+v) returned another workspace's %+v", f, ev)
			}
			names = append(names, ev.Event)
		}
		return strings.Join(names, ",")
	}
	for _, tc := range []struct {
		f    db.AuditFilter
		want string
	}{
		{db.AuditFilter{Event: "mfa."}, "mfa.step_up,mfa.totp.enrolled"},
		{db.AuditFilter{Event: "mfa"}, ""},
		{db.AuditFilter{Event: "mfa.step_up"}, "mfa.step_up"},
		{db.AuditFilter{MemberID: 9}, "mfa.step_up,mfax.y"}, // actor or subject
		{db.AuditFilter{SubjectUserID: 7}, "mfa_other.x,mfa.totp.enrolled"},
		{db.AuditFilter{Since: start.Add(time.Hour), Until: start.Add(3 * time.Hour)}, "mfax.y,mfa_other.x"},
	} {
		if got := list(tc.f); got != tc.want {
			t.Errorf("AuditEvents(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
	if _, err := store.AuditEvents(ctx, ws.ID, db.AuditFilter{Limit: db.MaxAuditPage + 1}); err == nil {
		t.Error("AuditEvents accepted a limit above MaxAuditPage")
	}
	// Pages by id with the member filter.
	evs, err := store.AuditEvents(ctx, ws.ID, db.AuditFilter{MemberID: 7, Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].Event != "mfa_other.x" {
		t.Fatalf("first page = %+v, %v", evs, err)
	}
	evs, err = store.AuditEvents(ctx, ws.ID, db.AuditFilter{MemberID: 7, Limit: 1, Before: evs[0].ID})
	if err != nil || len(evs) != 1 || evs[0].Event != "mfa.totp.enrolled" {
		t.Fatalf("second page = %+v, %v", evs, err)
	}
}
