package app

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/views"
)

// Error is an error with a status, a code for the JSON API and a message
// safe to show. Err, the cause, is only logged.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error
	// RetryAfter, when set, is sent as the Retry-After header (429, 503).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Code, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// errorf builds an *Error.
func errorf(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

var (
	errUnauthenticated = errorf(http.StatusUnauthorized, "unauthenticated", "Sign in first.")
	errForbidden       = errorf(http.StatusForbidden, "forbidden", "You don't have access to this page.")
	errNotFound        = errorf(http.StatusNotFound, "not_found", "There is nothing here.")
)

// handleError is Echo's error handler: it maps every error to a status and
// a safe message, as HTML or as the API's JSON, and logs the cause of
// anything unexpected.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var e *Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &e):
	case errors.Is(err, db.ErrNotFound):
		e = errNotFound
	case errors.Is(err, db.ErrNotAllowed):
		e = errOwnerProtected // the store's own check of db.MayManage
	case errors.As(err, &he):
		e = &Error{Status: he.Code, Code: strings.ToLower(strings.ReplaceAll(http.StatusText(he.Code), " ", "_")), Message: http.StatusText(he.Code)}
		if he.Code == http.StatusNotFound {
			e = errNotFound
		} else if he.Code == http.StatusMethodNotAllowed {
			e.Message = "That method is not allowed here."
		}
	default:
		e = &Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "Something went wrong. Please try again.", Err: err}
	}
	switch {
	case e.Status == http.StatusServiceUnavailable:
		// Deliberate load shedding (the hashing queue is full): not an error.
		s.logger(c).Warn("request shed", slog.Int("status", e.Status), slog.String("code", e.Code))
	case e.Status >= 500:
		s.logger(c).Error("request failed", slog.Int("status", e.Status), slog.Any("err", err))
	}
	setRetryAfter(c, e)
	if c.Request().Method == http.MethodHead {
		c.NoContent(e.Status)
		return
	}
	if wantsJSON(c) {
		c.JSON(e.Status, map[string]string{"error": e.Code, "message": e.Message})
		return
	}
	s.render(c, e.Status, views.ErrorPage(s.page(c, http.StatusText(e.Status)), e.Status, e.Message))
}

func setRetryAfter(c echo.Context, e *Error) {
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
}

// formError reports whether err is a refusal to show on the form that was
// posted rather than a server fault (503, a full hashing queue, counts as a
// refusal). It sets Retry-After and returns the status to re-render the
// page with: 422 for wrong or malformed input.
func formError(c echo.Context, err error) (*Error, int, bool) {
	var e *Error
	if !errors.As(err, &e) || (e.Status >= 500 && e.Status != http.StatusServiceUnavailable) {
		return nil, 0, false
	}
	setRetryAfter(c, e)
	status := e.Status
	if status == http.StatusBadRequest || status == http.StatusUnauthorized {
		status = http.StatusUnprocessableEntity
	}
	return e, status, true
}
