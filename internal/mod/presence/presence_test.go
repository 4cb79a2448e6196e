package presence

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/rostercache"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/xml"
)

type testEnv struct {
	*servertest.Env
	st store.Store
}

// newEnv starts a server for localhost and example.org with the presence
// feature and the given accounts. Rosters are written straight into the
// store: subscriptions are the roster feature's business.
func newEnv(t *testing.T, users ...string) *testEnv {
	t.Helper()
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	// The server's shape: rosters cached in front of the database
	// (app.openStore), which every roster change must keep true.
	st := rostercache.Wrap(sq, 1000)
	t.Cleanup(func() { st.Close() })
	env := servertest.New(t, st, []server.Feature{Feature}, nil, "localhost", "example.org")
	for _, u := range users {
		if err := st.Accounts().Create(ctx, u, store.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	return &testEnv{Env: env, st: st}
}

// sub puts contact in owner's roster with subscription s.
func (e *testEnv) sub(owner, contact string, s store.Subscription) {
	e.T.Helper()
	if _, err := e.st.Roster().Put(e.Ctx, owner, store.RosterItem{JID: contact, Subscription: s}); err != nil {
		e.T.Fatal(err)
	}
}

// online binds a session and sends initial presence.
func (e *testEnv) online(full string) *servertest.Client {
	e.T.Helper()
	c := e.Bind(full)
	c.SendXML(`<presence/>`)
	return c
}

// from matches presence stanzas of a type ("" = available) from a JID.
func from(typ, jid string) func(*xml.Element) bool {
	return func(el *xml.Element) bool {
		return el.Local == "presence" && el.Attr("type") == typ && el.Attr("from") == jid
	}
}

func anyPresence(el *xml.Element) bool { return el.Local == "presence" }

// senders lists the 'from' of every presence of type typ received.
func senders(c *servertest.Client, typ string) []string {
	var out []string
	for _, el := range c.Received() {
		if el.Local == "presence" && el.Attr("type") == typ {
			out = append(out, el.Attr("from"))
		}
	}
	slices.Sort(out)
	return out
}

func TestBroadcastToSubscribersOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice@localhost", "bob@localhost", "carol@localhost", "dave@example.org", "erin@localhost")
	e.sub("alice@localhost", "bob@localhost", store.SubFrom)    // bob sees alice
	e.sub("alice@localhost", "carol@localhost", store.SubTo)    // alice sees carol
	e.sub("alice@localhost", "dave@example.org", store.SubBoth) // both ways
	e.sub("alice@localhost", "erin@localhost", store.SubNone)
	e.sub("carol@localhost", "alice@localhost", store.SubFrom)
	e.sub("dave@example.org", "alice@localhost", store.SubBoth)

	bob, carol, dave, erin := e.online("bob@localhost/b"), e.online("carol@localhost/c"), e.online("dave@example.org/d"), e.online("erin@localhost/e")
	a1 := e.online("alice@localhost/one")
	for _, c := range []*servertest.Client{bob, carol, dave, erin, a1} {
		c.Received()
	}

	a2 := e.Bind("alice@localhost/two")
	a2.SendXML(`<presence><show>away</show><priority>5</priority></presence>`)
	if !a2.Sess.Available() || a2.Sess.Priority() != 5 {
		t.Fatalf("session state: available %v, priority %d", a2.Sess.Available(), a2.Sess.Priority())
	}
	// Subscribers and all of alice's resources (the sender too) get it.
	for _, c := range []*servertest.Client{bob, dave, a1} {
		p := c.Expect(from("", "alice@localhost/two"))
		if p.ChildText(xml.NSClient, "show") != "away" || p.Attr("to") != c.JID.Bare().String() && p.Attr("to") != c.JID.String() {
			t.Errorf("%s got %s", c.JID, p)
		}
	}
	a2.Expect(from("", "alice@localhost/two"))
	carol.ExpectNothing(anyPresence)
	erin.ExpectNothing(anyPresence)

	// Initial presence: probes were answered by carol and dave's servers
	// (both local here), and a2 learns about a1.
	got := senders(a2, "")
	want := []string{"alice@localhost/one", "carol@localhost/c", "dave@example.org/d"}
	if !slices.Equal(got, want) {
		t.Errorf("new resource got presence from %v, want %v", got, want)
	}

	// An update is not initial: no probes, no presence of others.
	a2.SendXML(`<presence><show>dnd</show></presence>`)
	bob.Expect(from("", "alice@localhost/two"))
	if got := senders(a2, ""); !slices.Equal(got, []string{"alice@localhost/two"}) {
		t.Errorf("presence update answered with %v", got)
	}
	carol.ExpectNothing(anyPresence)
}

func TestProbe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		sub    store.Subscription // alice's item for the prober
		online bool
		want   []string
	}{
		{"from, online", store.SubFrom, true, []string{"available<alice@localhost/a"}},
		{"both, online", store.SubBoth, true, []string{"available<alice@localhost/a"}},
		{"to, online", store.SubTo, true, nil},
		{"none, online", store.SubNone, true, nil},
		{"not in roster", "", true, nil},
		{"from, offline", store.SubFrom, false, []string{"unavailable<alice@localhost"}},
		{"none, offline", store.SubNone, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "alice@localhost", "bob@localhost")
			if tt.sub != "" {
				e.sub("alice@localhost", "bob@localhost", tt.sub)
			}
			if tt.online {
				a := e.online("alice@localhost/a")
				a.SendXML(`<presence to='nobody@example.org'/>`) // a directed presence must not show up
				a.SendXML(`<presence><status>here</status></presence>`)
			}
			bob := e.Bind("bob@localhost/b")
			bob.SendXML(`<presence to='alice@localhost/whatever' type='probe'/>`)
			var got []string
			for _, el := range bob.Received() {
				typ := el.Attr("type")
				if typ == "" {
					typ = "available"
				}
				got = append(got, typ+"<"+el.Attr("from"))
				if el.Attr("to") != "bob@localhost/b" {
					t.Errorf("answer addressed to %q", el.Attr("to"))
				}
				if typ == "available" && el.ChildText(xml.NSClient, "status") != "here" {
					t.Errorf("answer is not the last presence: %s", el)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("prober got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestProbeOfflineCarriesLastLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice@localhost", "bob@localhost")
	e.sub("alice@localhost", "bob@localhost", store.SubBoth)
	a := e.online("alice@localhost/a")
	a.SendXML(`<presence type='unavailable'><status>gone fishing</status></presence>`)
	before := time.Now().Add(-time.Second)
	a.Disconnect()

	acct, err := e.st.Accounts().Get(e.Ctx, "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if acct.LastLogout.Before(before) || acct.LastStatus != "gone fishing" {
		t.Fatalf("last logout %v %q", acct.LastLogout, acct.LastStatus)
	}

	bob := e.Bind("bob@localhost/b")
	bob.SendXML(`<presence to='alice@localhost' type='probe'/>`)
	p := bob.Expect(from("unavailable", "alice@localhost"))
	if p.ChildText(xml.NSClient, "status") != "gone fishing" {
		t.Errorf("no last status: %s", p)
	}
	d := p.Child(nsDelay, "delay")
	if d == nil {
		t.Fatalf("no delay: %s", p)
	}
	if ts, err := time.Parse(time.RFC3339, d.Attr("stamp")); err != nil || ts.Before(before.Truncate(time.Second)) {
		t.Errorf("delay stamp %q: %v", d.Attr("stamp"), err)
	}

	// Probes for accounts that do not exist are dropped.
	bob.SendXML(`<presence to='nobody@localhost' type='probe'/>`)
	bob.ExpectNothing(func(el *xml.Element) bool { return el.Attr("from") == "nobody@localhost" })
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	for _, explicit := range []bool{true, false} {
		t.Run(fmt.Sprintf("explicit=%v", explicit), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "alice@localhost", "bob@localhost", "carol@localhost", "dave@localhost", "room@example.org")
			e.sub("alice@localhost", "bob@localhost", store.SubFrom)
			e.sub("alice@localhost", "dave@localhost", store.SubTo)
			bob, carol, dave := e.online("bob@localhost/b"), e.online("carol@localhost/c"), e.online("dave@localhost/d")
			a1 := e.online("alice@localhost/one")
			a2 := e.online("alice@localhost/two")
			// Directed presence: to carol (a stranger) is remembered; to
			// bob (a subscriber) the broadcast covers it.
			a2.SendXML(`<presence to='carol@localhost/c'/>`)
			a2.SendXML(`<presence to='bob@localhost/b'/>`)
			carol.Expect(from("", "alice@localhost/two"))
			for _, c := range []*servertest.Client{bob, carol, dave, a1, a2} {
				c.Received()
			}

			if explicit {
				a2.SendXML(`<presence type='unavailable'><status>bye</status></presence>`)
				if a2.Sess.Available() {
					t.Fatal("session still available")
				}
				a2.ExpectNothing(anyPresence) // no longer available: no echo
			} else {
				a2.Disconnect()
			}
			if got := senders(bob, "unavailable"); !slices.Equal(got, []string{"alice@localhost/two"}) {
				t.Errorf("subscriber got unavailable from %v", got)
			}
			if got := senders(carol, "unavailable"); !slices.Equal(got, []string{"alice@localhost/two"}) {
				t.Errorf("directed-presence recipient got unavailable from %v", got)
			}
			if got := senders(a1, "unavailable"); !slices.Equal(got, []string{"alice@localhost/two"}) {
				t.Errorf("other resource got unavailable from %v", got)
			}
			dave.ExpectNothing(anyPresence)

			// Nothing more when the session ends after an explicit
			// unavailable: the directed list was cleared.
			a2.Disconnect()
			for _, c := range []*servertest.Client{bob, carol, dave, a1} {
				c.ExpectNothing(anyPresence)
			}
		})
	}
}

