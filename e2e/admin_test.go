package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSlixmppAdminCommands: an administrator runs the XEP-0133 commands
// from slixmpp (XEP-0050 ad-hoc commands): lists them, adds an account,
// changes its password, reads statistics and user counts and lists, ends
// another user's session (a mellium client, which sees its stream end),
// disables, re-enables and deletes the account; a user who is not an
// administrator sees no admin command and is refused one.
func TestSlixmppAdminCommands(t *testing.T) {
	t.Parallel()
	requirePython(t, "slixmpp", "python3-slixmpp")
	srv := startServer(t, serverOptions{server: `admins = ["boss@localhost"]`})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	boss := srv.addUser(t, "boss", "boss password")
	srv.addUser(t, "victim", "victim password")
	srv.addUser(t, "someone", "someone password")
	victim := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "victim", password: "victim password"})

	s := startScript(ctx, t, "slix_admin.py", map[string]any{
		"jid": boss, "password": "boss password", "host": "127.0.0.1", "port": portOf(t, srv.starttls),
		"domain": domain, "new_user": "newbie@" + domain, "kick": "victim@" + domain,
		"expect_admin": true, "timeout": 90,
	})
	events := s.wait(ctx, t)
	if len(find(events, "done", nil)) != 1 || len(find(events, "error", nil)) != 0 {
		t.Fatalf("the admin script did not finish cleanly")
	}

	cmds := find(events, "commands", nil)
	if len(cmds) != 1 {
		t.Fatalf("commands events: %v", cmds)
	}
	nodes := fmt.Sprint(cmds[0]["nodes"])
	for _, c := range []string{"add-user", "delete-user", "disable-user", "reenable-user", "end-user-session",
		"change-user-password", "user-stats", "get-registered-users-num", "get-online-users-num", "get-online-users-list"} {
		if !strings.Contains(nodes, "http://jabber.org/protocol/admin#"+c) {
			t.Errorf("command list lacks %s: %s", c, nodes)
		}
	}
	if info := find(events, "command_info", nil); len(info) != 1 || !strings.Contains(fmt.Sprint(info[0]["identities"]), "command-node") ||
		!strings.Contains(fmt.Sprint(info[0]["features"]), "http://jabber.org/protocol/commands") {
		t.Errorf("disco#info on a command: %v", info)
	}

	results := find(events, "result", nil)
	get := func(name string) []event {
		return find(results, "result", func(e event) bool { return e.str("command") == name })
	}
	value := func(e event, field string) string { v, _ := e["values"].(map[string]any); return fmt.Sprint(v[field]) }
	for _, r := range results {
		if r.str("status") != "completed" && r.str("command") != "cancel" {
			t.Errorf("%s: status %s", r.str("command"), r.str("status"))
		}
	}

	nums := get("get-registered-users-num")
	if len(nums) != 3 || value(nums[0], "registeredusersnum") != "3" || value(nums[1], "registeredusersnum") != "4" || value(nums[2], "registeredusersnum") != "3" {
		t.Errorf("registered user counts (before add, after add, after delete): %v", nums)
	}
	if e := find(events, "iq_error", nil); len(e) != 1 || e[0].str("condition") != "conflict" {
		t.Errorf("adding an existing account: %v", e)
	}
	if st := get("user-stats"); len(st) != 1 || value(st[0], "rostersize") != "0" || !strings.Contains(value(st[0], "ipaddresses"), "127.0.0.1") {
		t.Errorf("user-stats: %v", st)
	}
	if on := get("get-online-users-num"); len(on) != 1 || value(on[0], "onlineusersnum") != "2" {
		t.Errorf("online users (boss and victim): %v", on)
	}
	if l := get("get-online-users-list"); len(l) != 1 || !strings.Contains(value(l[0], "onlineuserjids"), boss) ||
		!strings.Contains(value(l[0], "onlineuserjids"), "victim@localhost") {
		t.Errorf("online users list: %v", l)
	}
	if l := get("get-registered-users-list"); len(l) != 1 || !strings.Contains(value(l[0], "registereduserjids"), "newbie@localhost") {
		t.Errorf("registered users list: %v", l)
	}
	if c := get("cancel"); len(c) != 1 || c[0].str("status") != "canceled" {
		t.Errorf("cancel: %v", c)
	}
	// The changed password works; the account was then deleted.
	if !srv.logHas("password changed", "newbie@localhost", "via=admin") || !srv.logHas("account deleted", "newbie@localhost", "via=admin") {
		t.Errorf("the server log lacks the admin's password change or deletion")
	}
	// end-user-session ended the victim's stream.
	select {
	case <-victim.served:
	case <-ctx.Done():
		t.Errorf("the victim's session was not ended")
	}
	if r := get("end-user-session"); len(r) != 1 || !strings.Contains(fmt.Sprint(r[0]["notes"]), "1 session(s) ended") {
		t.Errorf("end-user-session: %v", r)
	}
	// Disable and re-enable go through the account state feature.
	for _, name := range []string{"disable-user", "reenable-user"} {
		if r := get(name); len(r) != 1 || !strings.HasPrefix(fmt.Sprint(r[0]["notes"]), "[[info newbie@localhost") {
			t.Errorf("%s: %v", name, r)
		}
	}
	if !srv.logHas("account state changed", "jid=newbie@localhost", "to=suspended", "by=boss@localhost", "reason=testing") {
		t.Errorf("the server log lacks the suspension")
	}

	// Someone who is not an admin.
	u := startScript(ctx, t, "slix_admin.py", map[string]any{
		"jid": "someone@" + domain, "password": "someone password", "host": "127.0.0.1", "port": portOf(t, srv.starttls),
		"domain": domain, "new_user": "sneaky@" + domain, "timeout": 60,
	})
	uev := u.wait(ctx, t)
	if c := find(uev, "commands", nil); len(c) != 1 || strings.Contains(fmt.Sprint(c[0]["nodes"]), "admin#") {
		t.Errorf("a non-admin's command list: %v", c)
	}
	if e := find(uev, "iq_error", nil); len(e) != 1 || e[0].str("condition") != "forbidden" {
		t.Errorf("a non-admin running add-user: %v", e)
	}
	if !slices.ContainsFunc(strings.Split(srv.log.String(), "\n"), func(l string) bool {
		return strings.Contains(l, "ad-hoc command refused") && strings.Contains(l, "policy=adhoc_forbidden") && strings.Contains(l, "someone@localhost")
	}) {
		t.Errorf("the refusal was not logged")
	}
}
