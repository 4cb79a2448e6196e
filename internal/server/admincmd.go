package server

import (
	"context"
	"fmt"
	"slices"
)

// Admin commands: operations features offer to the operator's command
// line. The admin socket (internal/adminsock) runs them when the server
// runs, and the command line runs them on a server built over the store
// when it does not, so they take the same code path either way.

// AdminCommand is one command of the admin socket, e.g. "invite.create".
type AdminCommand struct {
	Name string
	// Args are the argument names; all are required unless listed in
	// Optional.
	Args     []string
	Optional []string
	Help     string
	// Run performs the command. Its result is shown to the operator; an
	// error is reported as the command's failure.
	Run func(ctx context.Context, args map[string]string) (AdminResult, error)
}

// AdminResult is what an admin command answers.
type AdminResult struct {
	Message string   // one line for the operator
	Lines   []string // further output, one item per line (e.g. a list)
}

type adminRegistry struct {
	list []AdminCommand
}

// AdminCommand registers a command of the admin socket. It panics when
// the name is empty or taken (a programming error).
func (s *Setup) AdminCommand(c AdminCommand) {
	r := &s.srv.adminCmds
	if c.Name == "" || c.Run == nil {
		panic(fmt.Sprintf("server: %s: an admin command needs a name and a Run function", s.feature))
	}
	if slices.ContainsFunc(r.list, func(o AdminCommand) bool { return o.Name == c.Name }) {
		panic(fmt.Sprintf("server: %s: admin command %q registered twice", s.feature, c.Name))
	}
	r.list = append(r.list, c)
}

// AdminCommands returns the admin commands features registered, in
// registration order.
func (srv *Server) AdminCommands() []AdminCommand {
	return slices.Clone(srv.adminCmds.list)
}

// PublicURL is the base URL of the web listener as seen from outside,
// without a trailing slash; "" when the web listener is off.
func (srv *Server) PublicURL() string { return srv.webURL }
