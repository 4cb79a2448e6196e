package roster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/rostercache"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/xml"
)

// recorder swallows every stanza addressed to example.org, a served
// domain with no accounts in these tests, standing in for contacts whose
// server we only watch.
type recorder struct {
	mu  sync.Mutex
	got map[string][]*xml.Element // by bare 'to'
}

const watched = "contact@example.org"

func (r *recorder) feature() server.Feature {
	return server.Feature{Name: "recorder", Setup: func(s *server.Setup, _ any) error {
		s.Hook(server.DeliverLocal, server.PrioPolicy, func(_ context.Context, st *server.Stanza) server.Result {
			if st.To.Domain() != "example.org" {
				return server.Next
			}
			r.mu.Lock()
			if r.got == nil {
				r.got = make(map[string][]*xml.Element)
			}
			to := st.To.Bare().String()
			r.got[to] = append(r.got[to], st.El.Copy())
			r.mu.Unlock()
			return server.Done
		})
		return nil
	}}
}

// take returns and clears what contact got, as "type<from" strings
// ("available" for no type): "subscribe<alice@localhost".
func (r *recorder) take(contact string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, el := range r.got[contact] {
		t := el.Attr("type")
		if t == "" {
			t = "available"
		}
		s := t + "<" + el.Attr("from")
		if el.Attr("to") != contact {
			s += ">" + el.Attr("to") // not stamped with the bare JID
		}
		out = append(out, s)
	}
	delete(r.got, contact)
	return out
}

type testEnv struct {
	*servertest.Env
	st  store.Store
	rec *recorder
}

