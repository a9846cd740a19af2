package app

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// A route's facts are declared where the route is (routes.go) and read by
// the middleware on the root: nothing else decides who may call a route,
// whether it needs a fresh second factor, whether a confined member may
// use it, whether it answers JSON or where it exists.
type route struct {
	method, path string
	access       access
	where        where
	// api: the JSON API (bearer token only, never cookies, so no CSRF
	// token; JSON answers).
	api bool
	// json: a page's endpoint for fetch calls (the WebAuthn ceremonies):
	// its refusals are JSON too.
	json bool
	// stepUp: the route changes security and needs a second factor passed
	// within StepUpWindow (stepUpFresh); skip, when set, names the requests
	// of the route that change nothing.
	stepUp bool
	skip   func(echo.Context) bool
	// back is where a page returns after the step-up (":id" filled in).
	back string
	// confined: usable by a member confined to enrollment (past the
	// deadline); unlocked: once the emailed link unlocked enrollment;
	// enrolls: the factor the route enrolls (unlocked too, and refused
	// when the policy does not allow the method).
	confined, unlocked bool
	enrolls            string
	// noCookies: an operational route (health checks, static files) that
	// sets no cookie, not even the CSRF token's.
	noCookies bool
	// protocol: an OAuth 2.0 / OpenID Connect endpoint (oidc.go). The
	// protocol protects it (PKCE, client authentication, bearer tokens,
	// state), not a CSRF token: relying parties post to it from their own
	// sites. Its refusals are the protocol's JSON.
	protocol bool
	// onClient: the route acts on the workspace's application named by
	// :id: another workspace's (or a deleted) one is a 404 before anything
	// else, step-up included.
	onClient bool
	// onMember: the route acts on the workspace's member named by :id:
	// loaded first (an id of another workspace is a 404), and a change to
	// an owner needs an owner (db.MayManage).
	onMember bool
	// largeBody: the route takes a body up to maxLargeBody (an import
	// file) instead of every other route's 64 KB.
	largeBody bool
}

// access is who may call a route.
type access uint8

const (
	accessUnset  access = iota
	accessPublic        // no session; the handler checks its own token or pending state
	accessMember        // a member session of the request's workspace
	accessAdmin         // an owner or admin of the workspace
	accessStaff         // a staff session of the support console
)

// where is where a route exists.
type where uint8

const (
	inWorkspaces where = iota // the workspaces (/t/{slug}, {slug}.{base domain})
	inSupport                 // the support console only (/support)
	inBoth                    // both
	inGlobal                  // outside any workspace (health, assets, the home page)
)

// A fact is one thing a route declares about itself.
type fact func(*route)

var (
	public      fact = func(r *route) { r.access = accessPublic }
	member      fact = func(r *route) { r.access = accessMember }
	admin       fact = func(r *route) { r.access = accessAdmin }
	staff       fact = func(r *route) { r.access, r.where = accessStaff, inSupport }
	global      fact = func(r *route) { r.where = inGlobal }
	alsoSupport fact = func(r *route) { r.where = inBoth }
	supportOnly fact = func(r *route) { r.where = inSupport }
	api         fact = func(r *route) { r.api = true }
	jsonOut     fact = func(r *route) { r.json = true }
	stepUp      fact = func(r *route) { r.stepUp = true }
	confined    fact = func(r *route) { r.confined = true }
	unlocked    fact = func(r *route) { r.unlocked = true }
	onMember    fact = func(r *route) { r.onMember = true }
	onClient    fact = func(r *route) { r.onClient = true }
	noCookies   fact = func(r *route) { r.noCookies = true }
	oauth       fact = func(r *route) { r.protocol = true }
	largeBody   fact = func(r *route) { r.largeBody = true }
)

// back names the page a step-up returns to.
func back(path string) fact { return func(r *route) { r.back = path } }

// enrolls marks a route that enrolls the factor method.
func enrolls(method string) fact {
	return func(r *route) { r.enrolls, r.unlocked = method, true }
}

// stepUpUnless needs a fresh second factor except for the requests skip
// names (they change nothing).
func stepUpUnless(skip func(echo.Context) bool) fact {
	return func(r *route) { r.stepUp, r.skip = true, skip }
}

