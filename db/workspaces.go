package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrReservedSlug is returned for a slug the service keeps for itself.
var ErrReservedSlug = errors.New("slug reserved for the service")

// reservedSlugs are the names the service itself uses, which no workspace
// may take (SECURITY rule 14): the top-level paths beside /t/ (assets,
// healthz, readyz, dev, support), names our cookies and forms use (csrf),
// the platform workspace, host names under GATEHOUSE_BASE_DOMAIN that mail
// and browsers look up by convention (www, mail, autoconfig, mta-sts, …) or
// that we may give the service itself (api, auth, login, admin, …), and
// well-known paths (well-known, oauth, oidc). Some cannot be valid slugs
// anyway (t, _support): listed so that the store refuses them too. This is
// the one list; docs/OPERATIONS.md repeats it for operators.
var reservedSlugs = func() map[string]bool {
	m := map[string]bool{PlatformSlug: true}
	for _, slug := range strings.Fields(`
		account admin api app assets auth autoconfig autodiscover
		csrf dev docs gatehouse healthz help imap login logout
		mail mta-sts oauth oidc openid readyz root smtp sso
		staff static status support t well-known www`) {
		m[slug] = true
	}
	return m
}()

// ReservedSlug reports whether slug (in any case) is one the service keeps
// for itself. CreateWorkspace refuses it; callers may ask first to give a
// better message.
func ReservedSlug(slug string) bool { return reservedSlugs[strings.ToLower(slug)] }

// ReservedSlugs lists the reserved slugs, sorted.
func ReservedSlugs() []string {
	out := make([]string, 0, len(reservedSlugs))
	for slug := range reservedSlugs {
		out = append(out, slug)
	}
	slices.Sort(out)
	return out
}

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

// CreateWorkspace adds a workspace. It returns ErrReservedSlug for a slug
// the service keeps for itself (ReservedSlug: every way of creating a
// workspace comes through here) and ErrConflict when the slug is taken.
func (s *Store) CreateWorkspace(ctx context.Context, slug, name string) (Workspace, error) {
	if ReservedSlug(slug) {
		return Workspace{}, fmt.Errorf("create workspace %q: %w", slug, ErrReservedSlug)
	}
	var w Workspace
	err := s.queryRowWrite(ctx, func(row func(query string, args ...any) *sql.Row) error {
		var err error
		w, err = scanWorkspace(row(`
		INSERT INTO workspaces (slug, name, created_at) VALUES (?, ?, ?)
		RETURNING `+workspaceColumns, slug, name, s.now()))
		return err
	})
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
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE slug = ? AND platform = 0`, slug)
	w, err := scanWorkspace(row)
	if err != nil {
		return Workspace{}, notFound("workspace by slug", err)
	}
	return w, nil
}

// SetSessionLifetimes sets a workspace's absolute and idle session limits.
// Callers validate the bounds.
func (s *Store) SetSessionLifetimes(ctx context.Context, workspaceID int64, absolute, idle time.Duration) error {
	_, err := s.exec(ctx, `
		UPDATE workspaces SET session_absolute_minutes = ?, session_idle_minutes = ? WHERE id = ?`,
		int64(absolute/time.Minute), int64(idle/time.Minute), workspaceID)
	if err != nil {
		return fmt.Errorf("set session lifetimes: %w", err)
	}
	return nil
}
