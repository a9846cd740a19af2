package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// EventMembersImported is the one audit event of an import, with its counts.
const EventMembersImported = "members.imported"

// ImportBatch is how many members one transaction of ImportMembers writes.
const ImportBatch = 1000

// ImportMember is one validated row of an import file. PasswordHash is a
// PHC argon2id hash or "" (the member then has no usable password).
type ImportMember struct {
	Email        string
	Role         string
	PasswordHash string
	Name         string
}

// ImportResult counts what ImportMembers did.
type ImportResult struct {
	Imported        int // new members
	Existing        int // emails already members, left as they were
	WithoutPassword int // new members without a password hash
	// ExistingEmails are the existing members' emails as the file gave them.
	ExistingEmails []string
}

// ImportMembers adds members to a workspace, ImportBatch at a time, each
// batch one transaction: a multi-row INSERT that skips emails already
// members (ON CONFLICT DO NOTHING, so a re-run or a concurrent invitation
// changes nobody) and one member.created audit event per new member. The
// last batch also writes the import's own audit event with the counts.
// The caller validates every row first (valid email and role, no email
// twice): ImportMembers does not check them again. If it fails midway the
// earlier batches stay; running the same import again completes it.
// progress, if not nil, is called after each batch with the rows done.
func (s *Store) ImportMembers(ctx context.Context, workspaceID, actorID int64, members []ImportMember, meta Meta, progress func(done int)) (ImportResult, error) {
	var res ImportResult
	for start := 0; start < len(members) || start == 0; start += ImportBatch {
		end := min(start+ImportBatch, len(members))
		last := end == len(members)
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if err := s.importBatch(ctx, tx, workspaceID, actorID, members[start:end], meta, &res); err != nil {
				return err
			}
			if !last {
				return nil
			}
			return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, Event: EventMembersImported,
				IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
					"rows": len(members), "imported": res.Imported, "existing": res.Existing, "without_password": res.WithoutPassword}})
		})
		if err != nil {
			return res, fmt.Errorf("import members: %w", err)
		}
		if progress != nil {
			progress(end)
		}
		if last {
			break
		}
	}
	return res, nil
}

func (s *Store) importBatch(ctx context.Context, tx *sql.Tx, workspaceID, actorID int64, batch []ImportMember, meta Meta, res *ImportResult) error {
	if len(batch) == 0 {
		return nil
	}
	// The policy decides the new members' deadlines: it must not change
	// before the batch commits (lockWorkspace, as for every rule over many
	// members). A member who joins while the requirement applies to them
	// has no grace period, as in CreateUser.
	if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
		return err
	}
	p, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID))
	if err != nil {
		return err
	}
	now := s.now()
	var q strings.Builder
	q.WriteString(`INSERT INTO users (workspace_id, email, email_key, password_hash, role, name, name_key, password_changed_at, created_at, mfa_since, mfa_deadline) VALUES `)
	args := make([]any, 0, len(batch)*11)
	for i, m := range batch {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		deadline := sql.NullInt64{Int64: now, Valid: p.AppliesTo(m.Role)}
		name := strings.TrimSpace(m.Name)
		args = append(args, workspaceID, strings.TrimSpace(m.Email), EmailKey(m.Email), m.PasswordHash, m.Role, name, NameKey(name), now, now, deadline, deadline)
	}
	q.WriteString(` ON CONFLICT (workspace_id, email_key) DO NOTHING RETURNING id, email_key, password_hash`)
	rows, err := tx.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return err
	}
	var ids []int64
	added := make(map[string]bool, len(batch))
	for rows.Next() {
		var id int64
		var key, hash string
		if err := rows.Scan(&id, &key, &hash); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
		added[key] = true
		if hash == "" {
			res.WithoutPassword++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	res.Imported += len(ids)
	for _, m := range batch {
		if !added[EmailKey(m.Email)] {
			res.Existing++
			res.ExistingEmails = append(res.ExistingEmails, strings.TrimSpace(m.Email))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// One member.created event per new member, written by the database
	// from the rows just inserted. The role is one of three fixed words,
	// so pasting it into the JSON needs no escaping.
	in, idArgs := inList(ids)
	_, err = tx.ExecContext(ctx, `
		INSERT INTO audit_events (workspace_id, actor_user_id, subject_user_id, event, ip, user_agent, details, created_at)
		SELECT workspace_id, ?, id, ?, ?, ?, '{"imported":true,"role":"' || role || '"}', ?
		FROM users WHERE workspace_id = ? AND id IN (`+in+`)`,
		append([]any{nullID(actorID), EventMemberCreated, truncate(meta.IP, 64), truncate(meta.UserAgent, 512), now, workspaceID}, idArgs...)...)
	return err
}
