package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Account states and abuse reports: the small API that every door uses
// (the command line through the admin socket, admin commands, the
// firewall, registration), so that the same events fire and the same
// checks run. The accountstate feature enforces states (suspended
// accounts cannot log in and are disconnected when suspended); the limits
// feature gives restricted accounts stricter limits; the reports feature
// keeps the report queue.

// AccountStateChange is the payload of AccountStateChanged.
type AccountStateChange struct {
	Old, New store.AccountState
}

// AccountStateChanged fires after an account's state was stored.
var AccountStateChanged = Event[AccountStateChange]{"account-state-changed"}

// AccountState returns the state of an account: Status active when none
// is stored or the stored one has expired. It does not check that the
// account exists.
func (srv *Server) AccountState(ctx context.Context, account jid.JID) (store.AccountState, error) {
	bare := account.Bare().String()
	st, err := srv.store.AccountStates().Get(ctx, bare)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !st.Expires.IsZero() && !time.Now().Before(st.Expires)) {
		return store.AccountState{JID: bare, Status: store.StatusActive}, nil
	}
	if err != nil {
		return store.AccountState{}, fmt.Errorf("reading the state of %s: %w", bare, err)
	}
	return st, nil
}

// SetAccountState stores an account's new state (Status active clears
// it) and fires AccountStateChanged. st.JID names the account, st.By who
// made the change ("cli", an admin's JID, "firewall", "registration"),
// st.Reason why (a suspended user sees it at login); a zero Since is now.
// It fails with ErrNoSuchUser when the account does not exist.
func (srv *Server) SetAccountState(ctx context.Context, st store.AccountState) error {
	j, err := jid.Parse(st.JID)
	if err != nil || j.Local() == "" {
		return fmt.Errorf("%q is not an account address", st.JID)
	}
	bare := j.Bare()
	st.JID = bare.String()
	if _, err := srv.store.Accounts().Get(ctx, st.JID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: %w", st.JID, ErrNoSuchUser)
		}
		return fmt.Errorf("looking up %s: %w", st.JID, err)
	}
	if st.Since.IsZero() {
		st.Since = time.Now().UTC()
	}
	old, err := srv.AccountState(ctx, bare)
	if err != nil {
		return err
	}
	switch st.Status {
	case store.StatusActive:
		st.Expires = time.Time{}
		err = srv.store.AccountStates().Delete(ctx, st.JID)
	case store.StatusRestricted, store.StatusSuspended:
		err = srv.store.AccountStates().Put(ctx, st)
	default:
		return fmt.Errorf("%q is not an account state (active, restricted or suspended)", st.Status)
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: %w", st.JID, ErrNoSuchUser)
		}
		return fmt.Errorf("changing the state of %s: %w", st.JID, err)
	}
	args := []any{"jid", st.JID, "from", string(old.Status), "to", string(st.Status), "by", st.By, "reason", st.Reason}
	if !st.Expires.IsZero() {
		args = append(args, "expires", st.Expires.UTC().Format(time.RFC3339))
	}
	srv.log.Info("account state changed", args...)
	Notify(ctx, srv, AccountStateChanged, AccountStateChange{Old: old, New: st})
	return nil
}

// Sanctions is the account state API in the shape features use: the
// firewall (Restrict, Suspend), admin commands (Disable, Enable) and
// registration (Restrict with an expiry through SetAccountState). The
// accountstate feature provides it (Setup.Provide), so Find finds it
// when states are enforced.
type Sanctions struct{ srv *Server }

// Sanctions returns the server's account state API.
func (srv *Server) Sanctions() Sanctions { return Sanctions{srv} }

func (s Sanctions) set(ctx context.Context, account jid.JID, status store.AccountStatus, reason, by string) error {
	return s.srv.SetAccountState(ctx, store.AccountState{JID: account.Bare().String(), Status: status, Reason: reason, By: by})
}

// Restrict restricts an account (stricter limits) until changed.
func (s Sanctions) Restrict(ctx context.Context, account jid.JID, reason, by string) error {
	return s.set(ctx, account, store.StatusRestricted, reason, by)
}

// Suspend suspends an account until changed: its sessions end and it
// cannot log in; the user is told reason.
func (s Sanctions) Suspend(ctx context.Context, account jid.JID, reason, by string) error {
	return s.set(ctx, account, store.StatusSuspended, reason, by)
}

// Disable is Suspend (XEP-0133 "disable user").
func (s Sanctions) Disable(ctx context.Context, account jid.JID, reason, by string) error {
	return s.Suspend(ctx, account, reason, by)
}

// Enable makes an account active again (XEP-0133 "re-enable user").
func (s Sanctions) Enable(ctx context.Context, account jid.JID, by string) error {
	return s.set(ctx, account, store.StatusActive, "", by)
}

// State names the account's current state: active, restricted or suspended.
func (s Sanctions) State(ctx context.Context, account jid.JID) (string, error) {
	st, err := s.srv.AccountState(ctx, account)
	if err != nil {
		return "", err
	}
	return string(st.Status), nil
}

// AbuseReport is a report about an entity, for the admins' queue:
// from a user (XEP-0377, with a block), from the firewall, from an admin.
// The reports feature keeps the queue; it provides (Setup.Provide) a
// service with the method
//
//	FileReport(ctx context.Context, r *AbuseReport) (id int64, err error)
//
// which other features find with Find.
type AbuseReport struct {
	Reporter jid.JID // the reporting account, or a host for the server's own reports
	Offender jid.JID // the reported entity
	Reason   string  // "spam", "abuse" or "other"
	Text     string
	// StanzaIDs reference the reported messages (XEP-0359 stanza-id).
	StanzaIDs []store.StanzaRef
	// Evidence is the offending stanza when known (nil otherwise).
	Evidence *xml.Element
	// Source says where it comes from: "xep-0377", "firewall <rule>", ...
	Source string
	// ForwardToOrigin: the reporter allows sending the report to the
	// offender's server (XEP-0377 <report-origin/>).
	ForwardToOrigin bool
	// ThirdParty: the reporter allows sending it to third parties
	// (XEP-0377 <third-party/>).
	ThirdParty bool
}
