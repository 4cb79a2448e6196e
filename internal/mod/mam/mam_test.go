package mam

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/carbons"
	"stoa.im/stoa/internal/mod/offline"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/xml"
)

// clock is a settable time for the feature under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond) // every message its own millisecond
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	*servertest.Env
	st    store.Store
	f     *feature
	disco *server.Disco
	clock *clock
}

// testConfig is the default configuration with policy always.
func testConfig() Config {
	c := Feature.Defaults.(Config)
	c.DefaultPolicy = store.PolicyAlways
	return c
}

// newEnv starts roster, presence, offline and mam over st (a fresh
// database when nil) with alice and bob.
func newEnv(t *testing.T, cfg Config, st store.Store) *env {
	t.Helper()
	if st == nil {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		st = s
	}
	e := &env{st: st, clock: &clock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}}
	feat := Feature
	feat.Setup = func(s *server.Setup, cfg any) error {
		var err error
		e.f, err = newFeature(s, cfg, e.clock.now)
		e.disco = s.Disco()
		return err
	}
	e.Env = servertest.New(t, st, []server.Feature{roster.Feature, presence.Feature, offline.Feature, feat}, map[string]any{"mam": cfg})
	e.AddUser("alice@localhost", "pw")
	e.AddUser("bob@localhost", "pw")
	return e
}

// online binds a resource and sends initial presence.
func (e *env) online(full string) *servertest.Client {
	c := e.Bind(full)
	c.SendXML(`<presence/>`)
	c.Expect(servertest.Name("presence", "from", full))
	return c
}

func isMessage(el *xml.Element) bool { return el.Local == "message" }

func stanzaIDs(el *xml.Element) map[string]string {
	out := map[string]string{}
	for _, c := range el.Elements() {
		if c.Space == nsSID && c.Local == "stanza-id" {
			out[c.Attr("by")] = c.Attr("id")
		}
	}
	return out
}

// result is one archived message as a query returned it.
type result struct {
	id, stamp, from, to, body string
	order                     int
}

// mamQuery runs a query as c and returns the results and the <fin/> (or
// the error element).
func mamQuery(t *testing.T, c *servertest.Client, to, inner string) ([]result, *xml.Element) {
	t.Helper()
	qid := fmt.Sprintf("q%d", time.Now().UnixNano())
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	c.SendXML(`<iq type='set' id='` + qid + `'` + toAttr + `><query xmlns='urn:xmpp:mam:2' queryid='` + qid + `'>` + inner + `</query></iq>`)
	iq := c.Expect(servertest.Name("iq", "id", qid))
	var out []result
	for i, m := range c.Received() {
		r := m.Child(NS, "result")
		if r == nil || r.Attr("queryid") != qid {
			continue
		}
		if m.Attr("from") != c.JID.Bare().String() {
			t.Errorf("result from %q, want the archive's address %s", m.Attr("from"), c.JID.Bare())
		}
		fwd := r.Child(nsForward, "forwarded")
		inner := fwd.Child(xml.NSClient, "message")
		out = append(out, result{
			id: r.Attr("id"), stamp: fwd.Child(nsDelay, "delay").Attr("stamp"),
			from: inner.Attr("from"), to: inner.Attr("to"), body: inner.ChildText(xml.NSClient, "body"), order: i,
		})
	}
	if iq.Attr("type") == "error" {
		return out, iq.Child(xml.NSClient, "error")
	}
	return out, iq.Child(NS, "fin")
}

func bodies(rs []result) string {
	var b []string
	for _, r := range rs {
		b = append(b, r.body)
	}
	return strings.Join(b, ",")
}

func finSet(t *testing.T, fin *xml.Element) (first, last string, index, count int, complete bool) {
	t.Helper()
	if fin == nil || fin.Local != "fin" {
		t.Fatalf("no <fin/>: %v", fin)
	}
	set := fin.Child(nsRSM, "set")
	count, _ = strconv.Atoi(set.ChildText(nsRSM, "count"))
	if f := set.Child(nsRSM, "first"); f != nil {
		first = f.Text
		index, _ = strconv.Atoi(f.Attr("index"))
	}
	return first, set.ChildText(nsRSM, "last"), index, count, fin.Attr("complete") == "true"
}

