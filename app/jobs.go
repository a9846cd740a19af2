package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/sms"
	"github.com/gatehouse/gatehouse/db"
)

// Jobs are the background work of a Gatehouse process: MFA reminder
// emails, outbox delivery and cleanup. Every job is safe with several
// processes running it at once.
type Jobs struct {
	Store *db.Store
	Log   *slog.Logger
	Mail  *mail.Sender // nil when no SMTP server is configured
	// BaseURL is the public URL, for the links in reminder emails.
	BaseURL *url.URL
	// ReminderEvery is how often Run looks for reminder emails due
	// (default one minute).
	ReminderEvery time.Duration
	// CleanupEvery is how often expired rows are removed (default ten
	// minutes).
	CleanupEvery time.Duration
	// Metrics, when set, records when each job last completed (the
	// server's, so that /metrics shows the jobs' lag).
	Metrics *Metrics
	// SMSProvider sends the texts (GATEHOUSE_SMS_URL's Twilio); nil keeps
	// them queued (jobs_sms.go). Keys opens them: the server's keyring.
	SMSProvider sms.Provider
	Keys        *keys.Keyring
}

// mailMaxAttempts is how often the jobs' sender tries a message before
// giving up. mail.NewSender's 12 attempts end about five hours after the
// first (the backoff stops growing at one hour), so an SMTP outage over a
// night would lose every email queued in it, reminders included. 128
// attempts keep retrying for about five days (four at the least with the
// jitter), an MTA's usual queue lifetime.
const mailMaxAttempts = 128

// NewJobs builds the jobs for cfg.
func NewJobs(store *db.Store, log *slog.Logger, cfg Config) *Jobs {
	j := &Jobs{Store: store, Log: log, BaseURL: cfg.BaseURL, ReminderEvery: time.Minute, CleanupEvery: 10 * time.Minute}
	if cfg.JobsInterval > 0 {
		// GATEHOUSE_JOBS_INTERVAL: the reminder and reset scans and the
		// outbox poll (below) at that pace; cleanup keeps its own.
		j.ReminderEvery = cfg.JobsInterval
	}
	if cfg.SMSURL != "" {
		if p, err := sms.NewTwilio(cfg.SMSURL, nil); err == nil {
			j.SMSProvider = p
		} else {
			log.Error("sms disabled", slog.Any("err", err))
		}
	}
	if cfg.SMTPURL != "" {
		if t, err := mail.ParseSMTPURL(cfg.SMTPURL); err == nil {
			j.Mail = mail.NewSender(store, t, log)
			j.Mail.MaxAttempts = mailMaxAttempts
			if cfg.JobsInterval > 0 {
				j.Mail.Interval = cfg.JobsInterval
			}
		} else {
			log.Error("mail disabled", slog.Any("err", err))
		}
	}
	return j
}

// RunResult counts what one pass did.
type RunResult struct {
	RemindersQueued                   int
	MailSent, MailFailed              int
	TextsSent, TextsFailed            int
	SessionsCleaned, ThrottlesCleaned int64
	// MFACleaned counts expired challenges and abandoned enrollments.
	MFACleaned int64
	// OAuthCleaned counts authorizations and application tokens removed a
	// day after they expired.
	OAuthCleaned int64
	// Resets: support cases executed and expired, self-service recoveries
	// executed.
	CasesExecuted, CasesExpired, RecoveriesExecuted int
}

// RunOnce does one pass of every job, in this order: the reminder scan and
// the due resets (support cases, self-service recoveries), so that the
// emails they queue go out in the same pass, then outbox delivery, then
// cleanup. A failing job does not stop the others; their
// errors are returned together.
func (j *Jobs) RunOnce(ctx context.Context) (RunResult, error) {
	var r RunResult
	var errs []error
	var err error
	if r.RemindersQueued, err = j.ScanReminders(ctx); err != nil {
		errs = append(errs, err)
	} else {
		j.Metrics.jobDone("reminders")
	}
	if err := j.resets(ctx, &r); err != nil {
		errs = append(errs, err)
	} else {
		j.Metrics.jobDone("resets")
	}
	if j.Mail != nil {
		if r.MailSent, r.MailFailed, err = j.Mail.RunOnce(ctx); err != nil {
			errs = append(errs, fmt.Errorf("outbox delivery: %w", err))
		} else {
			j.Metrics.jobDone("mail")
		}
	}
	if j.SMSProvider != nil {
		if r.TextsSent, r.TextsFailed, err = j.SendTexts(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sms delivery: %w", err))
		} else {
			j.Metrics.jobDone("sms")
		}
	}
	if err := j.cleanup(ctx, &r); err != nil {
		errs = append(errs, err)
	} else {
		j.Metrics.jobDone("cleanup")
	}
	return r, errors.Join(errs...)
}

