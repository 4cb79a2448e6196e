package invite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
)

// Admin socket commands: `stoa invite create|list|revoke`.

func (f *feature) setupAdmin(s *server.Setup) {
	s.AdminCommand(server.AdminCommand{
		Name:     "invite.create",
		Args:     []string{"host", "user", "contact", "reset", "expires", "uses", "note"},
		Optional: []string{"host", "user", "contact", "reset", "expires", "uses", "note"},
		Help:     "Create an account invitation (optionally for one username), a contact invitation of an account, or a password-reset link.",
		Run:      f.adminCreate,
	})
	s.AdminCommand(server.AdminCommand{
		Name: "invite.list", Args: []string{"host"}, Optional: []string{"host"},
		Help: "List the valid invitations of one domain, or of every hosted domain.",
		Run:  f.adminList,
	})
	s.AdminCommand(server.AdminCommand{
		Name: "invite.revoke", Args: []string{"token"},
		Help: "Delete an invitation so that it can no longer be used.",
		Run:  f.adminRevoke,
	})
}

func (f *feature) adminCreate(ctx context.Context, args map[string]string) (server.AdminResult, error) {
	ttl, err := parseExpiry(args["expires"])
	if err != nil {
		return server.AdminResult{}, err
	}
	uses, err := parseUses(args["uses"])
	if err != nil {
		return server.AdminResult{}, err
	}
	host := args["host"]
	r := Request{Kind: store.InviteAccount, Expires: ttl, Uses: uses, Note: args["note"]}
	switch {
	case args["reset"] != "" && (args["contact"] != "" || args["user"] != ""):
		return server.AdminResult{}, errors.New("--reset cannot be combined with --contact or --user")
	case args["reset"] != "":
		j, err := f.srv.AccountJID(args["reset"])
		if err != nil {
			return server.AdminResult{}, err
		}
		if uses > 1 {
			return server.AdminResult{}, errors.New("a password-reset link can be used once; leave out --uses")
		}
		r.Kind, r.JID, host = store.InviteReset, j, j.Domain()
	case args["contact"] != "":
		j, err := f.srv.AccountJID(args["contact"])
		if err != nil {
			return server.AdminResult{}, err
		}
		// The operator's contact invitations let the invitee sign up.
		r.Kind, r.Creator, r.AllowRegister, host = store.InviteContact, j, true, j.Domain()
		if args["user"] != "" {
			return server.AdminResult{}, errors.New("--user reserves a name for an account invitation; it cannot be combined with --contact")
		}
	}
	if host == "" {
		hosts := f.srv.Hosts()
		if len(hosts) != 1 {
			return server.AdminResult{}, fmt.Errorf("this server hosts %s: say which with --host", strings.Join(hosts, ", "))
		}
		host = hosts[0]
	}
	r.Host = host
	if name := args["user"]; name != "" {
		j, err := reservedJID(name, host)
		if err != nil {
			return server.AdminResult{}, err
		}
		r.JID = j
	}
	c, err := f.create(ctx, r)
	if err != nil {
		return server.AdminResult{}, err
	}
	var what string
	switch r.Kind {
	case store.InviteReset:
		what = "a password-reset link for " + c.Invite.JID
	case store.InviteContact:
		what = "a contact invitation of " + c.Invite.Creator + " (the invitee may sign up on " + host + ")"
	default:
		what = "an account invitation for " + host
		if c.Invite.JID != "" {
			what = "an account invitation for " + c.Invite.JID
		}
	}
	res := server.AdminResult{Message: fmt.Sprintf("created %s, valid until %s (%d use%s)", what,
		c.Invite.Expires.UTC().Format(time.RFC3339), c.Invite.MaxUses, plural(c.Invite.MaxUses))}
	if c.Landing != "" {
		res.Lines = append(res.Lines, c.Landing)
	}
	if c.URI != "" {
		res.Lines = append(res.Lines, c.URI)
	}
	if c.Landing == "" && r.Kind == store.InviteReset {
		res.Lines = append(res.Lines, "token: "+c.Invite.Token+" (the web listener is off: turn on [http] to open reset links)")
	}
	return res, nil
}

func (f *feature) adminList(ctx context.Context, args map[string]string) (server.AdminResult, error) {
	hosts := f.srv.Hosts()
	if h := args["host"]; h != "" {
		j, err := jid.Parse(h)
		if err != nil || !j.IsDomain() || f.srv.Host(j.Domain()) == nil {
			return server.AdminResult{}, fmt.Errorf("%q is not a domain served here (hosts: %s)", h, strings.Join(hosts, ", "))
		}
		hosts = []string{j.Domain()}
	}
	var lines []string
	for _, h := range hosts {
		list, err := f.st.Invites().List(ctx, h, f.now())
		if err != nil {
			return server.AdminResult{}, err
		}
		for _, inv := range list {
			who := inv.JID
			if who == "" {
				who = "-"
			}
			by := inv.Creator
			if by == "" {
				by = "cli"
			}
			lines = append(lines, fmt.Sprintf("%s\t%s\t%s\t%s\tby %s\tuses %d/%d\tuntil %s", inv.Token, inv.Kind, inv.Host, who, by,
				inv.Uses, inv.MaxUses, inv.Expires.UTC().Format(time.RFC3339)))
		}
	}
	return server.AdminResult{Message: fmt.Sprintf("%d valid invitation%s", len(lines), plural(len(lines))), Lines: lines}, nil
}

func (f *feature) adminRevoke(ctx context.Context, args map[string]string) (server.AdminResult, error) {
	tok := args["token"]
	if !ValidToken(tok) {
		return server.AdminResult{}, fmt.Errorf("%q is not an invitation token (24 letters and digits)", tok)
	}
	if _, err := f.st.Invites().Get(ctx, tok); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return server.AdminResult{}, fmt.Errorf("there is no invitation %s", Short(tok))
		}
		return server.AdminResult{}, err
	}
	if err := f.st.Invites().Delete(ctx, tok); err != nil {
		return server.AdminResult{}, err
	}
	f.log.Info("invitation revoked", "token", Short(tok), "via", "cli")
	return server.AdminResult{Message: "revoked " + Short(tok)}, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func parseDuration(s string) (time.Duration, error) {
	d, err := config.ParseDuration(s)
	return time.Duration(d), err
}

func durationText(d time.Duration) string { return config.Duration(d).String() }