func TestArchivesBothSides(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil)
	alice := e.online("alice@localhost/a")
	bob := e.online("bob@localhost/b")
	alice.SendXML(`<message to='bob@localhost' type='chat' id='m1'><body>hello</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	got := bob.Expect(isMessage)
	ids := stanzaIDs(got)
	if len(ids) != 1 || ids["bob@localhost"] == "" {
		t.Fatalf("bob got stanza-ids %v, want exactly one by bob@localhost (never the sender's)", ids)
	}

	rs, fin := mamQuery(t, bob, "", "")
	if len(rs) != 1 || rs[0].body != "hello" || rs[0].from != "alice@localhost/a" || rs[0].id != ids["bob@localhost"] {
		t.Fatalf("bob's archive = %+v, want the message with id %s", rs, ids["bob@localhost"])
	}
	if _, err := time.Parse(time.RFC3339, rs[0].stamp); err != nil {
		t.Errorf("delay stamp %q: %v", rs[0].stamp, err)
	}
	first, last, index, count, complete := finSet(t, fin)
	if first != rs[0].id || last != rs[0].id || index != 0 || count != 1 || !complete {
		t.Errorf("fin = %s %s %d %d %v", first, last, index, count, complete)
	}
	rs, _ = mamQuery(t, alice, "alice@localhost", "")
	if len(rs) != 1 || rs[0].body != "hello" || rs[0].to != "bob@localhost" || rs[0].id == ids["bob@localhost"] {
		t.Fatalf("alice's archive = %+v, want the message under its own id", rs)
	}
	// The stored copy has no chat state.
	p, err := e.st.Archive().Query(e.Ctx, "alice@localhost", store.ArchiveQuery{Max: 10})
	if err != nil || len(p.Messages) != 1 || strings.Contains(string(p.Messages[0].Stanza), "chatstates") {
		t.Errorf("stored: %v, %v", p.Messages, err)
	}
	if n := metricValue(t, e, "stoa_mam_archived_total"); n != 2 {
		t.Errorf("archived_total = %v, want 2", n)
	}
}

func metricValue(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.Srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func TestStanzaIDRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil)
	alice := e.online("alice@localhost/a")
	bob := e.online("bob@localhost/b")
	// A client cannot forge our stanza-ids; other servers' ids travel on.
	alice.SendXML(`<message to='bob@localhost' type='chat'><body>x</body>` +
		`<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/>` +
		`<stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='forged2'/>` +
		`<stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example.net' id='theirs'/></message>`)
	ids := stanzaIDs(bob.Expect(isMessage))
	if ids["bob@localhost"] == "forged" || ids["localhost"] != "" || ids["room@muc.example.net"] != "theirs" || len(ids) != 2 {
		t.Errorf("stanza-ids = %v", ids)
	}
	// Not archived (never for bob): the forged id must still go.
	e.st.Archive().SetPrefs(e.Ctx, "bob@localhost", store.ArchivePrefs{Default: store.PolicyNever})
	e.f.prefs.forget("bob@localhost")
	alice.SendXML(`<message to='bob@localhost' type='chat'><body>y</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/></message>`)
	if ids := stanzaIDs(bob.Expect(isMessage)); len(ids) != 0 {
		t.Errorf("stanza-ids on an unarchived message = %v", ids)
	}
	// A note to oneself is archived once and carries the id.
	alice.SendXML(`<message to='alice@localhost' type='chat'><body>note</body></message>`)
	ids = stanzaIDs(alice.Expect(isMessage))
	rs, _ := mamQuery(t, alice, "", "")
	notes := 0
	for _, r := range rs {
		if r.body == "note" {
			notes++
			if r.id != ids["alice@localhost"] {
				t.Errorf("note delivered with id %v, archived as %s", ids, r.id)
			}
		}
	}
	if notes != 1 {
		t.Errorf("the note is archived %d times, want once", notes)
	}
}

