package invite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
)

// XEP-0401 command nodes, and stoa's own for reset links.
const (
	NodeInvite        = "urn:xmpp:invite#invite"
	NodeCreateAccount = "urn:xmpp:invite#create-account"
	NodeReset         = "urn:stoa:invite#reset"
	formInvitation    = "urn:xmpp:invite#invitation"
)

func (f *feature) setupAdHoc(s *server.Setup) {
	s.AdHoc(server.Command{Node: NodeInvite, Name: "Invite a contact", Access: server.LocalUsers, Handler: f.cmdInvite})
	s.AdHoc(server.Command{Node: NodeCreateAccount, Name: "Create an account invitation", Access: server.AdminOnly, Handler: f.cmdCreateAccount})
	s.AdHoc(server.Command{Node: NodeReset, Name: "Create a password reset link", Access: server.AdminOnly, Handler: f.cmdReset})
}

// resultForm is the XEP-0401 result: uri, landing-url and expire.
func resultForm(c Created) *form.Form {
	rf := form.New(form.TypeResult, "Invitation created")
	rf.Hidden("FORM_TYPE", formInvitation)
	if c.URI != "" {
		rf.Add(form.Field{Var: "uri", Type: form.TextSingle, Label: "Invitation link (xmpp:)", Values: []string{c.URI}})
	}
	if c.Landing != "" {
		rf.Add(form.Field{Var: "landing-url", Type: form.TextSingle, Label: "Invitation web page", Values: []string{c.Landing}})
	}
	// The examples of XEP-0401 say "expire", its field registry
	// "expiry": both are sent.
	exp := c.Invite.Expires.UTC().Format(time.RFC3339)
	rf.Add(form.Field{Var: "expire", Type: form.TextSingle, Label: "Valid until", Values: []string{exp}})
	rf.Add(form.Field{Var: "expiry", Type: form.TextSingle, Label: "Valid until", Values: []string{exp}})
	return rf
}

// commandError turns a refusal into a completed command with an error
// note (the command ran, the request was not granted); other errors go
// back as errors.
func commandError(err error) (*server.CommandResponse, error) {
	var r *server.Refusal
	if errors.As(err, &r) {
		return server.CommandFailed("%s", r.Text), nil
	}
	return nil, err
}

// cmdInvite is XEP-0401's "invite": a contact invitation from the
// requester, at once, with no form.
func (f *feature) cmdInvite(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	admin := f.srv.IsAdmin(req.From)
	if !admin && f.cfg.UserInvites == "none" {
		return server.CommandFailed("Creating invitations is turned off on this server."), nil
	}
	creator := req.From.Bare()
	if creator.Local() == "" || f.srv.Host(creator.Domain()) == nil {
		return server.CommandFailed("Only accounts of this server can create contact invitations."), nil
	}
	c, err := f.create(ctx, Request{
		Kind: store.InviteContact, Host: creator.Domain(), Creator: creator,
		AllowRegister: admin || f.cfg.UserInvites == "register",
	})
	if err != nil {
		return commandError(err)
	}
	return server.CommandResult(resultForm(c)), nil
}

