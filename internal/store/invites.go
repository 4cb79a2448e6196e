package store

import (
	"context"
	"time"
)

// InviteKind is what an invitation lets its holder do.
type InviteKind string

// Invitation kinds.
const (
	// InviteAccount lets the holder create an account on Host (XEP-0401
	// "create-account"); JID, when set, is the only address they may take.
	InviteAccount InviteKind = "account"
	// InviteContact is Creator's contact invitation (XEP-0379): using it
	// makes the holder and Creator mutual contacts. With AllowRegister
	// the holder may also create an account on Host with it (ibr=y).
	InviteContact InviteKind = "contact"
	// InviteReset lets the holder set a new password for the account JID.
	InviteReset InviteKind = "reset"
)

// Invite is one invitation token.
type Invite struct {
	Token string // random and unguessable; the key
	Kind  InviteKind
	Host  string // the domain it is valid for
	// Creator is the bare JID of the account that created the invite
	// ("" when an operator created it on the command line). Deleting that
	// account deletes its invites.
	Creator string
	// JID is, for account invites, the address reserved for the invitee
	// ("" when they choose); for reset invites, the account whose password
	// may be set. Contact invites leave it empty.
	JID string
	// AllowRegister: the token may be used to create an account (always
	// true for account invites).
	AllowRegister bool
	// Subscribe: the account created with it and Creator become mutual
	// contacts (always true for contact invites).
	Subscribe bool
	Note      string // the creator's label, shown to nobody but admins
	Created   time.Time
	Expires   time.Time
	MaxUses   int // at least 1
	Uses      int
}

// Valid reports whether inv can still be used at now.
func (inv Invite) Valid(now time.Time) bool {
	return now.Before(inv.Expires) && inv.Uses < inv.MaxUses
}

// Invites stores invitation tokens (XEP-0401, XEP-0379, XEP-0445) and
// password-reset tokens.
type Invites interface {
	// Create stores a new invite (Uses is ignored and starts at 0);
	// ErrExists if the token is taken, ErrNotFound if Creator is set and
	// has no account.
	Create(ctx context.Context, inv Invite) error
	// Get returns an invite, valid or not; ErrNotFound if unknown.
	Get(ctx context.Context, token string) (Invite, error)
	// Use atomically counts one use of the invite if it is valid at now,
	// and returns it as updated; ErrNotFound if it is unknown, expired or
	// used up.
	Use(ctx context.Context, token string, now time.Time) (Invite, error)
	// Release takes back one use counted by Use (the registration it was
	// counted for failed); no error when the invite is gone.
	Release(ctx context.Context, token string) error
	// Delete removes an invite (no error when absent).
	Delete(ctx context.Context, token string) error
	// List returns the invites of a host that are valid at now, oldest
	// first.
	List(ctx context.Context, host string, now time.Time) ([]Invite, error)
	// CountCreated counts the stored invites creator created at or after
	// since, used or not.
	CountCreated(ctx context.Context, creator string, since time.Time) (int, error)
	// Reserved returns a valid account invite reserving the bare JID
	// jid at now; ErrNotFound when none.
	Reserved(ctx context.Context, jid string, now time.Time) (Invite, error)
	// Purge deletes the invites that expired before before (used or
	// not) and returns how many. Callers keep expired and used invites
	// for a while (quotas count them) by passing a time in the past.
	Purge(ctx context.Context, before time.Time) (int, error)
}

// Nonces remembers single-use values (proof-of-work solutions, form
// tokens) until they expire, so that each can be used once.
type Nonces interface {
	// Use records key as used until expires. It reports false when key
	// was already used and has not been purged since.
	Use(ctx context.Context, key string, expires time.Time) (bool, error)
	// Purge forgets the keys that expired before now and returns how many.
	Purge(ctx context.Context, now time.Time) (int, error)
}
