// Package store defines stoa's storage: one small repository interface per
// domain (accounts, roster, offline messages, ...), typed errors, and the
// Store that bundles them. Backends live in sub-packages (sqlite/, later
// postgres/) and must all pass the conformance suite in storetest/.
//
// Keys are canonical bare JID strings ("alice@example.org"), already
// PRECIS-prepared by the caller. Methods take a context and return wrapped
// errors; ErrNotFound and friends are matched with errors.Is.
//
// Every owner is a local account: writing roster items, pending requests,
// offline messages or kv values for an owner that has no account fails with
// ErrNotFound (so nothing can outlive Accounts.Delete). Times come back in
// UTC and keep at least microsecond precision.
package store

import (
	"context"
	"errors"
	"time"
)

// Typed errors shared by every backend.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrExists        = errors.New("store: already exists")
	ErrQuotaExceeded = errors.New("store: quota exceeded")
)

// Store bundles the repositories of one backend. A repository is a handle
// on the backend: the same value may be kept and used for the store's life.
type Store interface {
	Accounts() Accounts
	Roster() Roster
	Offline() Offline
	// KV is a small per-account key/value space for features that need a
	// few values each (last activity, preferences). Values are opaque.
	KV() KV
	// Registration holds the name index with tombstones, the sign-up log
	// and throttle state (registration.go).
	Registration() Registration
	// Invites holds invitation and password-reset tokens; Nonces
	// single-use values such as proof-of-work solutions (invites.go).
	Invites() Invites
	Nonces() Nonces
	// Archive holds message archives (XEP-0313; archive.go).
	Archive() Archive
	// Push holds push notification registrations (XEP-0357; push.go).
	Push() Push
	// AccountStates, Blocklist and Reports serve abuse control (abuse.go).
	AccountStates() AccountStates
	Blocklist() Blocklist
	Reports() Reports
	Close() error
}

// ScramCredentials are the SCRAM keys for one hash (RFC 5802 §3): the
// password itself is never stored.
type ScramCredentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Credentials hold one set of SCRAM keys per supported hash.
type Credentials struct {
	SHA1   ScramCredentials
	SHA256 ScramCredentials
}

// Account is one local account.
type Account struct {
	JID         string // bare JID
	Credentials Credentials
	Created     time.Time
	// LastLogout is the time the last session ended (zero if never);
	// LastStatus is the status text of its last unavailable presence.
	LastLogout time.Time
	LastStatus string
}

// Accounts stores local accounts.
type Accounts interface {
	// Create adds an account; ErrExists if the JID is taken.
	Create(ctx context.Context, jid string, creds Credentials) error
	// Get returns the account; ErrNotFound if it does not exist.
	Get(ctx context.Context, jid string) (Account, error)
	// SetCredentials replaces the keys; ErrNotFound if no such account.
	SetCredentials(ctx context.Context, jid string, creds Credentials) error
	// SetLastLogout records when the last session ended and its status
	// (a zero t means never); ErrNotFound if no such account.
	SetLastLogout(ctx context.Context, jid string, t time.Time, status string) error
	// Delete removes the account and everything stored for it in every
	// repository of this store (roster, offline messages, kv);
	// ErrNotFound if it does not exist.
	Delete(ctx context.Context, jid string) error
	// List returns the bare JIDs of the accounts of one domain, sorted.
	List(ctx context.Context, domain string) ([]string, error)
	// Count returns the number of accounts of one domain.
	Count(ctx context.Context, domain string) (int, error)
}

// Subscription is the subscription state of a roster item (RFC 6121 §2.1.2.5).
type Subscription string

// Subscription states.
const (
	SubNone Subscription = "none"
	SubTo   Subscription = "to"
	SubFrom Subscription = "from"
	SubBoth Subscription = "both"
)

// RosterItem is one contact in an account's roster.
type RosterItem struct {
	JID          string // contact, bare JID
	Name         string
	Subscription Subscription
	// Ask is true while our outbound subscription request is pending
	// ("None + Pending Out" and friends, RFC 6121 Appendix A).
	Ask bool
	// Approved is a pre-approval of the contact's future request (RFC 6121 §3.4).
	Approved bool
	Groups   []string
}

// PendingIn is an inbound subscription request not yet answered, kept so it
// can be shown again at the next login (RFC 6121 §3.1.3).
type PendingIn struct {
	JID    string // requester, bare JID
	Stanza []byte // the original <presence type='subscribe'/>, serialized
}

// Roster stores rosters (RFC 6121 §2) with a version per roster (§2.6).
// Every change increments the roster's version; versions never go back,
// even when an item is removed.
type Roster interface {
	// Items returns all items and the current version (0 for an empty,
	// never-changed roster).
	Items(ctx context.Context, owner string) ([]RosterItem, int64, error)
	// Get returns one item; ErrNotFound if the contact is not in the roster.
	Get(ctx context.Context, owner, contact string) (RosterItem, error)
	// Put inserts or replaces an item and returns the new version. An
	// unknown Subscription value is an error.
	Put(ctx context.Context, owner string, item RosterItem) (int64, error)
	// Delete removes an item and returns the new version; ErrNotFound if absent.
	Delete(ctx context.Context, owner, contact string) (int64, error)
	// AddPendingIn stores (or replaces) an inbound subscription request;
	// a replaced request counts as the newest.
	AddPendingIn(ctx context.Context, owner string, p PendingIn) error
	// RemovePendingIn removes it (no error when absent).
	RemovePendingIn(ctx context.Context, owner, contact string) error
	// PendingIn lists the stored inbound requests, oldest first.
	PendingIn(ctx context.Context, owner string) ([]PendingIn, error)
}

// OfflineMessage is a stored message waiting for its recipient (XEP-0160).
type OfflineMessage struct {
	ID     int64
	Stored time.Time
	Stanza []byte // serialized <message/> in the jabber:client namespace
}

// Offline stores messages for accounts with no available resource.
// Delivery is at-least-once: List, deliver, then Delete the delivered IDs.
type Offline interface {
	// Push stores a message. With quota > 0 and the account already holding
	// quota messages, it stores nothing and returns ErrQuotaExceeded.
	Push(ctx context.Context, owner string, stanza []byte, stored time.Time, quota int) error
	// List returns the stored messages, oldest first.
	List(ctx context.Context, owner string) ([]OfflineMessage, error)
	// Delete removes the messages with the given IDs; IDs that are absent
	// or belong to another owner are ignored.
	Delete(ctx context.Context, owner string, ids []int64) error
	// Count returns how many messages are stored.
	Count(ctx context.Context, owner string) (int, error)
}

// KV is a small key/value space per account.
type KV interface {
	// Get returns ErrNotFound when the key is absent.
	Get(ctx context.Context, owner, key string) ([]byte, error)
	Put(ctx context.Context, owner, key string, value []byte) error
	// Delete removes the key (no error when absent).
	Delete(ctx context.Context, owner, key string) error
}
