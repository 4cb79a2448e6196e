// Package accountstate enforces account states: a suspended account
// cannot log in (the login fails with a text naming the reason) and its
// live sessions end when it is suspended; a restricted account gets the
// limits feature's stricter limits on unsolicited traffic. A state has a
// reason, says who set it and may expire by itself.
//
// The states live in the store (store.AccountStates) and change only
// through server.SetAccountState, which fires AccountStateChanged: the
// command line (`stoa account ...`, admin commands account.*), XEP-0133
// admin commands, the firewall and registration all take that path. The
// feature provides server.Sanctions to other features (Setup.Provide).
package accountstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// Feature is the account state feature.
var Feature = server.Feature{
	Name: "accountstate",
	Doc:  "Account states: suspended accounts cannot log in and are disconnected, restricted accounts get stricter limits; with a reason, who set it and an optional expiry.",
	XEPs: []server.XEP{
		{Name: "RFC 6120 §6.5.1 (account-disabled: a suspended account's login fails with the reason)", Status: server.Complete},
	},
	Setup: setup,
}

type feature struct {
	srv *server.Server
	log *slog.Logger
	now func() time.Time
}

func setup(s *server.Setup, _ any) error {
	f := &feature{srv: s.Server(), log: s.Logger(), now: time.Now}
	s.Provide(f.srv.Sanctions())
	server.On(s, server.Authenticated, server.PrioPolicy, f.authenticated)
	server.On(s, server.SessionBinding, server.PrioPolicy, f.binding)
	server.On(s, server.AccountStateChanged, server.PrioPolicy, f.changed)
	f.adminCommands(s)
	return nil
}

// suspendedText is what a suspended user is told.
func suspendedText(st store.AccountState) string {
	var b strings.Builder
	b.WriteString("This account is suspended")
	if st.Reason != "" {
		b.WriteString(": ")
		b.WriteString(strings.TrimRight(st.Reason, "."))
	}
	b.WriteString(".")
	if !st.Expires.IsZero() {
		b.WriteString(" The suspension ends on " + st.Expires.UTC().Format("2006-01-02 15:04 MST") + ".")
	}
	b.WriteString(" Contact the server's administrators if you think this is a mistake.")
	return b.String()
}

// authenticated refuses the login of a suspended account.
func (f *feature) authenticated(ctx context.Context, c *server.ConnInfo) error {
	return f.check(ctx, c.User)
}

// binding refuses a resource for an account suspended after it logged in
// and before it bound.
func (f *feature) binding(ctx context.Context, b server.BindEvent) error {
	return f.check(ctx, b.JID)
}

func (f *feature) check(ctx context.Context, account jid.JID) error {
	st, err := f.srv.AccountState(ctx, account)
	if err != nil {
		f.log.Error("reading the account state failed; letting the login through", "jid", account.Bare().String(), "err", err)
		return nil
	}
	if st.Status != store.StatusSuspended {
		return nil
	}
	return server.Refuse("account_suspended", "%s", suspendedText(st))
}

// changed ends the sessions of an account that was just suspended.
func (f *feature) changed(ctx context.Context, ch server.AccountStateChange) error {
	if ch.New.Status != store.StatusSuspended {
		return nil
	}
	j, err := jid.Parse(ch.New.JID)
	if err != nil {
		return fmt.Errorf("accountstate: %w", err)
	}
	n := f.srv.KickUser(ctx, j, stanza.NewStreamError(stanza.StreamPolicyViolation, suspendedText(ch.New)))
	if n > 0 {
		f.srv.CountDenied("account_suspended")
		f.log.Info("sessions ended", "policy", "account_suspended", "jid", ch.New.JID, "sessions", n, "reason", ch.New.Reason)
	}
	return nil
}

// describe renders a state for the operator.
func describe(st store.AccountState) string {
	if st.Status == store.StatusActive {
		return st.JID + ": active"
	}
	s := fmt.Sprintf("%s: %s since %s", st.JID, st.Status, st.Since.UTC().Format(time.RFC3339))
	if st.By != "" {
		s += " by " + st.By
	}
	if !st.Expires.IsZero() {
		s += ", until " + st.Expires.UTC().Format(time.RFC3339)
	}
	if st.Reason != "" {
		s += "; reason: " + st.Reason
	}
	return s
}

