package carbons

import (
	"path/filepath"
	"strings"
	"testing"

	"stoa.im/stoa/internal/mod/disco"
	"stoa.im/stoa/internal/mod/offline"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/xml"
)

func newEnv(t *testing.T) *servertest.Env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env := servertest.New(t, st, []server.Feature{roster.Feature, presence.Feature, offline.Feature, disco.Feature, Feature}, nil)
	env.AddUser("alice@localhost", "pw")
	env.AddUser("bob@localhost", "pw")
	return env
}

// online binds full, sends initial presence (priority prio) and, when
// carbons is set, enables carbons; what it received so far is cleared.
func online(t *testing.T, env *servertest.Env, full string, prio string, carbons bool) *servertest.Client {
	t.Helper()
	c := env.Bind(full)
	c.SendXML(`<presence><priority>` + prio + `</priority></presence>`)
	if carbons {
		c.SendXML(`<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
		c.Expect(servertest.Name("iq", "id", "c1", "type", "result"))
	}
	c.Received()
	return c
}

// carbon returns a matcher for a carbon copy of direction dir (received,
// sent) whose forwarded message has the given id.
func carbon(dir, id string) func(*xml.Element) bool {
	return func(el *xml.Element) bool {
		w := el.Child(NS, dir)
		if el.Local != "message" || w == nil || el.Attr("from") != "alice@localhost" {
			return false
		}
		fw := w.Child(nsForward, "forwarded")
		return fw != nil && fw.Child(xml.NSClient, "message") != nil && fw.Child(xml.NSClient, "message").Attr("id") == id
	}
}

func anyCarbon(el *xml.Element) bool {
	return el.Child(NS, "received") != nil || el.Child(NS, "sent") != nil
}

func TestReceivedAndSent(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	desk := online(t, env, "alice@localhost/desk", "0", true)
	phone := online(t, env, "alice@localhost/phone", "0", true)
	old := online(t, env, "alice@localhost/old", "0", false) // never enabled carbons
	bob := online(t, env, "bob@localhost/pc", "0", false)

	// To a full JID: the other enabled resource gets a received copy.
	bob.SendXML(`<message to='alice@localhost/desk' type='chat' id='m1'><body>hi</body></message>`)
	desk.Expect(servertest.Name("message", "id", "m1"))
	c := phone.Expect(carbon("received", "m1"))
	if c.Attr("to") != "alice@localhost/phone" || c.Attr("type") != "chat" {
		t.Errorf("carbon = %s", c)
	}
	desk.ExpectNothing(anyCarbon)
	old.ExpectNothing(func(*xml.Element) bool { return true })

	// Sent by desk: phone gets a sent copy, desk itself nothing.
	desk.SendXML(`<message to='bob@localhost/pc' type='chat' id='m2'><body>hello</body></message>`)
	bob.Expect(servertest.Name("message", "id", "m2"))
	phone.Expect(carbon("sent", "m2"))
	desk.ExpectNothing(anyCarbon)
	old.ExpectNothing(anyCarbon)

	// To the bare JID: every resource at the top priority gets the
	// original; no copies.
	bob.SendXML(`<message to='alice@localhost' type='chat' id='m3'><body>all</body></message>`)
	for _, r := range []*servertest.Client{desk, phone, old} {
		r.Expect(servertest.Name("message", "id", "m3"))
	}
	phone.ExpectNothing(anyCarbon)
	desk.ExpectNothing(anyCarbon)
}

func TestRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  string // from bob to alice/desk, id 'x'
		copy bool
	}{
		{"chat", `<message type='chat' id='x'><body>b</body></message>`, true},
		{"chat state only", `<message type='chat' id='x'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, true},
		{"normal with body", `<message id='x'><body>b</body></message>`, true},
		{"normal without body", `<message id='x'><thread>t</thread></message>`, false},
		{"normal receipt", `<message id='x'><received xmlns='urn:xmpp:receipts' id='y'/></message>`, true},
		{"normal marker", `<message id='x'><displayed xmlns='urn:xmpp:chat-markers:0' id='y'/></message>`, true},
		{"direct invitation", `<message id='x'><x xmlns='jabber:x:conference' jid='room@muc.localhost'/></message>`, true},
		{"headline", `<message type='headline' id='x'><body>b</body></message>`, false},
		{"groupchat", `<message type='groupchat' id='x'><body>b</body></message>`, false},
		{"private", `<message type='chat' id='x'><body>b</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>`, false},
		{"no-copy hint alone", `<message type='chat' id='x'><body>b</body><no-copy xmlns='urn:xmpp:hints'/></message>`, false},
		{"MUC private message", `<message type='chat' id='x'><body>b</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t)
			desk := online(t, env, "alice@localhost/desk", "0", true)
			phone := online(t, env, "alice@localhost/phone", "0", true)
			el := servertest.Parse(t, tc.msg)
			el.SetAttr("from", "bob@localhost/pc").SetAttr("to", "alice@localhost/desk")
			if err := env.Srv.RouteElement(env.Ctx, el); err != nil {
				t.Fatal(err)
			}
			if tc.msg != "" && el.Attr("type") != "groupchat" {
				desk.Expect(servertest.Name("message", "id", "x"))
			}
			if tc.copy {
				phone.Expect(carbon("received", "x"))
			} else {
				phone.ExpectNothing(anyCarbon)
			}
			// And in the sent direction, where a private message to a
			// room occupant is copied (§6.1).
			sent := servertest.Parse(t, tc.msg)
			sent.SetAttr("to", "bob@localhost/pc")
			desk.SendXML(sent.String())
			if tc.copy || tc.name == "MUC private message" {
				phone.Expect(carbon("sent", "x"))
			} else {
				phone.ExpectNothing(carbon("sent", "x"))
			}
		})
	}
}

func TestEnableDisable(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	desk := online(t, env, "alice@localhost/desk", "0", false)
	phone := online(t, env, "alice@localhost/phone", "0", true)
	bob := online(t, env, "bob@localhost/pc", "0", false)

	// Enabling twice is not an error (§11.1).
	phone.SendXML(`<iq type='set' id='again'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	phone.Expect(servertest.Name("iq", "id", "again", "type", "result"))
	// Only for oneself.
	bob.SendXML(`<iq type='set' id='evil' to='alice@localhost'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	bob.Expect(servertest.Name("iq", "id", "evil", "type", "error"))

	phone.SendXML(`<iq type='set' id='off'><disable xmlns='urn:xmpp:carbons:2'/></iq>`)
	phone.Expect(servertest.Name("iq", "id", "off", "type", "result"))
	bob.SendXML(`<message to='alice@localhost/desk' type='chat' id='m1'><body>hi</body></message>`)
	desk.Expect(servertest.Name("message", "id", "m1"))
	phone.ExpectNothing(anyCarbon)

	// Disco advertises the feature and the rules.
	bob.SendXML(`<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	res := bob.Expect(servertest.Name("iq", "id", "d", "type", "result"))
	s := res.String()
	for _, ns := range []string{NS, NSRules} {
		if !strings.Contains(s, "var=\""+ns+"\"") && !strings.Contains(s, "var='"+ns+"'") {
			t.Errorf("disco#info lacks %s: %s", ns, s)
		}
	}
}

// TestNegativePriority: an enabled resource that does not get messages to
// the bare JID (negative priority) gets a received copy.
func TestNegativePriority(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	desk := online(t, env, "alice@localhost/desk", "5", false)
	bot := online(t, env, "alice@localhost/bot", "-1", true)
	bob := online(t, env, "bob@localhost/pc", "0", false)
	bob.SendXML(`<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>`)
	desk.Expect(servertest.Name("message", "id", "m1"))
	bot.Expect(carbon("received", "m1"))
}
