package server

import "context"

// OnReload registers fn to run when the operator asks for a reload
// (SIGHUP, or the admin socket): features re-read the files they own
// (firewall rules, lists). fn must keep the running state when the new
// one has errors, log what it did, and return promptly.
func (s *Setup) OnReload(fn func(ctx context.Context)) {
	s.srv.reloaders = append(s.srv.reloaders, fn)
}

// Reload runs the features' reload functions in registry order.
func (srv *Server) Reload(ctx context.Context) {
	for _, fn := range srv.reloaders {
		fn(ctx)
	}
}
