package disco

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// form builds a result form with a FORM_TYPE (if ft is not "") and fields.
func form(ft string, fields ...string) *xml.Element {
	x := xml.New(nsData, "x").SetAttr("type", "result")
	if ft != "" {
		x.Append(xml.New(nsData, "field").SetAttr("var", "FORM_TYPE").SetAttr("type", "hidden").
			AppendText(nsData, "value", ft))
	}
	for _, f := range fields {
		x.Append(xml.New(nsData, "field").SetAttr("var", f).AppendText(nsData, "value", f+"-value"))
	}
	return x
}

// probe is a feature advertising what other features would.
var probe = server.Feature{Name: "probe", Setup: func(s *server.Setup, _ any) error {
	d := s.Disco()
	d.ServerFeature("urn:example:server")
	d.AccountFeature("urn:example:account")
	d.ServerForm(func(string) *xml.Element { return form("http://jabber.org/network/serverinfo", "abuse-addresses") })
	d.ServerForm(func(string) *xml.Element { return form("urn:xmpp:http:upload:0", "max-file-size") })
	d.ServerForm(func(string) *xml.Element { return form("http://jabber.org/network/serverinfo", "admin-addresses") })
	d.ServerForm(func(string) *xml.Element { return nil })
	d.ServerItems(func(host string) []server.DiscoItem {
		return []server.DiscoItem{{JID: "upload." + host, Name: "Uploads"}}
	})
	return nil
}}

func newEnv(t *testing.T) (*servertest.Env, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return servertest.New(t, st, []server.Feature{Feature, probe}, nil, "localhost", "example.org"), st
}

func features(q *xml.Element) []string {
	var out []string
	for _, f := range q.Elements() {
		if f.Local == "feature" {
			out = append(out, f.Attr("var"))
		}
	}
	return out
}

