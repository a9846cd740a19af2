package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
)

func TestUserImport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("", "workspace", "create", "--slug", "globex", "--name", "Globex")
	params, _ := auth.ParseParams(fastHash)
	hasher := auth.NewHasher(params)
	hash, err := hasher.Hash(ctx, "imported-password")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	members := func(slug string) int {
		ws, _ := h.workspace(slug)
		n, err := h.store().CountMembers(ctx, ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// CSV, the hash quoted on one line and not on the other.
	csvFile := write("members.csv", "Email,Role,Password_Hash,Name\n"+
		"ann@acme.test,owner,\""+hash+"\",Ann\n"+
		"bob@acme.test,member,,\"Bob, Jr\"\n"+
		"cy@acme.test,admin,"+hash+",Cy\n")
	out := h.ok("", "user", "import", "--workspace", "acme", csvFile)
	if !strings.HasPrefix(out, "imported 3, already members 0, without a password 1, in ") ||
		!strings.Contains(out, "1 new members have no password") {
		t.Errorf("import CSV stdout = %q", out)
	}
	if strings.Contains(out, hash) {
		t.Errorf("the output quotes a password hash: %q", out)
	}
	// The imported hash signs in with its password.
	ws, _ := h.workspace("acme")
	ann, err := h.store().UserByEmail(ctx, ws.ID, "ann@acme.test")
	if err != nil || ann.Role != db.RoleOwner {
		t.Fatalf("ann = %+v, %v", ann, err)
	}
	if ok, _, err := hasher.Verify(ctx, "imported-password", ann.PasswordHash); !ok || err != nil {
		t.Errorf("Verify(ann's imported hash) = %v, %v; want true", ok, err)
	}
	bob, _ := h.store().UserByEmail(ctx, ws.ID, "bob@acme.test")
	if ok, _, _ := hasher.Verify(ctx, "", bob.PasswordHash); ok || bob.PasswordHash != "" {
		t.Errorf("bob (no hash) has a usable password: %q", bob.PasswordHash)
	}

	// Re-run: nothing changes, everyone is already a member.
	out = h.ok("", "user", "import", "--workspace", "acme", csvFile)
	if !strings.HasPrefix(out, "imported 0, already members 3, without a password 0") ||
		!strings.Contains(out, "already members, left unchanged: ann@acme.test, bob@acme.test, cy@acme.test") {
		t.Errorf("re-run stdout = %q", out)
	}
	if n := members("acme"); n != 3 {
		t.Errorf("acme members after re-run = %d, want 3", n)
	}

	// JSON Lines, from standard input, flags after the file.
	jsonl := `{"email":"dee@acme.test","role":"member","name":"Dee"}` + "\n\n" +
		`{"email":"ann@acme.test","role":"member"}` + "\n" +
		`{"email":"eve@acme.test","role":"admin","password_hash":"` + hash + `"}` + "\n"
	out = h.ok(jsonl, "user", "import", "-", "--workspace", "acme")
	if !strings.HasPrefix(out, "imported 2, already members 1, without a password 1") {
		t.Errorf("import JSONL stdout = %q", out)
	}
	if ann, _ := h.store().UserByEmail(ctx, ws.ID, "ann@acme.test"); ann.Role != db.RoleOwner {
		t.Errorf("ann's role = %q after a file said member, want owner unchanged", ann.Role)
	}
	// The same file in another workspace is other people.
	h.ok(jsonl, "user", "import", "--workspace", "globex", "-")
	if n := members("globex"); n != 3 {
		t.Errorf("globex members = %d, want 3", n)
	}

	// Bad files: one line on stderr with the line number, nothing written.
	bad := []struct{ name, content, want string }{
		{"bad email", "email,role\nok1@acme.test,member\nnot-an-email,member\n", `line 3: "not-an-email" is not a valid email address`},
		{"bad role", "email,role\nok1@acme.test,member\nok2@acme.test,root\n", `line 3: role "root" must be owner, admin or member`},
		{"bad hash", "email,role,password_hash\nok1@acme.test,member,\"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n", "line 2: password_hash: not a PHC argon2id hash"},
		{"weak hash", "email,role,password_hash\nok1@acme.test,member,\"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n", "line 2: password_hash: argon2id parameters"},
		{"duplicate", "email,role\nok1@acme.test,member\nok2@acme.test,member\nOK1@acme.test,admin\n", "line 4: OK1@acme.test is already on line 2"},
		{"jsonl bad line", `{"email":"ok1@acme.test","role":"member"}` + "\n" + `{"email":"ok2@acme.test","role":"member","admin":true}` + "\n", "line 2: not a JSON object"},
		{"unknown column", "email,role,passwd\nok1@acme.test,member,x\n", `line 1: unknown column "passwd"`},
		{"empty", "email,role\n", "the file has no members"},
	}
	for _, tc := range bad {
		h.fails(tc.want, "", "user", "import", "--workspace", "acme", write(strings.ReplaceAll(tc.name, " ", "_"), tc.content))
	}
	// A bad row after a whole batch of good ones still writes nothing.
	var b strings.Builder
	b.WriteString("email,role\n")
	for i := range 2500 {
		fmt.Fprintf(&b, "bulk%d@acme.test,member\n", i)
	}
	b.WriteString("bulk-bad,member\n")
	h.fails("line 2502: ", "", "user", "import", "--workspace", "acme", write("bulk.csv", b.String()))
	if n := members("acme"); n != 5 {
		t.Errorf("acme members after bad files = %d, want 5", n)
	}
	h.fails(`no workspace "nope"`, "", "user", "import", "--workspace", "nope", csvFile)
	h.fails("name the file", "", "user", "import", "--workspace", "acme")
	h.fails("no such file", "", "user", "import", "--workspace", "acme", filepath.Join(dir, "missing.csv"))

	if help := h.ok("", "user", "import", "-h"); !strings.Contains(help, "cannot sign in with a password until") {
		t.Errorf("user import -h = %q", help)
	}
	if help := h.ok("", "help"); !strings.Contains(help, "gatehouse user import --workspace SLUG FILE") {
		t.Errorf("help does not list user import")
	}
}
