// Package mail writes Gatehouse's emails and delivers the outbox over SMTP.
package mail

import (
	"bytes"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/gatehouse/gatehouse/db"
)

// Message kinds, stored with each outbox row.
const (
	KindInvitation            = "invitation"
	KindPasswordChanged       = "password_changed"
	KindTOTPEnabled           = "totp_enabled"
	KindTOTPRemoved           = "totp_removed"
	KindRecoveryRegen         = "recovery_codes_regenerated"
	KindRecoveryUsed          = "recovery_code_used"
	KindMFALocked             = "mfa_locked"
	KindMFADisabled           = "mfa_disabled"
	KindWebAuthnAdded         = "webauthn_added"
	KindWebAuthnRemoved       = "webauthn_removed"
	KindMFAResetByAdmin       = "mfa_reset_by_admin"
	KindMFAEnforced           = "mfa_enforced"            // the requirement now applies to the member
	KindMFAReminder           = "mfa_reminder"            // N days left before the deadline
	KindMFAEnrollLink         = "mfa_enroll_link"         // past the deadline: the link that lets the member enroll
	KindSupportResetScheduled = "support_reset_scheduled" // a support reset is scheduled; the cancel link
	KindSupportResetDone      = "support_reset_done"      // a support reset was carried out
	KindRecoveryLink          = "recovery_link"           // self-service recovery: the link that starts it
	KindRecoveryStarted       = "recovery_started"        // self-service recovery: the waiting period, the cancel link
	KindRecoveryDone          = "recovery_done"           // self-service recovery: the reset was carried out
	KindSMSAdded              = "sms_added"               // a phone was verified for text-message codes
	KindSMSRemoved            = "sms_removed"             // the phone was removed
	KindSMSCap                = "sms_cap"                 // to owners and admins: a workspace SMS cap refused a text
)

type letter struct {
	Subject string
	Text    string // text/template
	HTML    string // html/template, the body inside the frame
}

