package store

import (
	"context"
	"time"
)

// AccountStatus is what an account may do.
type AccountStatus string

// Account statuses. Active accounts have no stored state.
const (
	StatusActive     AccountStatus = "active"
	StatusRestricted AccountStatus = "restricted" // stricter limits on unsolicited traffic
	StatusSuspended  AccountStatus = "suspended"  // may not log in
)

// AccountState is the stored state of an account that is not active.
type AccountState struct {
	JID    string // bare JID
	Status AccountStatus
	Reason string // shown to the user (suspension) and to admins
	By     string // who set it: an admin's JID, "cli", "registration", "firewall", ...
	Since  time.Time
	// Expires is when the state ends by itself (zero: never).
	Expires time.Time
}

// AccountStates stores the states of accounts that are restricted or
// suspended. Rows go with the account (Accounts.Delete).
type AccountStates interface {
	// Get returns the stored state; ErrNotFound when there is none (the
	// account is active). An expired state is still returned: callers
	// compare Expires with their clock.
	Get(ctx context.Context, jid string) (AccountState, error)
	// Put stores (or replaces) a state whose Status is restricted or
	// suspended; ErrNotFound if the account does not exist.
	Put(ctx context.Context, st AccountState) error
	// Delete removes the state (the account is active again); no error
	// when there is none.
	Delete(ctx context.Context, jid string) error
	// List returns the stored states of one domain ("": every domain),
	// sorted by JID.
	List(ctx context.Context, domain string) ([]AccountState, error)
}

// Blocklist stores each account's blocked JIDs (XEP-0191): bare JIDs,
// full JIDs or domains, as canonical strings.
type Blocklist interface {
	// List returns the owner's blocked JIDs, sorted.
	List(ctx context.Context, owner string) ([]string, error)
	// Add blocks jids (already blocked ones are kept); ErrNotFound if the
	// owner has no account.
	Add(ctx context.Context, owner string, jids []string) error
	// Remove unblocks jids (absent ones are ignored).
	Remove(ctx context.Context, owner string, jids []string) error
	// Clear unblocks everything and returns what was blocked, sorted.
	Clear(ctx context.Context, owner string) ([]string, error)
}

// ReportState is the state of an abuse report in the admins' queue.
type ReportState string

// Report states.
const (
	ReportOpen     ReportState = "open"
	ReportResolved ReportState = "resolved"
)

// StanzaRef names one archived message (XEP-0359 stanza-id).
type StanzaRef struct {
	By string `json:"by"`
	ID string `json:"id"`
}

// Report is one abuse report.
type Report struct {
	ID       int64
	Created  time.Time
	Reporter string // bare JID of the reporting user, or a domain for reports the server files
	Offender string // the reported JID
	Reason   string // "spam", "abuse" or "other"
	Text     string
	// StanzaIDs are the reported messages (XEP-0377 stanza-id references).
	StanzaIDs []StanzaRef
	// Evidence is the offending stanza, serialized (nil when none).
	Evidence []byte
	// Source says where the report came from: "xep-0377", "firewall ...", ...
	Source string
	State  ReportState
	// Resolution, set by Resolve.
	ResolvedAt time.Time
	ResolvedBy string
	Resolution string
	// Forwarded names where the report was forwarded ("" when it was not).
	Forwarded string
}

// ReportFilter selects reports.
type ReportFilter struct {
	State    ReportState // "" for every state
	Offender string      // "" for every offender
	Limit    int         // most reports returned; 0 for no limit
}

// Reports is the queue of abuse reports. Reports are kept when the
// accounts they name are deleted.
type Reports interface {
	// Add stores a report (Created, Reporter, Offender and Reason set;
	// State is open) and returns its id.
	Add(ctx context.Context, r Report) (int64, error)
	// Get returns one report; ErrNotFound if there is no such id.
	Get(ctx context.Context, id int64) (Report, error)
	// List returns the matching reports, newest first.
	List(ctx context.Context, f ReportFilter) ([]Report, error)
	// Resolve marks a report resolved; ErrNotFound if there is no such id.
	Resolve(ctx context.Context, id int64, by, resolution string, at time.Time) error
	// SetForwarded records where a report was forwarded.
	SetForwarded(ctx context.Context, id int64, to string) error
	// Count returns the number of reports in a state ("": all).
	Count(ctx context.Context, state ReportState) (int, error)
}