// resets carries out the support cases and self-service recoveries whose
// delay has passed and expires unapproved cases, adding the counts to r.
func (j *Jobs) resets(ctx context.Context, r *RunResult) error {
	var errs []error
	var err error
	if r.CasesExecuted, r.CasesExpired, err = j.RunSupportCases(ctx); err != nil {
		errs = append(errs, fmt.Errorf("support cases: %w", err))
	}
	if r.RecoveriesExecuted, err = j.RunSelfRecoveries(ctx); err != nil {
		errs = append(errs, fmt.Errorf("self-service recoveries: %w", err))
	}
	return errors.Join(errs...)
}

// cleanup removes expired sessions, stale throttles, expired challenges,
// abandoned enrollments and ceremonies, and trusted devices, OpenID
// authorizations and tokens a day after they expired (or were revoked), adding the counts to r.
func (j *Jobs) cleanup(ctx context.Context, r *RunResult) error {
	var err error
	if r.SessionsCleaned, err = j.Store.DeleteExpiredSessions(ctx); err != nil {
		return fmt.Errorf("cleanup sessions: %w", err)
	}
	if r.ThrottlesCleaned, err = j.Store.DeleteStaleThrottles(ctx, 24*time.Hour); err != nil {
		return fmt.Errorf("cleanup throttles: %w", err)
	}
	if r.MFACleaned, err = j.Store.DeleteExpiredMFA(ctx); err != nil {
		return fmt.Errorf("cleanup challenges: %w", err)
	}
	n, err := j.Store.DeleteExpiredCeremonies(ctx)
	if err != nil {
		return fmt.Errorf("cleanup ceremonies: %w", err)
	}
	r.MFACleaned += n
	if n, err = j.Store.DeleteStaleTrustedDevices(ctx, 24*time.Hour); err != nil {
		return fmt.Errorf("cleanup trusted devices: %w", err)
	}
	r.MFACleaned += n
	if r.OAuthCleaned, err = j.Store.DeleteStaleOAuth(ctx, 24*time.Hour); err != nil {
		return fmt.Errorf("cleanup oauth: %w", err)
	}
	return nil
}

// Run runs the jobs until ctx ends: mail continuously, reminders and due
// resets every minute, cleanup periodically, each at once on start. Errors are logged and the
// jobs go on; Run returns when every job has stopped. A pass that completes
// without error is recorded in Metrics (the jobs' lag).
func (j *Jobs) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, job := range []string{"reminders", "resets", "cleanup"} {
		j.Metrics.jobStarted(job)
	}
	if j.Mail != nil {
		j.Metrics.jobStarted("mail")
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The sender's own Run, with each completed pass recorded.
			every(ctx, cmp.Or(j.Mail.Interval, 5*time.Second), func() {
				if _, _, err := j.Mail.RunOnce(ctx); err != nil {
					if ctx.Err() == nil {
						j.Log.Error("outbox delivery", slog.Any("err", err))
					}
				} else {
					j.Metrics.jobDone("mail")
				}
			})
		}()
	}
	if j.SMSProvider != nil {
		j.Metrics.jobStarted("sms")
		wg.Add(1)
		go func() {
			defer wg.Done()
			every(ctx, smsEvery, func() {
				if _, _, err := j.SendTexts(ctx); err != nil {
					if ctx.Err() == nil {
						j.Log.Error("sms delivery", slog.Any("err", err))
					}
				} else {
					j.Metrics.jobDone("sms")
				}
			})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		every(ctx, cmp.Or(j.ReminderEvery, time.Minute), func() {
			if _, err := j.ScanReminders(ctx); err != nil {
				if ctx.Err() == nil {
					j.Log.Error("mfa reminders", slog.Any("err", err))
				}
			} else {
				j.Metrics.jobDone("reminders")
			}
			if err := j.resets(ctx, &RunResult{}); err != nil {
				if ctx.Err() == nil {
					j.Log.Error("resets", slog.Any("err", err))
				}
			} else {
				j.Metrics.jobDone("resets")
			}
		})
	}()
	every(ctx, cmp.Or(j.CleanupEvery, 10*time.Minute), func() {
		if err := j.cleanup(ctx, &RunResult{}); err != nil {
			if ctx.Err() == nil {
				j.Log.Error("cleanup", slog.Any("err", err))
			}
		} else {
			j.Metrics.jobDone("cleanup")
		}
	})
}

// every calls f now and then every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