// router registers routes with their facts.
type router struct {
	e      *echo.Echo
	routes map[string]*route
}

func (r *router) get(path string, h echo.HandlerFunc, facts ...fact) {
	r.add(http.MethodGet, path, h, facts)
}
func (r *router) post(path string, h echo.HandlerFunc, facts ...fact) {
	r.add(http.MethodPost, path, h, facts)
}
func (r *router) put(path string, h echo.HandlerFunc, facts ...fact) {
	r.add(http.MethodPut, path, h, facts)
}
func (r *router) delete(path string, h echo.HandlerFunc, facts ...fact) {
	r.add(http.MethodDelete, path, h, facts)
}
func (r *router) patch(path string, h echo.HandlerFunc, facts ...fact) {
	r.add(http.MethodPatch, path, h, facts)
}

// add registers a route. A route that does not say who may call it, or
// whose facts contradict each other, is a programming error: the server
// does not start.
func (r *router) add(method, path string, h echo.HandlerFunc, facts []fact) {
	rt := &route{method: method, path: path}
	for _, f := range facts {
		f(rt)
	}
	key := method + " " + path
	switch {
	case rt.access == accessUnset:
		panic(fmt.Sprintf("route %s: who may call it? (public, member, admin, staff)", key))
	case rt.stepUp && rt.access == accessPublic:
		panic(fmt.Sprintf("route %s: a public route cannot need a step-up", key))
	case rt.stepUp && !rt.api && !rt.json && rt.back == "":
		panic(fmt.Sprintf("route %s: a page that needs a step-up says where to come back (back)", key))
	case rt.protocol && rt.access != accessPublic:
		panic(fmt.Sprintf("route %s: protocol endpoints check their own credentials (public)", key))
	case rt.onClient && rt.access != accessAdmin:
		panic(fmt.Sprintf("route %s: only admin routes act on applications", key))
	case rt.onMember && rt.access != accessAdmin:
		panic(fmt.Sprintf("route %s: only admin routes act on members", key))
	case rt.where == inGlobal && rt.access != accessPublic:
		panic(fmt.Sprintf("route %s: routes outside workspaces are public", key))
	case rt.where != inGlobal && !strings.HasPrefix(path, "/t/:slug"):
		panic(fmt.Sprintf("route %s: workspace routes live under /t/:slug", key))
	case r.routes[key] != nil:
		panic(fmt.Sprintf("route %s declared twice", key))
	}
	r.routes[key] = rt
	r.e.Add(method, path, h)
}

// matchRoute finds the matched route's facts for the middleware after it.
// A request that matched no route of ours (Echo's 404 and 405) has none.
func (s *Server) matchRoute(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if rt := s.routeTable[c.Request().Method+" "+c.Path()]; rt != nil {
			c.Set("route", rt)
		}
		return next(c)
	}
}

// maxLargeBody is the body limit of a largeBody route: a file of about
// 100,000 members.
const maxLargeBody = "20M"

// bodyLimit refuses a body over 64 KB with 413, or over maxLargeBody on a
// largeBody route, before the handler reads it all.
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	small := middleware.BodyLimit("64K")(next)
	large := middleware.BodyLimit(maxLargeBody)(next)
	return func(c echo.Context) error {
		if rt := routeOf(c); rt != nil && rt.largeBody {
			return large(c)
		}
		return small(c)
	}
}

func routeOf(c echo.Context) *route {
	rt, _ := c.Get("route").(*route)
	return rt
}

// isAPI reports whether the request is for the JSON API. A request that
// matched no route is judged by its path, only to answer its 404 in JSON.
func isAPI(c echo.Context) bool {
	if rt := routeOf(c); rt != nil {
		return rt.api
	}
	return strings.Contains(c.Request().URL.Path, "/api/v1/")
}

// wantsJSON reports whether errors are answered as JSON: on the API, and on
// the pages' JSON endpoints (the WebAuthn ceremonies' fetch calls).
func wantsJSON(c echo.Context) bool {
	if rt := routeOf(c); rt != nil && (rt.json || rt.protocol) {
		return true
	}
	return isAPI(c)
}

