package main

// The JSON API calls the bench makes (docs: /work/shared/API.md, "JSON API,
// version 1"), on one workspace of one loopback server.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// apiClient calls /t/{slug}/api/v1 on a loopback server.
type apiClient struct {
	base   string // http://127.0.0.1:PORT/t/SLUG/api/v1
	origin string // the WebAuthn origin the server expects
	http   *http.Client
}

func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// apiError is an answer other than the one wanted.
type apiError struct {
	call   string
	status int
	body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: status %d %s", e.call, e.status, strings.TrimSpace(e.body))
}

// call sends a request (a JSON body unless body is []byte with contentType
// set) and decodes a 200 answer into out. Any other status is an
// *apiError.
func (a *apiClient) call(method, path, token string, body any, out any) error {
	return a.send(method, path, token, "application/json", body, out)
}

func (a *apiClient) send(method, path, token, contentType string, body any, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode != http.StatusOK {
		return &apiError{call: method + " " + path, status: res.StatusCode, body: truncate(string(data), 300)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

type loginAnswer struct {
	MFARequired  bool     `json:"mfa_required"`
	MFAToken     string   `json:"mfa_token"`
	Methods      []string `json:"methods"`
	SessionToken string   `json:"session_token"`
	AAL          string   `json:"aal"`
}

func (a *apiClient) login(email, password string) (loginAnswer, error) {
	var out loginAnswer
	err := a.call(http.MethodPost, "/login", "", map[string]string{"email": email, "password": password}, &out)
	return out, err
}

// mfaToken signs in with the password and returns the pending second
// step's token.
func (a *apiClient) mfaToken(email, password string) (string, error) {
	out, err := a.login(email, password)
	if err != nil {
		return "", err
	}
	if !out.MFARequired || out.MFAToken == "" {
		return "", fmt.Errorf("POST /login for %s: no second step asked for (aal %q)", email, out.AAL)
	}
	return out.MFAToken, nil
}

// session signs in a member without a second factor: the aal1 session.
func (a *apiClient) session(email, password string) (string, error) {
	out, err := a.login(email, password)
	if err != nil {
		return "", err
	}
	if out.MFARequired || out.SessionToken == "" {
		return "", fmt.Errorf("POST /login for %s: want a session without a second step, got mfa_required=%v", email, out.MFARequired)
	}
	return out.SessionToken, nil
}

// enrollTOTP sets up and confirms an authenticator app on the session; it
// returns the secret, the step whose code confirmed it (the server keeps
// it as used), the recovery codes (first factor only) and the session's
// new token.
func (a *apiClient) enrollTOTP(token string) (secret string, step int64, codes []string, newToken string, err error) {
	var setup struct {
		Secret string `json:"secret"`
	}
	if err = a.call(http.MethodPost, "/mfa/totp/setup", token, nil, &setup); err != nil {
		return
	}
	if setup.Secret == "" {
		return "", 0, nil, "", fmt.Errorf("POST /mfa/totp/setup: no secret")
	}
	now := time.Now()
	code, err := totpCode(setup.Secret, now)
	if err != nil {
		return
	}
	var verify struct {
		Enabled       bool     `json:"enabled"`
		RecoveryCodes []string `json:"recovery_codes"`
		SessionToken  string   `json:"session_token"`
	}
	if err = a.call(http.MethodPost, "/mfa/totp/verify-setup", token, map[string]string{"code": code}, &verify); err != nil {
		return
	}
	if !verify.Enabled {
		return "", 0, nil, "", fmt.Errorf("POST /mfa/totp/verify-setup: not enabled")
	}
	if verify.SessionToken != "" {
		token = verify.SessionToken
	}
	return setup.Secret, totpStep(now), verify.RecoveryCodes, token, nil
}

type ceremony struct {
	Ceremony string          `json:"ceremony"`
	Options  json.RawMessage `json:"options"`
}

// registerKey registers a new software key on the session (which must not
// need a step-up: no second factor yet, or one passed just now). It
// returns the key, the recovery codes (first factor only) and the
// session's new token.
func (a *apiClient) registerKey(token string) (*softKey, []string, string, error) {
	var begin ceremony
	if err := a.call(http.MethodPost, "/mfa/webauthn/register/begin", token, map[string]string{"name": "bench key"}, &begin); err != nil {
		return nil, nil, "", err
	}
	key, err := newSoftKey()
	if err != nil {
		return nil, nil, "", err
	}
	cred, err := key.attest(begin.Options, a.origin)
	if err != nil {
		return nil, nil, "", err
	}
	var fin struct {
		ID            int64    `json:"id"`
		RecoveryCodes []string `json:"recovery_codes"`
		SessionToken  string   `json:"session_token"`
	}
	if err := a.call(http.MethodPost, "/mfa/webauthn/register/finish", token,
		map[string]any{"ceremony": begin.Ceremony, "credential": cred}, &fin); err != nil {
		return nil, nil, "", err
	}
	if fin.SessionToken != "" {
		token = fin.SessionToken
	}
	return key, fin.RecoveryCodes, token, nil
}

// importMembers posts a CSV file to /admin/members/import.
func (a *apiClient) importMembers(token string, csv []byte) (imported int, err error) {
	var out struct {
		Imported int `json:"imported"`
		Existing int `json:"existing"`
	}
	if err := a.send(http.MethodPost, "/admin/members/import", token, "text/csv", csv, &out); err != nil {
		return 0, err
	}
	return out.Imported, nil
}
