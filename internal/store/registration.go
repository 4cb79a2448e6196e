package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNameTaken is returned (wrapped in a *NameTakenError) when an
// account's look-alike key is already held by another account or by a
// tombstone.
var ErrNameTaken = errors.New("store: name taken")

// NameState says what holds a look-alike key.
type NameState string

// Name states.
const (
	NameAccount   NameState = "account"   // a live account
	NameTombstone NameState = "tombstone" // a deleted account: the name is never issued again
)

// NameEntry is one row of the name index: the look-alike key (skeleton)
// of an account or of a deleted account's name.
type NameEntry struct {
	JID    string // bare JID of the account (or of the deleted account)
	Domain string
	Key    string // look-alike key of the localpart (policy.NameKey)
	State  NameState
	// Since is when the account was created (State account) or deleted
	// (State tombstone).
	Since time.Time
	// Via says which path deleted it ("inband", "cli", "admin", "web"),
	// for tombstones.
	Via string
}

// NameTakenError is ErrNameTaken with the entry that holds the key.
type NameTakenError struct{ Holder NameEntry }

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("store: name taken by %s %s", e.Holder.State, e.Holder.JID)
}

// Unwrap makes errors.Is(err, ErrNameTaken) true.
func (e *NameTakenError) Unwrap() error { return ErrNameTaken }

// RegistrationLogEntry is one account created by sign-up (in-band, web,
// invitation), kept for later clean-up even after the account is gone.
type RegistrationLogEntry struct {
	ID     int64 // assigned by the store
	JID    string
	Domain string
	At     time.Time
	IP     string // client address; "" when none (command line)
	Method string // "inband", "web", ...
	Invite string // invitation token used, "" when none
}

// RegistrationLogQuery selects log entries. Zero fields do not filter.
type RegistrationLogQuery struct {
	Domain string
	Since  time.Time // At >= Since
	Before time.Time // At < Before
	IP     string    // exact address
	Limit  int       // 0: no limit
}

// ThrottleEntry is the persisted state of one throttle key: the times of
// the recent events it counts (newest last).
type ThrottleEntry struct {
	Key   string
	Times []time.Time
}

// Registration stores what sign-up needs: the name index with its
// tombstones, the registration log and throttle state.
//
// Account creation and deletion go through CreateAccount and
// DeleteAccount so that the name index can never disagree with the
// accounts: the key is written with the account, and the tombstone in the
// same transaction that deletes it.
type Registration interface {
	// CreateAccount creates an account (as Accounts.Create) and indexes
	// its look-alike key in the same transaction. It fails with ErrExists
	// when the JID is taken and with a *NameTakenError when the key is
	// held by another account or a tombstone of the same domain (the
	// tombstone of this very JID included).
	CreateAccount(ctx context.Context, jid string, creds Credentials, key string) error
	// DeleteAccount deletes an account and everything it owns (as
	// Accounts.Delete) and, in the same transaction, turns its name entry
	// into a tombstone dated at with via. An account whose name was not
	// indexed gets a tombstone under key unless another entry holds that
	// key. ErrNotFound if the account does not exist.
	DeleteAccount(ctx context.Context, jid, key string, at time.Time, via string) error
	// LookupName returns the entry holding key in domain; ErrNotFound if none.
	LookupName(ctx context.Context, domain, key string) (NameEntry, error)
	// IndexName indexes an existing account that has no entry (accounts
	// created before the index existed); it reports false when another
	// entry holds the key, and ErrNotFound if the account does not exist.
	IndexName(ctx context.Context, jid, key string) (bool, error)
	// UnindexedAccounts lists, in JID order, up to limit accounts of
	// domain after the JID after ("" from the start) that have no name
	// entry.
	UnindexedAccounts(ctx context.Context, domain, after string, limit int) ([]string, error)
	// Tombstones lists the tombstones of domain, oldest first.
	Tombstones(ctx context.Context, domain string) ([]NameEntry, error)
	// RemoveTombstone frees a deleted account's name (an admin decision or
	// an expired tombstone); ErrNotFound if jid has no tombstone.
	RemoveTombstone(ctx context.Context, jid string) error
	// PurgeTombstones removes the tombstones of domain older than before
	// and returns how many went.
	PurgeTombstones(ctx context.Context, domain string, before time.Time) (int, error)

	// AppendLog records a sign-up and returns its ID.
	AppendLog(ctx context.Context, e RegistrationLogEntry) (int64, error)
	// Log returns matching entries, oldest first.
	Log(ctx context.Context, q RegistrationLogQuery) ([]RegistrationLogEntry, error)
	// PurgeLog removes entries older than before; it returns how many.
	PurgeLog(ctx context.Context, before time.Time) (int, error)

	// PutThrottle stores throttle entries (replacing those with the same
	// key; an entry with no times is removed).
	PutThrottle(ctx context.Context, entries []ThrottleEntry) error
	// Throttle returns every stored throttle entry.
	Throttle(ctx context.Context) ([]ThrottleEntry, error)
	// PurgeThrottle removes entries whose newest time is before before.
	PurgeThrottle(ctx context.Context, before time.Time) (int, error)
}
