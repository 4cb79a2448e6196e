// Package admin gives the configured administrators ([server] admins) the
// service administration commands of XEP-0133 (version 1.3.1) from any
// client with ad-hoc command (XEP-0050) support: add, delete, disable and
// re-enable users, end their sessions, change their password, get their
// statistics, count registered and online users and list online and
// registered users.
//
// Every command calls the same server operations as the command line and
// in-band requests (server.CreateUser, DeleteUser, SetPassword, KickUser),
// so the same events fire, deleted names become tombstones and every
// action is logged with via=admin. Only configured admins see or run the
// commands; anyone else gets forbidden, counted under adhoc_forbidden.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// NS is the XEP-0133 namespace: the FORM_TYPE of every form and the
// prefix of every command node.
const NS = "http://jabber.org/protocol/admin"

// via is what account events and logs record as the path of a change.
const via = "admin"

// Feature is the administration commands feature.
var Feature = server.Feature{
	Name: "admin",
	Doc:  "Lets administrators manage accounts from their XMPP client (XEP-0133 ad-hoc commands): add, delete, disable, kick, change passwords, statistics.",
	XEPs: []server.XEP{{N: 133, Name: "Service Administration", Version: "1.3.1", Status: server.Partial,
		Note: "add, delete, disable, re-enable users, end sessions, change passwords, user statistics, registered and online user counts and lists; not: rosters, last login, active/idle users, blacklists, announcements, MOTD, welcome, admin list, restart, shutdown"}},
	Setup: func(s *server.Setup, _ any) error { return setupWith(s, nil) },
}

type feature struct {
	srv       *server.Server
	st        store.Store
	log       *slog.Logger
	statesFor func() AccountStates
}

// setupWith registers the commands; states nil finds the account state
// service on the server when a command needs it (see accountStates).
func setupWith(s *server.Setup, states func() AccountStates) error {
	f := &feature{srv: s.Server(), st: s.Store(), log: s.Logger(), statesFor: states}
	if f.statesFor == nil {
		f.statesFor = accountStates(s)
	}
	cmds := []struct {
		name, title string
		h           server.CommandHandler
	}{
		{"add-user", "Add a user", f.addUser},
		{"delete-user", "Delete users", f.deleteUsers},
		{"disable-user", "Disable users", f.disableUsers},
		{"reenable-user", "Re-enable users", f.reenableUsers},
		{"end-user-session", "End user sessions", f.endSessions},
		{"change-user-password", "Change a user's password", f.changePassword},
		{"user-stats", "Get user statistics", f.userStats},
		{"get-registered-users-num", "Get the number of registered users", f.registeredNum},
		{"get-online-users-num", "Get the number of online users", f.onlineNum},
		{"get-registered-users-list", "Get the list of registered users", f.registeredList},
		{"get-online-users-list", "Get the list of online users", f.onlineList},
	}
	for _, c := range cmds {
		s.AdHoc(server.Command{Node: NS + "#" + c.name, Name: c.title, Access: server.AdminOnly, Handler: c.h})
	}
	return nil
}

// newForm starts a form carrying the XEP-0133 FORM_TYPE.
func newForm(t form.Type, title, instructions string) *form.Form {
	f := form.New(t, title).Hidden("FORM_TYPE", NS)
	if instructions != "" {
		f.Instruct(instructions)
	}
	return f
}

// ask shows f on the first stage; on a later stage it checks that the
// submission fills f's required fields and returns it.
func ask(req *server.CommandRequest, f *form.Form) (*form.Form, *server.CommandResponse, error) {
	if req.Stage == 0 || req.Form == nil {
		return nil, server.CommandForm(f), nil
	}
	if missing := req.Form.Missing(f); len(missing) > 0 {
		return nil, nil, server.BadPayload("Fill in the required field(s): %s.", strings.Join(missing, ", "))
	}
	return req.Form, nil, nil
}

// account validates an address given in a form: a local account.
func (f *feature) account(s string) (jid.JID, error) {
	j, err := f.srv.AccountJID(strings.TrimSpace(s))
	if err != nil {
		return jid.JID{}, stanza.NewError(stanza.BadRequest, err.Error()+".")
	}
	return j, nil
}