// adminCommands registers account.show, account.list, account.restrict,
// account.suspend and account.unsuspend on the admin socket.
func (f *feature) adminCommands(s *server.Setup) {
	account := func(ctx context.Context, args map[string]string) (jid.JID, error) {
		j, err := f.srv.AccountJID(args["jid"])
		if err != nil {
			return jid.JID{}, err
		}
		if _, err := f.srv.Store().Accounts().Get(ctx, j.String()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return jid.JID{}, fmt.Errorf("%s: %w", j, server.ErrNoSuchUser)
			}
			return jid.JID{}, err
		}
		return j, nil
	}
	by := func(args map[string]string) string {
		if b := args["by"]; b != "" {
			return b
		}
		return "cli"
	}
	s.AdminCommand(server.AdminCommand{
		Name: "account.show", Args: []string{"jid"}, Help: "Show an account's state.",
		Run: func(ctx context.Context, args map[string]string) (server.AdminResult, error) {
			j, err := account(ctx, args)
			if err != nil {
				return server.AdminResult{}, err
			}
			st, err := f.srv.AccountState(ctx, j)
			if err != nil {
				return server.AdminResult{}, err
			}
			return server.AdminResult{Message: describe(st)}, nil
		},
	})
	s.AdminCommand(server.AdminCommand{
		Name: "account.list", Args: []string{"domain"}, Optional: []string{"domain"},
		Help: "List the accounts that are restricted or suspended.",
		Run: func(ctx context.Context, args map[string]string) (server.AdminResult, error) {
			list, err := f.srv.Store().AccountStates().List(ctx, args["domain"])
			if err != nil {
				return server.AdminResult{}, err
			}
			var lines []string
			now := f.now()
			for _, st := range list {
				if !st.Expires.IsZero() && !now.Before(st.Expires) {
					continue
				}
				lines = append(lines, describe(st))
			}
			return server.AdminResult{Message: fmt.Sprintf("%d accounts restricted or suspended", len(lines)), Lines: lines}, nil
		},
	})
	set := func(status store.AccountStatus) func(ctx context.Context, args map[string]string) (server.AdminResult, error) {
		return func(ctx context.Context, args map[string]string) (server.AdminResult, error) {
			j, err := account(ctx, args)
			if err != nil {
				return server.AdminResult{}, err
			}
			st := store.AccountState{JID: j.String(), Status: status, Reason: args["reason"], By: by(args), Since: f.now().UTC()}
			if e := args["expires"]; e != "" {
				d, err := config.ParseDuration(e)
				if err != nil || d <= 0 {
					return server.AdminResult{}, fmt.Errorf("--expires %q is not a positive duration (e.g. 12h, 7d)", e)
				}
				st.Expires = st.Since.Add(time.Duration(d))
			}
			if err := f.srv.SetAccountState(ctx, st); err != nil {
				return server.AdminResult{}, err
			}
			msg := describe(st)
			if status == store.StatusActive {
				msg = j.String() + " is active again"
			}
			return server.AdminResult{Message: msg}, nil
		}
	}
	s.AdminCommand(server.AdminCommand{
		Name: "account.restrict", Args: []string{"jid", "reason", "expires", "by"}, Optional: []string{"reason", "expires", "by"},
		Help: "Restrict an account: stricter limits on messages and contact requests to strangers.",
		Run:  set(store.StatusRestricted),
	})
	s.AdminCommand(server.AdminCommand{
		Name: "account.suspend", Args: []string{"jid", "reason", "expires", "by"}, Optional: []string{"reason", "expires", "by"},
		Help: "Suspend an account: its sessions end and it cannot log in; the user is told the reason.",
		Run:  set(store.StatusSuspended),
	})
	s.AdminCommand(server.AdminCommand{
		Name: "account.unsuspend", Args: []string{"jid", "by"}, Optional: []string{"by"},
		Help: "Make a restricted or suspended account active again.",
		Run:  set(store.StatusActive),
	})
}
