package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Audit events of the OpenID Connect provider.
const (
	EventOAuthClientCreated  = "oauth.client_created"
	EventOAuthClientUpdated  = "oauth.client_updated"
	EventOAuthClientDeleted  = "oauth.client_deleted"
	EventOAuthSecretRotated  = "oauth.client_secret_rotated"
	EventOAuthAuthorized     = "oauth.authorized"
	EventOAuthConsentGranted = "oauth.consent_granted"
	EventOAuthConsentRevoked = "oauth.consent_revoked"
	EventOAuthTokenIssued    = "oauth.token_issued"
	EventOAuthCodeReused     = "oauth.code_reused"
	EventOAuthRefreshReused  = "oauth.refresh_reused"
	EventOAuthTokenRevoked   = "oauth.token_revoked"
	EventOAuthKeyRotated     = "oauth.signing_key_rotated"
)

// Client kinds: a web app is confidential (it keeps a secret); an SPA or a
// native app is public (no secret, PKCE only).
const (
	ClientWeb    = "web"
	ClientSPA    = "spa"
	ClientNative = "native"
)

// Confidential reports whether the client authenticates with a secret.
func (c OAuthClient) Confidential() bool { return c.Kind == ClientWeb }

// ErrCodeReused is returned when an authorization code is presented a
// second time: what the first exchange issued is revoked.
var ErrCodeReused = errors.New("authorization code reused")

// ErrRefreshReused is returned when a rotated refresh token is presented
// again: the whole family is revoked.
var ErrRefreshReused = errors.New("refresh token reused")

// OAuthClient is an application registered in a workspace.
type OAuthClient struct {
	ID                     int64
	WorkspaceID            int64
	ClientID               string
	Name                   string
	Kind                   string
	SecretHash             string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Scopes                 []string
	FirstParty             bool
	CreatedAt, UpdatedAt   time.Time
	SecretRotatedAt        time.Time
}

const oauthClientColumns = `id, workspace_id, client_id, name, kind, secret_hash, redirect_uris, post_logout_redirect_uris,
	scopes, first_party, created_at, updated_at, secret_rotated_at`