func TestWhatIsArchived(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil)
	alice := e.online("alice@localhost/a")
	e.online("bob@localhost/b")
	for _, m := range []string{
		`<message to='bob@localhost' type='chat'><body>chat</body></message>`,
		`<message to='bob@localhost'><body>normal</body></message>`,
		`<message to='bob@localhost' type='headline'><body>headline</body></message>`,
		`<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message to='bob@localhost' type='chat'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>`,
		`<message to='bob@localhost' type='chat'><body>otr</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`,
		`<message to='bob@localhost' type='chat'><received xmlns='urn:xmpp:receipts' id='x'/><store xmlns='urn:xmpp:hints'/></message>`,
		`<message to='bob@localhost' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`,
		`<message to='bob@localhost' type='error'><body>err</body></message>`,
	} {
		alice.SendXML(m)
	}
	rs, _ := mamQuery(t, alice, "", "")
	if len(rs) != 4 || bodies(rs) != "chat,normal,," {
		t.Errorf("archived %d: %q; want chat, normal, the receipt with a store hint, the encrypted message", len(rs), bodies(rs))
	}
}

func TestRosterPolicy(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DefaultPolicy = store.PolicyRoster
	e := newEnv(t, cfg, nil)
	e.AddUser("carol@localhost", "pw")
	alice := e.online("alice@localhost/a")
	bob := e.online("bob@localhost/b")
	carol := e.online("carol@localhost/c")
	if _, err := e.st.Roster().Put(e.Ctx, "bob@localhost", store.RosterItem{JID: "alice@localhost", Subscription: store.SubBoth}); err != nil {
		t.Fatal(err)
	}
	alice.SendXML(`<message to='bob@localhost' type='chat'><body>from a contact</body></message>`)
	carol.SendXML(`<message to='bob@localhost' type='chat'><body>from a stranger</body></message>`)
	bob.SendXML(`<message to='bob@localhost' type='chat'><body>note</body></message>`)
	rs, _ := mamQuery(t, bob, "", "")
	if got := bodies(rs); got != "from a contact,note" {
		t.Errorf("bob's archive = %q, want the contact's message and the note", got)
	}
	// Alice has no roster entry for bob: her outgoing copy is not kept.
	if rs, _ := mamQuery(t, alice, "", ""); len(rs) != 0 {
		t.Errorf("alice's archive = %q, want nothing (bob is not in her roster)", bodies(rs))
	}
}

func TestPrefs(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DefaultPolicy = store.PolicyRoster
	e := newEnv(t, cfg, nil)
	e.AddUser("carol@localhost", "pw")
	alice := e.online("alice@localhost/a")
	bob := e.online("bob@localhost/b")
	carol := e.online("carol@localhost/c")

	bob.SendXML(`<iq type='get' id='p1'><prefs xmlns='urn:xmpp:mam:2'/></iq>`)
	res := bob.Expect(servertest.Name("iq", "id", "p1"))
	p := res.Child(NS, "prefs")
	if p == nil || p.Attr("default") != "roster" || p.Child(NS, "always") == nil || p.Child(NS, "never") == nil {
		t.Fatalf("prefs = %v, want the server default roster and empty lists", res)
	}
	bob.SendXML(`<iq type='set' id='p2'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>carol@localhost</jid></always><never><jid>alice@localhost/a</jid></never></prefs></iq>`)
	res = bob.Expect(servertest.Name("iq", "id", "p2"))
	if p := res.Child(NS, "prefs"); p == nil || p.Attr("default") != "never" || p.Child(NS, "always").ChildText(NS, "jid") != "carol@localhost" {
		t.Fatalf("set prefs answered %v", res)
	}
	carol.SendXML(`<message to='bob@localhost' type='chat'><body>always</body></message>`)
	alice.SendXML(`<message to='bob@localhost' type='chat'><body>never</body></message>`)
	alice2 := e.online("alice@localhost/other")
	alice2.SendXML(`<message to='bob@localhost' type='chat'><body>default never</body></message>`)
	if rs, _ := mamQuery(t, bob, "", ""); bodies(rs) != "always" {
		t.Errorf("bob's archive = %q, want only carol's", bodies(rs))
	}
	// Bad preferences are refused with the reason.
	bob.SendXML(`<iq type='set' id='p3'><prefs xmlns='urn:xmpp:mam:2' default='sometimes'/></iq>`)
	if res := bob.Expect(servertest.Name("iq", "id", "p3")); res.Attr("type") != "error" {
		t.Errorf("default='sometimes' answered %v", res)
	}
	// Someone else's preferences are not theirs to read.
	alice.SendXML(`<iq type='get' id='p4' to='bob@localhost'><prefs xmlns='urn:xmpp:mam:2'/></iq>`)
	if res := alice.Expect(servertest.Name("iq", "id", "p4")); res.Attr("type") != "error" || res.Child(xml.NSClient, "error").Child("urn:ietf:params:xml:ns:xmpp-stanzas", "forbidden") == nil {
		t.Errorf("reading another account's prefs answered %v", res)
	}
}

func TestQueryPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil)
	alice := e.online("alice@localhost/a")
	e.online("bob@localhost/b")
	for i := range 25 {
		alice.SendXML(fmt.Sprintf(`<message to='bob@localhost' type='chat'><body>%d</body></message>`, i))
		if i == 9 {
			e.clock.advance(26 * time.Hour) // across a day boundary
		}
	}
	// Forward through everything, 10 at a time.
	var all []result
	after := ""
	for page := 0; page < 5; page++ {
		set := "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		rs, fin := mamQuery(t, alice, "", set+"</set>")
		first, last, index, count, complete := finSet(t, fin)
		if count != 25 || index != page*10 || len(rs) == 0 || first != rs[0].id || last != rs[len(rs)-1].id {
			t.Fatalf("page %d: fin %s %s %d %d, %d results", page, first, last, index, count, len(rs))
		}
		all = append(all, rs...)
		if complete {
			break
		}
		after = last
	}
	var want []string
	for i := range 25 {
		want = append(want, strconv.Itoa(i))
	}
	if got := bodies(all); got != strings.Join(want, ",") {
		t.Fatalf("paged forward: %s", got)
	}
	// The last page, flipped: newest first on the wire, same page.
	rs, fin := mamQuery(t, alice, "", "<set xmlns='http://jabber.org/protocol/rsm'><max>5</max><before/></set><flip-page/>")
	first, last, index, _, complete := finSet(t, fin)
	if bodies(rs) != "24,23,22,21,20" || first != all[20].id || last != all[24].id || index != 20 || complete {
		t.Errorf("last page flipped: %s, fin %s %s %d %v", bodies(rs), first, last, index, complete)
	}
	// Before a known id, backward.
	rs, fin = mamQuery(t, alice, "", "<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><before>"+all[2].id+"</before></set>")
	if _, _, _, _, complete := finSet(t, fin); bodies(rs) != "0,1" || !complete {
		t.Errorf("before the third: %s complete=%v", bodies(rs), complete)
	}
	// Extended fields: between ids, and ids.
	form := func(fields string) string {
		return `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` + fields + `</x>`
	}
	rs, _ = mamQuery(t, alice, "", form(`<field var='after-id'><value>`+all[3].id+`</value></field><field var='before-id'><value>`+all[7].id+`</value></field>`))
	if bodies(rs) != "4,5,6" {
		t.Errorf("between ids: %s", bodies(rs))
	}
	rs, _ = mamQuery(t, alice, "", form(`<field var='ids'><value>`+all[12].id+`</value><value>`+all[1].id+`</value></field>`))
	if bodies(rs) != "1,12" {
		t.Errorf("ids: %s", bodies(rs))
	}
	// By time: the day after the jump.
	rs, _ = mamQuery(t, alice, "", form(`<field var='start'><value>`+all[10].stamp+`</value></field><field var='end'><value>`+all[12].stamp+`</value></field>`))
	if bodies(rs) != "10,11,12" {
		t.Errorf("start/end: %s", bodies(rs))
	}
	rs, _ = mamQuery(t, alice, "", form(`<field var='with'><value>bob@localhost</value></field>`)+"<set xmlns='http://jabber.org/protocol/rsm'><max>2</max></set>")
	if bodies(rs) != "0,1" {
		t.Errorf("with: %s", bodies(rs))
	}
	// Errors.
	for name, inner := range map[string]string{
		"item-not-found":          "<set xmlns='http://jabber.org/protocol/rsm'><after>AAAAAAAAAAAAAAAAAAAAAA</after></set>",
		"feature-not-implemented": form(`<field var='{urn:example}full-text'><value>x</value></field>`),
		"bad-request":             form(`<field var='start'><value>yesterday</value></field>`),
	} {
		if _, el := mamQuery(t, alice, "", inner); el == nil || el.Local != "error" || el.Child("urn:ietf:params:xml:ns:xmpp-stanzas", name) == nil {
			t.Errorf("%s: answered %v", name, el)
		}
	}
	// Another account's archive is forbidden.
	if _, el := mamQuery(t, alice, "bob@localhost", ""); el == nil || el.Child("urn:ietf:params:xml:ns:xmpp-stanzas", "forbidden") == nil {
		t.Errorf("querying bob's archive answered %v", el)
	}
}