func newEnv(t *testing.T, cfg *Config, users ...string) *testEnv {
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
	rec := &recorder{}
	var cfgs map[string]any
	if cfg != nil {
		cfgs = map[string]any{"roster": *cfg}
	}
	env := servertest.New(t, st, []server.Feature{rec.feature(), Feature}, cfgs, "localhost", "example.org")
	for _, u := range users {
		// Straight into the store: the roster only needs the account to
		// exist, and skipping PBKDF2 keeps the many small tests fast.
		if err := st.Accounts().Create(ctx, u, store.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	return &testEnv{Env: env, st: st, rec: rec}
}

// available marks a session available without a presence feature.
func available(c *servertest.Client) {
	el := xml.New(xml.NSClient, "presence").SetAttr("from", c.JID.String())
	c.Sess.SetPresence(el, 0)
}

func iqResult(id string) func(*xml.Element) bool {
	return servertest.Name("iq", "id", id, "type", "result")
}

func iqError(id, cond string) func(*xml.Element) bool {
	return func(el *xml.Element) bool {
		if !servertest.Name("iq", "id", id, "type", "error")(el) {
			return false
		}
		e := el.Child("", "error")
		return e != nil && e.Child("urn:ietf:params:xml:ns:xmpp-stanzas", cond) != nil
	}
}

// push matches a roster push for contact.
func push(contact string) func(*xml.Element) bool {
	return func(el *xml.Element) bool {
		if el.Local != "iq" || el.Attr("type") != "set" {
			return false
		}
		q := el.Child(nsRoster, "query")
		return q != nil && q.Child(nsRoster, "item") != nil && q.Child(nsRoster, "item").Attr("jid") == contact
	}
}

func anyPush(el *xml.Element) bool {
	return el.Local == "iq" && el.Attr("type") == "set" && el.Child(nsRoster, "query") != nil
}

func rosterGet(t *testing.T, c *servertest.Client, id, ver string) *xml.Element {
	t.Helper()
	v := ""
	if ver != "-" {
		v = fmt.Sprintf(" ver='%s'", ver)
	}
	c.SendXML(fmt.Sprintf(`<iq type='get' id='%s'><query xmlns='jabber:iq:roster'%s/></iq>`, id, v))
	return c.Expect(iqResult(id))
}

func item(el *xml.Element) *xml.Element {
	return el.Child(nsRoster, "query").Child(nsRoster, "item")
}

func TestRosterSetGetRemove(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "alice@localhost", "bob@localhost")
	a := e.Bind("alice@localhost/a")
	b := e.Bind("alice@localhost/b")
	c := e.Bind("alice@localhost/c") // never asks for the roster
	for _, s := range []*servertest.Client{a, b} {
		if res := rosterGet(t, s, "g0", "-"); len(res.Child(nsRoster, "query").Elements()) != 0 {
			t.Fatalf("new roster not empty: %s", res)
		}
	}

	a.SendXML(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item></query></iq>`)
	a.Expect(iqResult("s1"))
	for _, s := range []*servertest.Client{a, b} {
		p := s.Expect(push("bob@localhost"))
		it := item(p)
		if it.Attr("name") != "Bob" || it.Attr("subscription") != "none" || it.Attr("ask") != "" || len(it.Elements()) != 2 {
			t.Errorf("push to %s: %s", s.JID, p)
		}
		if p.Attr("from") != "alice@localhost" || p.Attr("to") != s.JID.String() || p.Child(nsRoster, "query").Attr("ver") == "" {
			t.Errorf("push addressing/version: %s", p)
		}
	}
	c.ExpectNothing(anyPush)

	res := rosterGet(t, c, "g1", "-")
	items := res.Child(nsRoster, "query").Elements()
	if len(items) != 1 || items[0].Attr("jid") != "bob@localhost" || items[0].ChildText(nsRoster, "group") != "Friends" {
		t.Fatalf("roster after add: %s", res)
	}
	if res.Child(nsRoster, "query").HasAttr("ver") {
		t.Errorf("ver in a result to a client that sent none: %s", res)
	}

	// Update: c is interested now.
	b.SendXML(`<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Robert'/></query></iq>`)
	b.Expect(iqResult("s2"))
	for _, s := range []*servertest.Client{a, b, c} {
		if it := item(s.Expect(push("bob@localhost"))); it.Attr("name") != "Robert" || len(it.Elements()) != 0 {
			t.Errorf("update push to %s: %s", s.JID, it)
		}
	}

	// A subscription attribute other than remove is ignored (§2.1.2.5).
	a.SendXML(`<iq type='set' id='s3'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='both' ask='subscribe'/></query></iq>`)
	a.Expect(iqResult("s3"))
	if it := item(a.Expect(push("bob@localhost"))); it.Attr("subscription") != "none" || it.HasAttr("ask") {
		t.Errorf("client set the subscription state: %s", it)
	}
	b.Received()
	c.Received()

	a.SendXML(`<iq type='set' id='s4'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>`)
	a.Expect(iqResult("s4"))
	for _, s := range []*servertest.Client{a, b, c} {
		if it := item(s.Expect(push("bob@localhost"))); it.Attr("subscription") != "remove" {
			t.Errorf("remove push to %s: %s", s.JID, it)
		}
	}
	a.SendXML(`<iq type='set' id='s5'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>`)
	a.Expect(iqError("s5", "item-not-found"))
	if res := rosterGet(t, a, "g2", "-"); len(res.Child(nsRoster, "query").Elements()) != 0 {
		t.Fatalf("roster after remove: %s", res)
	}
}

func TestRosterSetErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxText+1)
	tests := []struct {
		name, payload, cond string
	}{
		{"no item", ``, "bad-request"},
		{"two items", `<item jid='a@localhost'/><item jid='b@localhost'/>`, "bad-request"},
		{"no jid", `<item name='x'/>`, "bad-request"},
		{"empty jid", `<item jid=''/>`, "bad-request"},
		{"bad jid", `<item jid='a@b@c'/>`, "jid-malformed"},
		{"full jid", `<item jid='a@localhost/r'/>`, "jid-malformed"},
		{"duplicate group", `<item jid='a@localhost'><group>G</group><group>G</group></item>`, "bad-request"},
		{"empty group", `<item jid='a@localhost'><group/></item>`, "not-acceptable"},
		{"long group", `<item jid='a@localhost'><group>` + long + `</group></item>`, "not-acceptable"},
		{"long name", `<item jid='a@localhost' name='` + long + `'/>`, "not-acceptable"},
		{"self", `<item jid='alice@localhost'/>`, "not-allowed"},
		{"full roster", `<item jid='third@localhost'/>`, "not-allowed"},
	}
	e := newEnv(t, &Config{MaxItems: 2}, "alice@localhost", "bob@localhost")
	a := e.Bind("alice@localhost/a")
	rosterGet(t, a, "g", "-")
	for i, c := range []string{"one@localhost", "two@localhost"} {
		a.SendXML(fmt.Sprintf(`<iq type='set' id='fill%d'><query xmlns='jabber:iq:roster'><item jid='%s'/></query></iq>`, i, c))
		a.Expect(iqResult(fmt.Sprintf("fill%d", i)))
	}
	a.Received()
	for i, tt := range tests {
		id := fmt.Sprintf("e%d", i)
		a.SendXML(fmt.Sprintf(`<iq type='set' id='%s'><query xmlns='jabber:iq:roster'>%s</query></iq>`, id, tt.payload))
		a.Expect(iqError(id, tt.cond))
		a.ExpectNothing(anyPush)
	}
	// Updating an existing item is fine with a full roster.
	a.SendXML(`<iq type='set' id='upd'><query xmlns='jabber:iq:roster'><item jid='one@localhost' name='One'/></query></iq>`)
	a.Expect(iqResult("upd"))

	// Another account may neither read nor change alice's roster.
	b := e.Bind("bob@localhost/b")
	b.SendXML(`<iq type='get' id='x1' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>`)
	b.Expect(iqError("x1", "forbidden"))
	b.SendXML(`<iq type='set' id='x2' to='alice@localhost'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>`)
	b.Expect(iqError("x2", "forbidden"))
}