func scanOAuthClient(row interface{ Scan(...any) error }) (OAuthClient, error) {
	var c OAuthClient
	var redirects, logouts, scopes string
	var created, updated int64
	var rotated sql.NullInt64
	if err := row.Scan(&c.ID, &c.WorkspaceID, &c.ClientID, &c.Name, &c.Kind, &c.SecretHash, &redirects, &logouts,
		&scopes, &c.FirstParty, &created, &updated, &rotated); err != nil {
		return OAuthClient{}, err
	}
	if err := errors.Join(json.Unmarshal([]byte(redirects), &c.RedirectURIs), json.Unmarshal([]byte(logouts), &c.PostLogoutRedirectURIs),
		json.Unmarshal([]byte(scopes), &c.Scopes)); err != nil {
		return OAuthClient{}, fmt.Errorf("oauth client %d: %w", c.ID, err)
	}
	c.CreatedAt, c.UpdatedAt, c.SecretRotatedAt = unix(created), unix(updated), nullTime(rotated)
	return c, nil
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// NewClientID returns a fresh public client identifier.
func NewClientID() string { return "gh_" + randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// CreateOAuthClient registers c (ClientID, Name, Kind, SecretHash, URIs,
// Scopes, FirstParty) in the workspace, audited.
func (s *Store) CreateOAuthClient(ctx context.Context, workspaceID, actorID int64, c OAuthClient, meta Meta) (OAuthClient, error) {
	var out OAuthClient
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		now := s.now()
		row := tx.QueryRowContext(ctx, `INSERT INTO oauth_clients (workspace_id, client_id, name, kind, secret_hash, redirect_uris,
				post_logout_redirect_uris, scopes, first_party, created_by, created_at, updated_at, secret_rotated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+oauthClientColumns,
			workspaceID, c.ClientID, c.Name, c.Kind, c.SecretHash, jsonList(c.RedirectURIs), jsonList(c.PostLogoutRedirectURIs),
			jsonList(c.Scopes), c.FirstParty, nullID(actorID), now, now, sql.NullInt64{Int64: now, Valid: c.SecretHash != ""})
		var err error
		if out, err = scanOAuthClient(row); isUniqueViolation(err) {
			return fmt.Errorf("create oauth client: %w", ErrConflict)
		} else if err != nil {
			return fmt.Errorf("create oauth client: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, Event: EventOAuthClientCreated,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: clientDetails(out)})
	})
	return out, err
}

func clientDetails(c OAuthClient) map[string]any {
	return map[string]any{"client_id": c.ClientID, "name": c.Name, "kind": c.Kind, "first_party": c.FirstParty,
		"redirect_uris": c.RedirectURIs, "scopes": c.Scopes}
}

// OAuthClients lists the workspace's applications, oldest first.
func (s *Store) OAuthClients(ctx context.Context, workspaceID int64) ([]OAuthClient, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+oauthClientColumns+` FROM oauth_clients
		WHERE workspace_id = ? AND deleted_at IS NULL ORDER BY id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("oauth clients: %w", err)
	}
	defer rows.Close()
	var out []OAuthClient
	for rows.Next() {
		c, err := scanOAuthClient(rows)
		if err != nil {
			return nil, fmt.Errorf("oauth clients: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// OAuthClient returns the workspace's application with row id id.
func (s *Store) OAuthClient(ctx context.Context, workspaceID, id int64) (OAuthClient, error) {
	c, err := scanOAuthClient(s.q(ctx).QueryRowContext(ctx, `SELECT `+oauthClientColumns+` FROM oauth_clients
		WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL`, workspaceID, id))
	if err != nil {
		return OAuthClient{}, notFound("oauth client", err)
	}
	return c, nil
}

// OAuthClientByClientID returns the workspace's application named by its
// public client_id: another workspace's client is not found.
func (s *Store) OAuthClientByClientID(ctx context.Context, workspaceID int64, clientID string) (OAuthClient, error) {
	c, err := scanOAuthClient(s.q(ctx).QueryRowContext(ctx, `SELECT `+oauthClientColumns+` FROM oauth_clients
		WHERE workspace_id = ? AND client_id = ? AND deleted_at IS NULL`, workspaceID, clientID))
	if err != nil {
		return OAuthClient{}, notFound("oauth client", err)
	}
	return c, nil
}

// UpdateOAuthClient saves c's name, URIs, scopes and first-party flag.
func (s *Store) UpdateOAuthClient(ctx context.Context, workspaceID, actorID int64, c OAuthClient, meta Meta) (OAuthClient, error) {
	var out OAuthClient
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		row := tx.QueryRowContext(ctx, `UPDATE oauth_clients SET name = ?, redirect_uris = ?, post_logout_redirect_uris = ?,
				scopes = ?, first_party = ?, updated_at = ?
			WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL RETURNING `+oauthClientColumns,
			c.Name, jsonList(c.RedirectURIs), jsonList(c.PostLogoutRedirectURIs), jsonList(c.Scopes), c.FirstParty, s.now(),
			workspaceID, c.ID)
		var err error
		if out, err = scanOAuthClient(row); err != nil {
			return notFound("update oauth client", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, Event: EventOAuthClientUpdated,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: clientDetails(out)})
	})
	return out, err
}

// SetOAuthClientSecret replaces a confidential client's secret hash: the
// old secret stops working at once.
func (s *Store) SetOAuthClientSecret(ctx context.Context, workspaceID, actorID, id int64, secretHash string, meta Meta) (OAuthClient, error) {
	var out OAuthClient
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		now := s.now()
		row := tx.QueryRowContext(ctx, `UPDATE oauth_clients SET secret_hash = ?, secret_rotated_at = ?, updated_at = ?
			WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL AND kind = ? RETURNING `+oauthClientColumns,
			secretHash, now, now, workspaceID, id, ClientWeb)
		var err error
		if out, err = scanOAuthClient(row); err != nil {
			return notFound("rotate client secret", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, Event: EventOAuthSecretRotated,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": out.ClientID, "name": out.Name}})
	})
	return out, err
}

// DeleteOAuthClient removes an application: its tokens stop working at
// once and its pending authorizations die.
func (s *Store) DeleteOAuthClient(ctx context.Context, workspaceID, actorID, id int64, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		now := s.now()
		var clientID, name string
		if err := tx.QueryRowContext(ctx, `UPDATE oauth_clients SET deleted_at = ?, secret_hash = ''
			WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL RETURNING client_id, name`, now, workspaceID, id).Scan(&clientID, &name); err != nil {
			return notFound("delete oauth client", err)
		}
		n, err := s.revokeOAuth(ctx, tx, workspaceID, `client_id = ?`, clientID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE oauth_auth_requests SET revoked_at = ? WHERE workspace_id = ? AND client_id = ? AND revoked_at IS NULL`,
			now, workspaceID, clientID); err != nil {
			return fmt.Errorf("delete oauth client: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, Event: EventOAuthClientDeleted,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": clientID, "name": name, "tokens_revoked": n}})
	})
}

// revokeOAuth revokes the access and refresh tokens of the workspace that
// match where (a condition on the token tables' columns). It returns how
// many were live.
func (s *Store) revokeOAuth(ctx context.Context, tx *sql.Tx, workspaceID int64, where string, args ...any) (int64, error) {
	var total int64
	for _, table := range []string{"oauth_access_tokens", "oauth_refresh_tokens"} {
		res, err := tx.ExecContext(ctx, `UPDATE `+table+` SET revoked_at = ? WHERE workspace_id = ? AND revoked_at IS NULL AND `+where,
			append([]any{s.now(), workspaceID}, args...)...)
		if err != nil {
			return 0, fmt.Errorf("revoke tokens: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// AuthRequest is a pending authorization (oauth_auth_requests).
type AuthRequest struct {
	ID          string
	WorkspaceID int64
	ClientID    string
	// Request is the validated authorization request as op parsed it
	// (JSON), kept whole so that nothing of it is lost between the
	// authorize endpoint and the token endpoint.
	Request     []byte
	BrowserHash string
	UserID      int64
	ACR         string
	AMR         []string
	AuthTime    time.Time
	SessionID   string
	DoneAt      time.Time
	CodeUsedAt  time.Time
	RevokedAt   time.Time
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

const authRequestColumns = `id, workspace_id, client_id, request, browser_hash, COALESCE(user_id, 0), acr, amr, auth_time, session_id,
	done_at, code_used_at, revoked_at, created_at, expires_at`

func scanAuthRequest(row interface{ Scan(...any) error }) (AuthRequest, error) {
	var r AuthRequest
	var request, amr string
	var authTime, created, expires int64
	var done, used, revoked sql.NullInt64
	if err := row.Scan(&r.ID, &r.WorkspaceID, &r.ClientID, &request, &r.BrowserHash, &r.UserID, &r.ACR, &amr, &authTime, &r.SessionID,
		&done, &used, &revoked, &created, &expires); err != nil {
		return AuthRequest{}, err
	}
	r.Request = []byte(request)
	if err := json.Unmarshal([]byte(amr), &r.AMR); err != nil {
		return AuthRequest{}, fmt.Errorf("auth request amr: %w", err)
	}
	if authTime > 0 {
		r.AuthTime = unix(authTime)
	}
	r.DoneAt, r.CodeUsedAt, r.RevokedAt = nullTime(done), nullTime(used), nullTime(revoked)
	r.CreatedAt, r.ExpiresAt = unix(created), unix(expires)
	return r, nil
}

// CreateAuthRequest stores a new pending authorization.
func (s *Store) CreateAuthRequest(ctx context.Context, r AuthRequest) error {
	_, err := s.exec(ctx, `INSERT INTO oauth_auth_requests (id, workspace_id, client_id, request, browser_hash, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, r.ID, r.WorkspaceID, r.ClientID, string(r.Request), r.BrowserHash, r.CreatedAt.Unix(), r.ExpiresAt.Unix())
	if err != nil {
		return fmt.Errorf("create auth request: %w", err)
	}
	return nil
}

// AuthRequestByID returns a pending authorization of the workspace that has
// not expired, been exchanged or revoked.
func (s *Store) AuthRequestByID(ctx context.Context, workspaceID int64, id string) (AuthRequest, error) {
	r, err := scanAuthRequest(s.q(ctx).QueryRowContext(ctx, `SELECT `+authRequestColumns+` FROM oauth_auth_requests
		WHERE workspace_id = ? AND id = ? AND expires_at > ? AND code_used_at IS NULL AND revoked_at IS NULL`, workspaceID, id, s.now()))
	if err != nil {
		return AuthRequest{}, notFound("auth request", err)
	}
	return r, nil
}

// CompleteAuthRequest records who signed in for a pending authorization of
// the browser (browserHash) and how, so that the authorize callback can
// issue a code; the authorization is audited. It returns ErrNotFound when
// the request is gone, already complete, or another browser's.
func (s *Store) CompleteAuthRequest(ctx context.Context, r AuthRequest, meta Meta, details map[string]any) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		amr, _ := json.Marshal(r.AMR)
		res, err := tx.ExecContext(ctx, `UPDATE oauth_auth_requests SET user_id = ?, acr = ?, amr = ?, auth_time = ?, session_id = ?, done_at = ?
			WHERE workspace_id = ? AND id = ? AND browser_hash = ? AND done_at IS NULL AND code_used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
			r.UserID, r.ACR, string(amr), r.AuthTime.Unix(), r.SessionID, s.now(), r.WorkspaceID, r.ID, r.BrowserHash, s.now())
		if err != nil {
			return fmt.Errorf("complete auth request: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("complete auth request: %w", ErrNotFound)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: r.WorkspaceID, ActorUserID: r.UserID, SubjectUserID: r.UserID,
			Event: EventOAuthAuthorized, IP: meta.IP, UserAgent: meta.UserAgent, Details: details})
	})
}

// AuthCodeLifetime is how long an authorization code may wait for its
// exchange (RFC 6749 §4.1.2: ten minutes at most).
const AuthCodeLifetime = 2 * time.Minute

// SaveAuthCode attaches the (hashed) code to a completed authorization;
// an authorization gets one code only.
func (s *Store) SaveAuthCode(ctx context.Context, workspaceID int64, id, codeHash string) error {
	now := s.now()
	codeEnd := now + int64(AuthCodeLifetime/time.Second)
	res, err := s.exec(ctx, `UPDATE oauth_auth_requests SET code_hash = ?,
			expires_at = CASE WHEN expires_at > ? THEN ? ELSE expires_at END
		WHERE workspace_id = ? AND id = ? AND done_at IS NOT NULL AND code_hash IS NULL AND revoked_at IS NULL AND expires_at > ?`,
		codeHash, codeEnd, codeEnd, workspaceID, id, now)
	if err != nil {
		return fmt.Errorf("save auth code: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("save auth code: %w", ErrNotFound)
	}
	return nil
}

// AuthRequestByCode returns the completed authorization a code belongs
// to, used or not: the code is spent only by an exchange that proved the
// client and the PKCE verifier (IssueOAuthTokens), so that a stranger
// holding a code can neither burn it nor revoke what it issued.
func (s *Store) AuthRequestByCode(ctx context.Context, workspaceID int64, codeHash string) (AuthRequest, error) {
	r, err := scanAuthRequest(s.q(ctx).QueryRowContext(ctx, `SELECT `+authRequestColumns+` FROM oauth_auth_requests
		WHERE workspace_id = ? AND code_hash = ? AND done_at IS NOT NULL AND revoked_at IS NULL AND expires_at > ?`,
		workspaceID, codeHash, s.now()))
	if err != nil {
		return AuthRequest{}, notFound("auth request by code", err)
	}
	return r, nil
}

// spendCode marks an authorization's code used inside tx. A code used
// before revokes the authorization and every token it issued (RFC 6749
// §4.1.2) and returns ErrCodeReused.
func (s *Store) spendCode(ctx context.Context, tx *sql.Tx, workspaceID int64, authRequestID string, meta Meta) error {
	now := s.now()
	res, err := tx.ExecContext(ctx, `UPDATE oauth_auth_requests SET code_used_at = ?
		WHERE workspace_id = ? AND id = ? AND code_used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`, now, workspaceID, authRequestID, now)
	if err != nil {
		return fmt.Errorf("spend code: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var used, revoked sql.NullInt64
	var clientID string
	var userID int64
	if err := tx.QueryRowContext(ctx, `SELECT code_used_at, revoked_at, client_id, COALESCE(user_id, 0) FROM oauth_auth_requests
		WHERE workspace_id = ? AND id = ?`, workspaceID, authRequestID).Scan(&used, &revoked, &clientID, &userID); err != nil {
		return notFound("spend code", err)
	}
	if !used.Valid || revoked.Valid {
		return fmt.Errorf("spend code: %w", ErrNotFound) // expired or revoked
	}
	if _, err := tx.ExecContext(ctx, `UPDATE oauth_auth_requests SET revoked_at = ? WHERE id = ?`, now, authRequestID); err != nil {
		return fmt.Errorf("spend code: %w", err)
	}
	n, err := s.revokeOAuth(ctx, tx, workspaceID, `auth_request_id = ?`, authRequestID)
	if err != nil {
		return err
	}
	if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventOAuthCodeReused,
		IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": clientID, "tokens_revoked": n}}); err != nil {
		return err
	}
	return ErrCodeReused
}

// OAuthToken is an access token or a refresh token's grant.
type OAuthToken struct {
	ID            string
	WorkspaceID   int64
	FamilyID      string
	AuthRequestID string
	ClientID      string
	UserID        int64
	Scopes        []string
	Audience      []string
	AMR           []string
	ACR           string
	AuthTime      time.Time
	CreatedAt     time.Time
	ExpiresAt     time.Time
	// TokenHash is the refresh token's keyed hash (refresh tokens only).
	TokenHash string
}

const oauthTokenColumns = `t.id, t.workspace_id, t.family_id, t.auth_request_id, t.client_id, t.user_id, t.scopes, t.audience, t.amr, t.acr,
	t.auth_time, t.created_at, t.expires_at`

func scanOAuthToken(row interface{ Scan(...any) error }) (OAuthToken, error) {
	var t OAuthToken
	var scopes, aud, amr string
	var authTime, created, expires int64
	if err := row.Scan(&t.ID, &t.WorkspaceID, &t.FamilyID, &t.AuthRequestID, &t.ClientID, &t.UserID, &scopes, &aud, &amr, &t.ACR,
		&authTime, &created, &expires); err != nil {
		return OAuthToken{}, err
	}
	if err := errors.Join(json.Unmarshal([]byte(scopes), &t.Scopes), json.Unmarshal([]byte(aud), &t.Audience),
		json.Unmarshal([]byte(amr), &t.AMR)); err != nil {
		return OAuthToken{}, fmt.Errorf("oauth token: %w", err)
	}
	t.AuthTime, t.CreatedAt, t.ExpiresAt = unix(authTime), unix(created), unix(expires)
	return t, nil
}

// IssueOAuthTokens stores an access token and, when refresh is not nil, a
// refresh token, in one transaction. A first issue for an authorization
// (rotate empty) spends its code (spendCode): a code spent before revokes
// the authorization's tokens and returns ErrCodeReused; a refresh (rotate, the presented token's hash)
// marks the presented token used, and if it was used already revokes the
// whole family and returns ErrRefreshReused.
func (s *Store) IssueOAuthTokens(ctx context.Context, access OAuthToken, refresh *OAuthToken, rotate string, grant string, meta Meta) error {
	var reused bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		ws := access.WorkspaceID
		if rotate != "" {
			res, err := tx.ExecContext(ctx, `UPDATE oauth_refresh_tokens SET used_at = ?
				WHERE workspace_id = ? AND token_hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`, now, ws, rotate, now)
			if err != nil {
				return fmt.Errorf("rotate refresh token: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				reused = true
				return s.refreshReused(ctx, tx, ws, rotate, meta)
			}
		} else if err := s.spendCode(ctx, tx, ws, access.AuthRequestID, meta); errors.Is(err, ErrCodeReused) {
			reused = true // the revocation commits; the exchange fails
			return nil
		} else if err != nil {
			return err
		}
		insert := func(table string, t OAuthToken, extra string, extraArgs ...any) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (id, workspace_id, family_id, auth_request_id, client_id, user_id, scopes,
					audience, amr, acr, auth_time, created_at, expires_at`+extra+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?`+
				placeholders(len(extraArgs))+`)`,
				append([]any{t.ID, t.WorkspaceID, t.FamilyID, t.AuthRequestID, t.ClientID, t.UserID, jsonList(t.Scopes), jsonList(t.Audience),
					jsonList(t.AMR), t.ACR, t.AuthTime.Unix(), now, t.ExpiresAt.Unix()}, extraArgs...)...)
			if err != nil {
				return fmt.Errorf("issue tokens: %s: %w", table, err)
			}
			return nil
		}
		if err := insert("oauth_access_tokens", access, ""); err != nil {
			return err
		}
		if refresh != nil {
			if err := insert("oauth_refresh_tokens", *refresh, ", token_hash", refresh.TokenHash); err != nil {
				return err
			}
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: ws, SubjectUserID: access.UserID, Event: EventOAuthTokenIssued,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": access.ClientID, "grant": grant,
				"scopes": access.Scopes, "refresh_token": refresh != nil}})
	})
	if err == nil && reused {
		if rotate == "" {
			return ErrCodeReused
		}
		return ErrRefreshReused
	}
	return err
}

func placeholders(n int) string {
	out := ""
	for range n {
		out += ", ?"
	}
	return out
}

// refreshReused revokes the family of a refresh token presented after it
// was rotated (or revoked), and audits it. A hash nobody issued does
// nothing.
func (s *Store) refreshReused(ctx context.Context, tx *sql.Tx, workspaceID int64, hash string, meta Meta) error {
	var family, clientID string
	var userID int64
	err := tx.QueryRowContext(ctx, `SELECT family_id, client_id, user_id FROM oauth_refresh_tokens WHERE workspace_id = ? AND token_hash = ?`,
		workspaceID, hash).Scan(&family, &clientID, &userID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	} else if err != nil {
		return fmt.Errorf("refresh reused: %w", err)
	}
	n, err := s.revokeOAuth(ctx, tx, workspaceID, `family_id = ?`, family)
	if err != nil {
		return err
	}
	return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventOAuthRefreshReused,
		IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": clientID, "tokens_revoked": n}})
}

// RefreshToken returns the grant of a live refresh token by its hash. A
// token that was already rotated revokes its family (ErrRefreshReused);
// an unknown, expired or revoked one is ErrNotFound. The client must
// still exist and the member still be in the workspace.
func (s *Store) RefreshToken(ctx context.Context, workspaceID int64, hash string, meta Meta) (OAuthToken, error) {
	var t OAuthToken
	var reused bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var used, revoked sql.NullInt64
		var err error
		row := tx.QueryRowContext(ctx, `SELECT `+oauthTokenColumns+`, t.token_hash, t.used_at, t.revoked_at FROM oauth_refresh_tokens t
			JOIN oauth_clients c ON c.workspace_id = t.workspace_id AND c.client_id = t.client_id AND c.deleted_at IS NULL
			WHERE t.workspace_id = ? AND t.token_hash = ? AND t.expires_at > ?`, workspaceID, hash, s.now())
		t, err = scanOAuthToken(withColumns{row, []any{&t.TokenHash, &used, &revoked}})
		if err != nil {
			return notFound("refresh token", err)
		}
		if used.Valid && !revoked.Valid {
			reused = true
			return s.refreshReused(ctx, tx, workspaceID, hash, meta)
		}
		if revoked.Valid || used.Valid {
			return fmt.Errorf("refresh token: %w", ErrNotFound)
		}
		return nil
	})
	if err == nil && reused {
		return OAuthToken{}, ErrRefreshReused
	}
	return t, err
}

// withColumns scans a row followed by more columns into extra.
type withColumns struct {
	row   interface{ Scan(...any) error }
	extra []any
}

func (w withColumns) Scan(dest ...any) error { return w.row.Scan(append(dest, w.extra...)...) }

// AccessToken returns a live access token of the workspace: not expired,
// not revoked, its client not deleted.
func (s *Store) AccessToken(ctx context.Context, workspaceID int64, id string) (OAuthToken, error) {
	t, err := scanOAuthToken(s.q(ctx).QueryRowContext(ctx, `SELECT `+oauthTokenColumns+` FROM oauth_access_tokens t
		JOIN oauth_clients c ON c.workspace_id = t.workspace_id AND c.client_id = t.client_id AND c.deleted_at IS NULL
		WHERE t.workspace_id = ? AND t.id = ? AND t.revoked_at IS NULL AND t.expires_at > ?`, workspaceID, id, s.now()))
	if err != nil {
		return OAuthToken{}, notFound("access token", err)
	}
	return t, nil
}

// RevokeAccessToken revokes one access token of clientID (RFC 7009: a
// client revokes only its own tokens). Unknown tokens are no error.
func (s *Store) RevokeAccessToken(ctx context.Context, workspaceID int64, id, clientID string, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var userID int64
		err := tx.QueryRowContext(ctx, `UPDATE oauth_access_tokens SET revoked_at = ?
			WHERE workspace_id = ? AND id = ? AND client_id = ? AND revoked_at IS NULL RETURNING user_id`,
			s.now(), workspaceID, id, clientID).Scan(&userID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("revoke access token: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventOAuthTokenRevoked,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": clientID, "token": "access_token"}})
	})
}

// RevokeRefreshToken revokes a refresh token (by its row id) of clientID and everything of
// its family (RFC 7009 §2.1: the access tokens of the same grant too).
func (s *Store) RevokeRefreshToken(ctx context.Context, workspaceID int64, id, clientID string, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var family string
		var userID int64
		err := tx.QueryRowContext(ctx, `SELECT family_id, user_id FROM oauth_refresh_tokens WHERE workspace_id = ? AND id = ? AND client_id = ?`,
			workspaceID, id, clientID).Scan(&family, &userID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("revoke refresh token: %w", err)
		}
		n, err := s.revokeOAuth(ctx, tx, workspaceID, `family_id = ?`, family)
		if err != nil || n == 0 {
			return err
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventOAuthTokenRevoked,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": clientID, "token": "refresh_token", "tokens_revoked": n}})
	})
}

// RefreshTokenOwner returns the member and id of a refresh token of
// clientID, for the revocation endpoint.
func (s *Store) RefreshTokenOwner(ctx context.Context, workspaceID int64, hash, clientID string) (userID int64, id string, err error) {
	err = s.q(ctx).QueryRowContext(ctx, `SELECT user_id, id FROM oauth_refresh_tokens WHERE workspace_id = ? AND token_hash = ? AND client_id = ?`,
		workspaceID, hash, clientID).Scan(&userID, &id)
	if err != nil {
		return 0, "", notFound("refresh token owner", err)
	}
	return userID, id, nil
}

// RevokeMemberOAuth revokes every token of a member (for clientID only when
// not empty), e.g. when they sign out of an application.
func (s *Store) RevokeMemberOAuth(ctx context.Context, workspaceID, userID int64, clientID string, reason string, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		where, args := `user_id = ?`, []any{userID}
		if clientID != "" {
			where, args = where+` AND client_id = ?`, append(args, clientID)
		}
		n, err := s.revokeOAuth(ctx, tx, workspaceID, where, args...)
		if err != nil || n == 0 {
			return err
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventOAuthTokenRevoked,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": clientID, "reason": reason, "tokens_revoked": n}})
	})
}

// revokeMemberOAuthTx revokes every token of a member inside tx (resets).
func (s *Store) revokeMemberOAuthTx(ctx context.Context, tx *sql.Tx, workspaceID, userID int64) (int64, error) {
	n, err := s.revokeOAuth(ctx, tx, workspaceID, `user_id = ?`, userID)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE oauth_auth_requests SET revoked_at = ? WHERE workspace_id = ? AND user_id = ? AND revoked_at IS NULL`,
		s.now(), workspaceID, userID); err != nil {
		return 0, fmt.Errorf("revoke member authorizations: %w", err)
	}
	return n, nil
}

// Consent returns the scopes a member allowed a client, nil when none.
func (s *Store) Consent(ctx context.Context, workspaceID, userID int64, clientID string) ([]string, error) {
	var scopes string
	err := s.q(ctx).QueryRowContext(ctx, `SELECT scopes FROM oauth_consents WHERE workspace_id = ? AND user_id = ? AND client_id = ?`,
		workspaceID, userID, clientID).Scan(&scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	var out []string
	if err := json.Unmarshal([]byte(scopes), &out); err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	return out, nil
}

// GrantConsent records that a member allowed a client the scopes.
func (s *Store) GrantConsent(ctx context.Context, workspaceID, userID int64, clientID string, scopes []string, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_consents (workspace_id, user_id, client_id, scopes, granted_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (workspace_id, user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at`,
			workspaceID, userID, clientID, jsonList(scopes), s.now()); err != nil {
			return fmt.Errorf("grant consent: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventOAuthConsentGranted, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"client_id": clientID, "scopes": scopes}})
	})
}

// MemberConsent is an application a member allowed.
type MemberConsent struct {
	ClientID  string
	Name      string
	Scopes    []string
	GrantedAt time.Time
}

// MemberConsents lists the applications (not deleted) a member allowed,
// newest first.
func (s *Store) MemberConsents(ctx context.Context, workspaceID, userID int64) ([]MemberConsent, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT k.client_id, c.name, k.scopes, k.granted_at FROM oauth_consents k
		JOIN oauth_clients c ON c.workspace_id = k.workspace_id AND c.client_id = k.client_id AND c.deleted_at IS NULL
		WHERE k.workspace_id = ? AND k.user_id = ? ORDER BY k.granted_at DESC`, workspaceID, userID)
	if err != nil {
		return nil, fmt.Errorf("member consents: %w", err)
	}
	defer rows.Close()
	var out []MemberConsent
	for rows.Next() {
		var m MemberConsent
		var scopes string
		var at int64
		if err := rows.Scan(&m.ClientID, &m.Name, &scopes, &at); err != nil {
			return nil, fmt.Errorf("member consents: %w", err)
		}
		if err := json.Unmarshal([]byte(scopes), &m.Scopes); err != nil {
			return nil, fmt.Errorf("member consents: %w", err)
		}
		m.GrantedAt = unix(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// RevokeConsent takes back a member's consent to an application and
// revokes every token the application holds for the member, audited.
// ErrNotFound when there was no consent.
func (s *Store) RevokeConsent(ctx context.Context, workspaceID, userID int64, clientID string, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM oauth_consents WHERE workspace_id = ? AND user_id = ? AND client_id = ?`,
			workspaceID, userID, clientID)
		if err != nil {
			return fmt.Errorf("revoke consent: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("revoke consent: %w", ErrNotFound)
		}
		n, err := s.revokeOAuth(ctx, tx, workspaceID, `user_id = ? AND client_id = ?`, userID, clientID)
		if err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventOAuthConsentRevoked, IP: meta.IP, UserAgent: meta.UserAgent,
			Details: map[string]any{"client_id": clientID, "tokens_revoked": n}})
	})
}

// MemberSubject returns the member's subject identifier for ID tokens,
// creating it on first use.
func (s *Store) MemberSubject(ctx context.Context, workspaceID, userID int64) (string, error) {
	// Read first: every token use asks, and only the first needs a write.
	var sub sql.NullString
	if err := s.q(ctx).QueryRowContext(ctx, `SELECT oidc_sub FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, userID).Scan(&sub); err != nil {
		return "", notFound("member subject", err)
	}
	if sub.Valid {
		return sub.String, nil
	}
	// A concurrent first use may have set it: the update keeps theirs and
	// both read the same value back.
	if _, err := s.exec(ctx, `UPDATE users SET oidc_sub = ? WHERE workspace_id = ? AND id = ? AND oidc_sub IS NULL`,
		randomHex(16), workspaceID, userID); err != nil {
		return "", fmt.Errorf("member subject: %w", err)
	}
	if err := s.q(ctx).QueryRowContext(ctx, `SELECT oidc_sub FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, userID).Scan(&sub); err != nil {
		return "", notFound("member subject", err)
	}
	return sub.String, nil
}

// MemberBySubject returns the workspace's member with the subject sub.
func (s *Store) MemberBySubject(ctx context.Context, workspaceID int64, sub string) (User, error) {
	u, err := scanUser(s.q(ctx).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND oidc_sub = ?`, workspaceID, sub))
	if err != nil {
		return User{}, notFound("member by subject", err)
	}
	return u, nil
}

// SigningKey is a workspace's token signing key; Private is sealed under
// the master key MasterKeyID.
type SigningKey struct {
	ID           string
	WorkspaceID  int64
	Alg          string
	MasterKeyID  string
	Private      []byte
	PublicJWK    []byte
	CreatedAt    time.Time
	RetiredAt    time.Time
	PublishUntil time.Time
}

// SigningKeys returns the workspace's keys that are still published,
// the one not retired (it signs) first, then the retired newest first.
func (s *Store) SigningKeys(ctx context.Context, workspaceID int64) ([]SigningKey, error) {
	return s.signingKeys(ctx, `WHERE workspace_id = ? AND (publish_until IS NULL OR publish_until > ?) ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id`,
		workspaceID, s.now())
}

// signingKeys lists the signing keys that where (a condition and an
// order) selects.
func (s *Store) signingKeys(ctx context.Context, where string, args ...any) ([]SigningKey, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT id, workspace_id, alg, master_key_id, private_key, public_jwk, created_at, retired_at, publish_until
		FROM oauth_signing_keys `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var jwk string
		var created int64
		var retired, until sql.NullInt64
		if err := rows.Scan(&k.ID, &k.WorkspaceID, &k.Alg, &k.MasterKeyID, &k.Private, &jwk, &created, &retired, &until); err != nil {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
		k.PublicJWK, k.CreatedAt, k.RetiredAt, k.PublishUntil = []byte(jwk), unix(created), nullTime(retired), nullTime(until)
		out = append(out, k)
	}
	return out, rows.Err()
}

// AddSigningKey stores a new signing key. When retireOthers is set the
// workspace's other keys stop signing now and stay published until
// publishUntil (the longest lifetime of a token they signed), audited as a
// rotation; otherwise the key is only added when the workspace has none
// (the first key, created on first use) and ErrConflict says another
// request added one first.
func (s *Store) AddSigningKey(ctx context.Context, k SigningKey, retireOthers bool, publishUntil time.Time, actorID int64, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, k.WorkspaceID); err != nil {
			return err
		}
		now := s.now()
		if retireOthers {
			if _, err := tx.ExecContext(ctx, `UPDATE oauth_signing_keys SET retired_at = ?, publish_until = ?
				WHERE workspace_id = ? AND retired_at IS NULL`, now, publishUntil.Unix(), k.WorkspaceID); err != nil {
				return fmt.Errorf("rotate signing key: %w", err)
			}
		} else {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM oauth_signing_keys WHERE workspace_id = ? AND retired_at IS NULL`,
				k.WorkspaceID).Scan(&n); err != nil {
				return fmt.Errorf("add signing key: %w", err)
			}
			if n > 0 {
				return fmt.Errorf("add signing key: %w", ErrConflict)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_signing_keys (id, workspace_id, alg, master_key_id, private_key, public_jwk, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, k.ID, k.WorkspaceID, k.Alg, k.MasterKeyID, k.Private, string(k.PublicJWK), now); err != nil {
			return fmt.Errorf("add signing key: %w", err)
		}
		if !retireOthers {
			return nil
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: k.WorkspaceID, ActorUserID: actorID, Event: EventOAuthKeyRotated,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"kid": k.ID, "alg": k.Alg, "old_keys_published_until": publishUntil.UTC().Format(time.RFC3339)}})
	})
}

// DeleteStaleOAuth removes authorizations and tokens that expired more
// than horizon ago (the audit trail keeps their story).
func (s *Store) DeleteStaleOAuth(ctx context.Context, horizon time.Duration) (int64, error) {
	cutoff := s.now() - int64(horizon/time.Second)
	var total int64
	for _, table := range []string{"oauth_auth_requests", "oauth_access_tokens", "oauth_refresh_tokens"} {
		res, err := s.exec(ctx, `DELETE FROM `+table+` WHERE expires_at <= ?`, cutoff)
		if err != nil {
			return total, fmt.Errorf("delete stale oauth: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