// accounts validates the addresses of a jid-multi field, without duplicates.
func (f *feature) accounts(values []string, allowFull bool) ([]jid.JID, error) {
	var out []jid.JID
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		j, err := jid.Parse(v)
		if err == nil && allowFull && j.Resource() != "" {
			if _, err = f.srv.AccountJID(j.Bare().String()); err == nil {
				if !slices.Contains(out, j) {
					out = append(out, j)
				}
				continue
			}
		}
		j, err = f.account(v)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	if len(out) == 0 {
		return nil, server.BadPayload("Give at least one account address (user@domain).")
	}
	return out, nil
}

// summary completes a command that acted on several accounts: one note
// per account, an error note for each failure.
func summary(done []string, failed []string) *server.CommandResponse {
	resp := server.CommandResult(nil)
	for _, d := range done {
		resp.Notes = append(resp.Notes, server.CommandNote{Type: server.NoteInfo, Text: d})
	}
	for _, e := range failed {
		resp.Notes = append(resp.Notes, server.CommandNote{Type: server.NoteError, Text: e})
	}
	return resp
}

// actor is the admin's bare JID, for logs.
func actor(req *server.CommandRequest) string { return req.From.Bare().String() }

func (f *feature) addUser(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	tmpl := newForm(form.TypeForm, "Adding a user", "Fill out this form to add a user.").Add(
		form.Field{Var: "accountjid", Type: form.JIDSingle, Label: "The address of the account to add", Required: true},
		form.Field{Var: "password", Type: form.TextPrivate, Label: "The password for this account", Required: true},
		form.Field{Var: "password-verify", Type: form.TextPrivate, Label: "Retype the password"},
	)
	sub, resp, err := ask(req, tmpl)
	if sub == nil {
		return resp, err
	}
	j, err := f.account(sub.Value("accountjid"))
	if err != nil {
		return nil, err
	}
	pw := sub.Value("password")
	if sub.Has("password-verify") && sub.Value("password-verify") != pw {
		return nil, server.BadPayload("The two passwords differ; type the same password twice.")
	}
	if err := f.srv.CreateUser(ctx, j, pw, via); err != nil {
		if errors.Is(err, server.ErrUserExists) || errors.Is(err, server.ErrNameTaken) {
			return nil, stanza.NewError(stanza.Conflict, err.Error()+".")
		}
		return nil, fmt.Errorf("admin: adding %s: %w", j, err)
	}
	f.log.Info("admin added an account", "admin", actor(req), "jid", j.String())
	return server.CommandInfo("The account %s was created.", j), nil
}

func (f *feature) deleteUsers(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	tmpl := newForm(form.TypeForm, "Deleting users", "Fill out this form to delete users. Their data is deleted and their names are never given out again.").Add(
		form.Field{Var: "accountjids", Type: form.JIDMulti, Label: "The addresses of the accounts to delete", Required: true},
	)
	sub, resp, err := ask(req, tmpl)
	if sub == nil {
		return resp, err
	}
	js, err := f.accounts(sub.Values("accountjids"), false)
	if err != nil {
		return nil, err
	}
	var done, failed []string
	for _, j := range js {
		if err := f.srv.DeleteUser(ctx, j, via); err != nil {
			failed = append(failed, fmt.Sprintf("%s was not deleted: %v.", j, err))
			continue
		}
		f.log.Info("admin deleted an account", "admin", actor(req), "jid", j.String())
		done = append(done, fmt.Sprintf("%s was deleted.", j))
	}
	return summary(done, failed), nil
}

func (f *feature) disableUsers(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	return f.setDisabled(ctx, req, true)
}

func (f *feature) reenableUsers(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	return f.setDisabled(ctx, req, false)
}

func (f *feature) setDisabled(ctx context.Context, req *server.CommandRequest, disable bool) (*server.CommandResponse, error) {
	title, what := "Re-enabling users", "re-enable"
	if disable {
		title, what = "Disabling users", "disable"
	}
	tmpl := newForm(form.TypeForm, title, "Fill out this form to "+what+" users.").Add(
		form.Field{Var: "accountjids", Type: form.JIDMulti, Label: "The addresses of the accounts to " + what, Required: true},
	)
	if disable {
		tmpl.Add(form.Field{Var: "reason", Type: form.TextSingle, Label: "Reason (shown to the user when they try to log in)"})
	}
	sub, resp, err := ask(req, tmpl)
	if sub == nil {
		return resp, err
	}
	states := f.statesFor()
	if states == nil {
		return server.CommandFailed("Disabling accounts is not available: the account state feature is not enabled."), nil
	}
	js, err := f.accounts(sub.Values("accountjids"), false)
	if err != nil {
		return nil, err
	}
	var done, failed []string
	for _, j := range js {
		if disable {
			err = states.Disable(ctx, j, strings.TrimSpace(sub.Value("reason")), actor(req))
		} else {
			err = states.Enable(ctx, j, actor(req))
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v.", j, err))
			continue
		}
		f.log.Info("admin changed an account's state", "admin", actor(req), "jid", j.String(), "disabled", disable)
		if disable {
			done = append(done, fmt.Sprintf("%s is disabled; its sessions were ended.", j))
		} else {
			done = append(done, fmt.Sprintf("%s can log in again.", j))
		}
	}
	return summary(done, failed), nil
}

