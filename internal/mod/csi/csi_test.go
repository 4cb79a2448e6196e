package csi

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"stoa.im/stoa/internal/mod/offline"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/xml"
)

func newEnv(t *testing.T, cfg any) *servertest.Env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env := servertest.New(t, st, []server.Feature{roster.Feature, presence.Feature, offline.Feature, Feature}, map[string]any{"csi": cfg})
	env.AddUser("alice@localhost", "pw")
	env.AddUser("bob@localhost", "pw")
	return env
}

// phone binds alice/phone, available, and sends the CSI element state.
func phone(t *testing.T, env *servertest.Env, state string) *servertest.Client {
	t.Helper()
	c := env.Bind("alice@localhost/phone")
	c.SendXML(`<presence/>`)
	c.Received()
	csiState(t, env, c, state)
	return c
}

func csiState(t *testing.T, env *servertest.Env, c *servertest.Client, state string) {
	t.Helper()
	h := env.Srv.StreamElement(NS, state)
	if h == nil {
		t.Fatalf("no handler for <%s xmlns='%s'/>", state, NS)
	}
	if err := h(env.Ctx, c.Sess, xml.New(NS, state)); err != nil {
		t.Fatal(err)
	}
}

func route(t *testing.T, env *servertest.Env, s string) {
	t.Helper()
	if err := env.Srv.RouteElement(env.Ctx, servertest.Parse(t, s)); err != nil {
		t.Fatal(err)
	}
}

// ids lists what c received as "local:id" (or "local:from" for presence).
func ids(els []*xml.Element) []string {
	var out []string
	for _, el := range els {
		k := el.Attr("id")
		if el.Local == "presence" {
			k = el.Attr("from") + "/" + el.Attr("type") + el.ChildText(xml.NSClient, "status")
		}
		out = append(out, el.Local+":"+k)
	}
	return out
}

func TestStreamFeature(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	var found bool
	for _, el := range env.Srv.StreamFeatures(&server.ConnInfo{}) {
		found = found || (el.Space == NS && el.Local == "csi")
	}
	if !found {
		t.Error("<csi/> is not offered after authentication")
	}
}

