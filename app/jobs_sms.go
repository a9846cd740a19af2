package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/sms"
	"github.com/gatehouse/gatehouse/db"
)

// The SMS sender delivers sms_outbox as the mail sender delivers the mail
// outbox: a batch is claimed under a lease (no other node sees it), each
// text's claim is renewed just before it goes, and only the holder of the
// claim marks it sent, retried or failed. A refusal that retrying cannot
// change (sms.Permanent: a 4xx) fails the text; anything else (5xx, 429,
// no answer) is retried after sms.Backoff, or after the provider's
// Retry-After when that is longer. A text whose code has expired is not
// sent (ClaimSMSOutbox gives it up), so the retries end with the code.
const (
	smsLease = 30 * time.Second
	smsBatch = 20
	// smsEvery is how often Run looks for texts: a code lives five
	// minutes, so texts cannot wait for the mail's pace.
	smsEvery = 2 * time.Second
)

// SendTexts delivers every due text until none is left, and counts them.
// Without a provider (GATEHOUSE_SMS_URL unset) texts stay queued: the dev
// outbox shows them.
func (j *Jobs) SendTexts(ctx context.Context) (sent, failed int, err error) {
	if j.SMSProvider == nil {
		return 0, 0, nil
	}
	if j.Keys == nil {
		return 0, 0, errors.New("sms sender: no keys to open the texts")
	}
	for {
		claim := auth.NewID()
		msgs, err := j.Store.ClaimSMSOutbox(ctx, claim, smsLease, smsBatch)
		if err != nil {
			return sent, failed, err
		}
		if len(msgs) == 0 {
			return sent, failed, nil
		}
		for _, m := range msgs {
			if ctx.Err() != nil {
				return sent, failed, ctx.Err()
			}
			ok, err := j.sendText(ctx, claim, m)
			if err != nil {
				return sent, failed, err
			}
			switch ok {
			case "sent":
				sent++
			case "failed":
				failed++
			}
		}
	}
}

// sendText sends one claimed text and records the outcome: "sent",
// "retry", "failed" or "" (the claim was lost: someone else has it).
func (j *Jobs) sendText(ctx context.Context, claim string, m db.SMSMessage) (string, error) {
	// Renewed just before sending, and sent for at most half a lease: a
	// text is never sent outside its claim, so never by two nodes.
	if ok, err := j.Store.RenewSMSClaim(ctx, m.ID, claim, smsLease); err != nil {
		return "", err
	} else if !ok {
		j.Log.Info("sms claim taken over", slog.Int64("sms_id", m.ID))
		return "", nil
	}
	body, err := openSMSBody(j.Keys.Decrypt, m)
	if err != nil {
		j.Log.Error("sms cannot be opened", slog.Int64("sms_id", m.ID), slog.Any("err", err))
		j.Metrics.smsDelivery("failed")
		return "failed", j.Store.MarkSMSFailed(ctx, m.ID, claim, "cannot open the text")
	}
	sendCtx, cancel := context.WithTimeout(ctx, smsLease/2)
	providerID, serr := j.SMSProvider.Send(sendCtx, sms.Message{To: m.To, Body: body})
	cancel()
	// Recorded even on shutdown: the provider may have taken it.
	mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), smsLease/2)
	defer mcancel()
	log := j.Log.With(slog.Int64("sms_id", m.ID), slog.Int64("workspace_id", m.WorkspaceID), slog.String("country", m.Country),
		slog.Int("attempt", m.Attempts+1))
	switch {
	case serr == nil:
		j.Metrics.smsDelivery("sent")
		log.Info("sms sent")
		return "sent", j.Store.MarkSMSSent(mctx, m.ID, claim, providerID)
	case sms.Permanent(serr):
		j.Metrics.smsDelivery("failed")
		log.Warn("sms refused", slog.String("err", serr.Error()))
		return "failed", j.Store.MarkSMSFailed(mctx, m.ID, claim, serr.Error())
	}
	wait := max(sms.Backoff(m.Attempts+1), sms.RetryAfter(serr))
	j.Metrics.smsDelivery("retry")
	log.Warn("sms send failed", slog.String("err", serr.Error()), slog.Duration("retry_in", wait))
	if err := j.Store.MarkSMSRetry(mctx, m.ID, claim, j.Store.Now().Add(wait), serr.Error()); err != nil {
		return "", fmt.Errorf("sms retry: %w", err)
	}
	return "retry", nil
}
