package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Roles a member can hold in a workspace.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool { return r == RoleOwner || r == RoleAdmin || r == RoleMember }

// User is a member of one workspace. The same email in two workspaces is two
// unrelated users.
type User struct {
	ID          int64
	WorkspaceID int64
	Email       string
	// Name is the member's display name, as an import gave it ("" when
	// none). Text to show, never to decide on.
	Name              string
	PasswordHash      string
	Role              string
	SessionEpoch      int64
	PasswordChangedAt time.Time
	CreatedAt         time.Time
	// MFADeadline is set while the workspace's MFA requirement applies to
	// the member: the moment by which they must hold an allowed second
	// factor (zero when the policy does not cover them).
	MFADeadline time.Time
}

// IsAdmin reports whether the user may use the admin console.
func (u User) IsAdmin() bool { return u.Role == RoleOwner || u.Role == RoleAdmin }

// MayManage reports whether actor may change target's second factors,
// sessions, trusted browsers, deadline or role: an owner may act on anyone
// of the workspace, an admin on anyone but an owner (SECURITY rule 13).
// Pages, the API and the store's transactions all ask this.
func MayManage(actor, target User) bool {
	if actor.WorkspaceID != target.WorkspaceID || !actor.IsAdmin() {
		return false
	}
	return actor.Role == RoleOwner || target.Role != RoleOwner
}

// EmailKey is the form of an email used for lookups and uniqueness.
func EmailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// userColumns are a User's columns, in the order userScan reads them.
// Every query that returns users selects these (prefixed when joined) and
// reads them with scanUser or userScan.
const userColumns = `id, workspace_id, email, name, password_hash, role, session_epoch, password_changed_at, created_at, mfa_deadline`

// userScan receives userColumns: dest lists where Scan puts them (a query
// may select more columns after them), user assembles the User.
type userScan struct {
	u                User
	name             sql.NullString
	changed, created int64
	deadline         sql.NullInt64
}

func (s *userScan) dest() []any {
	return []any{&s.u.ID, &s.u.WorkspaceID, &s.u.Email, &s.name, &s.u.PasswordHash, &s.u.Role, &s.u.SessionEpoch, &s.changed, &s.created, &s.deadline}
}

func (s *userScan) user() User {
	u := s.u
	u.Name = s.name.String // NULL reads as ""
	u.PasswordChangedAt, u.CreatedAt = unix(s.changed), unix(s.created)
	if s.deadline.Valid {
		u.MFADeadline = unix(s.deadline.Int64)
	}
	return u
}

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var us userScan
	if err := row.Scan(us.dest()...); err != nil {
		return User{}, err
	}
	return us.user(), nil
}

// NameKey is the form of a name the member search matches, as EmailKey is
// an email's: lowered in Go, the same on every engine (users.name_key).
func NameKey(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// memberSearch is the WHERE term of the members search: q (already an
// EmailKey/NameKey) anywhere in the email or the name, case-insensitive.
// Both sides are lowered in Go, so LIKE's own case rules (SQLite: ASCII
// only; PostgreSQL: none) never matter. u is the users table's alias
// with its dot, or "".
func memberSearch(u, q string) (string, []any) {
	pat := "%" + likeEscaper.Replace(q) + "%"
	return ` AND (` + u + `email_key LIKE ? ESCAPE '\' OR ` + u + `name_key LIKE ? ESCAPE '\')`, []any{pat, pat}
}

// CreateUser adds a member to a workspace. It returns ErrConflict when the
// email is already a member there.
func (s *Store) CreateUser(ctx context.Context, workspaceID int64, email, role, passwordHash string, meta Meta, actorID int64) (User, error) {
	var u User
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = s.insertUser(ctx, tx, workspaceID, email, role, passwordHash)
		if err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, SubjectUserID: u.ID,
			Event: EventMemberCreated, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"role": role}})
	})
	return u, err
}