func TestRosterVersioning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "alice@localhost")
	a := e.Bind("alice@localhost/a")

	res := rosterGet(t, a, "g1", "")
	v0 := res.Child(nsRoster, "query").Attr("ver")
	if v0 == "" {
		t.Fatalf("no ver in answer to ver='': %s", res)
	}
	a.SendXML(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>`)
	a.Expect(iqResult("s1"))
	v1 := a.Expect(push("bob@localhost")).Child(nsRoster, "query").Attr("ver")
	if v1 == v0 || v1 == "" {
		t.Fatalf("version did not change: %q -> %q", v0, v1)
	}

	// Up to date: an empty result (no query element at all).
	if res := rosterGet(t, a, "g2", v1); res.Child(nsRoster, "query") != nil {
		t.Errorf("answer to a current ver: %s", res)
	}
	// Stale or unknown: the whole roster with the current version.
	for i, ver := range []string{v0, "", "bogus", "999999"} {
		res := rosterGet(t, a, fmt.Sprintf("s%d", i), ver)
		q := res.Child(nsRoster, "query")
		if q == nil || q.Attr("ver") != v1 || len(q.Elements()) != 1 {
			t.Errorf("answer to ver=%q: %s", ver, res)
		}
	}
	a.SendXML(`<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>`)
	v2 := a.Expect(push("bob@localhost")).Child(nsRoster, "query").Attr("ver")
	if v2 == v1 {
		t.Fatalf("version did not change on remove")
	}
	if res := rosterGet(t, a, "g3", v2); res.Child(nsRoster, "query") != nil {
		t.Errorf("answer to a current ver after remove: %s", res)
	}
}

func TestStreamFeatures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var got []string
	for _, el := range e.Srv.StreamFeatures(nil) {
		got = append(got, el.Space+" "+el.Local)
	}
	want := []string{nsRosterVer + " ver", nsPreApproval + " sub"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream features = %v, want %v", got, want)
	}
}

// rosterState reads the Appendix A state of contact in owner's roster.
func rosterState(t *testing.T, st store.Store, owner, contact string) string {
	t.Helper()
	ctx := context.Background()
	var out string
	it, err := st.Roster().Get(ctx, owner, contact)
	switch {
	case errors.Is(err, store.ErrNotFound):
		out = "-"
	case err != nil:
		t.Fatal(err)
	default:
		out = stateName(it.Subscription, it.Ask)
		if it.Approved {
			out += "+approved"
		}
	}
	pending, err := st.Roster().PendingIn(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if p.JID == contact {
			out += "+PI"
		}
	}
	return out
}

func stateName(sub store.Subscription, ask bool) string {
	s := map[store.Subscription]string{store.SubNone: "None", store.SubTo: "To", store.SubFrom: "From", store.SubBoth: "Both"}[sub]
	if ask {
		s += "+PO"
	}
	return s
}
