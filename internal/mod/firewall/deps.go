package firewall

import "stoa.im/stoa/internal/server"

// lookupDeps finds the account state and reports services.
func lookupDeps(s *server.Setup) func() Deps {
	return func() Deps { return Deps{} }
}
