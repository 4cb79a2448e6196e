package admin

import (
	"context"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/jid"
)

// AccountStates is what disable-user and reenable-user need from the
// account state service (suspension with a reason, shown at login). The
// account state feature provides it (server.Setup.Provide); admin finds
// it with server.Find when a command runs.
type AccountStates interface {
	// Disable suspends the account and ends its sessions; by is the
	// admin's bare JID and reason the text the user sees at login.
	Disable(ctx context.Context, account jid.JID, reason, by string) error
	// Enable lifts a suspension.
	Enable(ctx context.Context, account jid.JID, by string) error
	// State names the account's state ("active", "suspended", ...).
	State(ctx context.Context, account jid.JID) (string, error)
}

// accountStates finds the account state service.
func accountStates(s *server.Setup) func() AccountStates {
	srv := s.Server()
	return func() AccountStates {
		st, ok := server.Find[AccountStates](srv)
		if !ok {
			return nil
		}
		return st
	}
}