func (f *feature) endSessions(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	tmpl := newForm(form.TypeForm, "Ending user sessions", "Fill out this form to end sessions: user@domain ends all of the user's sessions, user@domain/resource only that one.").Add(
		form.Field{Var: "accountjids", Type: form.JIDMulti, Label: "The addresses whose sessions to end", Required: true},
	)
	sub, resp, err := ask(req, tmpl)
	if sub == nil {
		return resp, err
	}
	js, err := f.accounts(sub.Values("accountjids"), true)
	if err != nil {
		return nil, err
	}
	kick := stanza.NewStreamError(stanza.StreamPolicyViolation, "An administrator ended this session.")
	var done []string
	for _, j := range js {
		n := 0
		if j.Resource() != "" {
			if s := f.srv.Session(j); s != nil {
				s.Close(kick)
				f.srv.Unbind(ctx, s)
				n = 1
			}
		} else {
			n = f.srv.KickUser(ctx, j, kick)
		}
		f.log.Info("admin ended sessions", "admin", actor(req), "jid", j.String(), "sessions", n)
		done = append(done, fmt.Sprintf("%s: %d session(s) ended.", j, n))
	}
	return summary(done, nil), nil
}

func (f *feature) changePassword(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	tmpl := newForm(form.TypeForm, "Changing a user's password", "Fill out this form to change a user's password.").Add(
		form.Field{Var: "accountjid", Type: form.JIDSingle, Label: "The address of the account", Required: true},
		form.Field{Var: "password", Type: form.TextPrivate, Label: "The new password", Required: true},
	)
	sub, resp, err := ask(req, tmpl)
	if sub == nil {
		return resp, err
	}
	j, err := f.account(sub.Value("accountjid"))
	if err != nil {
		return nil, err
	}
	if err := f.srv.SetPassword(ctx, j, sub.Value("password"), via); err != nil {
		if errors.Is(err, server.ErrNoSuchUser) {
			return nil, stanza.Errorf(stanza.ItemNotFound, "There is no account %s.", j)
		}
		return nil, fmt.Errorf("admin: changing the password of %s: %w", j, err)
	}
	f.log.Info("admin changed a password", "admin", actor(req), "jid", j.String())
	return server.CommandInfo("The password of %s was changed.", j), nil
}

func (f *feature) userStats(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	tmpl := newForm(form.TypeForm, "Get user statistics", "Fill out this form to gather user statistics.").Add(
		form.Field{Var: "accountjid", Type: form.JIDSingle, Label: "The address of the account", Required: true},
	)
	sub, resp, err := ask(req, tmpl)
	if sub == nil {
		return resp, err
	}
	j, err := f.account(sub.Value("accountjid"))
	if err != nil {
		return nil, err
	}
	acct, err := f.st.Accounts().Get(ctx, j.String())
	if errors.Is(err, store.ErrNotFound) {
		return nil, stanza.Errorf(stanza.ItemNotFound, "There is no account %s.", j)
	}
	if err != nil {
		return nil, fmt.Errorf("admin: reading %s: %w", j, err)
	}
	items, _, err := f.st.Roster().Items(ctx, j.String())
	if err != nil {
		return nil, fmt.Errorf("admin: reading the roster of %s: %w", j, err)
	}
	var ips, resources []string
	for _, s := range f.srv.Sessions(j) {
		resources = append(resources, s.JID().Resource())
		if ip := s.RemoteAddr().Addr(); ip.IsValid() && !slices.Contains(ips, ip.String()) {
			ips = append(ips, ip.String())
		}
	}
	slices.Sort(resources)
	slices.Sort(ips)
	res := newForm(form.TypeResult, "Statistics of "+j.String(), "").Add(
		form.Field{Var: "ipaddresses", Type: form.TextMulti, Label: "Addresses of the online sessions", Values: ips},
		form.Field{Var: "rostersize", Type: form.TextSingle, Label: "Contacts in the roster", Values: []string{strconv.Itoa(len(items))}},
		form.Field{Var: "onlineresources", Type: form.TextMulti, Label: "Online resources", Values: resources},
		form.Field{Var: "created", Type: form.TextSingle, Label: "Account created (UTC)", Values: []string{acct.Created.UTC().Format("2006-01-02 15:04:05")}},
	)
	if !acct.LastLogout.IsZero() {
		res.Add(form.Field{Var: "lastlogout", Type: form.TextSingle, Label: "Last logout (UTC)", Values: []string{acct.LastLogout.UTC().Format("2006-01-02 15:04:05")}})
	}
	if states := f.statesFor(); states != nil {
		if st, err := states.State(ctx, j); err == nil && st != "" {
			res.Add(form.Field{Var: "state", Type: form.TextSingle, Label: "Account state", Values: []string{st}})
		}
	}
	return server.CommandResult(res), nil
}