func (s *Store) insertUser(ctx context.Context, tx *sql.Tx, workspaceID int64, email, role, passwordHash string) (User, error) {
	now := s.now()
	row := tx.QueryRowContext(ctx, `
		INSERT INTO users (workspace_id, email, email_key, password_hash, role, password_changed_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		RETURNING `+userColumns, workspaceID, strings.TrimSpace(email), EmailKey(email), passwordHash, role, now, now)
	u, err := scanUser(row)
	if isUniqueViolation(err) {
		return User{}, fmt.Errorf("create user: %w", ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	// A member who joins while the requirement applies to them has no grace
	// period: their deadline is the moment they join (they enroll during
	// onboarding).
	p, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID))
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if p.AppliesTo(role) {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET mfa_since = ?, mfa_deadline = ? WHERE id = ?`, now, now, u.ID); err != nil {
			return User{}, fmt.Errorf("create user: %w", err)
		}
		u.MFADeadline = unix(now)
	}
	return u, nil
}

// UserByEmail returns the workspace's member with that email, or ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, workspaceID int64, email string) (User, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND email_key = ?`,
		workspaceID, EmailKey(email))
	u, err := scanUser(row)
	if err != nil {
		return User{}, notFound("user by email", err)
	}
	return u, nil
}

// UserByID returns the workspace's member with that id, or ErrNotFound
// (also when the id belongs to another workspace).
func (s *Store) UserByID(ctx context.Context, workspaceID, userID int64) (User, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, userID)
	u, err := scanUser(row)
	if err != nil {
		return User{}, notFound("user by id", err)
	}
	return u, nil
}

// UpgradePasswordHash replaces a member's hash with one of the same password
// under stronger parameters, if the password has not changed meanwhile.
func (s *Store) UpgradePasswordHash(ctx context.Context, workspaceID, userID int64, oldHash, newHash string) error {
	_, err := s.exec(ctx, `UPDATE users SET password_hash = ? WHERE workspace_id = ? AND id = ? AND password_hash = ?`,
		newHash, workspaceID, userID, oldHash)
	if err != nil {
		return fmt.Errorf("upgrade password hash: %w", err)
	}
	return nil
}

// ChangePassword sets a new password hash, bumps the member's session epoch,
// ends every other session, revokes every trusted device, audits the
// change and queues msg (a notice to the member), all at once. keepSessionID names the session that stays.
func (s *Store) ChangePassword(ctx context.Context, workspaceID, userID int64, newHash, keepSessionID string, meta Meta, msg OutboxMessage) (epoch int64, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		now := s.now()
		err := tx.QueryRowContext(ctx, `
			UPDATE users SET password_hash = ?, password_changed_at = ?, session_epoch = session_epoch + 1
			WHERE workspace_id = ? AND id = ? RETURNING session_epoch`,
			newHash, now, workspaceID, userID).Scan(&epoch)
		if err != nil {
			return notFound("change password", err)
		}
		if _, err := s.endSessions(ctx, tx, workspaceID, userID, keepSessionID, "password_changed"); err != nil {
			return err
		}
		if _, err := s.voidTrustedDevices(ctx, tx, workspaceID, userID, userID, "password_changed", meta); err != nil {
			return err
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventPasswordChanged, IP: meta.IP, UserAgent: meta.UserAgent}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
	return epoch, err
}

// MemberFilter narrows ListMembers.
type MemberFilter struct {
	Query string // part of the email or of the name, any case
	After string // cursor: the email key of the last member of the previous page
	Limit int
}

// ListMembers returns a page of a workspace's members ordered by email.
func (s *Store) ListMembers(ctx context.Context, workspaceID int64, f MemberFilter) ([]User, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	query := `SELECT ` + userColumns + ` FROM users WHERE workspace_id = ? AND email_key > ?`
	args := []any{workspaceID, f.After}
	if q := EmailKey(f.Query); q != "" {
		term, targs := memberSearch("", q)
		query += term
		args = append(args, targs...)
	}
	query += ` ORDER BY email_key LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.q(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// CountMembers returns how many members a workspace has.
func (s *Store) CountMembers(ctx context.Context, workspaceID int64) (int, error) {
	var n int
	err := s.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE workspace_id = ?`, workspaceID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count members: %w", err)
	}
	return n, nil
}