func TestFormMetadataDisco(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil)
	alice := e.online("alice@localhost/a")
	alice.SendXML(`<iq type='get' id='m0'><metadata xmlns='urn:xmpp:mam:2'/></iq>`)
	if md := alice.Expect(servertest.Name("iq", "id", "m0")).Child(NS, "metadata"); md == nil || len(md.Elements()) != 0 {
		t.Errorf("metadata of an empty archive = %v", md)
	}
	e.online("bob@localhost/b")
	for i := range 3 {
		alice.SendXML(fmt.Sprintf(`<message to='bob@localhost' type='chat'><body>%d</body></message>`, i))
	}
	rs, _ := mamQuery(t, alice, "", "")
	alice.SendXML(`<iq type='get' id='m1'><metadata xmlns='urn:xmpp:mam:2'/></iq>`)
	md := alice.Expect(servertest.Name("iq", "id", "m1")).Child(NS, "metadata")
	if md == nil || md.Child(NS, "start").Attr("id") != rs[0].id || md.Child(NS, "end").Attr("id") != rs[2].id || md.Child(NS, "end").Attr("timestamp") != rs[2].stamp {
		t.Errorf("metadata = %v", md)
	}
	alice.SendXML(`<iq type='get' id='f1'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	q := alice.Expect(servertest.Name("iq", "id", "f1")).Child(NS, "query")
	if q == nil || !strings.Contains(q.String(), "var=\"before-id\"") && !strings.Contains(q.String(), "var='before-id'") {
		t.Errorf("query form = %v", q)
	}
	info := e.disco.AccountInfo()
	for _, want := range []string{NS, NSExtended, nsSID} {
		found := false
		for _, f := range info.Features {
			found = found || f == want
		}
		if !found {
			t.Errorf("account disco lacks %s", want)
		}
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.ExpireAfter = config.Duration(46*time.Hour + 30*time.Minute)
	cfg.PurgeBatch = 10
	e := newEnv(t, cfg, nil)
	alice := e.online("alice@localhost/a")
	e.online("bob@localhost/b")
	for i := range 30 {
		alice.SendXML(fmt.Sprintf(`<message to='bob@localhost' type='chat'><body>%d</body></message>`, i))
		e.clock.advance(3 * time.Hour)
	}
	// Now is 90 h after the first (2030-01-05 06:00): messages older than
	// 46 h 30 (before 2030-01-03 07:30) expired, and their days go whole:
	// the days before 2030-01-03, which hold messages 0 to 11. Message 12
	// (2030-01-03 00:00) is older than the retention but waits for the
	// rest of its day.
	if err := e.f.w.sync(e.Ctx); err != nil {
		t.Fatal(err)
	}
	e.f.purgeOnce(e.Ctx)
	rs, _ := mamQuery(t, alice, "", "<set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set>")
	if len(rs) == 0 || rs[0].body != "12" || len(rs) != 18 {
		t.Errorf("after expiry: %s", bodies(rs))
	}
	if n := metricValue(t, e, "stoa_mam_purged_total"); n != 24 {
		t.Errorf("purged_total = %v, want 24 (12 in each archive)", n)
	}
	// A day later, the next day goes.
	e.clock.advance(24 * time.Hour)
	e.f.purgeOnce(e.Ctx)
	rs, _ = mamQuery(t, alice, "", "<set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set>")
	if len(rs) == 0 || rs[0].body != "20" {
		t.Errorf("a day later: %s", bodies(rs))
	}
}

func TestDeletedWithAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil)
	alice := e.online("alice@localhost/a")
	bob := e.online("bob@localhost/b")
	alice.SendXML(`<message to='bob@localhost' type='chat'><body>bye</body></message>`)
	bob.Expect(isMessage)
	if err := e.Srv.DeleteUser(e.Ctx, alice.JID, "test"); err != nil {
		t.Fatal(err)
	}
	if p, err := e.st.Archive().Query(e.Ctx, "alice@localhost", store.ArchiveQuery{Max: 10}); err != nil || len(p.Messages) != 0 {
		t.Errorf("the deleted account's archive = %d messages, %v", len(p.Messages), err)
	}
	if rs, _ := mamQuery(t, bob, "", ""); bodies(rs) != "bye" {
		t.Errorf("bob's archive = %s, want his copy", bodies(rs))
	}
	// The rows are gone from the disk too, through the purge loop.
	e.f.purgeOnce(e.Ctx)
	if n, more, err := e.st.Archive().ReapDeleted(e.Ctx, 100); n != 0 || more || err != nil {
		t.Errorf("rows of the deleted archive left: %d %v %v", n, more, err)
	}
}

// stallArchive blocks Append until released.
type stallArchive struct {
	store.Archive
	release chan struct{}
}

func (s *stallArchive) Append(ctx context.Context, msgs []store.ArchiveMessage, quota int) (store.AppendResult, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return store.AppendResult{}, ctx.Err()
	}
	return s.Archive.Append(ctx, msgs, quota)
}

type stallStore struct {
	store.Store
	arc *stallArchive
}

func (s stallStore) Archive() store.Archive { return s.arc }

func TestBackpressure(t *testing.T) {
	t.Parallel()
	base, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	st := stallStore{Store: base, arc: &stallArchive{Archive: base.Archive(), release: make(chan struct{})}}
	cfg := testConfig()
	cfg.WriteQueue = 100
	cfg.WriteWait = config.Duration(100 * time.Millisecond)
	e := newEnv(t, cfg, st)
	alice := e.online("alice@localhost/a")
	bob := e.online("bob@localhost/b")
	// The database takes nothing: the queue fills, then the sender waits
	// and is told its message was not taken.
	sent := 0
	var refused *xml.Element
	for sent < 300 && refused == nil {
		alice.SendXML(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='m%d'><body>%d</body></message>`, sent, sent))
		sent++
		for _, el := range alice.Received() {
			if el.Attr("type") == "error" {
				refused = el
			}
		}
	}
	if refused == nil {
		t.Fatalf("no refusal after %d messages into a stalled archive", sent)
	}
	if c := refused.Child(xml.NSClient, "error"); c == nil || c.Attr("type") != "wait" || c.Child("urn:ietf:params:xml:ns:xmpp-stanzas", "resource-constraint") == nil {
		t.Errorf("refusal = %v, want wait/resource-constraint", refused)
	}
	if n := metricValue(t, e, "stoa_mam_write_queue_waits_total"); n < 1 {
		t.Errorf("write_queue_waits_total = %v", n)
	}
	if n := metricValue(t, e, "stoa_policy_denied_total"); n < 1 {
		t.Errorf("policy_denied_total = %v", n)
	}
	// Every message bob received is in both archives once the database
	// takes writes again.
	close(st.arc.release)
	delivered := 0
	for _, el := range bob.Received() {
		if isMessage(el) {
			delivered++
		}
	}
	rs, _ := mamQuery(t, bob, "", "<set xmlns='http://jabber.org/protocol/rsm'><max>1000</max></set>")
	if len(rs) != delivered || delivered != sent-1 {
		t.Errorf("bob received %d of %d messages and his archive has %d", delivered, sent, len(rs))
	}
}

