package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// TestMemberName: an imported name is read back wherever users are read
// (by id, by email, in both lists), a member without one reads "", and
// the members search finds part of a name in any case, alone or with a
// status, on the engine under test.
func TestMemberName(t *testing.T) {
	store, clock := dbtest.New(t)
	ctx := context.Background()
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	other, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	rows := []db.ImportMember{
		{Email: "ada@acme.test", Role: db.RoleMember, Name: "  Ada Lovelace  "},
		{Email: "zoe@acme.test", Role: db.RoleMember, Name: "ÉMILE Zola"},
		{Email: "grace@acme.test", Role: db.RoleAdmin},
		{Email: "pct@acme.test", Role: db.RoleMember, Name: "100% _real_"},
	}
	if _, err := store.ImportMembers(ctx, ws.ID, 0, rows, db.Meta{}, nil); err != nil {
		t.Fatal(err)
	}
	// Another workspace's Lovelace is never found from acme.
	if _, err := store.ImportMembers(ctx, other.ID, 0, []db.ImportMember{{Email: "ada2@globex.test", Role: db.RoleMember, Name: "Ada Lovelace"}}, db.Meta{}, nil); err != nil {
		t.Fatal(err)
	}
	created, err := store.CreateUser(ctx, ws.ID, "plain@acme.test", db.RoleMember, "", db.Meta{}, 0)
	if err != nil || created.Name != "" {
		t.Fatalf("CreateUser = %+v, %v; want no name", created, err)
	}
	ada, err := store.UserByEmail(ctx, ws.ID, "ada@acme.test")
	if err != nil || ada.Name != "Ada Lovelace" {
		t.Fatalf("UserByEmail(ada) = %+v, %v; want name %q", ada, err, "Ada Lovelace")
	}
	if u, err := store.UserByID(ctx, ws.ID, ada.ID); err != nil || u.Name != "Ada Lovelace" {
		t.Errorf("UserByID(ada) = %+v, %v", u, err)
	}
	if u, err := store.UserByEmail(ctx, ws.ID, "grace@acme.test"); err != nil || u.Name != "" {
		t.Errorf("UserByEmail(grace) = %+v, %v; want no name", u, err)
	}
	// A NULL name (a row written behind the store's back) reads as "".
	if _, err := store.DB().ExecContext(ctx, `UPDATE users SET name = NULL WHERE id = ?`, created.ID); err == nil {
		if u, err := store.UserByID(ctx, ws.ID, created.ID); err != nil || u.Name != "" {
			t.Errorf("UserByID(NULL name) = %+v, %v; want name \"\"", u, err)
		}
	} // else the column refuses NULL: nothing to read.

	p := db.DefaultPolicy()
	emails := func(f db.MemberMFAFilter) []string {
		t.Helper()
		f.Policy, f.Now = p, clock.Now()
		ms, err := store.MembersMFA(ctx, ws.ID, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Email+"|"+m.Name)
		}
		return out
	}
	for _, c := range []struct {
		q, status string
		want      []string
	}{
		{"lovelace", "", []string{"ada@acme.test|Ada Lovelace"}},
		{"ADA LOVE", "", []string{"ada@acme.test|Ada Lovelace"}},
		{"ada", "", []string{"ada@acme.test|Ada Lovelace"}},                // the email and the name: once
		{"émile", "", []string{"zoe@acme.test|ÉMILE Zola"}},                // case-insensitive beyond ASCII
		{"Émile zo", db.StatusNoMFA, []string{"zoe@acme.test|ÉMILE Zola"}}, // with a status
		{"lovelace", db.StatusEnrolled, nil},
		{"% _", "", []string{"pct@acme.test|100% _real_"}}, // LIKE's wildcards are literal
		{"%", "", []string{"pct@acme.test|100% _real_"}},
		{"a_a", "", nil},
		{"grace", "", []string{"grace@acme.test|"}},
		{"nobody", "", nil},
	} {
		if got := emails(db.MemberMFAFilter{Query: c.q, Status: c.status}); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("MembersMFA(q=%q, status=%q) = %q, want %q", c.q, c.status, got, c.want)
		}
	}
	// Paging through a search: the cursor is the last email key.
	if got := emails(db.MemberMFAFilter{Query: "acme", Limit: 2}); len(got) != 2 || got[0] != "ada@acme.test|Ada Lovelace" {
		t.Errorf("first page = %q", got)
	}
	if got := emails(db.MemberMFAFilter{Query: "acme", After: "pct@acme.test"}); fmt.Sprint(got) != fmt.Sprint([]string{"plain@acme.test|", "zoe@acme.test|ÉMILE Zola"}) {
		t.Errorf("page after pct = %q", got)
	}
	us, err := store.ListMembers(ctx, ws.ID, db.MemberFilter{Query: "LOVELACE"})
	if err != nil || len(us) != 1 || us[0].Name != "Ada Lovelace" {
		t.Errorf("ListMembers(LOVELACE) = %+v, %v", us, err)
	}
}
