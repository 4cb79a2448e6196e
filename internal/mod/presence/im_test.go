package presence

import (
	"context"
	"path/filepath"
	"testing"

	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/rostercache"
	"stoa.im/stoa/internal/store/sqlite"
)

// TestWithRoster runs roster and presence together, in registry order:
// a request to an offline user reaches her at her next initial presence,
// and once approved, presence flows one way and then both ways.
func TestWithRoster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	// The server's shape: rosters cached in front of the database
	// (app.openStore), which every roster change must keep true.
	st := rostercache.Wrap(sq, 1000)
	t.Cleanup(func() { st.Close() })
	e := servertest.New(t, st, []server.Feature{roster.Feature, Feature}, nil)
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if err := st.Accounts().Create(ctx, u, store.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}

	b := e.Bind("bob@localhost/b")
	b.SendXML(`<presence/>`)
	b.SendXML(`<presence to='alice@localhost' type='subscribe'><status>it is bob</status></presence>`)

	// Alice was offline; her first initial presence shows the request.
	a := e.Bind("alice@localhost/a")
	a.SendXML(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`)
	a.SendXML(`<presence/>`)
	if req := a.Expect(from("subscribe", "bob@localhost")); req.ChildText("jabber:client", "status") != "it is bob" {
		t.Errorf("request: %s", req)
	}
	b.ExpectNothing(from("", "alice@localhost/a")) // not subscribed yet

	// Alice approves: bob gets the approval and her presence at once.
	a.SendXML(`<presence to='bob@localhost' type='subscribed'/>`)
	b.Expect(from("subscribed", "alice@localhost"))
	b.Expect(from("", "alice@localhost/a"))
	// Updates now reach bob; bob's presence does not reach alice.
	a.SendXML(`<presence><show>away</show></presence>`)
	b.Expect(from("", "alice@localhost/a"))
	b.SendXML(`<presence><show>dnd</show></presence>`)
	a.ExpectNothing(from("", "bob@localhost/b"))

	// Alice subscribes back; bob approves; alice gets bob's presence.
	a.SendXML(`<presence to='bob@localhost' type='subscribe'/>`)
	b.Expect(from("subscribe", "alice@localhost"))
	b.SendXML(`<presence to='alice@localhost' type='subscribed'/>`)
	a.Expect(from("", "bob@localhost/b"))

	// A new resource of alice's probes bob and learns his presence.
	a2 := e.Bind("alice@localhost/two")
	a2.SendXML(`<presence/>`)
	a2.Expect(from("", "bob@localhost/b"))
	a2.ExpectNothing(from("subscribe", "bob@localhost")) // answered: no longer pending

	// Bob drops the connection: both of alice's resources hear it.
	b.Disconnect()
	a.Expect(from("unavailable", "bob@localhost/b"))
	a2.Expect(from("unavailable", "bob@localhost/b"))
}
