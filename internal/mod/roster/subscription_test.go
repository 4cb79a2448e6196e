package roster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/xml"
)

// appendixA is RFC 6121 Appendix A, row by row, for alice@localhost and
// contact@example.org. Columns: direction (out: alice sends the stanza;
// in: the contact does), stanza type, existing state, new state, whether
// the stanza is routed to the contact (out) or delivered to alice (in),
// and the other stanzas the contact gets ("-" for none), in order.
// "approved" marks a pre-approval (§3.4), PO/PI pending out/in.
const appendixA = `
out subscribe    None        None+PO         y -
out subscribe    None+PO     None+PO         y -
out subscribe    None+PI     None+PO+PI      y -
out subscribe    None+PO+PI  None+PO+PI      y -
out subscribe    To          To              y -
out subscribe    To+PI       To+PI           y -
out subscribe    From        From+PO         y -
out subscribe    From+PO     From+PO         y -
out subscribe    Both        Both            y -

out unsubscribe  None        None            y -
out unsubscribe  None+PO     None            y -
out unsubscribe  None+PI     None+PI         y -
out unsubscribe  None+PO+PI  None+PI         y -
out unsubscribe  To          None            y -
out unsubscribe  To+PI       None+PI         y -
out unsubscribe  From        From            y -
out unsubscribe  From+PO     From            y -
out unsubscribe  Both        From            y -

out subscribed   None        None+approved    n -
out subscribed   None+PO     None+PO+approved n -
out subscribed   None+PI     From            y available<alice@localhost/a
out subscribed   None+PO+PI  From+PO         y available<alice@localhost/a
out subscribed   To          To+approved     n -
out subscribed   To+PI       Both            y available<alice@localhost/a
out subscribed   From        From            n -
out subscribed   From+PO     From+PO         n -
out subscribed   Both        Both            n -

out unsubscribed None        None            n -
out unsubscribed None+PO     None+PO         n -
out unsubscribed None+PI     None            y -
out unsubscribed None+PO+PI  None+PO         y -
out unsubscribed To          To              n -
out unsubscribed To+PI       To              y -
out unsubscribed From        None            y unavailable<alice@localhost/a
out unsubscribed From+PO     None+PO         y unavailable<alice@localhost/a
out unsubscribed Both        To              y unavailable<alice@localhost/a

in  subscribe    None        None+PI         y -
in  subscribe    None+PO     None+PO+PI      y -
in  subscribe    None+PI     None+PI         n -
in  subscribe    None+PO+PI  None+PO+PI      n -
in  subscribe    To          To+PI           y -
in  subscribe    To+PI       To+PI           n -
in  subscribe    From        From            n subscribed<alice@localhost
in  subscribe    From+PO     From+PO         n subscribed<alice@localhost
in  subscribe    Both        Both            n subscribed<alice@localhost

in  unsubscribe  None        None            n -
in  unsubscribe  None+PO     None+PO         n -
in  unsubscribe  None+PI     None            y -
in  unsubscribe  None+PO+PI  None+PO         y -
in  unsubscribe  To          To              n -
in  unsubscribe  To+PI       To              y -
in  unsubscribe  From        None            y unavailable<alice@localhost/a
in  unsubscribe  From+PO     None+PO         y unavailable<alice@localhost/a
in  unsubscribe  Both        To              y unavailable<alice@localhost/a

in  subscribed   None        None            n -
in  subscribed   None+PO     To              y -
in  subscribed   None+PI     None+PI         n -
in  subscribed   None+PO+PI  To+PI           y -
in  subscribed   To          To              n -
in  subscribed   To+PI       To+PI           n -
in  subscribed   From        From            n -
in  subscribed   From+PO     Both            y -
in  subscribed   Both        Both            n -

in  unsubscribed None        None            n -
in  unsubscribed None+PO     None            y -
in  unsubscribed None+PI     None+PI         n -
in  unsubscribed None+PO+PI  None+PI         y -
in  unsubscribed To          None            y -
in  unsubscribed To+PI       None+PI         y -
in  unsubscribed From        From            n -
in  unsubscribed From+PO     From            y -
in  unsubscribed Both        From            y -

out subscribe    -           None+PO         y -
out subscribed   -           None+approved   n -
out unsubscribed -           -               n -
in  subscribe    -           -+PI            y -
in  subscribed   -           -               n -
in  subscribe    None+approved   From        n subscribed<alice@localhost,available<alice@localhost/a
in  subscribe    None+PO+approved From+PO    n subscribed<alice@localhost,available<alice@localhost/a
in  subscribe    To+approved Both            n subscribed<alice@localhost,available<alice@localhost/a
out unsubscribed None+approved None          n -
out unsubscribed To+approved To              n -
`

