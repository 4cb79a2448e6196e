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
	"stoa.im/stoa/internal/mod/accountstate"
	"stoa.im/stoa/internal/mod/adhoc"
	"stoa.im/stoa/internal/mod/admin"
	"stoa.im/stoa/internal/mod/blocking"
	"stoa.im/stoa/internal/mod/carbons"
	"stoa.im/stoa/internal/mod/contact"
	"stoa.im/stoa/internal/mod/csi"
	"stoa.im/stoa/internal/mod/disco"
	"stoa.im/stoa/internal/mod/firewall"
	"stoa.im/stoa/internal/mod/invite"
	"stoa.im/stoa/internal/mod/last"
	"stoa.im/stoa/internal/mod/limits"
	"stoa.im/stoa/internal/mod/mam"
	"stoa.im/stoa/internal/mod/offline"
	"stoa.im/stoa/internal/mod/ping"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/push"
	"stoa.im/stoa/internal/mod/register"
	"stoa.im/stoa/internal/mod/reports"
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
		// mam: the message archive. Its hooks have their own priorities
		// (after policies, before carbons and offline storage, so copies
		// carry the stanza-id).
		mam.Feature,
		// Messages on every device (docs/messages.md; stream management
		// XEP-0198 lives in c2s): carbons copies messages to the user's
		// other clients (after mam, so copies carry the stanza-id); csi
		// holds unimportant stanzas for clients in the background (last
		// in the Outbound chain); push wakes apps whose sessions are gone,
		// detached or inactive.
		carbons.Feature,
		csi.Feature,
		push.Feature,

		// Service discovery and what it advertises about the server.
		disco.Feature,
		contact.Feature,

		// Small server information queries.
		version.Feature,
		time.Feature,
		last.Feature,
		ping.Feature,

		// Accounts: sign-up (in-band registration, CAPTCHA, modes,
		// throttles, names and tombstones, registration log, admin
		// notices, restriction of new accounts) and in-band password
		// change and deletion. Its UserRegistering policies have explicit
		// priorities around the invitation feature's.
		register.Feature,
		// Invitations (XEP-0401, XEP-0379, XEP-0445) and password-reset
		// links: checks invitation tokens on UserRegistering between the
		// register feature's gate and its checks, and approves invited
		// contacts' subscription requests before the roster handles them.
		invite.Feature,

		// Ad-hoc commands (XEP-0050): runs the commands other features
		// declare with Setup.AdHoc (administration, invitations).
		adhoc.Feature,
		// Service administration from any client (XEP-0133 commands run
		// by adhoc; only [server] admins see them).
		admin.Feature,

		// Abuse control. limits holds back floods (connections per
		// address, sessions per account, bandwidth, stanza rates,
		// unsolicited messages and contact requests); accountstate
		// enforces suspensions and restrictions; blocking (XEP-0191)
		// filters stanzas between users and hands the reports attached
		// to blocks (XEP-0377) to the reports queue. Their PrioPolicy
		// hooks run before the firewall's.
		limits.Feature,
		accountstate.Feature,
		blocking.Feature,
		reports.Feature,

		// The firewall: administrators' rules from files on the local,
		// remote and deliver chains (docs/firewall.md). Its hooks run at
		// PrioPolicy, after the policies of the features listed above.
		firewall.Feature,
	}
}
