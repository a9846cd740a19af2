package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

// Jobs are the background work of a Gatehouse process: outbox delivery and
// cleanup. Every job is safe with several processes running it at once.
type Jobs struct {
	Store *db.Store
	Log   *slog.Logger
	Mail  *mail.Sender // nil when no SMTP server is configured
	// CleanupEvery is how often expired rows are removed.
	CleanupEvery time.Duration
}

// NewJobs builds the jobs for cfg.
func NewJobs(store *db.Store, log *slog.Logger, cfg Config) *Jobs {
	j := &Jobs{Store: store, Log: log, CleanupEvery: 10 * time.Minute}
	if cfg.SMTPURL != "" {
		if t, err := mail.ParseSMTPURL(cfg.SMTPURL); err == nil {
			j.Mail = mail.NewSender(store, t, log)
		} else {
			log.Error("mail disabled", slog.Any("err", err))
		}
	}
	return j
}

// RunResult counts what one pass did.
type RunResult struct {
	MailSent, MailFailed              int
	SessionsCleaned, ThrottlesCleaned int64
	// MFACleaned counts expired challenges and abandoned enrollments.
	MFACleaned int64
}

// RunOnce does one pass of every job.
func (j *Jobs) RunOnce(ctx context.Context) (RunResult, error) {
	var r RunResult
	var err error
	if j.Mail != nil {
		if r.MailSent, r.MailFailed, err = j.Mail.RunOnce(ctx); err != nil {
			return r, err
		}
	}
	if r.SessionsCleaned, err = j.Store.DeleteExpiredSessions(ctx); err != nil {
		return r, err
	}
	if r.ThrottlesCleaned, err = j.Store.DeleteStaleThrottles(ctx, 24*time.Hour); err != nil {
		return r, err
	}
	if r.MFACleaned, err = j.Store.DeleteExpiredMFA(ctx); err != nil {
		return r, err
	}
	if n, err := j.Store.DeleteExpiredCeremonies(ctx); err != nil {
		return r, err
	} else {
		r.MFACleaned += n
	}
	return r, nil
}

// Run runs the jobs until ctx ends: mail continuously, cleanup periodically.
func (j *Jobs) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if j.Mail != nil {
		wg.Add(1)
		go func() { defer wg.Done(); j.Mail.Run(ctx) }()
	}
	t := time.NewTicker(j.CleanupEvery)
	defer t.Stop()
	for {
		if _, err := j.Store.DeleteExpiredSessions(ctx); err != nil && ctx.Err() == nil {
			j.Log.Error("cleanup sessions", slog.Any("err", err))
		}
		if _, err := j.Store.DeleteStaleThrottles(ctx, 24*time.Hour); err != nil && ctx.Err() == nil {
			j.Log.Error("cleanup throttles", slog.Any("err", err))
		}
		if _, err := j.Store.DeleteExpiredMFA(ctx); err != nil && ctx.Err() == nil {
			j.Log.Error("cleanup challenges", slog.Any("err", err))
		}
		if _, err := j.Store.DeleteExpiredCeremonies(ctx); err != nil && ctx.Err() == nil {
			j.Log.Error("cleanup ceremonies", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
