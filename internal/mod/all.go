// Package mod holds the registry: the one ordered list of stoa's
// features. Each feature lives in its own package under internal/mod/.
//
// The order matters in one way only: hooks of equal priority run in the
// order their features appear here (higher priorities always run first,
// see server.Priority). Keep related features together, and put a
// feature after the ones whose work its hooks build on. There is no init()
// magic and no blank import: a feature not listed here does not exist.
package mod

import (
	"stoa.im/stoa/internal/mod/contact"
	"stoa.im/stoa/internal/mod/disco"
	"stoa.im/stoa/internal/mod/last"
	"stoa.im/stoa/internal/mod/offline"
	"stoa.im/stoa/internal/mod/ping"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/mod/time"
	"stoa.im/stoa/internal/mod/version"
	"stoa.im/stoa/internal/server"
)

// All returns the features in registry order.
func All() []server.Feature {
	return []server.Feature{
		// Instant messaging (RFC 6121). roster before presence: on an
		// outbound subscription presence, the roster's hook updates the
		// subscription state before presence routing reads it.
		roster.Feature,
		presence.Feature,
		// offline after presence: it delivers stored messages once
		// presence has marked the session available.
		offline.Feature,

		// Service discovery and what it advertises about the server.
		disco.Feature,
		contact.Feature,

		// Small server information queries.
		version.Feature,
		time.Feature,
		last.Feature,
		ping.Feature,
	}
}
