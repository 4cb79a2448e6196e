package adminsock

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"stoa.im/stoa/internal/server"
)

// FeatureCommands is implemented by *server.Server: the admin commands
// features registered with Setup.AdminCommand (e.g. invite.create).
type FeatureCommands interface {
	AdminCommands() []server.AdminCommand
}

// execFeature runs req if a feature registered a command of that name;
// ok is false when none did.
func execFeature(ctx context.Context, a Accounts, req Request) (resp Response, ok bool) {
	fc, isFC := a.(FeatureCommands)
	if !isFC {
		return Response{}, false
	}
	cmds := fc.AdminCommands()
	i := slices.IndexFunc(cmds, func(c server.AdminCommand) bool { return c.Name == req.Cmd })
	if i < 0 {
		return Response{}, false
	}
	cmd := cmds[i]
	for k := range req.Args {
		if !slices.Contains(cmd.Args, k) {
			return fail(fmt.Errorf("%s: unknown argument %q (arguments: %s)", cmd.Name, k, strings.Join(cmd.Args, ", "))), true
		}
	}
	for _, k := range cmd.Args {
		if req.Args[k] == "" && !slices.Contains(cmd.Optional, k) {
			return fail(fmt.Errorf("%s: missing argument %q", cmd.Name, k)), true
		}
	}
	res, err := cmd.Run(ctx, req.Args)
	if err != nil {
		return fail(err), true
	}
	return Response{OK: true, Message: res.Message, Lines: res.Lines}, true
}
