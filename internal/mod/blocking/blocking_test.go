package blocking

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

func newEnv(t *testing.T, extra ...server.Feature) *servertest.Env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	features := append([]server.Feature{roster.Feature, presence.Feature, Feature}, extra...)
	return servertest.NewWithOptions(t, server.Options{Store: st, Features: features, Admins: []string{"admin@localhost"}})
}

// friends makes a and b mutual contacts.
func friends(t *testing.T, env *servertest.Env, a, b string) {
	t.Helper()
	for _, p := range [][2]string{{a, b}, {b, a}} {
		if _, err := env.Srv.Store().Roster().Put(env.Ctx, p[0], store.RosterItem{JID: p[1], Subscription: store.SubBoth}); err != nil {
			t.Fatal(err)
		}
	}
}

func id(v string) func(*xml.Element) bool {
	return func(el *xml.Element) bool { return el.Attr("id") == v }
}

func blockedItems(el *xml.Element, op string) []string {
	p := el.Child(NSBlocking, op)
	if p == nil {
		return nil
	}
	out := []string{}
	for _, c := range p.Elements() {
		out = append(out, c.Attr("jid"))
	}
	return out
}

// TestBlockList: get, block (pushed to every resource that asked for
// the list, not to the others), unblock one, unblock all, errors.
func TestBlockList(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.AddUser("alice@localhost", "pw")
	a1 := env.Bind("alice@localhost/one")
	a2 := env.Bind("alice@localhost/two")
	a3 := env.Bind("alice@localhost/three") // never asks for the list
	a1.SendXML(`<iq type='get' id='g1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if r := a1.Expect(id("g1")); r.Attr("type") != "result" || len(blockedItems(r, "blocklist")) != 0 || r.Child(NSBlocking, "blocklist") == nil {
		t.Fatalf("empty block list: %s", r)
	}
	a2.SendXML(`<iq type='get' id='g2'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	a2.Expect(id("g2"))

	a1.SendXML(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.example'/><item jid='spam.example'/></block></iq>`)
	if r := a1.Expect(id("b1")); r.Attr("type") != "result" {
		t.Fatalf("block: %s", r)
	}
	for _, c := range []*servertest.Client{a1, a2} {
		push := c.Expect(func(el *xml.Element) bool { return el.Local == "iq" && el.Attr("type") == "set" })
		if got := blockedItems(push, "block"); !slices.Equal(got, []string{"romeo@montague.example", "spam.example"}) || push.Attr("to") != c.JID.String() {
			t.Errorf("%s push: %s", c.JID, push)
		}
	}
	a3.ExpectNothing(func(el *xml.Element) bool { return el.Local == "iq" })

	a2.SendXML(`<iq type='get' id='g3'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if got := blockedItems(a2.Expect(id("g3")), "blocklist"); !slices.Equal(got, []string{"romeo@montague.example", "spam.example"}) {
		t.Errorf("list after block: %v", got)
	}
	a1.SendXML(`<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='spam.example'/></unblock></iq>`)
	a1.Expect(id("u1"))
	if push := a2.Expect(func(el *xml.Element) bool { return el.Child(NSBlocking, "unblock") != nil }); !slices.Equal(blockedItems(push, "unblock"), []string{"spam.example"}) {
		t.Errorf("unblock push: %s", push)
	}
	a1.SendXML(`<iq type='set' id='u2'><unblock xmlns='urn:xmpp:blocking'/></iq>`)
	a1.Expect(id("u2"))
	if push := a2.Expect(func(el *xml.Element) bool { return el.Child(NSBlocking, "unblock") != nil }); len(blockedItems(push, "unblock")) != 0 {
		t.Errorf("unblock-all push: %s", push)
	}
	a1.SendXML(`<iq type='get' id='g4'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if got := blockedItems(a1.Expect(id("g4")), "blocklist"); len(got) != 0 {
		t.Errorf("list after unblock all: %v", got)
	}

	for _, tc := range []struct{ xml, cond string }{
		{`<iq type='set' id='e1'><block xmlns='urn:xmpp:blocking'/></iq>`, "bad-request"},
		{`<iq type='set' id='e2'><block xmlns='urn:xmpp:blocking'><item jid='@@'/></block></iq>`, "jid-malformed"},
		{`<iq type='set' id='e3'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost/two'/></block></iq>`, "not-acceptable"},
	} {
		a1.SendXML(tc.xml)
		r := a1.Expect(func(el *xml.Element) bool { return el.Attr("type") == "error" })
		if !strings.Contains(r.String(), tc.cond) {
			t.Errorf("%s: got %s, want %s", tc.xml, r, tc.cond)
		}
	}
	// Someone else cannot read alice's list.
	env.AddUser("eve@localhost", "pw")
	eve := env.Bind("eve@localhost/r")
	eve.SendXML(`<iq type='get' to='alice@localhost' id='x1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if r := eve.Expect(id("x1")); !strings.Contains(r.String(), "forbidden") {
		t.Errorf("eve reading alice's list: %s", r)
	}
}

// TestBlockedContact: a blocked contact sees the user go offline, gets no
// more presence, its messages bounce as if nobody were there, and the
// user's own stanzas to it are refused with <blocked/>; unblocking sends
// the current presence again.
func TestBlockedContact(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		env.AddUser(u+"@localhost", "pw")
	}
	friends(t, env, "alice@localhost", "bob@localhost")
	friends(t, env, "alice@localhost", "carol@localhost")
	bob := env.Bind("bob@localhost/r")
	bob.SendXML(`<presence/>`)
	carol := env.Bind("carol@localhost/r")
	carol.SendXML(`<presence/>`)
	a := env.Bind("alice@localhost/r")
	a.SendXML(`<presence><status>here</status></presence>`)
	bob.Expect(func(el *xml.Element) bool { return el.Local == "presence" && el.Attr("from") == "alice@localhost/r" })
	bob.Received()

	a.SendXML(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>`)
	a.Expect(id("b1"))
	bob.Expect(func(el *xml.Element) bool {
		return el.Local == "presence" && el.Attr("type") == "unavailable" && el.Attr("from") == "alice@localhost/r"
	})
	a.Received()

	// alice's new presence reaches carol, not bob.
	a.SendXML(`<presence><status>busy</status></presence>`)
	carol.Expect(func(el *xml.Element) bool { return el.Local == "presence" && strings.Contains(el.String(), "busy") })
	bob.ExpectNothing(func(el *xml.Element) bool { return el.Local == "presence" && strings.Contains(el.String(), "busy") })

	// bob's stanzas to alice.
	bob.SendXML(`<message to='alice@localhost' type='chat' id='m1'><body>hey</body></message>`)
	if r := bob.Expect(id("m1")); r.Attr("type") != "error" || !strings.Contains(r.String(), "service-unavailable") || strings.Contains(r.String(), "blocked") {
		t.Errorf("bob's message: %s", r)
	}
	bob.SendXML(`<iq to='alice@localhost/r' type='get' id='i1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := bob.Expect(id("i1")); !strings.Contains(r.String(), "service-unavailable") {
		t.Errorf("bob's iq: %s", r)
	}
	bob.SendXML(`<presence to='alice@localhost' type='subscribe' id='p1'/>`)
	bob.SendXML(`<presence to='alice@localhost' type='probe' id='p2'/>`)
	bob.ExpectNothing(id("p1"))
	bob.ExpectNothing(func(el *xml.Element) bool {
		return el.Local == "presence" && el.Attr("from") == "alice@localhost/r" && el.Attr("type") != "unavailable"
	})
	a.ExpectNothing(func(el *xml.Element) bool { return el.Attr("from") != "" && strings.HasPrefix(el.Attr("from"), "bob@") })

	// alice's stanzas to bob.
	a.SendXML(`<message to='bob@localhost' type='chat' id='m2'><body>hi</body></message>`)
	r := a.Expect(id("m2"))
	if r.Attr("type") != "error" || !strings.Contains(r.String(), "not-acceptable") || !strings.Contains(r.String(), "urn:xmpp:blocking:errors") {
		t.Errorf("alice's message to bob: %s", r)
	}
	bob.ExpectNothing(id("m2"))

	// Unblock: bob gets alice's current presence.
	a.SendXML(`<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock></iq>`)
	a.Expect(id("u1"))
	bob.Expect(func(el *xml.Element) bool { return el.Local == "presence" && strings.Contains(el.String(), "busy") })
	bob.SendXML(`<message to='alice@localhost' type='chat' id='m3'><body>back</body></message>`)
	a.Expect(id("m3"))
}

// TestBlockDomain: a domain item blocks every JID of that domain, and a
// full-JID item only that resource; the user's own server stays
// reachable when its domain is blocked.
func TestBlockDomain(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.AddUser("alice@localhost", "pw")
	a := env.Bind("alice@localhost/r")
	a.SendXML(`<presence/>`)
	a.SendXML(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='evil.example'/><item jid='x@other.example/bot'/></block></iq>`)
	a.Expect(id("b1"))
	send := func(from, mid string) {
		el := servertest.Parse(t, `<message type='chat'><body>buy</body></message>`)
		el.SetAttr("from", from).SetAttr("to", "alice@localhost").SetAttr("id", mid)
		if err := env.Srv.RouteElement(env.Ctx, el); err != nil {
			t.Fatal(err)
		}
	}
	send("mallory@evil.example/x", "d1")
	send("evil.example", "d2")
	send("x@other.example/bot", "d3")
	send("x@other.example/phone", "d4")
	for _, m := range []string{"d1", "d2", "d3"} {
		a.ExpectNothing(id(m))
	}
	a.Expect(id("d4"))

	// Blocking the user's own domain blocks its users, not the server.
	a.SendXML(`<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'><item jid='localhost'/></block></iq>`)
	a.Expect(id("b2"))
	env.AddUser("bob@localhost", "pw")
	env.Bind("bob@localhost/r").SendXML(`<message to='alice@localhost' type='chat' id='d5'><body>hi</body></message>`)
	send("localhost", "d6")
	a.Expect(id("d6"))
	a.ExpectNothing(id("d5"))
	a.SendXML(`<iq to='localhost' type='get' id='v1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := a.Expect(id("v1")); strings.Contains(r.String(), "blocked") {
		t.Errorf("the user's own server was blocked: %s", r)
	}

	e := newEntry([]string{"evil.example", "x@other.example/bot", "good.example/res", "eve@bad.example"})
	for in, want := range map[string]bool{
		"evil.example": true, "a@evil.example": true, "a@evil.example/r": true, "evil.example/r": true,
		"x@other.example/bot": true, "x@other.example": false, "x@other.example/b": false,
		"good.example/res": true, "good.example": false, "u@good.example/res": true, "u@good.example/other": false,
		"eve@bad.example/any": true, "bad.example": false,
	} {
		if got := e.matches(jid.MustParse(in)); got != want {
			t.Errorf("matches(%s) = %v, want %v", in, got, want)
		}
	}
}

// TestOfflineFromBlocked: what reaches a session without passing
// DeliverLocal (here: a direct delivery, as offline storage does) from a
// blocked JID is dropped at the session.
func TestOfflineFromBlocked(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.AddUser("alice@localhost", "pw")
	a := env.Bind("alice@localhost/r")
	a.SendXML(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='spammer@evil.example'/></block></iq>`)
	a.Expect(id("b1"))
	el := servertest.Parse(t, `<message from='spammer@evil.example' to='alice@localhost' id='o1' type='chat'><body>stored</body></message>`)
	st, err := server.NewStanza(el)
	if err != nil {
		t.Fatal(err)
	}
	if a.Sess.Deliver(env.Ctx, st) {
		t.Error("the session took a stored message from a blocked JID")
	}
	a.ExpectNothing(id("o1"))
}
