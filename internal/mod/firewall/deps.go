package firewall

import "stoa.im/stoa/internal/server"

// lookupDeps finds the services restrict, suspend, sender-state and
// report use among those other features provide (server.Find): any
// object with the methods of Sanctions, and of Reports.
func lookupDeps(s *server.Setup) func() Deps {
	srv := s.Server()
	return func() Deps {
		var d Deps
		d.Sanctions, _ = server.Find[Sanctions](srv)
		d.Reports, _ = server.Find[Reports](srv)
		return d
	}
}