// TestCarbonsCarryStanzaID checks the hook order with carbons: the sent
// copy carries the sender's stanza-id, the received copy the
// recipient's, and the recipient never sees the sender's.
func TestCarbonsCarryStanzaID(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	se := servertest.New(t, st, []server.Feature{roster.Feature, presence.Feature, offline.Feature, Feature, carbons.Feature},
		map[string]any{"mam": testConfig()})
	se.AddUser("alice@localhost", "pw")
	se.AddUser("bob@localhost", "pw")
	e := &env{Env: se, st: st}
	a1 := e.online("alice@localhost/one")
	a2 := e.online("alice@localhost/two")
	b1 := e.online("bob@localhost/one")
	b2 := e.online("bob@localhost/two")
	for _, c := range []*servertest.Client{a2, b2} {
		c.SendXML(`<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
		c.Expect(servertest.Name("iq", "id", "c"))
	}
	a1.SendXML(`<message to='bob@localhost/one' type='chat'><body>hi</body></message>`)
	orig := stanzaIDs(b1.Expect(isMessage))
	if len(orig) != 1 || orig["bob@localhost"] == "" {
		t.Errorf("bob got stanza-ids %v", orig)
	}
	carbonIDs := func(c *servertest.Client, dir string) map[string]string {
		m := c.Expect(isMessage)
		w := m.Child("urn:xmpp:carbons:2", dir)
		if w == nil {
			t.Fatalf("%s: not a %s carbon: %v", c.JID, dir, m)
		}
		return stanzaIDs(w.Child(nsForward, "forwarded").Child(xml.NSClient, "message"))
	}
	if ids := carbonIDs(a2, "sent"); len(ids) != 1 || ids["alice@localhost"] == "" {
		t.Errorf("sent carbon stanza-ids %v, want alice's", ids)
	}
	if ids := carbonIDs(b2, "received"); len(ids) != 1 || ids["bob@localhost"] != orig["bob@localhost"] {
		t.Errorf("received carbon stanza-ids %v, want bob's %v", ids, orig)
	}
}

// TestPerHostRetention: a host with its own retention loses its expired
// days while the other host (forever) keeps everything.
func TestPerHostRetention(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := testConfig()
	cfg.ExpireAfter = 0
	cfg.Hosts = []HostConfig{{Host: "short.example", ExpireAfter: config.Duration(24 * time.Hour)}}
	e := &env{st: st, clock: &clock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}}
	feat := Feature
	feat.Setup = func(s *server.Setup, cfg any) error {
		var err error
		e.f, err = newFeature(s, cfg, e.clock.now)
		return err
	}
	e.Env = servertest.New(t, st, []server.Feature{roster.Feature, presence.Feature, offline.Feature, feat},
		map[string]any{"mam": cfg}, "localhost", "short.example")
	e.AddUser("alice@localhost", "pw")
	e.AddUser("carol@short.example", "pw")
	alice := e.online("alice@localhost/a")
	carol := e.online("carol@short.example/c")
	for i := range 12 {
		alice.SendXML(fmt.Sprintf(`<message to='carol@short.example' type='chat'><body>%d</body></message>`, i))
		e.clock.advance(6 * time.Hour)
	}
	// Now 2030-01-04 12:00: carol's days before 2030-01-03 expired
	// (messages 0 to 5: Jan 1 12:00 to Jan 2 18:00).
	if err := e.f.w.sync(e.Ctx); err != nil {
		t.Fatal(err)
	}
	e.f.purgeOnce(e.Ctx)
	all := "<set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set>"
	if rs, _ := mamQuery(t, carol, "", all); len(rs) != 6 || rs[0].body != "6" {
		t.Errorf("carol's archive after expiry: %s", bodies(rs))
	}
	if rs, _ := mamQuery(t, alice, "", all); len(rs) != 12 {
		t.Errorf("alice's archive (no expiry): %s", bodies(rs))
	}
}