var letters = map[string]letter{
	KindInvitation: {
		Subject: "You're invited to {{.Workspace}}",
		Text: `Hello,

{{.Inviter}} invited you to join {{.Workspace}} on Gatehouse as {{.Role}}.

To accept, open this link and choose a password:

{{.Link}}

The link works once and expires on {{.Expires}}. If you weren't expecting
this invitation, you can ignore this email.
`,
		HTML: `<p>Hello,</p>
<p>{{.Inviter}} invited you to join <strong>{{.Workspace}}</strong> on Gatehouse as {{.Role}}.</p>
<p><a href="{{.Link}}">Accept the invitation</a></p>
<p>Or paste this link into your browser:<br>{{.Link}}</p>
<p>The link works once and expires on {{.Expires}}. If you weren't expecting this invitation, you can ignore this email.</p>`,
	},
	KindPasswordChanged: {
		Subject: "Your {{.Workspace}} password was changed",
		Text: `Hello,

The password of your {{.Workspace}} account ({{.Email}}) was changed on
{{.When}} from {{.IP}}. Every other session was signed out.

If this was you, there is nothing to do. If it wasn't, contact your
workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>The password of your <strong>{{.Workspace}}</strong> account ({{.Email}}) was changed on {{.When}} from {{.IP}}. Every other session was signed out.</p>
<p>If this was you, there is nothing to do. If it wasn't, contact your workspace administrator at once.</p>`,
	},
	KindTOTPEnabled: {
		Subject: "An authenticator app was added to your {{.Workspace}} account",
		Text: `Hello,

An authenticator app was set up as a second factor for your {{.Workspace}}
account ({{.Email}}) on {{.When}} from {{.IP}}.

If this was you, there is nothing to do. If it wasn't, someone knows your
password: contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>An authenticator app was set up as a second factor for your <strong>{{.Workspace}}</strong> account ({{.Email}}) on {{.When}} from {{.IP}}.</p>
<p>If this was you, there is nothing to do. If it wasn't, someone knows your password: contact your workspace administrator at once.</p>`,
	},
	KindTOTPRemoved: {
		Subject: "The authenticator app was removed from your {{.Workspace}} account",
		Text: `Hello,

The authenticator app of your {{.Workspace}} account ({{.Email}}) was removed
on {{.When}} from {{.IP}}. Every other session was signed out.

If this wasn't you, contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>The authenticator app of your <strong>{{.Workspace}}</strong> account ({{.Email}}) was removed on {{.When}} from {{.IP}}. Every other session was signed out.</p>
<p>If this wasn't you, contact your workspace administrator at once.</p>`,
	},
	KindRecoveryRegen: {
		Subject: "New recovery codes for your {{.Workspace}} account",
		Text: `Hello,

New recovery codes were made for your {{.Workspace}} account ({{.Email}}) on
{{.When}} from {{.IP}}. Your earlier codes no longer work.

If this wasn't you, contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>New recovery codes were made for your <strong>{{.Workspace}}</strong> account ({{.Email}}) on {{.When}} from {{.IP}}. Your earlier codes no longer work.</p>
<p>If this wasn't you, contact your workspace administrator at once.</p>`,
	},
	KindRecoveryUsed: {
		Subject: "A recovery code was used to sign in to {{.Workspace}}",
		Text: `Hello,

A recovery code was used to sign in to your {{.Workspace}} account
({{.Email}}) on {{.When}} from {{.IP}}. {{.Remaining}} codes are left.

If you lost your authenticator, set up a new one and make new recovery codes:

{{.Link}}

If this wasn't you, contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>A recovery code was used to sign in to your <strong>{{.Workspace}}</strong> account ({{.Email}}) on {{.When}} from {{.IP}}. {{.Remaining}} codes are left.</p>
<p>If you lost your authenticator, <a href="{{.Link}}">set up a new one and make new recovery codes</a>.</p>
<p>If this wasn't you, contact your workspace administrator at once.</p>`,
	},
	KindMFALocked: {
		Subject: "Second-factor sign-in to {{.Workspace}} is paused",
		Text: `Hello,

There were 10 wrong second-factor codes for your {{.Workspace}} account
({{.Email}}) within 15 minutes, the last on {{.When}} from {{.IP}}.
Second-factor sign-in is paused until {{.Until}}.

If this wasn't you, someone knows your password: change it as soon as you
can sign in, and tell your workspace administrator.
`,
		HTML: `<p>Hello,</p>
<p>There were 10 wrong second-factor codes for your <strong>{{.Workspace}}</strong> account ({{.Email}}) within 15 minutes, the last on {{.When}} from {{.IP}}. Second-factor sign-in is paused until {{.Until}}.</p>
<p>If this wasn't you, someone knows your password: change it as soon as you can sign in, and tell your workspace administrator.</p>`,
	},
	KindMFADisabled: {
		Subject: "Second-factor sign-in to {{.Workspace}} is blocked",
		Text: `Hello,

After 100 wrong second-factor codes in a row, second-factor sign-in to your
{{.Workspace}} account ({{.Email}}) is blocked (last attempt {{.When}} from
{{.IP}}). Your workspace administrator can reset it.

If these attempts weren't yours, someone knows your password.
`,
		HTML: `<p>Hello,</p>
<p>After 100 wrong second-factor codes in a row, second-factor sign-in to your <strong>{{.Workspace}}</strong> account ({{.Email}}) is blocked (last attempt {{.When}} from {{.IP}}). Your workspace administrator can reset it.</p>
<p>If these attempts weren't yours, someone knows your password.</p>`,
	},
	KindWebAuthnAdded: {
		Subject: "A passkey was added to your {{.Workspace}} account",
		Text: `Hello,

A passkey or security key named "{{.Name}}" was added to your {{.Workspace}}
account ({{.Email}}) on {{.When}} from {{.IP}}.

If this was you, there is nothing to do. If it wasn't, someone has access to
your account: contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>A passkey or security key named <strong>{{.Name}}</strong> was added to your <strong>{{.Workspace}}</strong> account ({{.Email}}) on {{.When}} from {{.IP}}.</p>
<p>If this was you, there is nothing to do. If it wasn't, someone has access to your account: contact your workspace administrator at once.</p>`,
	},
	KindWebAuthnRemoved: {
		Subject: "A passkey was removed from your {{.Workspace}} account",
		Text: `Hello,

The passkey or security key named "{{.Name}}" was removed from your
{{.Workspace}} account ({{.Email}}) on {{.When}} from {{.IP}}. Every other
session was signed out.

If this wasn't you, contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>The passkey or security key named <strong>{{.Name}}</strong> was removed from your <strong>{{.Workspace}}</strong> account ({{.Email}}) on {{.When}} from {{.IP}}. Every other session was signed out.</p>
<p>If this wasn't you, contact your workspace administrator at once.</p>`,
	},
	KindMFAResetByAdmin: {
		Subject: "Your two-step verification was reset by an administrator",
		Text: `Hello,

An administrator of {{.Workspace}} ({{.Admin}}) reset two-step verification
for your account ({{.Email}}) on {{.When}}. Your authenticator apps,
passkeys, security keys and recovery codes were removed.
{{- if .SessionsEnded}} Every session was signed out.{{end}}

Next time you sign in, you'll only need your password. Set up two-step
verification again here:

{{.Link}}

If you didn't ask for this, contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>An administrator of <strong>{{.Workspace}}</strong> ({{.Admin}}) reset two-step verification for your account ({{.Email}}) on {{.When}}. Your authenticator apps, passkeys, security keys and recovery codes were removed.{{if .SessionsEnded}} Every session was signed out.{{end}}</p>
<p>Next time you sign in, you'll only need your password. <a href="{{.Link}}">Set up two-step verification again</a>.</p>
<p>If you didn't ask for this, contact your workspace administrator at once.</p>`,
	},
	KindMFAEnforced: {
		Subject: "{{.Workspace}} now requires two-step verification",
		Text: `Hello,

{{.Workspace}} now requires two-step verification for your account
({{.Email}}): an authenticator app or a passkey / security key, on top of
your password.

Please set it up before {{.Deadline}}. It takes two minutes:

{{.Link}}

After that date, signing in will lead only to setting it up, and you will
also need a link sent to this address.
`,
		HTML: `<p>Hello,</p>
<p><strong>{{.Workspace}}</strong> now requires two-step verification for your account ({{.Email}}): an authenticator app or a passkey / security key, on top of your password.</p>
<p>Please set it up before <strong>{{.Deadline}}</strong>. It takes two minutes: <a href="{{.Link}}">set up two-step verification</a>.</p>
<p>After that date, signing in will lead only to setting it up, and you will also need a link sent to this address.</p>`,
	},
	KindMFAReminder: {
		Subject: "{{if eq .DaysLeft 1}}1 day{{else}}{{.DaysLeft}} days{{end}} left to set up two-step verification for {{.Workspace}}",
		Text: `Hello,

{{.Workspace}} requires two-step verification for your account
({{.Email}}), and you have not set it up yet. The deadline is {{.Deadline}}
({{if eq .DaysLeft 1}}1 day{{else}}{{.DaysLeft}} days{{end}} from now).

Set it up here:

{{.Link}}

After the deadline, signing in will lead only to setting it up, and you
will also need a link sent to this address.
`,
		HTML: `<p>Hello,</p>
<p><strong>{{.Workspace}}</strong> requires two-step verification for your account ({{.Email}}), and you have not set it up yet. The deadline is <strong>{{.Deadline}}</strong> ({{if eq .DaysLeft 1}}1 day{{else}}{{.DaysLeft}} days{{end}} from now).</p>
<p><a href="{{.Link}}">Set up two-step verification</a></p>
<p>After the deadline, signing in will lead only to setting it up, and you will also need a link sent to this address.</p>`,
	},
	KindMFAEnrollLink: {
		Subject: "Your link to set up two-step verification for {{.Workspace}}",
		Text: `Hello,

Someone signed in to {{.Workspace}} as {{.Email}} with your password on
{{.When}} from {{.IP}} and asked to set up two-step verification. The
deadline for it has passed, so this link is needed as well:

{{.Link}}

It works once, in the browser that asked for it, until {{.Expires}}.

If this wasn't you, your password is known to someone else: do not open
the link, and tell your workspace administrator.
`,
		HTML: `<p>Hello,</p>
<p>Someone signed in to <strong>{{.Workspace}}</strong> as {{.Email}} with your password on {{.When}} from {{.IP}} and asked to set up two-step verification. The deadline for it has passed, so this link is needed as well:</p>
<p><a href="{{.Link}}">Continue setting up two-step verification</a></p>
<p>It works once, in the browser that asked for it, until {{.Expires}}.</p>
<p><strong>If this wasn't you</strong>, your password is known to someone else: do not open the link, and tell your workspace administrator.</p>`,
	},
	KindSupportResetScheduled: {
		Subject: "A reset of your two-step verification for {{.Workspace}} is scheduled",
		Text: `Hello,

Gatehouse support was asked to reset two-step verification for your
{{.Workspace}} account ({{.Email}}), and verified the request. On
{{.ExecutesAt}} your authenticator apps, passkeys, security keys and
recovery codes will be removed and every session signed out; you will then
set up two-step verification again.

If you did not ask for this, cancel it now (the link works once, until the
reset):

{{.Link}}

and tell your workspace administrator.
`,
		HTML: `<p>Hello,</p>
<p>Gatehouse support was asked to reset two-step verification for your <strong>{{.Workspace}}</strong> account ({{.Email}}), and verified the request. On <strong>{{.ExecutesAt}}</strong> your authenticator apps, passkeys, security keys and recovery codes will be removed and every session signed out; you will then set up two-step verification again.</p>
<p><strong>If you did not ask for this</strong>, <a href="{{.Link}}">cancel the reset</a> now (the link works once, until the reset) and tell your workspace administrator.</p>`,
	},
	KindSupportResetDone: {
		Subject: "Your two-step verification for {{.Workspace}} was reset",
		Text: `Hello,

As scheduled, Gatehouse support reset two-step verification for your
{{.Workspace}} account ({{.Email}}) on {{.When}}. Your authenticator apps,
passkeys, security keys and recovery codes were removed and every session
was signed out.

Sign in and set up two-step verification again here:

{{.Link}}

If you didn't ask for this, contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>As scheduled, Gatehouse support reset two-step verification for your <strong>{{.Workspace}}</strong> account ({{.Email}}) on {{.When}}. Your authenticator apps, passkeys, security keys and recovery codes were removed and every session was signed out.</p>
<p><a href="{{.Link}}">Sign in and set up two-step verification again</a>.</p>
<p>If you didn't ask for this, contact your workspace administrator at once.</p>`,
	},
	KindRecoveryLink: {
		Subject: "Recover your {{.Workspace}} account",
		Text: `Hello,

Someone signed in to {{.Workspace}} as {{.Email}} with your password on
{{.When}} from {{.IP}} and said they lost every second factor and recovery
code. To start recovering your account, open this link (it works once,
until {{.Expires}}):

{{.Link}}

Recovery waits {{.WaitHours}} hours before removing your second factors,
and tells you by email so you can cancel it.

If this wasn't you, your password is known to someone else: do not open
the link, change your password and tell your workspace administrator.
`,
		HTML: `<p>Hello,</p>
<p>Someone signed in to <strong>{{.Workspace}}</strong> as {{.Email}} with your password on {{.When}} from {{.IP}} and said they lost every second factor and recovery code.</p>
<p><a href="{{.Link}}">Start recovering your account</a> (the link works once, until {{.Expires}}).</p>
<p>Recovery waits {{.WaitHours}} hours before removing your second factors, and tells you by email so you can cancel it.</p>
<p><strong>If this wasn't you</strong>, your password is known to someone else: do not open the link, change your password and tell your workspace administrator.</p>`,
	},
	KindRecoveryStarted: {
		Subject: "Your {{.Workspace}} second factors will be removed on {{.ExecutesAt}}",
		Text: `Hello,

Account recovery started for your {{.Workspace}} account ({{.Email}}) on
{{.When}}. On {{.ExecutesAt}} your authenticator apps, passkeys, security
keys and recovery codes will be removed and every session signed out; you
will then sign in with your password and set up two-step verification
again.

Signing in with a second factor before then cancels it. If you did not
ask for this, cancel it now:

{{.Link}}

and tell your workspace administrator.
`,
		HTML: `<p>Hello,</p>
<p>Account recovery started for your <strong>{{.Workspace}}</strong> account ({{.Email}}) on {{.When}}. On <strong>{{.ExecutesAt}}</strong> your authenticator apps, passkeys, security keys and recovery codes will be removed and every session signed out; you will then sign in with your password and set up two-step verification again.</p>
<p>Signing in with a second factor before then cancels it. <strong>If you did not ask for this</strong>, <a href="{{.Link}}">cancel it now</a> and tell your workspace administrator.</p>`,
	},
	KindRecoveryDone: {
		Subject: "Your {{.Workspace}} account was recovered",
		Text: `Hello,

As announced, the second factors of your {{.Workspace}} account
({{.Email}}) were removed on {{.When}} and every session was signed out.
Sign in with your password and set up two-step verification again:

{{.Link}}

If you didn't ask for this, contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>As announced, the second factors of your <strong>{{.Workspace}}</strong> account ({{.Email}}) were removed on {{.When}} and every session was signed out.</p>
<p><a href="{{.Link}}">Sign in and set up two-step verification again</a>.</p>
<p>If you didn't ask for this, contact your workspace administrator at once.</p>`,
	},
	KindSMSAdded: {
		Subject: "A phone was added to your {{.Workspace}} account",
		Text: `Hello,

The phone {{.Phone}} was set up to receive sign-in codes by text message
for your {{.Workspace}} account ({{.Email}}) on {{.When}} from {{.IP}}.

If this was you, there is nothing to do. If it wasn't, someone has access to
your account: contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>The phone <strong>{{.Phone}}</strong> was set up to receive sign-in codes by text message for your <strong>{{.Workspace}}</strong> account ({{.Email}}) on {{.When}} from {{.IP}}.</p>
<p>If this was you, there is nothing to do. If it wasn't, someone has access to your account: contact your workspace administrator at once.</p>`,
	},
	KindSMSRemoved: {
		Subject: "A phone was removed from your {{.Workspace}} account",
		Text: `Hello,

The phone {{.Phone}} no longer receives sign-in codes for your {{.Workspace}}
account ({{.Email}}): it was removed on {{.When}} from {{.IP}}. Every other
session was signed out.

If this wasn't you, contact your workspace administrator at once.
`,
		HTML: `<p>Hello,</p>
<p>The phone <strong>{{.Phone}}</strong> no longer receives sign-in codes for your <strong>{{.Workspace}}</strong> account ({{.Email}}): it was removed on {{.When}} from {{.IP}}. Every other session was signed out.</p>
<p>If this wasn't you, contact your workspace administrator at once.</p>`,
	},
	KindSMSCap: {
		Subject: "{{.Workspace}} reached its limit for text messages",
		Text: `Hello,

{{.Workspace}} reached {{.Cap}} on {{.When}}: sign-in codes by text message
are not sent until the limit resets or you raise it. Members can still sign
in with their other methods.

Texts today: {{.TextsToday}}. This month ({{.Month}}): {{.TextsMonth}} texts,
{{.SpentMonth}}.

Review the limits: {{.Link}}

You get this email once a month, the first time a limit is reached.
`,
		HTML: `<p>Hello,</p>
<p><strong>{{.Workspace}}</strong> reached {{.Cap}} on {{.When}}: sign-in codes by text message are not sent until the limit resets or you raise it. Members can still sign in with their other methods.</p>
<p>Texts today: {{.TextsToday}}. This month ({{.Month}}): {{.TextsMonth}} texts, {{.SpentMonth}}.</p>
<p><a href="{{.Link}}">Review the limits</a></p>
<p>You get this email once a month, the first time a limit is reached.</p>`,
	},
}

