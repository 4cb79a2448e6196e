package push

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/disco"
	"stoa.im/stoa/internal/mod/offline"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

const appJID = "app@localhost/srv"

// newEnv starts a server with push (cfg nil: defaults, no rate limit)
// and the accounts alice, bob and app (the test's push service).
func newEnv(t *testing.T, cfg *Config) *servertest.Env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := Feature.Defaults.(Config)
	c.MinInterval = 0
	c.Timeout = config.Duration(20 * time.Second)
	if cfg != nil {
		c = *cfg
	}
	env := servertest.New(t, st, []server.Feature{roster.Feature, presence.Feature, offline.Feature, disco.Feature, Feature}, map[string]any{"push": c})
	for _, u := range []string{"alice", "bob", "app"} {
		env.AddUser(u+"@localhost", "pw")
	}
	return env
}

// register binds alice/phone, enables push to appJID (node n1, with a
// secret in the publish options) and disconnects.
func register(t *testing.T, env *servertest.Env) {
	t.Helper()
	c := env.Bind("alice@localhost/phone")
	c.SendXML(`<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='` + appJID + `' node='n1'>` +
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
		`<field var='secret'><value>s3cret</value></field></x></enable></iq>`)
	c.Expect(servertest.Name("iq", "id", "e1", "type", "result"))
	if !c.Sess.PushEnabled() {
		t.Error("the session is not marked push-enabled")
	}
	c.Disconnect()
}

func regs(t *testing.T, env *servertest.Env) []store.PushRegistration {
	t.Helper()
	l, err := env.Srv.Store().Push().List(env.Ctx, "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// summary returns the fields of a notification's summary form.
func summary(t *testing.T, iq *xml.Element) map[string]string {
	t.Helper()
	ps := iq.Child(nsPubsub, "pubsub")
	if ps == nil {
		t.Fatalf("not a publish: %s", iq)
	}
	pub := ps.Child(nsPubsub, "publish")
	n := pub.Child(nsPubsub, "item").Child(NS, "notification")
	out := map[string]string{"node": pub.Attr("node")}
	for _, f := range n.Child(nsData, "x").Elements() {
		out[f.Attr("var")] = f.ChildText(nsData, "value")
	}
	if po := ps.Child(nsPubsub, "publish-options"); po != nil {
		out["publish-options"] = po.String()
	}
	return out
}

func isPublish(el *xml.Element) bool { return el.Local == "iq" && el.Child(nsPubsub, "pubsub") != nil }

// answer replies to a publish as the push service.
func answer(app *servertest.Client, iq *xml.Element, errXML string) {
	if errXML == "" {
		app.SendXML(`<iq type='result' id='` + iq.Attr("id") + `' to='localhost'/>`)
		return
	}
	app.SendXML(`<iq type='error' id='` + iq.Attr("id") + `' to='localhost'>` + errXML + `</iq>`)
}

func TestEnableDisable(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	register(t, env)
	l := regs(t, env)
	if len(l) != 1 || l[0].Service != appJID || l[0].Node != "n1" || !strings.Contains(string(l[0].Options), "s3cret") {
		t.Fatalf("registrations = %+v", l)
	}
	c := env.Bind("alice@localhost/desk")
	for _, bad := range []string{
		`<enable xmlns='urn:xmpp:push:0' node='n'/>`,
		`<enable xmlns='urn:xmpp:push:0' jid='alice@localhost' node='n'/>`,
	} {
		c.SendXML(`<iq type='set' id='bad'>` + bad + `</iq>`)
		c.Expect(servertest.Name("iq", "id", "bad", "type", "error"))
	}
	bob := env.Bind("bob@localhost/pc")
	bob.SendXML(`<iq type='set' id='x' to='alice@localhost'><disable xmlns='urn:xmpp:push:0' jid='` + appJID + `'/></iq>`)
	bob.Expect(servertest.Name("iq", "id", "x", "type", "error"))
	c.SendXML(`<iq type='set' id='d1'><disable xmlns='urn:xmpp:push:0' jid='` + appJID + `'/></iq>`)
	c.Expect(servertest.Name("iq", "id", "d1", "type", "result"))
	if l := regs(t, env); len(l) != 0 {
		t.Errorf("after disable: %+v", l)
	}
	c.SendXML(`<iq type='get' id='di' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if r := c.Expect(servertest.Name("iq", "id", "di")); !strings.Contains(r.String(), NS) {
		t.Errorf("the account's disco#info lacks %s: %s", NS, r)
	}
}

// TestNotify: a message for an account with no session is published to
// the push service with the summary form and the publish options.
func TestNotify(t *testing.T) {
	t.Parallel()
	for _, withBody := range []bool{false, true} {
		t.Run(map[bool]string{false: "no body", true: "body"}[withBody], func(t *testing.T) {
			t.Parallel()
			cfg := Feature.Defaults.(Config)
			cfg.MinInterval = 0
			cfg.IncludeBody = withBody
			env := newEnv(t, &cfg)
			register(t, env)
			app := env.Bind(appJID)
			bob := env.Bind("bob@localhost/pc")
			bob.SendXML(`<message to='alice@localhost' type='chat' id='m1'><body>secret text</body></message>`)
			iq := app.Expect(isPublish)
			if iq.Attr("from") != "localhost" || iq.Attr("type") != "set" {
				t.Errorf("publish = %s", iq)
			}
			s := summary(t, iq)
			if s["FORM_TYPE"] != nsSummary || s["message-count"] != "1" || s["last-message-sender"] != "bob@localhost/pc" || s["node"] != "n1" {
				t.Errorf("summary = %v", s)
			}
			if got := s["last-message-body"]; (got == "secret text") != withBody || (got != "" && !withBody) {
				t.Errorf("last-message-body = %q with include_body=%v", got, withBody)
			}
			if !strings.Contains(s["publish-options"], "s3cret") {
				t.Errorf("publish options missing: %v", s)
			}
			answer(app, iq, "")
			// An encrypted message never shows its fallback body.
			bob.SendXML(`<message to='alice@localhost' type='chat' id='m2'><body>fallback</body><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`)
			iq = app.Expect(isPublish)
			if b := summary(t, iq)["last-message-body"]; b != "" {
				t.Errorf("encrypted message body pushed: %q", b)
			}
			answer(app, iq, "")
			// A chat state wakes nobody.
			bob.SendXML(`<message to='alice@localhost' type='chat' id='m3'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
			bob.SendXML(`<message to='alice@localhost' type='chat' id='m4'><body>last</body></message>`)
			iq = app.Expect(isPublish)
			if s := summary(t, iq); s["message-count"] != "1" {
				t.Errorf("summary after a chat state = %v", s)
			}
		})
	}
}