// TestHoldAndFlush: while inactive, presence updates (collapsed per
// sender) and chat states wait; an important message flushes them first,
// in order, each stamped with a delay.
func TestHoldAndFlush(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	c := phone(t, env, "inactive")
	route(t, env, `<presence from='bob@localhost/pc' to='alice@localhost/phone'><status>1</status></presence>`)
	route(t, env, `<message from='bob@localhost/pc' to='alice@localhost/phone' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	route(t, env, `<presence from='carol@localhost/x' to='alice@localhost/phone'/>`)
	route(t, env, `<presence from='bob@localhost/pc' to='alice@localhost/phone'><status>2</status></presence>`)
	route(t, env, `<message from='bob@localhost/pc' to='alice@localhost/phone' id='rc'><received xmlns='urn:xmpp:receipts' id='m0'/></message>`)
	route(t, env, `<message from='bob@localhost/pc' to='alice@localhost/phone' id='mk'><displayed xmlns='urn:xmpp:chat-markers:0' id='m0'/></message>`)
	if got := c.Received(); len(got) != 0 {
		t.Fatalf("an inactive client got %v", ids(got))
	}
	route(t, env, `<message from='bob@localhost/pc' to='alice@localhost/phone' type='chat' id='m1'><body>hi</body></message>`)
	got := c.Received()
	want := []string{"message:cs", "presence:carol@localhost/x/", "presence:bob@localhost/pc/2", "message:rc", "message:mk", "message:m1"}
	if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Fatalf("after an important message: %v, want %v", ids(got), want)
	}
	for _, el := range got[:len(got)-1] {
		if el.Child(nsDelay, "delay") == nil {
			t.Errorf("held stanza without delay: %s", el)
		}
	}
	if got[len(got)-1].Child(nsDelay, "delay") != nil {
		t.Errorf("the live message got a delay: %s", got[len(got)-1])
	}
}

func TestImportant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stanza string
		important    bool
	}{
		{"body", `<message type='chat' id='x'><body>b</body></message>`, true},
		{"subject", `<message id='x'><subject>s</subject></message>`, true},
		{"error", `<message type='error' id='x'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`, true},
		{"encrypted", `<message type='chat' id='x'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`, true},
		{"unknown payload", `<message id='x'><reactions xmlns='urn:xmpp:reactions:0' id='m'/></message>`, true},
		{"chat state", `<message type='chat' id='x'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>`, false},
		{"receipt", `<message id='x'><received xmlns='urn:xmpp:receipts' id='m'/></message>`, false},
		{"marker", `<message id='x'><displayed xmlns='urn:xmpp:chat-markers:0' id='m'/></message>`, false},
		{"pep", `<message type='headline' id='x'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>`, false},
		{"carbon of a chat state", `<message type='chat' id='x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>`, false},
		{"carbon of a body", `<message type='chat' id='x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><body>b</body></message></forwarded></received></message>`, true},
		{"sent carbon", `<message type='chat' id='x'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></sent></message>`, true},
		{"presence update", `<presence id='x'/>`, false},
		{"unavailable", `<presence type='unavailable' id='x'/>`, false},
		{"subscription request", `<presence type='subscribe' id='x'/>`, true},
		{"iq", `<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			el := servertest.Parse(t, tc.stanza)
			st := &server.Stanza{El: el, Kind: server.KindOf(el), Type: el.Attr("type")}
			if got := important(st); got != tc.important {
				t.Errorf("important = %v, want %v", got, tc.important)
			}
		})
	}
}

func TestFlushOnActiveAndResume(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	c := phone(t, env, "inactive")
	route(t, env, `<presence from='bob@localhost/pc' to='alice@localhost/phone'/>`)
	if len(c.Received()) != 0 {
		t.Fatal("presence not held")
	}
	csiState(t, env, c, "active")
	if got := ids(c.Received()); len(got) != 1 {
		t.Fatalf("after <active/>: %v", got)
	}
	// Active: nothing is held.
	route(t, env, `<presence from='bob@localhost/pc' to='alice@localhost/phone'><show>away</show></presence>`)
	if got := ids(c.Received()); len(got) != 1 {
		t.Fatalf("active client: %v", got)
	}
	// A resumed stream starts active (XEP-0352 §5.2).
	csiState(t, env, c, "inactive")
	route(t, env, `<presence from='bob@localhost/pc' to='alice@localhost/phone'/>`)
	server.Notify(env.Ctx, env.Srv, server.SessionResumed, c.Sess)
	if got := ids(c.Received()); len(got) != 1 || c.Sess.Inactive() {
		t.Fatalf("after resumption: %v, inactive=%v", got, c.Sess.Inactive())
	}
}

func TestBounded(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Config{QueueSize: 3})
	c := phone(t, env, "inactive")
	for i := range 2 {
		route(t, env, fmt.Sprintf(`<presence from='u%d@localhost/x' to='alice@localhost/phone'/>`, i))
	}
	// Replacing a sender's presence does not grow the buffer.
	route(t, env, `<presence from='u0@localhost/x' to='alice@localhost/phone'><show>dnd</show></presence>`)
	if got := c.Received(); len(got) != 0 {
		t.Fatalf("flushed early: %v", ids(got))
	}
	route(t, env, `<presence from='u2@localhost/x' to='alice@localhost/phone'/>`)
	if got := c.Received(); len(got) != 3 {
		t.Fatalf("a full buffer sent %v, want 3 stanzas", ids(got))
	}
}

// TestClosedWhileHolding: messages held for a session that ends go to
// offline storage (receipts are kept; chat states are not worth it).
func TestClosedWhileHolding(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	c := phone(t, env, "inactive")
	route(t, env, `<message from='bob@localhost/pc' to='alice@localhost/phone' id='rc'><received xmlns='urn:xmpp:receipts' id='m0'/></message>`)
	route(t, env, `<message from='bob@localhost/pc' to='alice@localhost/phone' type='chat' id='cs'><gone xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	c.Disconnect()
	msgs, err := env.Srv.Store().Offline().List(env.Ctx, "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Stanza), "id=\"rc\"") && !strings.Contains(string(msgs[0].Stanza), "id='rc'") {
		t.Fatalf("offline storage = %d messages (%v), want the receipt", len(msgs), msgs)
	}
}
