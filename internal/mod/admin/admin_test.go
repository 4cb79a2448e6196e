package admin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"stoa.im/stoa/internal/mod/accountstate"
	"stoa.im/stoa/internal/mod/adhoc"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// fakeStates records disable and enable calls.
type fakeStates struct {
	mu    sync.Mutex
	state map[string]string
	fail  string // accounts whose change fails
}

func (f *fakeStates) Disable(_ context.Context, j jid.JID, reason, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j.String() == f.fail {
		return errors.New("the store is on fire")
	}
	f.state[j.String()] = "suspended: " + reason + " by " + by
	return nil
}

func (f *fakeStates) Enable(_ context.Context, j jid.JID, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[j.String()] = "active"
	return nil
}

func (f *fakeStates) State(_ context.Context, j jid.JID) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state[j.String()], nil
}

type env struct {
	*servertest.Env
	t      *testing.T
	st     store.Store
	states *fakeStates
	admin  *servertest.Client
	seq    atomic.Int64
}

func newEnv(t *testing.T, withStates bool) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, states: &fakeStates{state: map[string]string{}}}
	var states func() AccountStates
	if withStates {
		states = func() AccountStates { return e.states }
	}
	adm := server.Feature{Name: "admin", Setup: func(s *server.Setup, _ any) error { return setupWith(s, states) }}
	e.Env = servertest.NewWithOptions(t, server.Options{
		Hosts: []string{"localhost", "other.example"}, Admins: []string{"admin@localhost"}, Store: st,
		Features: []server.Feature{adhoc.Feature, adm},
	})
	e.AddUser("admin@localhost", "pw")
	e.AddUser("alice@localhost", "pw")
	e.AddUser("bob@localhost", "pw")
	e.AddUser("carol@other.example", "pw")
	e.admin = e.Bind("admin@localhost/r")
	return e
}

// run runs command name as c: executes it and, if it shows a form,
// submits fields (var → values). It returns the final <command/> or the
// error reply.
func (e *env) run(c *servertest.Client, name string, fields map[string][]string) *xml.Element {
	e.t.Helper()
	node := NS + "#" + name
	r := e.iq(c, fmt.Sprintf(`<command xmlns='%s' node='%s' action='execute'/>`, adhoc.NS, node))
	cmd := r.Child(adhoc.NS, "command")
	if cmd == nil || cmd.Attr("status") != "executing" {
		return r
	}
	f, err := form.Find(cmd)
	if err != nil || f == nil || f.FormType() != NS || f.Type != form.TypeForm {
		e.t.Fatalf("%s: first stage form: %s", name, cmd)
	}
	sub := form.New(form.TypeSubmit, "").Hidden("FORM_TYPE", NS)
	for k, v := range fields {
		sub.Add(form.Field{Var: k, Values: v})
	}
	cmdEl := xml.New(adhoc.NS, "command").SetAttr("node", node).SetAttr("sessionid", cmd.Attr("sessionid")).SetAttr("action", "complete")
	cmdEl.Append(sub.Element())
	return e.iq(c, cmdEl.String())
}

func (e *env) iq(c *servertest.Client, inner string) *xml.Element {
	e.t.Helper()
	id := fmt.Sprintf("a%d", e.seq.Add(1))
	c.SendXML(fmt.Sprintf(`<iq type='set' to='localhost' id='%s'>%s</iq>`, id, inner))
	return c.Expect(servertest.Name("iq", "id", id))
}

// completed returns the notes and result form of a completed command, or fails.
func completed(t *testing.T, r *xml.Element) (notes []string, res *form.Form) {
	t.Helper()
	cmd := r.Child(adhoc.NS, "command")
	if r.Attr("type") != "result" || cmd == nil || cmd.Attr("status") != "completed" {
		t.Fatalf("not completed: %s", r)
	}
	for _, n := range cmd.Elements() {
		if n.Local == "note" {
			notes = append(notes, n.Attr("type")+": "+n.Text)
		}
	}
	res, _ = form.Find(cmd)
	return notes, res
}

func wantError(t *testing.T, r *xml.Element, cond stanza.Condition, text string) {
	t.Helper()
	se := stanza.ParseError(r)
	if r.Attr("type") != "error" || se == nil || se.Condition != cond || !strings.Contains(se.Text, text) {
		t.Fatalf("got %s, want %s containing %q", r, cond, text)
	}
}

func TestAccessIsForAdminsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	alice := e.Bind("alice@localhost/r")
	for _, name := range []string{"add-user", "delete-user", "get-online-users-num", "user-stats"} {
		wantError(t, e.run(alice, name, nil), stanza.Forbidden, "")
	}
	if _, err := e.Srv.Store().Accounts().Get(e.Ctx, "alice@localhost"); err != nil {
		t.Errorf("alice: %v", err)
	}
}

func TestAddUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	tests := []struct {
		name   string
		fields map[string][]string
		cond   stanza.Condition
		text   string
	}{
		{"missing password", map[string][]string{"accountjid": {"new@localhost"}}, stanza.BadRequest, "password"},
		{"passwords differ", map[string][]string{"accountjid": {"new@localhost"}, "password": {"a"}, "password-verify": {"b"}}, stanza.BadRequest, "differ"},
		{"not local", map[string][]string{"accountjid": {"new@elsewhere.example"}, "password": {"a"}}, stanza.BadRequest, "not a domain served here"},
		{"not an account", map[string][]string{"accountjid": {"localhost"}, "password": {"a"}}, stanza.BadRequest, "not an account address"},
		{"exists", map[string][]string{"accountjid": {"alice@localhost"}, "password": {"a"}}, stanza.Conflict, "already exists"},
	}
	for _, tc := range tests {
		wantError(t, e.run(e.admin, "add-user", tc.fields), tc.cond, tc.text)
	}
	notes, _ := completed(t, e.run(e.admin, "add-user", map[string][]string{
		"accountjid": {"New@localhost"}, "password": {"s3cret"}, "password-verify": {"s3cret"},
	}))
	if len(notes) != 1 || notes[0] != "info: The account new@localhost was created." {
		t.Errorf("notes = %q", notes)
	}
	if _, err := e.Srv.Store().Accounts().Get(e.Ctx, "new@localhost"); err != nil {
		t.Errorf("the account was not created: %v", err)
	}
}

func TestDeleteUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	alice := e.Bind("alice@localhost/r")
	notes, _ := completed(t, e.run(e.admin, "delete-user", map[string][]string{
		"accountjids": {"alice@localhost", "nobody@localhost", "alice@localhost", ""},
	}))
	if len(notes) != 2 || notes[0] != "info: alice@localhost was deleted." || !strings.HasPrefix(notes[1], "error: nobody@localhost was not deleted") {
		t.Errorf("notes = %q", notes)
	}
	if _, closed := alice.Closed(); !closed {
		t.Error("the deleted account's session was not ended")
	}
	if _, err := e.Srv.Store().Accounts().Get(e.Ctx, "alice@localhost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice still exists: %v", err)
	}
	wantError(t, e.run(e.admin, "delete-user", map[string][]string{"accountjids": {""}}), stanza.BadRequest, "")
}

func TestDisableUsers(t *testing.T) {
	t.Parallel()
	t.Run("without the account state feature", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, false)
		notes, _ := completed(t, e.run(e.admin, "disable-user", map[string][]string{"accountjids": {"alice@localhost"}}))
		if len(notes) != 1 || !strings.Contains(notes[0], "error: Disabling accounts is not available") {
			t.Errorf("notes = %q", notes)
		}
	})
	t.Run("with it", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true)
		e.states.fail = "bob@localhost"
		notes, _ := completed(t, e.run(e.admin, "disable-user", map[string][]string{
			"accountjids": {"alice@localhost", "bob@localhost"}, "reason": {"spam"},
		}))
		if len(notes) != 2 || !strings.HasPrefix(notes[0], "info: alice@localhost is disabled") || !strings.Contains(notes[1], "error: bob@localhost: the store is on fire") {
			t.Errorf("notes = %q", notes)
		}
		if got := e.states.state["alice@localhost"]; got != "suspended: spam by admin@localhost" {
			t.Errorf("state = %q", got)
		}
		_, res := completed(t, e.run(e.admin, "user-stats", map[string][]string{"accountjid": {"alice@localhost"}}))
		if res.Value("state") != "suspended: spam by admin@localhost" {
			t.Errorf("user-stats state = %q", res.Value("state"))
		}
		completed(t, e.run(e.admin, "reenable-user", map[string][]string{"accountjids": {"alice@localhost"}}))
		if got := e.states.state["alice@localhost"]; got != "active" {
			t.Errorf("state after re-enable = %q", got)
		}
	})
}

func TestEndSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	a1, a2, b := e.Bind("alice@localhost/one"), e.Bind("alice@localhost/two"), e.Bind("bob@localhost/r")
	notes, _ := completed(t, e.run(e.admin, "end-user-session", map[string][]string{
		"accountjids": {"alice@localhost/one", "bob@localhost"},
	}))
	if fmt.Sprint(notes) != "[info: alice@localhost/one: 1 session(s) ended. info: bob@localhost: 1 session(s) ended.]" {
		t.Errorf("notes = %q", notes)
	}
	for c, want := range map[*servertest.Client]bool{a1: true, a2: false, b: true} {
		if se, closed := c.Closed(); closed != want {
			t.Errorf("%s closed = %v, want %v", c.JID, closed, want)
		} else if closed && se.Condition != stanza.StreamPolicyViolation {
			t.Errorf("%s closed with %v", c.JID, se)
		}
	}
	if e.Srv.Session(a1.JID) != nil || e.Srv.Session(a2.JID) == nil {
		t.Error("the session table does not match")
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	before, _ := e.Srv.Store().Accounts().Get(e.Ctx, "alice@localhost")
	completed(t, e.run(e.admin, "change-user-password", map[string][]string{"accountjid": {"alice@localhost"}, "password": {"new"}}))
	after, _ := e.Srv.Store().Accounts().Get(e.Ctx, "alice@localhost")
	if string(before.Credentials.SHA256.StoredKey) == string(after.Credentials.SHA256.StoredKey) {
		t.Error("the credentials did not change")
	}
	wantError(t, e.run(e.admin, "change-user-password", map[string][]string{"accountjid": {"nobody@localhost"}, "password": {"x"}}), stanza.ItemNotFound, "nobody@localhost")
	wantError(t, e.run(e.admin, "change-user-password", map[string][]string{"accountjid": {"alice@localhost"}}), stanza.BadRequest, "password")
}