// detachedConn is a Conn whose client is gone but may resume.
type detachedConn struct{}

func (detachedConn) Send(*xml.Element) error    { return nil }
func (detachedConn) Close(*stanza.StreamError)  {}
func (detachedConn) RemoteAddr() netip.AddrPort { return netip.AddrPort{} }
func (detachedConn) Detached() bool             { return true }
func (detachedConn) String() string             { return "detached" }
func (d detachedConn) bind(t *testing.T, env *servertest.Env, full string) *server.Session {
	t.Helper()
	s, err := env.Srv.Bind(env.Ctx, jid.MustParse(full), server.NewSessionID(), d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWhenToNotify: only when no session of the account can show the
// message (all gone, detached or inactive).
func TestWhenToNotify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		setup  func(t *testing.T, env *servertest.Env)
		notify bool
	}{
		{"offline", func(*testing.T, *servertest.Env) {}, true},
		{"online active", func(t *testing.T, env *servertest.Env) {
			env.Bind("alice@localhost/desk").SendXML(`<presence/>`)
		}, false},
		{"online inactive", func(t *testing.T, env *servertest.Env) {
			c := env.Bind("alice@localhost/phone")
			c.SendXML(`<presence/>`)
			c.Sess.SetInactive(true)
		}, true},
		{"detached", func(t *testing.T, env *servertest.Env) {
			detachedConn{}.bind(t, env, "alice@localhost/phone")
		}, true},
		{"detached and an active desktop", func(t *testing.T, env *servertest.Env) {
			detachedConn{}.bind(t, env, "alice@localhost/phone")
			env.Bind("alice@localhost/desk").SendXML(`<presence/>`)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, nil)
			register(t, env)
			app := env.Bind(appJID)
			tc.setup(t, env)
			bob := env.Bind("bob@localhost/pc")
			bob.SendXML(`<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>`)
			// A marker message to app itself (not pushed) ends the
			// window: anything before it was published already.
			// Delivery (and the decision) is synchronous.
			if got := triggered(t, env); got != map[bool]float64{true: 1, false: 0}[tc.notify] {
				t.Fatalf("stoa_push_triggered_total = %v, want notify=%v", got, tc.notify)
			}
			if tc.notify {
				answer(app, app.Expect(isPublish), "")
			}
		})
	}
}

// TestDetachedWithUnacked: when a session detaches with messages its
// client never acknowledged, a notification goes out.
func TestDetachedWithUnacked(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	register(t, env)
	app := env.Bind(appJID)
	s := detachedConn{}.bind(t, env, "alice@localhost/phone")
	unacked := []*xml.Element{
		servertest.Parse(t, `<message from='bob@localhost/pc' to='alice@localhost/phone' type='chat'><body>one</body></message>`),
		servertest.Parse(t, `<presence from='bob@localhost/pc' to='alice@localhost/phone'/>`),
		servertest.Parse(t, `<message from='carol@localhost/x' to='alice@localhost/phone' type='chat'><body>two</body></message>`),
	}
	server.Notify(env.Ctx, env.Srv, server.SessionDetached, server.DetachedEvent{Session: s, Unacked: unacked, Timeout: time.Minute})
	sum := summary(t, app.Expect(isPublish))
	if sum["message-count"] != "2" || sum["last-message-sender"] != "carol@localhost/x" {
		t.Errorf("summary = %v", sum)
	}
}

