package register

import (
	"context"
	"fmt"
	"sort"
	"time"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
)

// New accounts are restricted for a while after sign-up, and, in
// approval mode, until an admin approves them. The restriction is the
// account state "restricted" (server.SetAccountState, enforced by the
// limits feature: a restricted account may message fewer strangers and
// send fewer subscription requests per hour, see [limits.unsolicited]
// restricted_*). Registration sets it with By "registration": with an
// expiry for the time-based restriction, without one while waiting for
// approval.

// byRegistration is the AccountState.By of the restrictions set here.
const byRegistration = "registration"

// Reasons of the restrictions (shown to admins).
const (
	reasonNew      = "new account"
	reasonApproval = "new account waiting for an admin's approval"
)

type restrictions struct {
	f   *feature
	cfg RestrictConfig
}

func newRestrictions(f *feature, c RestrictConfig) *restrictions {
	return &restrictions{f: f, cfg: c}
}

// start restricts a new account.
func (r *restrictions) start(ctx context.Context, bare jid.JID, now time.Time, approval bool) error {
	st := store.AccountState{JID: bare.String(), Status: store.StatusRestricted, By: byRegistration, Since: now}
	switch {
	case approval:
		st.Reason = reasonApproval
	case r.cfg.Period > 0:
		st.Reason = reasonNew
		st.Expires = now.Add(time.Duration(r.cfg.Period))
	default:
		return nil
	}
	return r.f.srv.SetAccountState(ctx, st)
}

// waiting reports whether a state is a restriction waiting for approval.
func waiting(st store.AccountState) bool {
	return st.Status == store.StatusRestricted && st.By == byRegistration && st.Expires.IsZero()
}

// approve lifts the approval restriction of an account; the time-based
// restriction, if configured, runs its course from the sign-up.
func (r *restrictions) approve(ctx context.Context, bare jid.JID, by string) error {
	st, err := r.f.srv.AccountState(ctx, bare)
	if err != nil {
		return err
	}
	if !waiting(st) {
		return fmt.Errorf("%s is not waiting for approval (state: %s)", bare, st.Status)
	}
	now := r.f.now()
	next := store.AccountState{JID: bare.String(), Status: store.StatusActive, By: by}
	if until := st.Since.Add(time.Duration(r.cfg.Period)); r.cfg.Period > 0 && now.Before(until) {
		next = store.AccountState{JID: bare.String(), Status: store.StatusRestricted, By: byRegistration,
			Reason: reasonNew + " (approved by " + by + ")", Since: st.Since, Expires: until}
	}
	if err := r.f.srv.SetAccountState(ctx, next); err != nil {
		return fmt.Errorf("approving %s: %w", bare, err)
	}
	r.f.metrics.account.WithLabelValues("approved").Inc()
	r.f.log.Info("account approved", "jid", bare.String(), "by", by)
	return nil
}

// pending lists the accounts waiting for approval, oldest first.
func (r *restrictions) pending(ctx context.Context) ([]store.AccountState, error) {
	var out []store.AccountState
	for host := range r.f.hosts {
		list, err := r.f.srv.Store().AccountStates().List(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, st := range list {
			if waiting(st) {
				out = append(out, st)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out, nil
}