// setState puts contact in owner's roster in the named state.
func setState(t *testing.T, st store.Store, owner, contact, name string) {
	t.Helper()
	ctx := context.Background()
	parts := strings.Split(name, "+")
	it := store.RosterItem{JID: contact}
	exists := true
	for _, p := range parts {
		switch p {
		case "-":
			exists = false
		case "None":
			it.Subscription = store.SubNone
		case "To":
			it.Subscription = store.SubTo
		case "From":
			it.Subscription = store.SubFrom
		case "Both":
			it.Subscription = store.SubBoth
		case "PO":
			it.Ask = true
		case "approved":
			it.Approved = true
		case "PI":
			req := fmt.Sprintf(`<presence xmlns='jabber:client' type='subscribe' from='%s' to='%s'/>`, contact, owner)
			if err := st.Roster().AddPendingIn(ctx, owner, store.PendingIn{JID: contact, Stanza: []byte(req)}); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("bad state %q", name)
		}
	}
	if exists {
		if _, err := st.Roster().Put(ctx, owner, it); err != nil {
			t.Fatal(err)
		}
	}
}

func withoutPI(s string) string { return strings.TrimSuffix(s, "+PI") }

func TestAppendixA(t *testing.T) {
	t.Parallel()
	// One server; each row has its own account and contact.
	e := newEnv(t, nil)
	for i, line := range strings.Split(strings.TrimSpace(appendixA), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			t.Fatalf("bad row %q", line)
		}
		dir, typ, from, to, passes, extra := f[0], f[1], f[2], f[3], f[4] == "y", f[5]
		owner, contact := fmt.Sprintf("alice%d@localhost", i), fmt.Sprintf("contact%d@example.org", i)
		if err := e.st.Accounts().Create(e.Ctx, owner, store.Credentials{}); err != nil {
			t.Fatal(err)
		}
		t.Run(strings.Join(f[:3], "_"), func(t *testing.T) {
			t.Parallel()
			env := *e.Env
			env.T = t
			setState(t, e.st, owner, contact, from)
			a := env.Bind(owner + "/a")
			rosterGet(t, a, "g", "-")
			available(a)
			a.Received()

			if dir == "out" {
				a.SendXML(fmt.Sprintf(`<presence to='%s/res' type='%s'/>`, contact, typ))
			} else {
				el := servertest.Parse(t, fmt.Sprintf(`<presence from='%s/res' to='%s/a' type='%s'/>`, contact, owner, typ))
				if err := e.Srv.RouteElement(e.Ctx, el); err != nil {
					t.Fatal(err)
				}
			}

			if got := rosterState(t, e.st, owner, contact); got != to {
				t.Errorf("state %s -> %s, want %s", from, got, to)
			}
			var want []string
			if dir == "out" && passes {
				want = append(want, typ+"<alice@localhost")
			}
			if extra != "-" {
				want = append(want, strings.Split(extra, ",")...)
			}
			for i := range want {
				want[i] = strings.Replace(want[i], "alice@localhost", owner, 1)
			}
			if got := e.rec.take(contact); !slices.Equal(got, want) {
				t.Errorf("contact got %v, want %v", got, want)
			}
			got := a.Received()
			delivered := slices.ContainsFunc(got, func(el *xml.Element) bool {
				return el.Local == "presence" && el.Attr("type") == typ &&
					el.Attr("from") == contact && el.Attr("to") == owner
			})
			if want := dir == "in" && passes; delivered != want {
				t.Errorf("delivered to the user: %v, want %v (got %v)", delivered, want, got)
			}
			pushed := slices.ContainsFunc(got, anyPush)
			if want := withoutPI(from) != withoutPI(to); pushed != want {
				t.Errorf("roster push: %v, want %v (got %v)", pushed, want, got)
			}
		})
	}
}