func TestDirectedUnavailableForgets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice@localhost", "carol@localhost")
	carol := e.online("carol@localhost/c")
	a := e.online("alice@localhost/a")
	a.SendXML(`<presence to='carol@localhost/c'/>`)
	a.SendXML(`<presence to='carol@localhost/c' type='unavailable'/>`)
	carol.Expect(from("unavailable", "alice@localhost/a"))
	carol.Received()
	a.Disconnect()
	carol.ExpectNothing(anyPresence)

	// Directed presence from a session that never went available is
	// remembered too.
	b := e.Bind("alice@localhost/b")
	b.SendXML(`<presence to='carol@localhost'/>`)
	carol.Expect(from("", "alice@localhost/b"))
	b.Disconnect()
	carol.Expect(from("unavailable", "alice@localhost/b"))
}

func TestPendingRequestsAtInitialPresence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice@localhost", "bob@localhost")
	// As the roster feature stores a request that found alice offline.
	req := `<presence xmlns='jabber:client' type='subscribe' from='bob@localhost' to='alice@localhost' id='r1'><status>add me</status></presence>`
	if err := e.st.Roster().AddPendingIn(e.Ctx, "alice@localhost", store.PendingIn{JID: "bob@localhost", Stanza: []byte(req)}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Roster().AddPendingIn(e.Ctx, "alice@localhost", store.PendingIn{JID: "carol@localhost", Stanza: []byte("garbage")}); err != nil {
		t.Fatal(err)
	}
	a := e.online("alice@localhost/a")
	got := a.Expect(from("subscribe", "bob@localhost"))
	if got.ChildText(xml.NSClient, "status") != "add me" || got.Attr("to") != "alice@localhost" {
		t.Errorf("re-sent request: %s", got)
	}
	a.Expect(from("subscribe", "carol@localhost")) // unreadable record: a plain request

	// Each new available resource gets them while they are pending; an
	// update of an available one does not.
	a.SendXML(`<presence><show>away</show></presence>`)
	a.ExpectNothing(func(el *xml.Element) bool { return el.Attr("type") == "subscribe" })
	b := e.online("alice@localhost/b")
	b.Expect(from("subscribe", "bob@localhost"))

	if err := e.st.Roster().RemovePendingIn(e.Ctx, "alice@localhost", "bob@localhost"); err != nil {
		t.Fatal(err)
	}
	c := e.online("alice@localhost/c")
	c.Expect(from("subscribe", "carol@localhost"))
	c.ExpectNothing(from("subscribe", "bob@localhost"))
}

func TestPresenceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, xml string
		ok        bool
		prio      int
	}{
		{"priority", `<presence><priority>-128</priority></presence>`, true, -128},
		{"priority spaces", `<presence><priority> 127 </priority></presence>`, true, 127},
		{"show", `<presence><show>chat</show></presence>`, true, 0},
		{"priority too high", `<presence><priority>128</priority></presence>`, false, 0},
		{"priority too low", `<presence><priority>-129</priority></presence>`, false, 0},
		{"priority not a number", `<presence><priority>high</priority></presence>`, false, 0},
		{"priority empty", `<presence><priority/></presence>`, false, 0},
		{"bad show", `<presence><show>busy</show></presence>`, false, 0},
		{"bad type", `<presence type='invisible'/>`, false, 0},
		{"directed bad priority", `<presence to='bob@localhost'><priority>1000</priority></presence>`, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "alice@localhost", "bob@localhost")
			bob := e.online("bob@localhost/b")
			a := e.Bind("alice@localhost/a")
			a.SendXML(tt.xml)
			isErr := func(el *xml.Element) bool {
				if el.Local != "presence" || el.Attr("type") != "error" {
					return false
				}
				er := el.Child("", "error")
				return er != nil && er.Child("urn:ietf:params:xml:ns:xmpp-stanzas", "bad-request") != nil
			}
			if tt.ok {
				a.ExpectNothing(isErr)
				if !a.Sess.Available() || a.Sess.Priority() != tt.prio {
					t.Errorf("available %v priority %d, want %d", a.Sess.Available(), a.Sess.Priority(), tt.prio)
				}
				return
			}
			if el := a.Expect(isErr); el.Attr("to") != "alice@localhost/a" {
				t.Errorf("error addressed to %q", el.Attr("to"))
			}
			if a.Sess.Available() {
				t.Error("a refused presence made the session available")
			}
			bob.ExpectNothing(from("", "alice@localhost/a"))
		})
	}
}

// TestErrorToBareJID: a presence error for an account reaches its
// available resources.
func TestErrorToBareJID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice@localhost")
	a := e.online("alice@localhost/a")
	idle := e.Bind("alice@localhost/idle") // never available
	el := servertest.Parse(t, `<presence from='bob@example.org' to='alice@localhost' type='error'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`)
	if err := e.Srv.RouteElement(e.Ctx, el); err != nil {
		t.Fatal(err)
	}
	a.Expect(from("error", "bob@example.org"))
	idle.ExpectNothing(anyPresence)
}

func TestParseStored(t *testing.T) {
	t.Parallel()
	el := xml.New(xml.NSClient, "presence").SetAttr("type", "subscribe").SetAttr("from", "a@b")
	el.AppendText(xml.NSClient, "status", "x <&> y")
	got, err := parse([]byte(el.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != el.String() {
		t.Errorf("round trip: %s != %s", got, el)
	}
	for _, bad := range []string{"", "<presence", "</presence>", "garbage"} {
		if _, err := parse([]byte(bad)); err == nil {
			t.Errorf("parse(%q) did not fail", bad)
		}
	}
}
