package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// newEnv starts a server with roster, presence and offline (in the
// registry's order), and the accounts alice and bob.
func newEnv(t *testing.T, cfg any) (*servertest.Env, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env := servertest.New(t, st, []server.Feature{roster.Feature, presence.Feature, Feature}, map[string]any{"offline": cfg})
	env.AddUser("alice@localhost", "pw")
	env.AddUser("bob@localhost", "pw")
	return env, st
}

func count(t *testing.T, env *servertest.Env, owner string) int {
	t.Helper()
	n, err := env.Srv.Store().Offline().Count(env.Ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// metric returns the value of a stoa_offline counter.
func metric(t *testing.T, env *servertest.Env, name string) float64 {
	t.Helper()
	mfs, err := env.Srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func isMessage(el *xml.Element) bool { return el.Local == "message" }

func TestStoreAndDeliver(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t, nil)
	alice := env.Bind("alice@localhost/a")
	before := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 3 {
		alice.SendXML(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='m%d'><body>hi %d</body></message>`, i, i))
	}
	// To a resource that is not online: stored for the account (RFC 6121 §8.5.3.2.1).
	alice.SendXML(`<message to='bob@localhost/gone' id='m3'><body>hi 3</body></message>`)
	after := time.Now().UTC()
	if n := count(t, env, "bob@localhost"); n != 4 {
		t.Fatalf("stored %d messages, want 4", n)
	}
	alice.ExpectNothing(func(el *xml.Element) bool { return el.Attr("type") == "error" })

	bob := env.Bind("bob@localhost/phone")
	bob.ExpectNothing(isMessage) // bound, but not available yet
	bob.SendXML(`<presence/>`)
	for i := range 4 {
		m := bob.Expect(isMessage)
		if got, want := m.Attr("id"), fmt.Sprintf("m%d", i); got != want {
			t.Fatalf("message %d has id %s, want %s (oldest first)", i, got, want)
		}
		if got, want := m.ChildText(xml.NSClient, "body"), fmt.Sprintf("hi %d", i); got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		if m.Attr("from") != "alice@localhost/a" {
			t.Errorf("from = %q", m.Attr("from"))
		}
		d := m.Child(nsDelay, "delay")
		if d == nil || d.Attr("from") != "localhost" {
			t.Fatalf("message %s lacks a delay from localhost", m)
		}
		stamp, err := time.Parse(time.RFC3339, d.Attr("stamp"))
		if err != nil || stamp.Before(before) || stamp.After(after) || !strings.HasSuffix(d.Attr("stamp"), "Z") {
			t.Errorf("stamp = %q (%v), want a UTC time between %v and %v", d.Attr("stamp"), err, before, after)
		}
	}
	bob.Expect(servertest.Name("presence", "from", "bob@localhost/phone"))
	if n := count(t, env, "bob@localhost"); n != 0 {
		t.Errorf("%d messages still stored after delivery", n)
	}
	if s, d := metric(t, env, "stoa_offline_stored_total"), metric(t, env, "stoa_offline_delivered_total"); s != 4 || d != 4 {
		t.Errorf("stored_total = %v, delivered_total = %v, want 4 and 4", s, d)
	}

	// A presence update does not deliver again, and a second resource
	// gets nothing: the messages were taken.
	bob.SendXML(`<presence><show>away</show></presence>`)
	bob2 := env.Bind("bob@localhost/laptop")
	bob2.SendXML(`<presence/>`)
	bob.ExpectNothing(isMessage)
	bob2.ExpectNothing(isMessage)

	// Online now: messages go live, nothing is stored.
	alice.SendXML(`<message to='bob@localhost' type='chat'><body>live</body></message>`)
	bob.Expect(isMessage)
	if n := count(t, env, "bob@localhost"); n != 0 {
		t.Errorf("%d messages stored while bob is online", n)
	}
}

func TestWhatIsStored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, msg string
		stored    bool
		errCond   stanza.Condition // error the sender gets; "" = none
	}{
		{"chat", `<message to='bob@localhost' type='chat'><body>x</body></message>`, true, ""},
		{"normal", `<message to='bob@localhost' type='normal'><subject>s</subject></message>`, true, ""},
		{"no type", `<message to='bob@localhost'><body>x</body></message>`, true, ""},
		{"payload without body", `<message to='bob@localhost'><x xmlns='jabber:x:oob'><url>https://example.org/a</url></x></message>`, true, ""},
		{"chat state", `<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, false, ""},
		{"chat state with thread", `<message to='bob@localhost' type='chat'><thread>t</thread><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='x'/></message>`, false, ""},
		{"chat state and body", `<message to='bob@localhost' type='chat'><body>x</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, true, ""},
		{"empty", `<message to='bob@localhost' type='chat'/>`, false, ""},
		{"no-store hint", `<message to='bob@localhost' type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>`, false, ""},
		{"store hint", `<message to='bob@localhost' type='chat'><gone xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>`, true, ""},
		{"headline", `<message to='bob@localhost' type='headline'><body>x</body></message>`, false, ""},
		{"groupchat", `<message to='bob@localhost' type='groupchat'><body>x</body></message>`, false, stanza.ServiceUnavailable},
		{"no such account", `<message to='nobody@localhost' type='chat'><body>x</body></message>`, false, stanza.ServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, _ := newEnv(t, nil)
			alice := env.Bind("alice@localhost/a")
			alice.SendXML(tc.msg)
			want := 0
			if tc.stored {
				want = 1
			}
			if n := count(t, env, "bob@localhost"); n != want {
				t.Errorf("stored %d, want %d", n, want)
			}
			if tc.errCond == "" {
				alice.ExpectNothing(isMessage)
				return
			}
			e := stanza.ParseError(alice.Expect(isMessage))
			if e == nil || e.Condition != tc.errCond || e.Text != "" {
				t.Errorf("error = %v, want %s without text", e, tc.errCond)
			}
		})
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		quota int
		send  int
		keep  int
	}{
		{"full", 2, 3, 2},
		{"unlimited", 0, 5, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, _ := newEnv(t, Config{Quota: tc.quota})
			alice := env.Bind("alice@localhost/a")
			for i := range tc.send {
				alice.SendXML(fmt.Sprintf(`<message to='bob@localhost' id='q%d'><body>%d</body></message>`, i, i))
			}
			if n := count(t, env, "bob@localhost"); n != tc.keep {
				t.Fatalf("stored %d, want %d", n, tc.keep)
			}
			if tc.keep == tc.send {
				alice.ExpectNothing(isMessage)
				return
			}
			r := alice.Expect(servertest.Name("message", "type", "error"))
			e := stanza.ParseError(r)
			want := "bob@localhost's offline message storage is full; the message was not stored."
			if r.Attr("id") != fmt.Sprintf("q%d", tc.keep) || e == nil || e.Condition != stanza.ServiceUnavailable || e.Text != want {
				t.Errorf("bounce = %s, want service-unavailable %q", r, want)
			}
		})
	}
}

func TestNegativePriority(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t, nil)
	alice := env.Bind("alice@localhost/a")
	bob := env.Bind("bob@localhost/bot")
	bob.SendXML(`<presence><priority>-1</priority></presence>`)
	// A resource with a negative priority gets no messages for the
	// account (RFC 6121 §8.5.2.1.1): they are stored.
	alice.SendXML(`<message to='bob@localhost' type='chat'><body>x</body></message>`)
	bob.Expect(servertest.Name("presence"))
	bob.ExpectNothing(isMessage)
	if n := count(t, env, "bob@localhost"); n != 1 {
		t.Fatalf("stored %d, want 1", n)
	}
	// Invalid presence changes nothing.
	bob.SendXML(`<presence><priority>high</priority></presence>`)
	bob.Expect(servertest.Name("presence", "type", "error"))
	bob.ExpectNothing(isMessage)
	// Non-negative now: XEP-0160 §3 delivers.
	bob.SendXML(`<presence><priority>0</priority></presence>`)
	bob.Expect(isMessage)
	if n := count(t, env, "bob@localhost"); n != 0 {
		t.Errorf("%d still stored", n)
	}
}

