package register

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
)

// Admin commands: from an XMPP client (XEP-0050 ad-hoc, admins only) and
// from the command line (admin socket: stoa register ...).

// Ad-hoc command nodes.
const (
	NodeApprove = "urn:stoa:register#approve"
	NodePending = "urn:stoa:register#pending"
)

func (f *feature) setupCommands(s *server.Setup) {
	s.AdHoc(server.Command{Node: NodeApprove, Name: "Approve a new account", Access: server.AdminOnly, Handler: f.cmdApprove})
	s.AdHoc(server.Command{Node: NodePending, Name: "List new accounts waiting for approval", Access: server.AdminOnly, Handler: f.cmdPending})
	s.AdminCommand(server.AdminCommand{
		Name: "register.approve", Args: []string{"jid"},
		Help: "Approve a new account registered in approval mode: its restriction on messages to strangers and contact requests is lifted.",
		Run: func(ctx context.Context, args map[string]string) (server.AdminResult, error) {
			j, err := f.srv.AccountJID(args["jid"])
			if err != nil {
				return server.AdminResult{}, err
			}
			if err := f.limits.approve(ctx, j, "cli"); err != nil {
				return server.AdminResult{}, err
			}
			return server.AdminResult{Message: "approved " + j.String()}, nil
		},
	})
	s.AdminCommand(server.AdminCommand{
		Name: "register.pending", Help: "List the accounts waiting for approval.",
		Run: func(ctx context.Context, _ map[string]string) (server.AdminResult, error) {
			list, err := f.limits.pending(ctx)
			if err != nil {
				return server.AdminResult{}, err
			}
			res := server.AdminResult{Message: fmt.Sprintf("%d accounts waiting for approval", len(list))}
			for _, st := range list {
				res.Lines = append(res.Lines, st.JID+"	registered "+st.Since.UTC().Format(time.RFC3339))
			}
			return res, nil
		},
	})
	s.AdminCommand(server.AdminCommand{
		Name: "register.log", Args: []string{"since", "ip", "domain"}, Optional: []string{"since", "ip", "domain"},
		Help: "Show the registration log: who signed up, when, from which address, how and with which invitation. since is a duration (e.g. 24h, 7d; default 24h); ip and domain filter.",
		Run:  f.adminLog,
	})
	s.AdminCommand(server.AdminCommand{
		Name: "register.tombstones", Args: []string{"domain"}, Optional: []string{"domain"},
		Help: "List the names of deleted accounts that are not given out again.",
		Run: func(ctx context.Context, args map[string]string) (server.AdminResult, error) {
			domains := f.srv.Hosts()
			if d := args["domain"]; d != "" {
				domains = []string{d}
			}
			var res server.AdminResult
			n := 0
			for _, d := range domains {
				list, err := f.srv.Store().Registration().Tombstones(ctx, d)
				if err != nil {
					return server.AdminResult{}, err
				}
				for _, e := range list {
					res.Lines = append(res.Lines, fmt.Sprintf("%s deleted %s via %s", e.JID, e.Since.UTC().Format(time.RFC3339), e.Via))
				}
				n += len(list)
			}
			res.Message = fmt.Sprintf("%d tombstones", n)
			return res, nil
		},
	})
	s.AdminCommand(server.AdminCommand{
		Name: "register.untombstone", Args: []string{"jid"},
		Help: "Free the name of a deleted account so that it can be registered again (for example to restore an account deleted by mistake).",
		Run: func(ctx context.Context, args map[string]string) (server.AdminResult, error) {
			j, err := f.srv.AccountJID(args["jid"])
			if err != nil {
				return server.AdminResult{}, err
			}
			if err := f.srv.Store().Registration().RemoveTombstone(ctx, j.String()); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return server.AdminResult{}, fmt.Errorf("%s has no tombstone", j)
				}
				return server.AdminResult{}, err
			}
			f.log.Info("tombstone removed by an admin", "jid", j.String())
			return server.AdminResult{Message: "the name " + j.String() + " may be registered again"}, nil
		},
	})
}

func (f *feature) adminLog(ctx context.Context, args map[string]string) (server.AdminResult, error) {
	since := 24 * time.Hour
	if s := args["since"]; s != "" {
		d, err := config.ParseDuration(s)
		if err != nil {
			return server.AdminResult{}, fmt.Errorf("since: %w", err)
		}
		since = time.Duration(d)
	}
	q := store.RegistrationLogQuery{Since: f.now().Add(-since), Domain: args["domain"]}
	if ip := args["ip"]; ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return server.AdminResult{}, fmt.Errorf("ip: %q is not an address", ip)
		}
		q.IP = a.Unmap().String()
	}
	list, err := f.srv.Store().Registration().Log(ctx, q)
	if err != nil {
		return server.AdminResult{}, err
	}
	res := server.AdminResult{Message: fmt.Sprintf("%d sign-ups in the last %s", len(list), since)}
	for _, e := range list {
		inv := e.Invite
		if inv == "" {
			inv = "-"
		}
		res.Lines = append(res.Lines, fmt.Sprintf("%s\t%s\t%s\t%s\t%s", e.At.UTC().Format(time.RFC3339), e.JID, orDash(e.IP), e.Method, inv))
	}
	return res, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (f *feature) cmdApprove(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	if req.Form == nil {
		fm := form.New(form.TypeForm, "Approve a new account").
			Instruct("The account's restriction on messages to strangers and contact requests is lifted.")
		fm.Hidden("FORM_TYPE", "urn:stoa:register")
		fm.Add(form.Field{Var: "accountjid", Type: form.JIDSingle, Label: "The account to approve", Required: true})
		return server.CommandForm(fm), nil
	}
	j, err := jid.Parse(req.Form.Value("accountjid"))
	if err != nil || j.Local() == "" {
		return nil, server.BadPayload("accountjid must be an account address (user@domain).")
	}
	if err := f.limits.approve(ctx, j.Bare(), req.From.Bare().String()); err != nil {
		return server.CommandFailed("%v", err), nil
	}
	return server.CommandInfo("%s is approved.", j.Bare()), nil
}

func (f *feature) cmdPending(ctx context.Context, _ *server.CommandRequest) (*server.CommandResponse, error) {
	list, err := f.limits.pending(ctx)
	if err != nil {
		return nil, err
	}
	fm := form.New(form.TypeResult, "New accounts waiting for approval")
	fm.Reported = []form.Field{{Var: "jid", Label: "Account"}, {Var: "registered", Label: "Registered"}}
	for _, st := range list {
		fm.Items = append(fm.Items, []form.Field{
			{Var: "jid", Values: []string{st.JID}},
			{Var: "registered", Values: []string{st.Since.UTC().Format(time.RFC3339)}},
		})
	}
	return server.CommandResult(fm, server.CommandNote{Type: server.NoteInfo, Text: strconv.Itoa(len(list)) + " accounts waiting for approval."}), nil
}
