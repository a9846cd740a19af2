package app

import (
	"context"
	"math"
	"time"

	"github.com/gatehouse/gatehouse/db"
)

// Enforcement is where a member stands with the workspace's MFA policy.
type Enforcement struct {
	Policy    db.Policy
	Covered   bool      // the requirement applies to the member
	Compliant bool      // the member holds an allowed second factor
	Deadline  time.Time // zero when not covered
	Now       time.Time
	// Reenroll: covered because a support reset or recovery by email
	// removed the member's factors, whatever the policy.
	Reenroll bool
}

// Pending reports whether the member must still enroll an allowed factor.
func (e Enforcement) Pending() bool { return e.Covered && !e.Compliant }

// PastDeadline reports whether the member must enroll and their deadline has
// passed: sign-in leads only to enrollment, which needs an emailed link.
//
// A member reset by support or by recovery by email is past it whatever
// the date: no grace change or extension gives them back a grace period.
func (e Enforcement) PastDeadline() bool {
	return e.Pending() && (e.Reenroll || !e.Now.Before(e.Deadline))
}

// InGrace reports whether the member must enroll and still has time.
func (e Enforcement) InGrace() bool { return e.Pending() && !e.Reenroll && e.Now.Before(e.Deadline) }

// DaysLeft is the number of days before the deadline, rounded up (0 past it).
func (e Enforcement) DaysLeft() int {
	if !e.InGrace() {
		return 0
	}
	return int(math.Ceil(e.Deadline.Sub(e.Now).Hours() / 24))
}

// enforcement reads the policy and where member u stands with it.
func (s *Server) enforcement(ctx context.Context, workspaceID int64, u db.User) (Enforcement, error) {
	p, err := s.store.Policy(ctx, workspaceID)
	if err != nil {
		return Enforcement{}, err
	}
	e := Enforcement{Policy: p, Deadline: u.MFADeadline, Now: s.store.Now()}
	if !u.MFADeadline.IsZero() {
		// Reset by support or by recovery by email: they set up a factor
		// again whatever the policy, at once.
		if e.Reenroll, err = s.store.MustReenroll(ctx, workspaceID, u.ID); err != nil {
			return Enforcement{}, err
		}
	}
	e.Covered = !u.MFADeadline.IsZero() && (p.AppliesTo(u.Role) || e.Reenroll)
	if e.Covered {
		if e.Compliant, err = s.store.Compliant(ctx, workspaceID, u.ID, p); err != nil {
			return Enforcement{}, err
		}
	}
	return e, nil
}