func TestServerInfo(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	c := env.Bind("alice@localhost/a")
	c.SendXML(`<iq type='get' id='i1' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	r := c.Expect(servertest.Name("iq", "id", "i1"))
	q := r.Child(NSInfo, "query")
	if r.Attr("type") != "result" || r.Attr("from") != "example.org" || q == nil {
		t.Fatalf("reply = %s", r)
	}
	id := q.Child(NSInfo, "identity")
	if id == nil || id.Attr("category") != "server" || id.Attr("type") != "im" || id.Attr("name") != "stoa" {
		t.Errorf("identity = %v, want server/im stoa", id)
	}
	if got, want := features(q), []string{NSInfo, NSItems, "urn:example:server"}; !slices.Equal(got, want) {
		t.Errorf("features = %v, want %v", got, want)
	}
	var forms []*xml.Element
	for _, x := range q.Elements() {
		if x.Space == nsData && x.Local == "x" {
			forms = append(forms, x)
		}
	}
	if len(forms) != 2 {
		t.Fatalf("forms = %v, want serverinfo (merged) and upload", forms)
	}
	var vars []string
	for _, f := range forms[0].Elements() {
		vars = append(vars, f.Attr("var"))
	}
	if want := []string{"FORM_TYPE", "abuse-addresses", "admin-addresses"}; !slices.Equal(vars, want) {
		t.Errorf("merged serverinfo fields = %v, want %v", vars, want)
	}
	if formType(forms[1]) != "urn:xmpp:http:upload:0" {
		t.Errorf("second form = %s", forms[1])
	}

	c.SendXML(`<iq type='get' id='i2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='nope'/></iq>`)
	r = c.Expect(servertest.Name("iq", "id", "i2"))
	if e := stanza.ParseError(r); e == nil || e.Condition != stanza.ItemNotFound {
		t.Errorf("unknown node: reply = %s, want item-not-found", r)
	}
}

func TestServerItems(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	c := env.Bind("alice@localhost/a")
	c.SendXML(`<iq type='get' id='i1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	r := c.Expect(servertest.Name("iq", "id", "i1"))
	q := r.Child(NSItems, "query")
	if r.Attr("type") != "result" || q == nil || len(q.Elements()) != 1 {
		t.Fatalf("reply = %s, want one item", r)
	}
	it := q.Elements()[0]
	if it.Attr("jid") != "upload.localhost" || it.Attr("name") != "Uploads" || it.HasAttr("node") {
		t.Errorf("item = %s", it)
	}
	c.SendXML(`<iq type='get' id='i2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='x'/></iq>`)
	r = c.Expect(servertest.Name("iq", "id", "i2"))
	if e := stanza.ParseError(r); e == nil || e.Condition != stanza.ItemNotFound {
		t.Errorf("unknown node: reply = %s, want item-not-found", r)
	}
}

func TestAccountInfo(t *testing.T) {
	t.Parallel()
	env, st := newEnv(t)
	for _, u := range []string{"juliet@localhost", "romeo@localhost", "nurse@localhost", "tybalt@localhost"} {
		env.AddUser(u, "pw")
	}
	for contact, sub := range map[string]store.Subscription{
		"romeo@localhost": store.SubBoth, "nurse@localhost": store.SubFrom, "tybalt@localhost": store.SubTo,
		"friar@example.org": store.SubFrom,
	} {
		if _, err := st.Roster().Put(env.Ctx, "juliet@localhost", store.RosterItem{JID: contact, Subscription: sub}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, from, to, node string
		cond                 stanza.Condition // "" = a result
	}{
		{"owner", "juliet@localhost/balcony", "juliet@localhost", "", ""},
		{"owner without to", "juliet@localhost/balcony", "", "", ""},
		{"both", "romeo@localhost/orchard", "juliet@localhost", "", ""},
		{"from", "nurse@localhost/x", "juliet@localhost", "", ""},
		{"other host", "friar@example.org/cell", "juliet@localhost", "", ""},
		{"to only", "tybalt@localhost/x", "juliet@localhost", "", stanza.ServiceUnavailable},
		{"stranger", "paris@localhost/x", "juliet@localhost", "", stanza.ServiceUnavailable},
		{"no such account", "romeo@localhost/orchard", "ghost@localhost", "", stanza.ServiceUnavailable},
		{"no such account, node", "romeo@localhost/orchard", "ghost@localhost", "n", stanza.ServiceUnavailable},
		{"stranger, node", "paris@localhost/x", "juliet@localhost", "n", stanza.ServiceUnavailable},
		{"unknown node", "romeo@localhost/orchard", "juliet@localhost", "n", stanza.ItemNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := env.Bind(tc.from)
			defer c.Disconnect()
			to, node := "", ""
			if tc.to != "" {
				to = " to='" + tc.to + "'"
			}
			if tc.node != "" {
				node = " node='" + tc.node + "'"
			}
			c.SendXML(`<iq type='get' id='a1'` + to + `><query xmlns='http://jabber.org/protocol/disco#info'` + node + `/></iq>`)
			r := c.Expect(servertest.Name("iq", "id", "a1"))
			if tc.cond != "" {
				if e := stanza.ParseError(r); e == nil || e.Condition != tc.cond {
					t.Fatalf("reply = %s, want %s", r, tc.cond)
				}
				return
			}
			q := r.Child(NSInfo, "query")
			if r.Attr("type") != "result" || q == nil {
				t.Fatalf("reply = %s, want a result", r)
			}
			id := q.Child(NSInfo, "identity")
			if id == nil || id.Attr("category") != "account" || id.Attr("type") != "registered" {
				t.Errorf("identity = %v, want account/registered", id)
			}
			if got, want := features(q), []string{NSInfo, NSItems, "urn:example:account"}; !slices.Equal(got, want) {
				t.Errorf("features = %v, want %v", got, want)
			}
		})
	}
}

func TestAccountItems(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	env.AddUser("juliet@localhost", "pw")
	c := env.Bind("paris@localhost/x")
	for _, tc := range []struct{ to, node string }{{"juliet@localhost", ""}, {"ghost@localhost", ""}, {"juliet@localhost", "n"}} {
		node := ""
		if tc.node != "" {
			node = " node='" + tc.node + "'"
		}
		c.SendXML(`<iq type='get' id='a1' to='` + tc.to + `'><query xmlns='http://jabber.org/protocol/disco#items'` + node + `/></iq>`)
		r := c.Expect(servertest.Name("iq", "id", "a1"))
		q := r.Child(NSItems, "query")
		if r.Attr("type") != "result" || q == nil || len(q.Elements()) != 0 || q.Attr("node") != tc.node {
			t.Errorf("%s node %q: reply = %s, want an empty result", tc.to, tc.node, r)
		}
	}
}

func TestMergeForms(t *testing.T) {
	t.Parallel()
	a, b, c, d := form("t1", "a"), form("t2", "b"), form("t1", "c"), form("", "d")
	in := []*xml.Element{a, b, c, d}
	before := a.String()
	out := mergeForms(in)
	if len(out) != 3 || out[1] != b || out[2] != d {
		t.Fatalf("merged = %v", out)
	}
	if got, want := out[0].String(), form("t1", "a", "c").String(); got != want {
		t.Errorf("merged t1 = %s, want %s", got, want)
	}
	if a.String() != before {
		t.Errorf("input form changed: %s", a)
	}
	if out := mergeForms([]*xml.Element{a}); out[0] != a {
		t.Errorf("a single form should be passed through")
	}
}
