package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

func importRows(n int, prefix string) []db.ImportMember {
	out := make([]db.ImportMember, n)
	for i := range out {
		out[i] = db.ImportMember{Email: fmt.Sprintf("%s%d@acme.test", prefix, i), Role: db.RoleMember, Name: fmt.Sprintf("Member %d", i)}
		if i%2 == 0 {
			out[i].PasswordHash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
		}
	}
	return out
}

func TestImportMembers(t *testing.T) {
	store, _ := dbtest.New(t)
	ctx := context.Background()
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	other, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	// The same address in another workspace is another person: no conflict.
	if _, err := store.CreateUser(ctx, other.ID, "m5@acme.test", db.RoleOwner, "", db.Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	existing, err := store.CreateUser(ctx, ws.ID, "M7@Acme.test", db.RoleAdmin, "$argon2id$old", db.Meta{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows := importRows(db.ImportBatch+500, "m")
	var calls []int
	res, err := store.ImportMembers(ctx, ws.ID, existing.ID, rows, db.Meta{IP: "cli"}, func(done int) { calls = append(calls, done) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != len(rows)-1 || res.Existing != 1 || res.WithoutPassword != len(rows)/2-1 ||
		len(res.ExistingEmails) != 1 || res.ExistingEmails[0] != "m7@acme.test" {
		t.Errorf("ImportMembers = %+v, want %d imported, m7 existing, %d without password", res, len(rows)-1, len(rows)/2-1)
	}
	if fmt.Sprint(calls) != fmt.Sprint([]int{db.ImportBatch, len(rows)}) {
		t.Errorf("progress calls = %v", calls)
	}
	// The existing member is left as they were.
	u, err := store.UserByEmail(ctx, ws.ID, "m7@acme.test")
	if err != nil || u.Role != db.RoleAdmin || u.PasswordHash != "$argon2id$old" {
		t.Errorf("existing member = %+v, %v; want unchanged", u, err)
	}
	u, err = store.UserByEmail(ctx, ws.ID, "m0@acme.test")
	if err != nil || u.Role != db.RoleMember || u.PasswordHash != rows[0].PasswordHash {
		t.Errorf("imported member = %+v, %v", u, err)
	}
	if n, _ := store.CountMembers(ctx, ws.ID); n != len(rows) {
		t.Errorf("members = %d, want %d", n, len(rows))
	}
	if n, _ := store.CountMembers(ctx, other.ID); n != 1 {
		t.Errorf("other workspace members = %d, want 1", n)
	}
	evs, err := store.AuditEvents(ctx, ws.ID, db.AuditFilter{Event: db.EventMembersImported, Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].Details["imported"] != float64(len(rows)-1) || evs[0].Details["existing"] != float64(1) || evs[0].ActorUserID != existing.ID {
		t.Errorf("import audit = %+v, %v", evs, err)
	}
	created, err := store.AuditEvents(ctx, ws.ID, db.AuditFilter{SubjectUserID: u.ID, Event: db.EventMemberCreated, Limit: 10})
	if err != nil || len(created) != 1 || created[0].Details["role"] != db.RoleMember || created[0].IP != "cli" {
		t.Errorf("member.created of an imported member = %+v, %v", created, err)
	}

	// Again: nothing changes, everyone is reported as existing.
	res, err = store.ImportMembers(ctx, ws.ID, 0, rows, db.Meta{}, nil)
	if err != nil || res.Imported != 0 || res.Existing != len(rows) || res.WithoutPassword != 0 {
		t.Errorf("second ImportMembers = %+v, %v; want all existing", res.Imported, err)
	}
	if n, _ := store.CountMembers(ctx, ws.ID); n != len(rows) {
		t.Errorf("members after re-run = %d, want %d", n, len(rows))
	}
}

func TestImportMembersDeadline(t *testing.T) {
	store, clock := dbtest.New(t)
	ctx := context.Background()
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	if _, _, err := store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: policy(db.PolicyRequiredForAdmins, 7)}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	rows := []db.ImportMember{{Email: "a@acme.test", Role: db.RoleAdmin}, {Email: "m@acme.test", Role: db.RoleMember}}
	if _, err := store.ImportMembers(ctx, ws.ID, 0, rows, db.Meta{}, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := store.UserByEmail(ctx, ws.ID, "a@acme.test")
	m, _ := store.UserByEmail(ctx, ws.ID, "m@acme.test")
	if !a.MFADeadline.Equal(clock.Now().Truncate(1e9)) || !m.MFADeadline.IsZero() {
		t.Errorf("deadlines: admin %v, member %v; want now and none", a.MFADeadline, m.MFADeadline)
	}
}

// BenchmarkImportMembers100k measures the store's half of a 100,000-member
// import (the target is under 30 s on 2 cores, parsing included).
func BenchmarkImportMembers100k(b *testing.B) {
	ctx := context.Background()
	rows := importRows(100_000, "b")
	for b.Loop() {
		b.StopTimer()
		store, _ := dbtest.New(b)
		ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
		b.StartTimer()
		if _, err := store.ImportMembers(ctx, ws.ID, 0, rows, db.Meta{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
