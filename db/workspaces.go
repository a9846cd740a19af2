package db

import (
	"context"
	"fmt"
	"time"
)

// Workspace is a tenant.
type Workspace struct {
	ID              int64
	Slug            string
	Name            string
	SessionAbsolute time.Duration
	SessionIdle     time.Duration
	CreatedAt       time.Time
}

const workspaceColumns = `id, slug, name, session_absolute_minutes, session_idle_minutes, created_at`

func scanWorkspace(row interface{ Scan(...any) error }) (Workspace, error) {
	var w Workspace
	var abs, idle, created int64
	if err := row.Scan(&w.ID, &w.Slug, &w.Name, &abs, &idle, &created); err != nil {
		return Workspace{}, err
	}
	w.SessionAbsolute = time.Duration(abs) * time.Minute
	w.SessionIdle = time.Duration(idle) * time.Minute
	w.CreatedAt = unix(created)
	return w, nil
}

// CreateWorkspace adds a workspace. It returns ErrConflict when the slug is
// taken.
func (s *Store) CreateWorkspace(ctx context.Context, slug, name string) (Workspace, error) {
	row := s.db.QueryRowContext(ctx, `
		INSERT INTO workspaces (slug, name, created_at) VALUES (?, ?, ?)
		RETURNING `+workspaceColumns, slug, name, s.now())
	w, err := scanWorkspace(row)
	if isUniqueViolation(err) {
		return Workspace{}, fmt.Errorf("create workspace %q: %w", slug, ErrConflict)
	}
	if err != nil {
		return Workspace{}, fmt.Errorf("create workspace: %w", err)
	}
	return w, nil
}

// WorkspaceBySlug returns the customer workspace with that slug, or
// ErrNotFound (never the platform workspace: see PlatformWorkspace).
func (s *Store) WorkspaceBySlug(ctx context.Context, slug string) (Workspace, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE slug = ? AND platform = 0`, slug)
	w, err := scanWorkspace(row)
	if err != nil {
		return Workspace{}, notFound("workspace by slug", err)
	}
	return w, nil
}

// SetSessionLifetimes sets a workspace's absolute and idle session limits.
// Callers validate the bounds.
func (s *Store) SetSessionLifetimes(ctx context.Context, workspaceID int64, absolute, idle time.Duration) error {
	_, err := s.db.ExecContext(ctx, `
		UPDATE workspaces SET session_absolute_minutes = ?, session_idle_minutes = ? WHERE id = ?`,
		int64(absolute/time.Minute), int64(idle/time.Minute), workspaceID)
	if err != nil {
		return fmt.Errorf("set session lifetimes: %w", err)
	}
	return nil
}
