package last

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/stanza"
)

var now = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

// newEnv starts a server with the feature on a fixed clock (and more
// features if given), with accounts juliet (whose roster names romeo
// 'both', nurse 'from', tybalt 'to') and the others.
func newEnv(t *testing.T, more ...server.Feature) (*servertest.Env, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := Feature
	f.Setup = func(s *server.Setup, _ any) error { return setupClock(s, func() time.Time { return now }) }
	env := servertest.New(t, st, append(more, f), nil)
	for _, u := range []string{"juliet", "romeo", "nurse", "tybalt", "paris", "rosaline"} {
		env.AddUser(u+"@localhost", "pw")
	}
	for c, sub := range map[string]store.Subscription{"romeo": store.SubBoth, "nurse": store.SubFrom, "tybalt": store.SubTo} {
		if _, err := st.Roster().Put(env.Ctx, "juliet@localhost", store.RosterItem{JID: c + "@localhost", Subscription: sub}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Accounts().SetLastLogout(env.Ctx, "juliet@localhost", now.Add(-903*time.Second), "Heading Home"); err != nil {
		t.Fatal(err)
	}
	return env, st
}

func TestUptime(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	c := env.Bind("romeo@localhost/orchard")
	c.SendXML(`<iq type='get' id='u1' to='localhost'><query xmlns='jabber:iq:last'/></iq>`)
	r := c.Expect(servertest.Name("iq", "id", "u1"))
	q := r.Child(NS, "query")
	if r.Attr("type") != "result" || q == nil {
		t.Fatalf("reply = %s", r)
	}
	if n, err := strconv.Atoi(q.Attr("seconds")); err != nil || n < 0 || q.Text != "" {
		t.Errorf("query = %s, want a number of seconds and no text", q)
	}
}

func TestAccount(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	tests := []struct {
		name, from, to string
		seconds        string // a result's seconds
		text           string
		cond           stanza.Condition // or an error
	}{
		{"both", "romeo@localhost/orchard", "juliet@localhost", "903", "Heading Home", ""},
		{"from", "nurse@localhost/x", "juliet@localhost", "903", "Heading Home", ""},
		{"to only", "tybalt@localhost/x", "juliet@localhost", "", "", stanza.Forbidden},
		{"stranger", "paris@localhost/x", "juliet@localhost", "", "", stanza.Forbidden},
		{"no such account", "romeo@localhost/orchard", "ghost@localhost", "", "", stanza.ServiceUnavailable},
		{"self, online", "rosaline@localhost/x", "rosaline@localhost", "0", "", ""},
		{"full JID, stranger", "paris@localhost/x", "juliet@localhost/balcony", "", "", stanza.Forbidden},
		{"full JID, contact, offline", "romeo@localhost/orchard", "juliet@localhost/balcony", "", "", stanza.ServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := env.Bind(tc.from)
			defer c.Disconnect()
			c.SendXML(`<iq type='get' id='l1' to='` + tc.to + `'><query xmlns='jabber:iq:last'/></iq>`)
			r := c.Expect(servertest.Name("iq", "id", "l1"))
			if tc.cond != "" {
				if e := stanza.ParseError(r); e == nil || e.Condition != tc.cond {
					t.Fatalf("reply = %s, want %s", r, tc.cond)
				}
				return
			}
			q := r.Child(NS, "query")
			if r.Attr("type") != "result" || q == nil || q.Attr("seconds") != tc.seconds || q.Text != tc.text {
				t.Fatalf("reply = %s, want seconds=%s text %q", r, tc.seconds, tc.text)
			}
		})
	}
}

func TestNeverLoggedOut(t *testing.T) {
	t.Parallel()
	env, st := newEnv(t)
	if _, err := st.Roster().Put(env.Ctx, "rosaline@localhost", store.RosterItem{JID: "romeo@localhost", Subscription: store.SubBoth}); err != nil {
		t.Fatal(err)
	}
	c := env.Bind("romeo@localhost/orchard")
	c.SendXML(`<iq type='get' id='l1' to='rosaline@localhost'><query xmlns='jabber:iq:last'/></iq>`)
	if e := stanza.ParseError(c.Expect(servertest.Name("iq", "id", "l1"))); e == nil || e.Condition != stanza.ItemNotFound {
		t.Errorf("error = %v, want item-not-found", e)
	}
}

func TestOnline(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	juliet := env.Bind("juliet@localhost/balcony")
	romeo := env.Bind("romeo@localhost/orchard")
	// Connected (not even available): 0 seconds (§3).
	romeo.SendXML(`<iq type='get' id='l1' to='juliet@localhost'><query xmlns='jabber:iq:last'/></iq>`)
	r := romeo.Expect(servertest.Name("iq", "id", "l1"))
	if q := r.Child(NS, "query"); q == nil || q.Attr("seconds") != "0" || q.Text != "" {
		t.Errorf("reply = %s, want seconds=0", r)
	}
	// To the full JID, an authorized query reaches the client (§4).
	romeo.SendXML(`<iq type='get' id='l2' to='juliet@localhost/balcony'><query xmlns='jabber:iq:last'/></iq>`)
	got := juliet.Expect(servertest.Name("iq", "id", "l2"))
	if got.Attr("from") != "romeo@localhost/orchard" {
		t.Errorf("delivered %s", got)
	}
	// ... and an unauthorized one does not.
	paris := env.Bind("paris@localhost/x")
	paris.SendXML(`<iq type='get' id='l3' to='juliet@localhost/balcony'><query xmlns='jabber:iq:last'/></iq>`)
	r = paris.Expect(servertest.Name("iq", "id", "l3"))
	if e := stanza.ParseError(r); e == nil || e.Condition != stanza.Forbidden || r.Attr("from") != "juliet@localhost/balcony" {
		t.Errorf("reply = %s, want forbidden from the full JID", r)
	}
	juliet.ExpectNothing(servertest.Name("iq", "id", "l3"))
}

// TestWithPresence checks the status the presence feature records at
// logout is the one given.
func TestWithPresence(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t, presence.Feature)
	juliet := env.Bind("juliet@localhost/balcony")
	juliet.SendXML(`<presence/>`)
	juliet.SendXML(`<presence type='unavailable'><status>Gone to Mantua</status></presence>`)
	juliet.Disconnect()
	romeo := env.Bind("romeo@localhost/orchard")
	romeo.SendXML(`<iq type='get' id='l1' to='juliet@localhost'><query xmlns='jabber:iq:last'/></iq>`)
	r := romeo.Expect(servertest.Name("iq", "id", "l1"))
	q := r.Child(NS, "query")
	if q == nil || q.Text != "Gone to Mantua" {
		t.Fatalf("reply = %s, want the status of the last unavailable presence", r)
	}
	// The presence feature records the real time; the clock here is fixed
	// in the past, so the difference is clamped to 0.
	if q.Attr("seconds") != "0" {
		t.Errorf("seconds = %s, want 0", q.Attr("seconds"))
	}
}