// cmdCreateAccount is XEP-0401's "create-account": a form (username,
// roster-subscription, expiry), then the invitation.
func (f *feature) cmdCreateAccount(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	if req.Form == nil {
		fm := form.New(form.TypeForm, "Create an account invitation")
		fm.Instruct("The invitee chooses their password. Leave the username empty to let them choose it too.")
		fm.Add(
			form.Field{Var: "username", Type: form.TextSingle, Label: "Username (optional)"},
			form.Field{Var: "roster-subscription", Type: form.Boolean, Label: "Add the new account to my contacts", Values: []string{"false"}},
			form.Field{Var: "expires", Type: form.TextSingle, Label: "Valid for (e.g. 7d, 12h; empty: " + durationText(time.Duration(f.cfg.Expiry)) + ")"},
			form.Field{Var: "uses", Type: form.TextSingle, Label: "Accounts it may create (without a username)", Values: []string{"1"}},
		)
		return server.CommandForm(fm), nil
	}
	sub, err := req.Form.Bool("roster-subscription")
	if err != nil {
		return nil, server.BadPayload("%v", err)
	}
	ttl, err := parseExpiry(req.Form.Value("expires"))
	if err != nil {
		return nil, server.BadPayload("%v", err)
	}
	uses, err := parseUses(req.Form.Value("uses"))
	if err != nil {
		return nil, server.BadPayload("%v", err)
	}
	r := Request{Kind: store.InviteAccount, Host: req.Host, Expires: ttl, Uses: uses, Subscribe: sub}
	if name := strings.TrimSpace(req.Form.Value("username")); name != "" {
		j, err := reservedJID(name, req.Host)
		if err != nil {
			return nil, server.BadPayload("%v", err)
		}
		r.JID = j
	}
	if sub {
		creator := req.From.Bare()
		if creator.Local() == "" || f.srv.Host(creator.Domain()) == nil {
			return server.CommandFailed("Only accounts of this server can be added to the new account's contacts; leave roster subscription off."), nil
		}
		r.Creator = creator
	}
	c, err := f.create(ctx, r)
	if err != nil {
		return commandError(err)
	}
	return server.CommandResult(resultForm(c)), nil
}

// cmdReset creates a password-reset link for one account.
func (f *feature) cmdReset(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	if req.Form == nil {
		fm := form.New(form.TypeForm, "Create a password reset link")
		fm.Instruct("Send the link to the account's owner over a channel you trust; whoever opens it can set the password.")
		fm.Add(
			form.Field{Var: "accountjid", Type: form.JIDSingle, Label: "The account", Required: true},
			form.Field{Var: "expires", Type: form.TextSingle, Label: "Valid for (e.g. 1d, 2h; empty: " + durationText(time.Duration(f.cfg.ResetExpiry)) + ")"},
		)
		return server.CommandForm(fm), nil
	}
	if f.srv.PublicURL() == "" {
		return server.CommandFailed("The web listener is off ([http] listen), so a reset link could not be opened."), nil
	}
	j, err := jid.Parse(strings.TrimSpace(req.Form.Value("accountjid")))
	if err != nil || j.Local() == "" {
		return nil, server.BadPayload("accountjid: give the account's address, e.g. alice@%s", req.Host)
	}
	ttl, err := parseExpiry(req.Form.Value("expires"))
	if err != nil {
		return nil, server.BadPayload("%v", err)
	}
	c, err := f.create(ctx, Request{Kind: store.InviteReset, Host: j.Domain(), JID: j.Bare(), Expires: ttl})
	if err != nil {
		return commandError(err)
	}
	return server.CommandResult(resultForm(c)), nil
}

// reservedJID prepares a username for an account invitation.
func reservedJID(name, host string) (jid.JID, error) {
	local, err := policy.PrepName(name)
	if err != nil {
		return jid.JID{}, fmt.Errorf("username: %w", err)
	}
	j, err := jid.New(local, host, "")
	if err != nil {
		return jid.JID{}, fmt.Errorf("username: %q cannot be an account name: %w", name, err)
	}
	return j, nil
}

// parseExpiry reads a validity such as "7d" or "12h" ("" is 0: the default).
func parseExpiry(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	d, err := parseDuration(s)
	if err != nil || d < time.Minute {
		return 0, fmt.Errorf("expires: %q is not a duration of at least a minute (e.g. 30m, 12h, 7d)", s)
	}
	return d, nil
}

// parseUses reads a number of uses ("" is 0: the default).
func parseUses(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 1 || n > maxUses || fmt.Sprint(n) != s {
		return 0, fmt.Errorf("uses: %q is not a number from 1 to %d", s, maxUses)
	}
	return n, nil
}