const frame = `<!DOCTYPE html><html><body style="font-family:system-ui,sans-serif;line-height:1.5;color:#1b1f24;max-width:36rem">%s<p style="color:#57606a;font-size:.85rem">Sent by Gatehouse.</p></body></html>`

// Compose renders a message of the given kind to one recipient. data holds
// the template fields; a missing template is a programming error.
func Compose(kind, to string, data map[string]any) (db.OutboxMessage, error) {
	t, ok := parsed[kind]
	if !ok {
		panic("mail: unknown kind " + kind)
	}
	var subj, text, html bytes.Buffer
	if err := t.subject.Execute(&subj, data); err != nil {
		return db.OutboxMessage{}, err
	}
	if err := t.text.Execute(&text, data); err != nil {
		return db.OutboxMessage{}, err
	}
	if err := t.html.Execute(&html, data); err != nil {
		return db.OutboxMessage{}, err
	}
	return db.OutboxMessage{
		Kind:    kind,
		To:      to,
		Subject: strings.ReplaceAll(subj.String(), "\n", " "),
		Text:    text.String(),
		HTML:    strings.Replace(frame, "%s", html.String(), 1),
	}, nil
}

type templates struct {
	subject, text *texttemplate.Template
	html          *htmltemplate.Template
}

// parsed holds every letter's templates, parsed once at start-up (a bad
// template is a programming error and panics there).
var parsed = func() map[string]templates {
	out := map[string]templates{}
	for kind, l := range letters {
		out[kind] = templates{
			subject: texttemplate.Must(texttemplate.New(kind + ".subject").Option("missingkey=error").Parse(l.Subject)),
			text:    texttemplate.Must(texttemplate.New(kind + ".text").Option("missingkey=error").Parse(l.Text)),
			html:    htmltemplate.Must(htmltemplate.New(kind + ".html").Option("missingkey=error").Parse(l.HTML)),
		}
	}
	return out
}()

// When formats a time for emails.
func When(t time.Time) string { return t.UTC().Format("Mon 2 Jan 2006 at 15:04 UTC") }