// TestSubscriptionFlow runs a whole subscription handshake between two
// local accounts, then cancels it from both sides.
func TestSubscriptionFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "alice@localhost", "bob@localhost")
	a := e.Bind("alice@localhost/a")
	rosterGet(t, a, "ga", "-")
	available(a)

	// Bob is offline: his request waits as "Pending In".
	a.SendXML(`<presence to='bob@localhost' type='subscribe'><status>hi</status></presence>`)
	if it := item(a.Expect(push("bob@localhost"))); it.Attr("subscription") != "none" || it.Attr("ask") != "subscribe" {
		t.Fatalf("alice's push: %s", it)
	}
	pending, err := e.st.Roster().PendingIn(e.Ctx, "bob@localhost")
	if err != nil || len(pending) != 1 || pending[0].JID != "alice@localhost" {
		t.Fatalf("bob's pending requests: %v, %v", pending, err)
	}
	stored := servertest.Parse(t, string(pending[0].Stanza))
	if stored.Attr("from") != "alice@localhost" || stored.Attr("type") != "subscribe" || stored.ChildText(xml.NSClient, "status") != "hi" {
		t.Errorf("stored request: %s", stored)
	}
	if _, err := e.st.Roster().Get(e.Ctx, "bob@localhost", "alice@localhost"); err == nil {
		t.Errorf("an inbound request created a roster item (RFC 6121 §3.1.3: SHOULD NOT)")
	}

	// Bob comes online and approves.
	b := e.Bind("bob@localhost/b")
	rosterGet(t, b, "gb", "-")
	available(b)
	b.SendXML(`<presence to='alice@localhost' type='subscribed'/>`)
	if it := item(b.Expect(push("alice@localhost"))); it.Attr("subscription") != "from" {
		t.Errorf("bob's push: %s", it)
	}
	if it := item(a.Expect(push("bob@localhost"))); it.Attr("subscription") != "to" || it.HasAttr("ask") {
		t.Errorf("alice's push: %s", it)
	}
	a.Expect(servertest.Name("presence", "type", "subscribed", "from", "bob@localhost"))
	a.Expect(servertest.Name("presence", "from", "bob@localhost/b")) // §3.1.5: bob's presence follows

	// Bob subscribes back; alice's available resource sees the request.
	b.SendXML(`<presence to='alice@localhost' type='subscribe'/>`)
	a.Expect(servertest.Name("presence", "type", "subscribe", "from", "bob@localhost"))
	if it := item(b.Expect(push("alice@localhost"))); it.Attr("subscription") != "from" || it.Attr("ask") != "subscribe" {
		t.Errorf("bob's push: %s", it)
	}
	a.SendXML(`<presence to='bob@localhost' type='subscribed'/>`)
	if it := item(a.Expect(push("bob@localhost"))); it.Attr("subscription") != "both" {
		t.Errorf("alice's push: %s", it)
	}
	if it := item(b.Expect(push("alice@localhost"))); it.Attr("subscription") != "both" {
		t.Errorf("bob's push: %s", it)
	}
	if got := rosterState(t, e.st, "alice@localhost", "bob@localhost"); got != "Both" {
		t.Errorf("alice's state: %s", got)
	}
	if got := rosterState(t, e.st, "bob@localhost", "alice@localhost"); got != "Both" {
		t.Errorf("bob's state: %s", got)
	}

	// Alice stops wanting bob's presence: both at "From"/"To".
	a.SendXML(`<presence to='bob@localhost' type='unsubscribe'/>`)
	if got := rosterState(t, e.st, "alice@localhost", "bob@localhost"); got != "From" {
		t.Errorf("alice's state after unsubscribe: %s", got)
	}
	if got := rosterState(t, e.st, "bob@localhost", "alice@localhost"); got != "To" {
		t.Errorf("bob's state after unsubscribe: %s", got)
	}
	b.Expect(servertest.Name("presence", "type", "unsubscribe", "from", "alice@localhost"))
	a.Expect(servertest.Name("presence", "type", "unavailable", "from", "bob@localhost/b"))

	// Alice removes bob, which cancels bob's subscription to her.
	a.SendXML(`<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>`)
	a.Expect(iqResult("rm"))
	b.Expect(servertest.Name("presence", "type", "unsubscribed", "from", "alice@localhost"))
	b.Expect(servertest.Name("presence", "type", "unavailable", "from", "alice@localhost/a"))
	if got := rosterState(t, e.st, "bob@localhost", "alice@localhost"); got != "None" {
		t.Errorf("bob's state after alice removed him: %s", got)
	}
	if got := rosterState(t, e.st, "alice@localhost", "bob@localhost"); got != "-" {
		t.Errorf("alice's state after remove: %s", got)
	}
}