func TestStatistics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	if _, err := e.st.Roster().Put(e.Ctx, "alice@localhost", store.RosterItem{JID: "bob@localhost", Subscription: store.SubBoth}); err != nil {
		t.Fatal(err)
	}
	e.Bind("alice@localhost/phone")
	e.Bind("alice@localhost/laptop")
	e.Bind("carol@other.example/r")

	_, res := completed(t, e.run(e.admin, "user-stats", map[string][]string{"accountjid": {"alice@localhost"}}))
	if res.Value("rostersize") != "1" || fmt.Sprint(res.Values("onlineresources")) != "[laptop phone]" ||
		fmt.Sprint(res.Values("ipaddresses")) != "[127.0.0.1]" || res.Value("created") == "" {
		t.Errorf("user-stats = %+v", res.Fields)
	}
	wantError(t, e.run(e.admin, "user-stats", map[string][]string{"accountjid": {"nobody@localhost"}}), stanza.ItemNotFound, "")

	// Counts and lists are per host: the command goes to localhost.
	_, res = completed(t, e.run(e.admin, "get-registered-users-num", nil))
	if res.Value("registeredusersnum") != "3" {
		t.Errorf("registered = %q", res.Value("registeredusersnum"))
	}
	_, res = completed(t, e.run(e.admin, "get-online-users-num", nil))
	if res.Value("onlineusersnum") != "2" {
		t.Errorf("online = %q", res.Value("onlineusersnum"))
	}
	_, res = completed(t, e.run(e.admin, "get-online-users-list", map[string][]string{"max_items": {"none"}}))
	if fmt.Sprint(res.Values("onlineuserjids")) != "[admin@localhost alice@localhost]" {
		t.Errorf("online list = %q", res.Values("onlineuserjids"))
	}
	_, res = completed(t, e.run(e.admin, "get-registered-users-list", map[string][]string{"max_items": {"2"}}))
	if fmt.Sprint(res.Values("registereduserjids")) != "[admin@localhost alice@localhost]" || len(res.Instructions) != 1 {
		t.Errorf("registered list = %q, %q", res.Values("registereduserjids"), res.Instructions)
	}
	wantError(t, e.run(e.admin, "get-registered-users-list", map[string][]string{"max_items": {"lots"}}), stanza.BadRequest, "max_items")
}

// TestDisableWithAccountState disables and re-enables through the real
// account state feature, found with server.Find as in production.
func TestDisableWithAccountState(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st}
	e.Env = servertest.NewWithOptions(t, server.Options{
		Admins: []string{"admin@localhost"}, Store: st,
		Features: []server.Feature{adhoc.Feature, accountstate.Feature, Feature},
	})
	e.AddUser("admin@localhost", "pw")
	e.AddUser("alice@localhost", "pw")
	e.admin = e.Bind("admin@localhost/r")
	alice := e.Bind("alice@localhost/r")

	notes, _ := completed(t, e.run(e.admin, "disable-user", map[string][]string{"accountjids": {"alice@localhost"}, "reason": {"Spam."}}))
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "info: alice@localhost is disabled") {
		t.Errorf("notes = %q", notes)
	}
	s, err := e.Srv.AccountState(e.Ctx, jid.MustParse("alice@localhost"))
	if err != nil || s.Status != store.StatusSuspended || s.Reason != "Spam." || s.By != "admin@localhost" {
		t.Errorf("state = %+v, %v", s, err)
	}
	if _, closed := alice.Closed(); !closed {
		t.Error("the disabled account's session is still open")
	}
	_, res := completed(t, e.run(e.admin, "user-stats", map[string][]string{"accountjid": {"alice@localhost"}}))
	if res.Value("state") != "suspended" {
		t.Errorf("user-stats state = %q", res.Value("state"))
	}
	completed(t, e.run(e.admin, "reenable-user", map[string][]string{"accountjids": {"alice@localhost"}}))
	if s, _ := e.Srv.AccountState(e.Ctx, jid.MustParse("alice@localhost")); s.Status != store.StatusActive {
		t.Errorf("state after re-enable = %+v", s)
	}
}