func TestUnavailableThenAvailable(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t, nil)
	alice := env.Bind("alice@localhost/a")
	bob := env.Bind("bob@localhost/phone")
	bob.SendXML(`<presence/>`)
	bob.SendXML(`<presence type='unavailable'/>`)
	alice.SendXML(`<message to='bob@localhost'><body>while away</body></message>`)
	if n := count(t, env, "bob@localhost"); n != 1 {
		t.Fatalf("stored %d, want 1", n)
	}
	bob.SendXML(`<presence/>`)
	if m := bob.Expect(isMessage); m.ChildText(xml.NSClient, "body") != "while away" {
		t.Errorf("got %s", m)
	}
}

func TestWorthStoring(t *testing.T) {
	t.Parallel()
	// The table of TestWhatIsStored covers the rules end to end; this
	// checks the ones the core never lets through.
	if worthStoring(xml.New(xml.NSClient, "message")) {
		t.Error("an empty message is worth storing")
	}
}

func TestAddDelay(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.UTC)
	el := xml.New(xml.NSClient, "message")
	el.Append(xml.New(nsDelay, "delay").SetAttr("from", "elsewhere.example").SetAttr("stamp", "2020-01-01T00:00:00Z"))
	addDelay(el, "localhost", now)
	addDelay(el, "localhost", now.Add(time.Hour)) // stored again: the first stamp stays
	var ours []*xml.Element
	for _, c := range el.Elements() {
		if c.Attr("from") == "localhost" {
			ours = append(ours, c)
		}
	}
	if len(ours) != 1 || ours[0].Attr("stamp") != "2024-01-02T03:04:05.006Z" || ours[0].Text != "Offline Storage" {
		t.Errorf("delays = %s", el)
	}
	if len(el.Elements()) != 2 {
		t.Errorf("the other server's delay was lost: %s", el)
	}
}

func TestRedeliver(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t, nil)
	// A message queued for a session that ended before writing it comes
	// back through the core and is stored.
	el := servertest.Parse(t, `<message from='alice@localhost/a' to='bob@localhost/phone' type='chat'><body>x</body></message>`)
	env.Srv.Redeliver(env.Ctx, jid.MustParse("bob@localhost"), el)
	if n := count(t, env, "bob@localhost"); n != 1 {
		t.Errorf("stored %d, want 1", n)
	}
}
