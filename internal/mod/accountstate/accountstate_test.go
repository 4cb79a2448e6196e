package accountstate

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
)

func newEnv(t *testing.T) *servertest.Env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return servertest.New(t, st, []server.Feature{Feature}, nil)
}

func admin(t *testing.T, env *servertest.Env, name string, args map[string]string) (server.AdminResult, error) {
	t.Helper()
	for _, c := range env.Srv.AdminCommands() {
		if c.Name == name {
			return c.Run(env.Ctx, args)
		}
	}
	t.Fatalf("no admin command %s", name)
	return server.AdminResult{}, nil
}

func login(env *servertest.Env, user string) error {
	return server.Emit(env.Ctx, env.Srv, server.Authenticated, &server.ConnInfo{User: jid.MustParse(user)})
}

// TestSuspend: suspending ends the live sessions with the reason, the
// login is refused with it (a Refusal the c2s layer turns into SASL
// account-disabled), binding too; unsuspending lets the user in again.
func TestSuspend(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.AddUser("alice@localhost", "pw")
	env.AddUser("bob@localhost", "pw")
	a1 := env.Bind("alice@localhost/one")
	a2 := env.Bind("alice@localhost/two")
	b := env.Bind("bob@localhost/r")

	res, err := admin(t, env, "account.suspend", map[string]string{"jid": "alice@localhost", "reason": "Sending spam to strangers", "by": "admin@localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message, "suspended") || !strings.Contains(res.Message, "admin@localhost") {
		t.Errorf("suspend answer: %q", res.Message)
	}
	for _, c := range []*servertest.Client{a1, a2} {
		se, closed := c.Closed()
		if !closed || se == nil || se.Condition != stanza.StreamPolicyViolation || !strings.Contains(se.Text, "Sending spam to strangers") {
			t.Errorf("%s after suspension: closed %v, %+v", c.JID, closed, se)
		}
	}
	if _, closed := b.Closed(); closed {
		t.Error("bob's session ended too")
	}
	if len(env.Srv.Sessions(jid.MustParse("alice@localhost"))) != 0 {
		t.Error("alice still has sessions")
	}
	err = login(env, "alice@localhost")
	var r *server.Refusal
	if !errors.As(err, &r) || r.Reason != "account_suspended" || !strings.Contains(r.Text, "suspended: Sending spam to strangers.") {
		t.Fatalf("login while suspended: %v", err)
	}
	if err := server.Emit(env.Ctx, env.Srv, server.SessionBinding, server.BindEvent{JID: jid.MustParse("alice@localhost/three")}); err == nil {
		t.Error("binding while suspended succeeded")
	}
	if err := login(env, "bob@localhost"); err != nil {
		t.Errorf("bob's login: %v", err)
	}
	if res, _ := admin(t, env, "account.show", map[string]string{"jid": "alice@localhost"}); !strings.Contains(res.Message, "suspended since") || !strings.Contains(res.Message, "reason: Sending spam") {
		t.Errorf("account.show: %q", res.Message)
	}
	if res, _ := admin(t, env, "account.list", nil); len(res.Lines) != 1 {
		t.Errorf("account.list: %+v", res)
	}
	if _, err := admin(t, env, "account.unsuspend", map[string]string{"jid": "alice@localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := login(env, "alice@localhost"); err != nil {
		t.Errorf("login after unsuspend: %v", err)
	}
	if res, _ := admin(t, env, "account.show", map[string]string{"jid": "alice@localhost"}); res.Message != "alice@localhost: active" {
		t.Errorf("account.show after unsuspend: %q", res.Message)
	}
}

// TestExpiry: a state with an expiry ends by itself; the login text says
// when; bad arguments are refused.
func TestExpiry(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.AddUser("alice@localhost", "pw")
	if _, err := admin(t, env, "account.suspend", map[string]string{"jid": "alice@localhost", "reason": "cool down", "expires": "2h"}); err != nil {
		t.Fatal(err)
	}
	if err := login(env, "alice@localhost"); err == nil || !strings.Contains(err.Error(), "The suspension ends on") {
		t.Errorf("login: %v", err)
	}
	// One that has expired already.
	past := time.Now().Add(-time.Minute)
	if err := env.Srv.SetAccountState(env.Ctx, store.AccountState{JID: "alice@localhost", Status: store.StatusSuspended, Since: past.Add(-time.Hour), Expires: past}); err != nil {
		t.Fatal(err)
	}
	if err := login(env, "alice@localhost"); err != nil {
		t.Errorf("login after the suspension expired: %v", err)
	}
	if st, _ := env.Srv.AccountState(env.Ctx, jid.MustParse("alice@localhost")); st.Status != store.StatusActive {
		t.Errorf("expired state reads as %s", st.Status)
	}
	for _, args := range []map[string]string{
		{"jid": "alice@localhost", "expires": "soon"},
		{"jid": "nobody@localhost"},
		{"jid": "not a jid"},
	} {
		if _, err := admin(t, env, "account.restrict", args); err == nil {
			t.Errorf("account.restrict %v succeeded", args)
		}
	}
	if _, err := admin(t, env, "account.restrict", map[string]string{"jid": "alice@localhost", "reason": "new account"}); err != nil {
		t.Fatal(err)
	}
	if err := login(env, "alice@localhost"); err != nil {
		t.Errorf("a restricted account cannot log in: %v", err)
	}
	s, ok := server.Find[interface {
		Suspend(ctx context.Context, account jid.JID, reason, by string) error
		State(ctx context.Context, account jid.JID) (string, error)
	}](env.Srv)
	if !ok {
		t.Fatal("the account state service is not provided")
	}
	if st, _ := s.State(env.Ctx, jid.MustParse("alice@localhost")); st != "restricted" {
		t.Errorf("State = %q", st)
	}
}
