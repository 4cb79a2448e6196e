package store

import (
	"context"
	"time"
)

// PushRegistration is one XEP-0357 registration: an XMPP push service
// (the "app server") that gets a notification, on a node of its own, when
// a message arrives for an account whose clients are away.
type PushRegistration struct {
	Service string // JID of the XMPP push service
	Node    string
	// Options is the serialized publish-options form (jabber:x:data) the
	// client gave, sent with every notification; nil when none.
	Options []byte
	Created time.Time
	// Errors counts the publish errors in a row since the last success.
	Errors int
}

// Push stores push notification registrations (XEP-0357).
type Push interface {
	// Put adds the registration of (owner, Service, Node), or replaces it
	// (its error count starts again). With max > 0, the oldest
	// registrations beyond max are removed. ErrNotFound if the owner has
	// no account.
	Put(ctx context.Context, owner string, r PushRegistration, max int) error
	// Remove removes the registration of service and node, or every
	// registration of service when node is "", and returns how many went.
	Remove(ctx context.Context, owner, service, node string) (int, error)
	// List returns the owner's registrations, oldest first.
	List(ctx context.Context, owner string) ([]PushRegistration, error)
	// SetErrors records the error count of one registration (nothing
	// happens when it does not exist).
	SetErrors(ctx context.Context, owner, service, node string, n int) error
	// Owners returns the accounts that have at least one registration,
	// sorted.
	Owners(ctx context.Context) ([]string, error)
}