// TestErrorsDisable: an app server answering with a permanent error gets
// its registration disabled at once; temporary errors after max_errors.
func TestErrorsDisable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    string
		before int // notifications answered with err before it is disabled
	}{
		{"item-not-found", `<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`, 1},
		{"not-authorized", `<error type='auth'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`, 1},
		{"wait", `<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Feature.Defaults.(Config)
			cfg.MinInterval = 0
			cfg.MaxErrors = 3
			env := newEnv(t, &cfg)
			register(t, env)
			app := env.Bind(appJID)
			bob := env.Bind("bob@localhost/pc")
			for i := range tc.before {
				bob.SendXML(`<message to='alice@localhost' type='chat'><body>hi</body></message>`)
				answer(app, app.Expect(isPublish), tc.err)
				waitFor(t, "the error to be handled", func() bool { return metric(t, env, "stoa_push_notifications_total", "error") == float64(i+1) })
			}
			if l := regs(t, env); len(l) != 0 {
				t.Fatalf("registration kept after %d errors: %+v", tc.before, l)
			}
			// No more notifications.
			before := triggered(t, env)
			bob.SendXML(`<message to='alice@localhost' type='chat'><body>hi</body></message>`)
			if got := triggered(t, env); got != before {
				t.Errorf("a disabled registration still triggers notifications")
			}
		})
	}

	// A success resets the count.
	cfg := Feature.Defaults.(Config)
	cfg.MinInterval = 0
	cfg.MaxErrors = 2
	env := newEnv(t, &cfg)
	register(t, env)
	app := env.Bind(appJID)
	bob := env.Bind("bob@localhost/pc")
	wait := `<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`
	for i, e := range []string{wait, "", wait} {
		bob.SendXML(`<message to='alice@localhost' type='chat'><body>hi</body></message>`)
		answer(app, app.Expect(isPublish), e)
		waitFor(t, "the answer to be handled", func() bool {
			return metric(t, env, "stoa_push_notifications_total", "error")+metric(t, env, "stoa_push_notifications_total", "ok") == float64(i+1)
		})
	}
	if l := regs(t, env); len(l) != 1 || l[0].Errors != 1 {
		t.Errorf("after error, success, error: %+v, want one registration with 1 error", l)
	}
}

// TestUnreachableService: a service that does not exist is disabled; one
// on a server stoa cannot reach (no federation yet) is kept for a while.
func TestUnreachableService(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	c := env.Bind("alice@localhost/phone")
	c.SendXML(`<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='nobody@localhost' node='n'/></iq>`)
	c.Expect(servertest.Name("iq", "id", "e1", "type", "result"))
	c.SendXML(`<iq type='set' id='e2'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'/></iq>`)
	c.Expect(servertest.Name("iq", "id", "e2", "type", "result"))
	c.Disconnect()
	env.Bind("bob@localhost/pc").SendXML(`<message to='alice@localhost' type='chat'><body>hi</body></message>`)
	waitFor(t, "the dead registration to be disabled", func() bool {
		l := regs(t, env)
		return len(l) == 1 && l[0].Service == "push.example.net" && l[0].Errors == 1
	})
}

// TestRateLimit checks the coalescing without timers: within the
// interval, messages are counted and sent together when it ends.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	f := &feature{
		cfg: Config{MinInterval: config.Duration(10 * time.Second)}, now: func() time.Time { return now },
		jobs: make(chan job, 10), pending: make(map[string]*pending), owners: map[string]bool{"alice@localhost": true},
	}
	alice := jid.MustParse("alice@localhost")
	f.notify(alice, 1, "bob@localhost/a", "1")
	f.notify(alice, 1, "bob@localhost/a", "2")
	f.notify(alice, 2, "carol@localhost/b", "3")
	if len(f.jobs) != 1 {
		t.Fatalf("%d notifications within the interval, want 1", len(f.jobs))
	}
	if j := <-f.jobs; j.count != 1 || j.body != "1" {
		t.Errorf("first = %+v", j)
	}
	f.mu.Lock()
	p := f.pending["alice@localhost"]
	if p.timer == nil || !p.timer.Stop() {
		t.Fatal("no notification scheduled for the end of the interval")
	}
	f.mu.Unlock()
	now = now.Add(10 * time.Second)
	f.due(alice, p)
	if j := <-f.jobs; j.count != 3 || j.sender != "carol@localhost/b" || j.body != "3" {
		t.Errorf("coalesced = %+v, want count 3 from carol", j)
	}
	// After the interval, the next one goes at once.
	now = now.Add(11 * time.Second)
	f.notify(alice, 1, "bob@localhost/a", "4")
	if len(f.jobs) != 1 {
		t.Errorf("after the interval: %d notifications queued, want 1", len(f.jobs))
	}
	f.sweep()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// triggered is the value of stoa_push_triggered_total.
func triggered(t *testing.T, env *servertest.Env) float64 {
	return metric(t, env, "stoa_push_triggered_total", "")
}

// metric returns a counter's value (for the label value result when not
// empty; 0 when that series does not exist yet).
func metric(t *testing.T, env *servertest.Env, name, result string) float64 {
	t.Helper()
	mfs, err := env.Srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
