package app

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// The admin API's applications (OAuth clients): list, register, read,
// change, re-key, delete. Reads need an admin session; changes need
// step-up (route facts) and are audited by the store. An id of another
// workspace is a 404 like an unknown one. A client's secret is in the
// answer that makes it, once, and never again.

var errPublicClient = errorf(http.StatusConflict, "public_client", "An spa or native application has no secret (it uses PKCE).")

// apiClient is an application as the API shows it: never its secret or
// the secret's hash.
type apiClient struct {
	ID                     int64    `json:"id"`
	ClientID               string   `json:"client_id"`
	Name                   string   `json:"name"`
	Type                   string   `json:"type"`
	Confidential           bool     `json:"confidential"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	Scopes                 []string `json:"scopes"`
	FirstParty             bool     `json:"first_party"`
	CreatedAt              string   `json:"created_at"`
	UpdatedAt              string   `json:"updated_at"`
	SecretRotatedAt        *string  `json:"secret_rotated_at"`
	// ClientSecret is set only in the answer that created it.
	ClientSecret string `json:"client_secret,omitempty"`
}

func toAPIClient(c db.OAuthClient, secret string) apiClient {
	out := apiClient{ID: c.ID, ClientID: c.ClientID, Name: c.Name, Type: c.Kind, Confidential: c.Confidential(),
		RedirectURIs: nonNil(c.RedirectURIs), PostLogoutRedirectURIs: nonNil(c.PostLogoutRedirectURIs), Scopes: nonNil(c.Scopes),
		FirstParty: c.FirstParty, CreatedAt: rfc3339(c.CreatedAt), UpdatedAt: rfc3339(c.UpdatedAt), ClientSecret: secret}
	if !c.SecretRotatedAt.IsZero() {
		v := rfc3339(c.SecretRotatedAt)
		out.SecretRotatedAt = &v
	}
	return out
}

// clientAPIError maps a refused registration to the API's 400
// invalid_{field}, naming every refused field in the message.
func clientAPIError(err error) error {
	var ce *ClientError
	if errors.As(err, &ce) && len(ce.Fields) > 0 {
		msgs := make([]string, len(ce.Fields))
		for i, f := range ce.Fields {
			msgs[i] = f.Field + " " + f.Message + "."
		}
		return errorf(http.StatusBadRequest, "invalid_"+ce.Fields[0].Field, strings.Join(msgs, " "))
	}
	return err
}

// clientIDParam parses the :id of an application route; anything but a
// positive decimal id is a 404.
func clientIDParam(c echo.Context) (int64, error) {
	id, ok := memberIDParam(c)
	if !ok {
		return 0, errNotFound
	}
	return id, nil
}

// handleAPIAdminClients is GET /admin/clients.
func (s *Server) handleAPIAdminClients(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cs, err := s.store.OAuthClients(ctx, t.ID)
	if err != nil {
		return err
	}
	out := make([]apiClient, 0, len(cs))
	for _, cl := range cs {
		out = append(out, toAPIClient(cl, ""))
	}
	return c.JSON(http.StatusOK, map[string]any{"clients": out})
}

type apiClientRequest struct {
	Name                   *string   `json:"name"`
	Type                   *string   `json:"type"`
	RedirectURIs           *[]string `json:"redirect_uris"`
	PostLogoutRedirectURIs *[]string `json:"post_logout_redirect_uris"`
	Scopes                 *[]string `json:"scopes"`
	FirstParty             *bool     `json:"first_party"`
}

// handleAPIAdminClientCreate is POST /admin/clients: 201 with the
// application and, for a web application, its client_secret (only here).
func (s *Server) handleAPIAdminClientCreate(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	var req apiClientRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in := ClientInput{}
	if req.Name != nil {
		in.Name = *req.Name
	}
	if req.Type != nil {
		in.Type = *req.Type
	}
	if req.RedirectURIs != nil {
		in.RedirectURIs = *req.RedirectURIs
	}
	if req.PostLogoutRedirectURIs != nil {
		in.PostLogoutRedirectURIs = *req.PostLogoutRedirectURIs
	}
	if req.Scopes != nil {
		in.Scopes = nonNil(*req.Scopes) // given but empty: refused (openid is required), not the default
	}
	if req.FirstParty != nil {
		in.FirstParty = *req.FirstParty
	}
	cl, secret, err := s.CreateClient(ctx, t.ID, authFrom(c).User.ID, in, meta(c))
	if err != nil {
		return clientAPIError(err)
	}
	return c.JSON(http.StatusCreated, toAPIClient(cl, secret))
}

// handleAPIAdminClient is GET /admin/clients/{id}.
func (s *Server) handleAPIAdminClient(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := clientIDParam(c)
	if err != nil {
		return err
	}
	cl, err := s.store.OAuthClient(ctx, tenants.FromContext(ctx).ID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAPIClient(cl, ""))
}

// handleAPIAdminClientUpdate is PATCH /admin/clients/{id}: the fields
// given change, the others stay. The type cannot change.
func (s *Server) handleAPIAdminClientUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	id, err := clientIDParam(c)
	if err != nil {
		return err
	}
	var req apiClientRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Type != nil {
		cur, err := s.store.OAuthClient(ctx, t.ID, id)
		if err != nil {
			return err
		}
		if *req.Type != cur.Kind {
			return errorf(http.StatusBadRequest, "invalid_type", "type cannot change: register a new application instead.")
		}
	}
	cl, err := s.UpdateClient(ctx, t.ID, authFrom(c).User.ID, id, ClientPatch{Name: req.Name, RedirectURIs: req.RedirectURIs,
		PostLogoutRedirectURIs: req.PostLogoutRedirectURIs, Scopes: req.Scopes, FirstParty: req.FirstParty}, meta(c))
	if err != nil {
		return clientAPIError(err)
	}
	return c.JSON(http.StatusOK, toAPIClient(cl, ""))
}

// handleAPIAdminClientDelete is DELETE /admin/clients/{id}: 204; the
// application's tokens stop working at once.
func (s *Server) handleAPIAdminClientDelete(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := clientIDParam(c)
	if err != nil {
		return err
	}
	if err := s.DeleteClient(ctx, tenants.FromContext(ctx).ID, authFrom(c).User.ID, id, meta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handleAPIAdminClientSecret is POST /admin/clients/{id}/secret: a new
// secret for a web application, in this answer only; the old one stops
// working at once. 409 public_client for an spa or native application.
func (s *Server) handleAPIAdminClientSecret(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := clientIDParam(c)
	if err != nil {
		return err
	}
	cl, secret, err := s.RotateClientSecret(ctx, tenants.FromContext(ctx).ID, authFrom(c).User.ID, id, meta(c))
	if errors.Is(err, ErrPublicClient) {
		return errPublicClient
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAPIClient(cl, secret))
}