// TestPreApproval: alice pre-approves bob, whose later request is
// approved by the server without asking her (RFC 6121 §3.4).
func TestPreApproval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "alice@localhost", "bob@localhost")
	a := e.Bind("alice@localhost/a")
	rosterGet(t, a, "ga", "-")
	available(a)
	a.SendXML(`<presence to='bob@localhost' type='subscribed'/>`)
	if it := item(a.Expect(push("bob@localhost"))); it.Attr("approved") != "true" || it.Attr("subscription") != "none" {
		t.Fatalf("pre-approval push: %s", it)
	}
	b := e.Bind("bob@localhost/b")
	rosterGet(t, b, "gb", "-")
	available(b)
	b.ExpectNothing(servertest.Name("presence")) // not routed

	b.SendXML(`<presence to='alice@localhost' type='subscribe'/>`)
	b.Expect(servertest.Name("presence", "type", "subscribed", "from", "alice@localhost"))
	b.Expect(servertest.Name("presence", "from", "alice@localhost/a"))
	if it := item(b.Expect(push("alice@localhost"))); it.Attr("subscription") != "none" || it.Attr("ask") != "subscribe" {
		t.Errorf("bob's first push: %s", it)
	}
	if it := item(b.Expect(push("alice@localhost"))); it.Attr("subscription") != "to" {
		t.Errorf("bob's second push: %s", it)
	}
	if it := item(a.Expect(push("bob@localhost"))); it.Attr("subscription") != "from" || it.HasAttr("approved") {
		t.Errorf("alice's push: %s", it)
	}
	a.ExpectNothing(servertest.Name("presence", "type", "subscribe"))
}

// TestRemoveCancels checks the presence stanzas a roster remove sends
// (RFC 6121 §2.5.2) in each state.
func TestRemoveCancels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state string
		want  []string
	}{
		{"None", nil},
		{"None+PO", []string{"unsubscribe<alice@localhost"}},
		{"None+PI", []string{"unsubscribed<alice@localhost"}},
		{"To", []string{"unsubscribe<alice@localhost"}},
		{"From", []string{"unsubscribed<alice@localhost", "unavailable<alice@localhost/a"}},
		{"Both", []string{"unsubscribe<alice@localhost", "unsubscribed<alice@localhost", "unavailable<alice@localhost/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, "alice@localhost")
			setState(t, e.st, "alice@localhost", watched, tt.state)
			a := e.Bind("alice@localhost/a")
			available(a)
			a.SendXML(fmt.Sprintf(`<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query></iq>`, watched))
			a.Expect(iqResult("rm"))
			if got := e.rec.take(watched); !slices.Equal(got, tt.want) {
				t.Errorf("contact got %v, want %v", got, tt.want)
			}
			if got := rosterState(t, e.st, "alice@localhost", watched); got != "-" {
				t.Errorf("state after remove: %s", got)
			}
		})
	}
}

// TestInboundEdgeCases: stanzas to accounts that do not exist vanish
// (RFC 6121 §8.5.1), as do requests to oneself.
func TestInboundEdgeCases(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "alice@localhost")
	a := e.Bind("alice@localhost/a")
	available(a)
	for _, typ := range []string{"subscribe", "subscribed", "unsubscribe", "unsubscribed"} {
		el := servertest.Parse(t, fmt.Sprintf(`<presence from='%s' to='nobody@localhost' type='%s'/>`, watched, typ))
		if err := e.Srv.RouteElement(e.Ctx, el); err != nil {
			t.Fatal(err)
		}
		a.SendXML(fmt.Sprintf(`<presence to='nobody@localhost' type='%s'/>`, typ))
	}
	if got := e.rec.take(watched); len(got) != 0 {
		t.Errorf("answers to stanzas for a missing account: %v", got)
	}
	a.ExpectNothing(servertest.Name("presence", "type", "error"))

	a.SendXML(`<presence to='alice@localhost' type='subscribe'/>`)
	a.ExpectNothing(func(*xml.Element) bool { return true })
	if got := rosterState(t, e.st, "alice@localhost", "alice@localhost"); got != "-" {
		t.Errorf("self-subscription changed the roster: %s", got)
	}
}
