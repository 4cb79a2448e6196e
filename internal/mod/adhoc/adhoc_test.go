package adhoc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/disco"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// testCommands registers a two-stage wizard (name, then greeting), an
// admin-only command and a command that fails.
var testCommands = server.Feature{Name: "probe", Setup: func(s *server.Setup, _ any) error {
	s.AdHoc(server.Command{Node: "wizard", Name: "Wizard", Access: server.LocalUsers, Handler: wizard})
	s.AdHoc(server.Command{Node: "secret", Name: "Secret", Access: server.AdminOnly,
		Handler: func(context.Context, *server.CommandRequest) (*server.CommandResponse, error) {
			return server.CommandInfo("for admins"), nil
		}})
	s.AdHoc(server.Command{Node: "public", Name: "Public", Access: server.Anyone,
		Handler: func(_ context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
			if req.Form == nil {
				return server.CommandForm(form.New(form.TypeForm, "Echo").Add(form.Field{Var: "x", Required: true})), nil
			}
			if req.Form.Value("x") == "" {
				return nil, server.BadPayload("x is required")
			}
			if req.Form.Value("x") == "boom" {
				return nil, errors.New("exploded")
			}
			return server.CommandResult(form.New(form.TypeResult, "").Add(form.Field{Var: "x", Values: []string{req.Form.Value("x")}})), nil
		}})
	return nil
}}

func wizard(_ context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
	switch req.Stage {
	case 0:
		f := form.New(form.TypeForm, "Step 1").Add(form.Field{Var: "name", Type: form.TextSingle, Required: true})
		return &server.CommandResponse{Form: f, Actions: []server.CommandAction{server.ActionNext}}, nil
	case 1:
		name, _ := req.State.(string)
		if req.Form != nil && req.Action == server.ActionNext {
			name = req.Form.Value("name")
		}
		f := form.New(form.TypeForm, "Step 2").Add(form.Field{Var: "greeting", Values: []string{"Hello"}})
		return &server.CommandResponse{Form: f, State: name,
			Actions: []server.CommandAction{server.ActionPrev, server.ActionComplete}, Default: server.ActionComplete}, nil
	default:
		return server.CommandInfo("%s, %s", req.Form.Value("greeting"), req.State), nil
	}
}

type env struct {
	*servertest.Env
	seq atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := servertest.NewWithOptions(t, server.Options{
		Hosts: []string{"localhost"}, Admins: []string{"admin@localhost"}, Store: st,
		Features: []server.Feature{disco.Feature, Feature, testCommands},
	})
	return &env{Env: e}
}

// iq sends an IQ of type typ to the server from c and returns the answer.
func (e *env) iq(c *servertest.Client, typ, inner string) *xml.Element {
	id := fmt.Sprintf("q%d", e.seq.Add(1))
	c.SendXML(fmt.Sprintf(`<iq type='%s' to='localhost' id='%s'>%s</iq>`, typ, id, inner))
	return c.Expect(servertest.Name("iq", "id", id))
}

func command(r *xml.Element) *xml.Element { return r.Child(NS, "command") }

func wantErr(t *testing.T, r *xml.Element, cond stanza.Condition, specific string) {
	t.Helper()
	e := stanza.ParseError(r)
	if r.Attr("type") != "error" || e == nil || e.Condition != cond {
		t.Fatalf("got %s, want error %s", r, cond)
	}
	if specific != "" {
		if r.Child("", "error").Child(NS, specific) == nil {
			t.Fatalf("error %s lacks <%s xmlns='%s'/>", r, specific, NS)
		}
	}
}

func TestCommandList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		who  string
		want []string
	}{
		{"admin@localhost/r", []string{"wizard", "secret", "public"}},
		{"alice@localhost/r", []string{"wizard", "public"}},
	}
	for _, tc := range tests {
		t.Run(tc.who, func(t *testing.T) {
			c := e.Bind(tc.who)
			r := e.iq(c, "get", `<query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/>`)
			q := r.Child(disco.NSItems, "query")
			if q == nil || q.Attr("node") != NS {
				t.Fatalf("disco#items = %s", r)
			}
			var got []string
			for _, it := range q.Elements() {
				if it.Attr("jid") != "localhost" {
					t.Errorf("item jid = %q", it.Attr("jid"))
				}
				got = append(got, it.Attr("node"))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("commands = %v, want %v", got, tc.want)
			}
		})
	}
	c := e.Bind("bob@localhost/r")
	r := e.iq(c, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='wizard'/>`)
	q := r.Child(disco.NSInfo, "query")
	if q == nil || q.Child(disco.NSInfo, "identity").Attr("type") != "command-node" || q.Attr("node") != "wizard" {
		t.Errorf("disco#info on a command = %s", r)
	}
	wantErr(t, e.iq(c, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='secret'/>`), stanza.Forbidden, "")
	r = e.iq(c, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	found := false
	for _, f := range r.Child(disco.NSInfo, "query").Elements() {
		if f.Attr("var") == NS {
			found = true
		}
	}
	if !found {
		t.Errorf("server disco#info lacks %s: %s", NS, r)
	}
}

