// Package apptest starts the real Gatehouse application on a real SQLite
// file behind httptest, with a clock the test moves and an HTTP client that
// keeps cookies and does not follow redirects.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// FastHash is a cheap argon2id setting for tests; production uses
// auth.DefaultParams.
var FastHash = auth.Params{Memory: 64, Time: 1, Threads: 1}

// Env is one running application.
type Env struct {
	T      testing.TB
	Store  *db.Store
	Clock  *dbtest.Clock
	Keys   *keys.Keyring
	Config app.Config
	Server *app.Server
	HTTP   *httptest.Server
	logs   *lockedWriter
}

// Logs returns everything the application logged so far, to check that no
// secret is ever written.
func (e *Env) Logs() string {
	e.logs.mu.Lock()
	defer e.logs.mu.Unlock()
	return e.logs.buf.String()
}

// New starts an application in dev mode over http. Options adjust the
// config before the server is built. Nothing is shared between two Envs
// (database file, server, clock, keys), so the tests using them call
// t.Parallel.
func New(t testing.TB, opts ...func(*app.Config)) *Env {
	t.Helper()
	store, clock := dbtest.New(t)
	e := &Env{T: t, Store: store, Clock: clock, Keys: keys.New(bytes.Repeat([]byte{7}, 32)), logs: &lockedWriter{buf: &bytes.Buffer{}}}
	e.HTTP = httptest.NewUnstartedServer(nil)
	base, _ := app.ParseBaseURL("http://" + e.HTTP.Listener.Addr().String())
	e.Config = app.Config{Addr: e.HTTP.Listener.Addr().String(), DataDir: t.TempDir(), BaseURL: base, Dev: true, PasswordHash: FastHash}
	for _, o := range opts {
		o(&e.Config)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, nil))
	e.Server = app.NewServer(e.Config, log, store, e.Keys)
	e.HTTP.Config.Handler = e.Server
	e.HTTP.Start()
	t.Cleanup(e.HTTP.Close)
	t.Cleanup(func() {
		// A failed test shows what the server logged at ERROR: a 500's
		// cause is only there.
		if !t.Failed() {
			return
		}
		for line := range strings.Lines(e.Logs()) {
			if strings.Contains(line, `"level":"ERROR"`) {
				t.Logf("server: %s", strings.TrimSpace(line))
			}
		}
	})
	return e
}

// Workspace creates a workspace.
func (e *Env) Workspace(slug, name string) db.Workspace {
	e.T.Helper()
	ws, err := e.Store.CreateWorkspace(context.Background(), slug, name)
	if err != nil {
		e.T.Fatalf("create workspace %s: %v", slug, err)
	}
	return ws
}

// User creates a member with a password.
func (e *Env) User(ws db.Workspace, email, role, password string) db.User {
	e.T.Helper()
	hash, err := auth.NewHasher(e.Config.PasswordHash).Hash(context.Background(), password)
	if err != nil {
		e.T.Fatal(err)
	}
	u, err := e.Store.CreateUser(context.Background(), ws.ID, email, role, hash, db.Meta{}, 0)
	if err != nil {
		e.T.Fatalf("create user %s: %v", email, err)
	}
	return u
}

// Client is a browser-like client: it keeps cookies, sends the CSRF token
// with forms and does not follow redirects.
type Client struct {
	*http.Client
	Env *Env
	// Header is added to every request.
	Header http.Header
}

// Client returns a new client with an empty cookie jar.
func (e *Env) Client() *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{Env: e, Header: http.Header{}, Client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Response is a read response.
type Response struct {
	*http.Response
	Body []byte
}

// Doc parses the body as HTML.
func (r *Response) Doc() *goquery.Document {
	d, err := goquery.NewDocumentFromReader(bytes.NewReader(r.Body))
	if err != nil {
		panic(err)
	}
	return d
}

// JSON decodes the body.
func (r *Response) JSON() map[string]any {
	var m map[string]any
	json.Unmarshal(r.Body, &m)
	return m
}

// Do sends req and reads the response.
func (c *Client) Do(req *http.Request) *Response {
	c.Env.T.Helper()
	for k, v := range c.Header {
		req.Header[k] = v
	}
	res, err := c.Client.Do(req)
	if err != nil {
		c.Env.T.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &Response{Response: res, Body: b}
}

// URL makes a path absolute.
func (c *Client) URL(path string) string { return c.Env.HTTP.URL + path }

// Get fetches a path.
func (c *Client) Get(path string) *Response {
	c.Env.T.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.URL(path), nil)
	return c.Do(req)
}

// CSRF returns the client's CSRF token, fetching a page first if it has
// none yet.
func (c *Client) CSRF() string {
	c.Env.T.Helper()
	if tok := c.cookie("gh_csrf"); tok != "" {
		return tok
	}
	c.Get("/")
	return c.cookie("gh_csrf")
}

func (c *Client) cookie(name string) string {
	u, _ := url.Parse(c.Env.HTTP.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// Cookie returns the value of a cookie the client holds.
func (c *Client) Cookie(name string) string { return c.cookie(name) }

// SetCookie puts a cookie in the jar.
func (c *Client) SetCookie(name, value string) {
	u, _ := url.Parse(c.Env.HTTP.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// PostForm posts a form with the CSRF token added.
func (c *Client) PostForm(path string, form url.Values) *Response {
	c.Env.T.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["_csrf"]; !ok {
		form.Set("_csrf", c.CSRF())
	}
	return c.PostRaw(path, form)
}

// PostRaw posts a form exactly as given (no CSRF token added).
func (c *Client) PostRaw(path string, form url.Values) *Response {
	c.Env.T.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.URL(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}

// Login signs in through the sign-in form and fails the test unless it
// redirects.
func (c *Client) Login(slug, email, password string) *Response {
	c.Env.T.Helper()
	res := c.PostForm("/t/"+slug+"/login", url.Values{"email": {email}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther {
		c.Env.T.Fatalf("login %s in %s: status %d, want 303\n%s", email, slug, res.StatusCode, res.Body)
	}
	return res
}

// API sends a JSON request with an optional bearer token; body may be a
// string (sent as is) or a value to encode.
func (c *Client) API(method, path, token string, body any) *Response {
	c.Env.T.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.URL(path), r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.Do(req)
}

// APILogin signs in through the JSON API and returns the session token.
func (c *Client) APILogin(slug, email, password string) string {
	c.Env.T.Helper()
	res := c.API(http.MethodPost, "/t/"+slug+"/api/v1/login", "", map[string]string{"email": email, "password": password})
	if res.StatusCode != http.StatusOK {
		c.Env.T.Fatalf("api login %s: status %d: %s", email, res.StatusCode, res.Body)
	}
	tok, _ := res.JSON()["session_token"].(string)
	if tok == "" {
		c.Env.T.Fatalf("api login %s: no session_token in %s", email, res.Body)
	}
	return tok
}

type lockedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
