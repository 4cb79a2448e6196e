package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/roster"
	"mellium.im/xmpp/stanza"
)

// TestMellium: two mellium.im/xmpp users log in with SCRAM-SHA-256, over
// STARTTLS and over direct TLS, add each other to their rosters, complete
// the subscription handshake both ways, see each other's presence and
// chat.
func TestMellium(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{})
	for _, tc := range []struct {
		name   string
		direct bool
	}{
		{"starttls", false},
		{"directtls", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			addr := srv.starttls
			if tc.direct {
				addr = srv.direct
			}
			aliceJID := srv.addUser(t, "alice-"+tc.name, "alice secret")
			srv.addUser(t, "bob-"+tc.name, "bob secret")
			alice := mustMellium(ctx, t, melliumLogin{addr: addr, direct: tc.direct, local: "alice-" + tc.name, password: "alice secret"})
			bob := mustMellium(ctx, t, melliumLogin{addr: addr, direct: tc.direct, local: "bob-" + tc.name, password: "bob secret"})
			if got := alice.jid.Bare().String(); got != aliceJID {
				t.Fatalf("alice bound %s, want a resource of %s", alice.jid, aliceJID)
			}
			if st := alice.s.ConnectionState(); !st.HandshakeComplete {
				t.Fatalf("alice's session is not over TLS")
			}
			runSubscriptionAndChat(ctx, t, alice, bob)
		})
	}
}

// runSubscriptionAndChat is the RFC 6121 dance between two fresh accounts:
// roster add, mutual subscription, presence, messages both ways.
func runSubscriptionAndChat(ctx context.Context, t *testing.T, alice, bob *melliumClient) {
	t.Helper()
	a, b := alice.jid.Bare().String(), bob.jid.Bare().String()

	// Like real clients: fetch the roster (which makes the session an
	// "interested resource" that gets roster pushes, RFC 6121 §2.1.6),
	// then send initial presence.
	for _, c := range []*melliumClient{alice, bob} {
		items, err := fetchRoster(ctx, c)
		if err != nil {
			t.Fatalf("%s: roster get: %v", c.name, err)
		}
		if len(items) != 0 {
			t.Errorf("%s: a new account's roster is %v, want empty", c.name, items)
		}
		c.must(t, c.sendPresence(ctx, "", stanza.AvailablePresence))
	}

	// Alice adds Bob (RFC 6121 §2.4) and gets a roster push.
	bobJID := jid.MustParse(b)
	if err := rosterSet(ctx, alice, roster.Item{JID: bobJID, Name: "Bob", Group: []string{"Friends"}}); err != nil {
		t.Fatalf("alice: roster set: %v", err)
	}
	alice.mustWait(ctx, t, "roster push of bob (none)", isRosterPush(b, "none"))

	// Alice subscribes to Bob; Bob approves (§3.1).
	alice.must(t, alice.sendPresence(ctx, b, stanza.SubscribePresence))
	bob.mustWait(ctx, t, "subscribe from alice", isPresence(a, "subscribe"))
	bob.must(t, bob.sendPresence(ctx, a, stanza.SubscribedPresence))
	alice.mustWait(ctx, t, "subscribed from bob", isPresence(b, "subscribed"))
	alice.mustWait(ctx, t, "roster push of bob (to)", isRosterPush(b, "to"))
	// §3.1.6: once subscribed, Bob's server sends his current presence.
	alice.mustWait(ctx, t, "bob's available presence", isPresence(b, ""))

	// And the other way round.
	bob.must(t, bob.sendPresence(ctx, a, stanza.SubscribePresence))
	alice.mustWait(ctx, t, "subscribe from bob", isPresence(b, "subscribe"))
	alice.must(t, alice.sendPresence(ctx, b, stanza.SubscribedPresence))
	bob.mustWait(ctx, t, "subscribed from alice", isPresence(a, "subscribed"))
	bob.mustWait(ctx, t, "roster push of alice (both)", isRosterPush(a, "both"))
	bob.mustWait(ctx, t, "alice's available presence", isPresence(a, ""))
	alice.mustWait(ctx, t, "roster push of bob (both)", isRosterPush(b, "both"))

	// Both rosters say "both".
	for _, c := range []struct {
		who     *melliumClient
		contact string
	}{{alice, b}, {bob, a}} {
		items, err := fetchRoster(ctx, c.who)
		if err != nil {
			t.Fatalf("%s: roster get: %v", c.who.name, err)
		}
		if got := items[c.contact]; got != "both" {
			t.Errorf("%s: roster has %s with subscription %q, want both (roster: %v)", c.who.name, c.contact, got, items)
		}
	}

	// Messages both ways, stamped with the sender's full JID.
	for i := range 3 {
		body := fmt.Sprintf("hello bob %d", i)
		alice.must(t, alice.sendMessage(ctx, b, body))
		m := bob.mustWait(ctx, t, "message from alice", isMessage(a, body))
		if m.From != alice.jid.String() || m.Type != "chat" {
			t.Errorf("bob got a message from %q of type %q, want from %s of type chat", m.From, m.Type, alice.jid)
		}
		body = fmt.Sprintf("hello alice %d", i)
		bob.must(t, bob.sendMessage(ctx, a, body))
		m = alice.mustWait(ctx, t, "message from bob", isMessage(b, body))
		if m.From != bob.jid.String() {
			t.Errorf("alice got a message from %q, want %s", m.From, bob.jid)
		}
	}
}

// fetchRoster returns the roster as JID -> subscription.
func fetchRoster(ctx context.Context, c *melliumClient) (map[string]string, error) {
	iter := roster.Fetch(ctx, c.s)
	items := map[string]string{}
	for iter.Next() {
		it := iter.Item()
		items[it.JID.String()] = it.Subscription
	}
	err := iter.Err()
	if cerr := iter.Close(); err == nil {
		err = cerr
	}
	if err != nil && !strings.Contains(err.Error(), "EOF") {
		return items, err
	}
	return items, nil
}

// rosterSet is roster.Set that reports an error reply (roster.Set
// ignores the reply's type).
func rosterSet(ctx context.Context, c *melliumClient, item roster.Item) error {
	iq := roster.IQ{}
	iq.Type = stanza.SetIQ
	iq.Query.Item = []roster.Item{item}
	return c.s.UnmarshalIQ(ctx, iq.TokenReader(), nil)
}