func (f *feature) registeredNum(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	n, err := f.st.Accounts().Count(ctx, req.Host)
	if err != nil {
		return nil, fmt.Errorf("admin: counting the accounts of %s: %w", req.Host, err)
	}
	res := newForm(form.TypeResult, "", "").Add(form.Field{Var: "registeredusersnum", Label: "The number of registered users", Values: []string{strconv.Itoa(n)}})
	return server.CommandResult(res), nil
}

// onlineUsers lists the accounts of host with at least one session, sorted.
func (f *feature) onlineUsers(host string) []string {
	var out []string
	for _, s := range f.srv.AllSessions() {
		if s.JID().Domain() != host {
			continue
		}
		if b := s.JID().Bare().String(); len(out) == 0 || out[len(out)-1] != b {
			out = append(out, b) // AllSessions is sorted by JID
		}
	}
	return slices.Compact(out)
}

func (f *feature) onlineNum(_ context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	n := len(f.onlineUsers(req.Host))
	res := newForm(form.TypeResult, "", "").Add(form.Field{Var: "onlineusersnum", Label: "The number of online users", Values: []string{strconv.Itoa(n)}})
	return server.CommandResult(res), nil
}

// maxItemsField is the XEP-0133 max_items choice.
func maxItemsField() form.Field {
	fl := form.Field{Var: "max_items", Type: form.ListSingle, Label: "Maximum number of items to show", Values: []string{"100"}}
	for _, v := range []string{"25", "50", "75", "100", "150", "200"} {
		fl.Options = append(fl.Options, form.Option{Label: v, Value: v})
	}
	fl.Options = append(fl.Options, form.Option{Label: "None", Value: "none"})
	return fl
}

// maxItems reads max_items: a positive number, or none (0, no limit).
func maxItems(sub *form.Form) (int, error) {
	v := strings.TrimSpace(sub.Value("max_items"))
	if v == "" || v == "none" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, server.BadPayload("max_items must be a positive number or none, not %q.", v)
	}
	return n, nil
}

func (f *feature) list(req *server.CommandRequest, title, field, label string, all func() ([]string, error)) (*server.CommandResponse, error) {
	tmpl := newForm(form.TypeForm, title, "Choose how many users to show.").Add(maxItemsField())
	sub, resp, err := ask(req, tmpl)
	if sub == nil {
		return resp, err
	}
	n, err := maxItems(sub)
	if err != nil {
		return nil, err
	}
	users, err := all()
	if err != nil {
		return nil, err
	}
	res := newForm(form.TypeResult, "", "")
	if n > 0 && len(users) > n {
		res.Instruct(fmt.Sprintf("Showing %d of %d.", n, len(users)))
		users = users[:n]
	}
	res.Add(form.Field{Var: field, Type: form.JIDMulti, Label: label, Values: users})
	return server.CommandResult(res), nil
}

func (f *feature) onlineList(_ context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	return f.list(req, "Requesting the list of online users", "onlineuserjids", "The online users", func() ([]string, error) {
		return f.onlineUsers(req.Host), nil
	})
}

func (f *feature) registeredList(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	return f.list(req, "Requesting the list of registered users", "registereduserjids", "The registered users", func() ([]string, error) {
		users, err := f.srv.Users(ctx, req.Host)
		if err != nil {
			return nil, fmt.Errorf("admin: listing the accounts of %s: %w", req.Host, err)
		}
		return users, nil
	})
}