// authorize is the default-deny gate. It reads the matched route's facts:
// a public route goes to its handler; any other needs a session of the
// request's workspace (the policy's enforcement applied), the role the
// route names, the member it acts on (scoped, owners guarded) and, for a
// security change, a fresh second factor.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rt := routeOf(c)
		if rt == nil || rt.access == accessPublic {
			return next(c) // no route of ours: Echo's 404 or 405
		}
		a := authFrom(c)
		if a == nil {
			if rt.api || tenants.FromContext(c.Request().Context()) == nil {
				return errUnauthenticated
			}
			return s.redirectToLogin(c)
		}
		if err := s.enforce(c, rt, a); err != nil || c.Response().Committed {
			return err
		}
		if rt.access == accessAdmin && !a.User.IsAdmin() {
			return errForbidden
		}
		if rt.onMember {
			m, err := s.loadMember(c)
			if err != nil {
				return err // another workspace's id: 404, whatever else
			}
			if rt.method != http.MethodGet && !db.MayManage(a.User, m) {
				return errOwnerProtected
			}
			c.Set("member", m)
		}
		if rt.onClient {
			id, err := strconv.ParseInt(c.Param("id"), 10, 64)
			if err != nil {
				return errNotFound
			}
			if _, err := s.store.OAuthClient(c.Request().Context(), a.User.WorkspaceID, id); err != nil {
				return err // another workspace's id: 404
			}
		}
		if rt.stepUp && (rt.skip == nil || !rt.skip(c)) {
			step, err := s.needsStepUp(c, rt, a)
			if err != nil {
				return err
			}
			if step {
				return s.askStepUp(c, rt)
			}
		}
		return next(c)
	}
}

// targetMember is the member an onMember route acts on.
func targetMember(c echo.Context) db.User {
	m, _ := c.Get("member").(db.User)
	return m
}

// needsStepUp reports whether a security change must wait for a fresh
// second factor: when the member has one and has not used it within the
// step-up window. A member without a second factor re-verifies with the
// password where the action asks for it (the first factor's enrollment,
// the password change). An admin's or staff member's change always needs
// a fresh second factor: one without must enroll first.
func (s *Server) needsStepUp(c echo.Context, rt *route, a *Auth) (bool, error) {
	if a.StepUpFresh(s.now()) {
		return false, nil
	}
	if rt.access == accessAdmin || rt.access == accessStaff {
		return true, nil
	}
	return s.store.HasSecondFactor(c.Request().Context(), a.User.WorkspaceID, a.User.ID)
}

// askStepUp refuses a change until the session re-verifies: the API and
// the pages' fetch endpoints answer 403 step_up_required; a page goes to
// verify and then back to the route's page.
func (s *Server) askStepUp(c echo.Context, rt *route) error {
	if rt.api || rt.json {
		return errStepUpRequired
	}
	t := tenants.FromContext(c.Request().Context())
	back := rt.back
	for _, name := range c.ParamNames() {
		if name != "slug" {
			back = strings.ReplaceAll(back, ":"+name, urlPathEscape(c.Param(name)))
		}
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/verify?next="+urlQueryEscape(t.Base+back))
}

// RouteFacts describes a route's declared facts, for the tests that walk
// every route and prove each fact with a real request.
type RouteFacts struct {
	Public, Admin, Staff  bool
	API, JSON             bool
	StepUp, OnMember      bool
	OnClient              bool
	Confined, Unlocked    bool
	Enrolls               string
	InWorkspaces, Support bool
}

// Route returns the facts of the route (method and pattern).
func (s *Server) Route(method, path string) (RouteFacts, bool) {
	rt := s.routeTable[method+" "+path]
	if rt == nil {
		return RouteFacts{}, false
	}
	return RouteFacts{
		Public: rt.access == accessPublic, Admin: rt.access == accessAdmin, Staff: rt.access == accessStaff,
		API: rt.api, JSON: rt.json, StepUp: rt.stepUp, OnMember: rt.onMember, OnClient: rt.onClient,
		Confined: rt.confined, Unlocked: rt.unlocked, Enrolls: rt.enrolls,
		InWorkspaces: rt.where == inWorkspaces || rt.where == inBoth,
		Support:      rt.where == inSupport || rt.where == inBoth,
	}, true
}