func TestMultiStage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.Bind("alice@localhost/r")
	r := command(e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' action='execute'/>`))
	if r == nil || r.Attr("status") != "executing" || r.Attr("sessionid") == "" {
		t.Fatalf("stage 0: %v", r)
	}
	sid := r.Attr("sessionid")
	if a := r.Child(NS, "actions"); a == nil || a.Attr("execute") != "next" || a.Child(NS, "next") == nil {
		t.Fatalf("stage 0 actions: %s", r)
	}
	// complete is not allowed at stage 0.
	wantErr(t, e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' action='prev' sessionid='`+sid+`'/>`), stanza.BadRequest, "bad-action")
	r = command(e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' sessionid='`+sid+`'>
		<x xmlns='jabber:x:data' type='submit'><field var='name'><value>Alice</value></field></x></command>`))
	if r.Attr("status") != "executing" || r.Child(form.NS, "x").Child(form.NS, "title").Text != "Step 2" {
		t.Fatalf("stage 1: %s", r)
	}
	// prev goes back to stage 0, next again to stage 1 keeps the state.
	r = command(e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' action='prev' sessionid='`+sid+`'/>`))
	if r.Child(form.NS, "x").Child(form.NS, "title").Text != "Step 1" {
		t.Fatalf("prev: %s", r)
	}
	r = command(e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' action='next' sessionid='`+sid+`'>
		<x xmlns='jabber:x:data' type='submit'><field var='name'><value>Al</value></field></x></command>`))
	if r.Child(form.NS, "x").Child(form.NS, "title").Text != "Step 2" {
		t.Fatalf("next: %s", r)
	}
	// execute = complete (the default).
	r = command(e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' action='execute' sessionid='`+sid+`'>
		<x xmlns='jabber:x:data' type='submit'><field var='greeting'><value>Hi</value></field></x></command>`))
	if r.Attr("status") != "completed" || r.ChildText(NS, "note") != "Hi, Al" {
		t.Fatalf("complete: %s", r)
	}
	// The session is over.
	wantErr(t, e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' sessionid='`+sid+`'/>`), stanza.NotAllowed, "session-expired")
}

func TestCancelAndOwnership(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Bind("alice@localhost/r")
	mallory := e.Bind("mallory@localhost/r")
	sid := command(e.iq(alice, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard'/>`)).Attr("sessionid")
	// Another requester cannot use the session.
	wantErr(t, e.iq(mallory, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' action='cancel' sessionid='`+sid+`'/>`), stanza.NotAllowed, "session-expired")
	wantErr(t, e.iq(alice, "set", `<command xmlns='http://jabber.org/protocol/commands' node='public' sessionid='`+sid+`'/>`), stanza.BadRequest, "bad-sessionid")
	r := command(e.iq(alice, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' action='cancel' sessionid='`+sid+`'/>`))
	if r.Attr("status") != "canceled" {
		t.Fatalf("cancel: %s", r)
	}
	wantErr(t, e.iq(alice, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' sessionid='`+sid+`'/>`), stanza.NotAllowed, "session-expired")
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.Bind("alice@localhost/r")
	wantErr(t, e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='nope'/>`), stanza.ItemNotFound, "")
	wantErr(t, e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='secret'/>`), stanza.Forbidden, "")
	wantErr(t, e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' action='jump'/>`), stanza.BadRequest, "malformed-action")
	wantErr(t, e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands'/>`), stanza.BadRequest, "")

	sid := command(e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='public'/>`)).Attr("sessionid")
	// A bad payload leaves the session open: the stage can be sent again.
	wantErr(t, e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='public' sessionid='`+sid+`'>
		<x xmlns='jabber:x:data' type='submit'/></command>`), stanza.BadRequest, "bad-payload")
	wantErr(t, e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='public' sessionid='`+sid+`'>
		<x xmlns='jabber:x:data' type='submit'><field var='x'><value>boom</value></field></x></command>`), stanza.InternalServerError, "")
	// COMPAT: next on a single-stage form completes it.
	r := command(e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='public' action='next' sessionid='`+sid+`'>
		<x xmlns='jabber:x:data' type='submit'><field var='x'><value>ok</value></field></x></command>`))
	if r.Attr("status") != "completed" {
		t.Fatalf("after errors: %s", r)
	}
	if f, _ := form.Find(r); f == nil || f.Value("x") != "ok" {
		t.Errorf("result form: %s", r)
	}

	admin := e.Bind("admin@localhost/r")
	r = command(e.iq(admin, "set", `<command xmlns='http://jabber.org/protocol/commands' node='secret'/>`))
	if r.Attr("status") != "completed" || r.ChildText(NS, "note") != "for admins" {
		t.Errorf("admin command: %s", r)
	}
}

func TestSessionLimitsAndExpiry(t *testing.T) {
	t.Parallel()
	f := &feature{timeout: time.Minute, sessions: map[string]*session{}, perOwner: map[string]int{}}
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }
	owner := jid.MustParse("a@localhost/r")
	var first *session
	for i := range maxPerRequester {
		s, err := f.open("n", owner)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		f.release(s)
		if first == nil {
			first = s
		}
	}
	if _, err := f.open("n", owner); err == nil {
		t.Fatal("open beyond the per-requester limit succeeded")
	}
	now = now.Add(2 * time.Minute)
	if _, err := f.resume(first.id, "n", owner); err == nil {
		t.Fatal("an expired session resumed")
	}
	if _, err := f.open("n", owner); err != nil {
		t.Fatalf("expired sessions were not swept: %v", err)
	}
	if len(f.sessions) != 1 {
		t.Errorf("sessions = %d, want 1", len(f.sessions))
	}
}

func TestSessionsDroppedWithRequester(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.Bind("alice@localhost/r")
	sid := command(e.iq(c, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard'/>`)).Attr("sessionid")
	c.Disconnect()
	c2 := e.Bind("alice@localhost/r")
	wantErr(t, e.iq(c2, "set", `<command xmlns='http://jabber.org/protocol/commands' node='wizard' sessionid='`+sid+`'/>`), stanza.NotAllowed, "session-expired")
}

func TestConfig(t *testing.T) {
	t.Parallel()
	if d := Feature.Defaults.(Config).SessionTimeout; d != config.Duration(10*time.Minute) {
		t.Errorf("default timeout %v", d)
	}
}
