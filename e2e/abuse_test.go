package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/blocklist"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

// barrier waits until everything the server queued for c before now has
// arrived: c sends itself a message and waits for it (one connection's
// stanzas arrive in order).
func (c *melliumClient) barrier(ctx context.Context, t *testing.T, tag string) {
	t.Helper()
	body := "barrier " + tag
	c.must(t, c.sendMessage(ctx, c.jid.String(), body))
	c.mustWait(ctx, t, body, isMessage(c.jid.Bare().String(), body))
}

// clear forgets what c received and no wait matched yet.
func (c *melliumClient) clear() {
	c.mu.Lock()
	c.backlog = nil
	c.mu.Unlock()
	for {
		select {
		case <-c.in:
		default:
			return
		}
	}
}

// TestBlockAndReport: alice blocks a spammer from slixmpp with a spam
// report (slixmpp's XEP-0377 plugin) and a troll with an abuse report
// (XEP-0377 0.4, a stanza-id and a text), and from mellium a third JID
// (mellium's blocklist.Report). Her other resource (mellium) gets every
// change pushed; the blocked spammer gets an error for his message and
// sees no more of alice's presence, his presence does not reach her; the
// reports reach the queue (stoa reports list/show/resolve) and the
// admin's client; unblocking lets him through again.
func TestBlockAndReport(t *testing.T) {
	t.Parallel()
	requirePython(t, "slixmpp", "python3-slixmpp")
	srv := startServer(t, serverOptions{server: `admins = ["boss@localhost"]`})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	alice := srv.addUser(t, "alice", "alice password")
	spammer := srv.addUser(t, "spammer", "spammer password")
	troll := srv.addUser(t, "troll", "troll password")
	boss := srv.addUser(t, "boss", "boss password")

	// alice and the spammer are mutual contacts, so he gets her presence.
	al2 := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "alice", password: "alice password"})
	sp := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "spammer", password: "spammer password"})
	runSubscriptionAndChat(ctx, t, al2, sp)
	admin := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "boss", password: "boss password"})
	admin.must(t, admin.sendPresence(ctx, "", stanza.AvailablePresence))

	// alice's mellium resource asks for the block list: it gets pushes.
	iter := blocklist.Fetch(ctx, al2.s)
	for iter.Next() {
		t.Errorf("alice's block list is not empty: %s", iter.JID())
	}
	if err := errors.Join(iter.Err(), iter.Close()); err != nil {
		t.Fatalf("fetching the block list with mellium: %v", err)
	}

	s := startScript(ctx, t, "slix_abuse.py", map[string]any{
		"mode": "block", "jid": alice, "password": "alice password", "host": "127.0.0.1", "port": portOf(t, srv.starttls),
		"spammer": spammer, "troll": troll, "admin": boss, "timeout": 100, "no_channel_binding": true,
	})
	waitEvent := func(name string, match func(event) bool) event {
		t.Helper()
		for {
			if ev := find(s.snapshot(), name, match); len(ev) > 0 {
				return ev[0]
			}
			select {
			case <-s.done:
				t.Fatalf("slixmpp ended before %s", name)
			case <-ctx.Done():
				t.Fatalf("slixmpp never reached %s", name)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitEvent("ready", nil)
	sp.must(t, sp.sendMessage(ctx, alice, "cheap watches"))
	waitEvent("blocked", func(e event) bool { return e.str("jid") == spammer })
	waitEvent("blocked", func(e event) bool { return e.str("jid") == troll })

	// Pushes to alice's other resource.
	isPush := func(op, who string) func(inStanza) bool {
		return func(st inStanza) bool {
			return st.XMLName.Local == "iq" && st.Type == "set" && strings.Contains(st.Raw, op) && strings.Contains(st.Raw, who)
		}
	}
	al2.mustWait(ctx, t, "the block push for the spammer", isPush("block", spammer))
	al2.mustWait(ctx, t, "the block push for the troll", isPush("block", troll))
	// The spammer saw alice go offline (both her resources).
	sp.mustWait(ctx, t, "alice's unavailable presence", isPresence(alice, "unavailable"))
	sp.mustWait(ctx, t, "alice's other unavailable presence", isPresence(alice, "unavailable"))
	// From here on, nothing may pass between them.
	al2.clear()
	sp.clear()

	// The spammer's message bounces as if nobody were there; his
	// presence does not reach alice; alice cannot message him.
	sp.must(t, sp.sendPresence(ctx, alice, stanza.AvailablePresence))
	sp.must(t, sp.sendMessage(ctx, alice, "more watches"))
	bounce := sp.mustWait(ctx, t, "an error for the blocked message", func(st inStanza) bool {
		return st.XMLName.Local == "message" && st.Type == "error" && bareOf(st.From) == alice
	})
	if !strings.Contains(bounce.Raw, "service-unavailable") {
		t.Errorf("bounce of a message to a blocker: %s", bounce.Raw)
	}
	al2.must(t, al2.sendMessage(ctx, spammer, "go away"))
	refused := al2.mustWait(ctx, t, "an error for a message to a blocked JID", func(st inStanza) bool {
		return st.XMLName.Local == "message" && st.Type == "error" && bareOf(st.From) == spammer
	})
	if !strings.Contains(refused.Raw, "not-acceptable") || !strings.Contains(refused.Raw, "urn:xmpp:blocking:errors") {
		t.Errorf("error for a message to a blocked JID: %s", refused.Raw)
	}
	al2.barrier(ctx, t, "1")
	for _, st := range al2.seen() {
		if bareOf(st.From) == spammer && st.Type != "error" {
			t.Errorf("alice got something from the blocked spammer: %s", st.Raw)
		}
	}
	// A presence change of alice's does not reach him.
	al2.must(t, al2.sendPresence(ctx, "", stanza.AvailablePresence))
	sp.barrier(ctx, t, "1")
	for _, st := range sp.seen() {
		if st.XMLName.Local == "presence" && bareOf(st.From) == alice && st.Type != "unavailable" {
			t.Errorf("the blocked spammer got alice's presence: %s", st.Raw)
		}
	}

	// A report from mellium's blocklist.Report too.
	other := jid.MustParse("bot@spam.example")
	if err := blocklist.Report(ctx, al2.s, blocklist.Item{JID: other, Reason: blocklist.ReasonSpam,
		StanzaIDs: []stanza.ID{{ID: "mam-1", By: jid.MustParse(alice)}}, Text: "Bot spam"}); err != nil {
		t.Fatalf("mellium block and report: %v", err)
	}

	// The admin heard about all three.
	for _, who := range []string{spammer, troll, other.String()} {
		admin.mustWait(ctx, t, "the report about "+who, func(st inStanza) bool {
			return st.XMLName.Local == "message" && strings.Contains(st.Body, "Abuse report #") && strings.Contains(st.Body, who)
		})
	}
	// The queue, from the command line.
	out, err := srv.stoa(ctx, "", "reports", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{spammer + " for spam", troll + " for abuse", "bot@spam.example for spam", "Unsolicited advertising", "Insults"} {
		if !strings.Contains(out, want) {
			t.Errorf("stoa reports list lacks %q:\n%s", want, out)
		}
	}
	id := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, troll) {
			id = strings.TrimPrefix(strings.Fields(l)[0], "#")
		}
	}
	show, err := srv.stoa(ctx, "", "reports", "show", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reporter:  " + alice, "offender:  " + troll, "reason:    abuse", "sid-4711", "Insults in every message"} {
		if !strings.Contains(show, want) {
			t.Errorf("stoa reports show %s lacks %q:\n%s", id, want, show)
		}
	}
	if out, err := srv.stoa(ctx, "", "reports", "resolve", id, "--note", "warned the troll"); err != nil || !strings.Contains(out, "resolved") {
		t.Errorf("stoa reports resolve: %s %v", out, err)
	}
	if out, _ := srv.stoa(ctx, "", "reports", "list"); strings.Contains(out, troll) {
		t.Errorf("a resolved report is still listed as open:\n%s", out)
	}
	if out, _ := srv.stoa(ctx, "", "reports", "list", "--state", "resolved"); !strings.Contains(out, troll) {
		t.Errorf("the resolved report is not listed as resolved:\n%s", out)
	}

	// Unblock (slixmpp): pushed, and the spammer gets through again.
	admin.must(t, admin.sendMessage(ctx, alice, "unblock"))
	events := s.wait(ctx, t)
	lists := find(events, "blocklist", nil)
	if len(lists) != 3 {
		t.Fatalf("blocklist events: %v", lists)
	}
	if got := fmt.Sprint(lists[1]["items"]); !strings.Contains(got, spammer) || !strings.Contains(got, troll) {
		t.Errorf("block list after blocking: %s", got)
	}
	if got := fmt.Sprint(lists[2]["items"]); strings.Contains(got, spammer) || !strings.Contains(got, troll) {
		t.Errorf("block list after unblocking: %s", got)
	}
	if len(find(events, "message", func(e event) bool { return strings.HasPrefix(e.str("frm"), spammer) && e.str("type") != "error" })) != 1 {
		t.Errorf("slixmpp got other than the one message from the spammer before blocking: %v", events)
	}
	al2.mustWait(ctx, t, "the unblock push", isPush("unblock", spammer))
	sp.must(t, sp.sendMessage(ctx, alice, "sorry"))
	al2.mustWait(ctx, t, "the spammer's message after unblocking", isMessage(spammer, "sorry"))
	t.Logf("slixmpp pushes: %v", find(events, "push", nil))
	if !srv.logHas("report filed", "reporter="+alice) {
		t.Error("no log line for the filed reports")
	}
}

// TestSuspendedUser: `stoa account suspend` ends the user's sessions
// (mellium and go-xmpp see a stream error with the reason); slixmpp, a
// raw SCRAM login and mellium cannot log in and get the reason; account
// show says why; after unsuspend the user logs in again. A restricted
// account still logs in.
func TestSuspendedUser(t *testing.T) {
	t.Parallel()
	requirePython(t, "slixmpp", "python3-slixmpp")
	srv := startServer(t, serverOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	bob := srv.addUser(t, "bob", "bob password")
	bobM := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "bob", password: "bob password"})
	bobG := mustGox(t, goxLogin{addr: srv.direct, direct: true, user: bob, password: "bob password"})

	const reason = "Sending advertisements to strangers"
	out, err := srv.stoa(ctx, "", "account", "suspend", bob, "--reason", reason)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "not running") || !strings.Contains(out, "suspended") {
		t.Fatalf("stoa account suspend: %s", out)
	}
	select {
	case <-bobM.served:
	case <-ctx.Done():
		t.Fatal("bob's mellium session survived the suspension")
	}
	var se stream.Error
	if !errors.As(bobM.serveErr, &se) || se.Err != "policy-violation" || !strings.Contains(fmt.Sprint(se.Text), reason) {
		t.Errorf("mellium's session ended with %v, want policy-violation naming the reason", bobM.serveErr)
	}
	select {
	case <-bobG.done:
		if bobG.err == nil || !strings.Contains(bobG.err.Error(), "stream error") {
			t.Errorf("go-xmpp's session ended with %v, want a stream error", bobG.err)
		}
	case <-ctx.Done():
		t.Fatal("bob's go-xmpp session survived the suspension")
	}

	// Logins are refused with the reason.
	r, err := dialRaw(ctx, t, srv.direct, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.login("bob", "bob password")
	if err == nil || !strings.Contains(err.Error(), "account-disabled") || !strings.Contains(err.Error(), reason) {
		t.Errorf("raw login while suspended: %v", err)
	}
	if _, err := dialMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "bob", password: "bob password"}); err == nil || !strings.Contains(err.Error(), reason) {
		t.Errorf("mellium login while suspended: %v, want a failure with the reason", err)
	}
	s := startScript(ctx, t, "slix_abuse.py", map[string]any{
		"mode": "login", "jid": bob, "password": "bob password", "host": "127.0.0.1", "port": portOf(t, srv.starttls), "timeout": 60,
		"no_channel_binding": true,
	})
	events := s.wait(ctx, t)
	if len(find(events, "session_start", nil)) != 0 {
		t.Error("slixmpp logged in while suspended")
	}
	if failed := find(events, "auth_failed", func(e event) bool {
		return e.str("condition") == "account-disabled" && strings.Contains(e.str("text"), reason)
	}); len(failed) == 0 {
		t.Errorf("slixmpp's failures: %v; want account-disabled with the reason", find(events, "auth_failed", nil))
	}

	show, err := srv.stoa(ctx, "", "account", "show", bob)
	if err != nil || !strings.Contains(show, "suspended since") || !strings.Contains(show, reason) {
		t.Errorf("stoa account show: %s %v", show, err)
	}
	if out, err := srv.stoa(ctx, "", "account", "unsuspend", bob); err != nil || !strings.Contains(out, "active again") {
		t.Fatalf("stoa account unsuspend: %s %v", out, err)
	}
	mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "bob", password: "bob password"})
	if out, err := srv.stoa(ctx, "", "account", "restrict", bob, "--reason", "new account", "--expires", "7d"); err != nil || !strings.Contains(out, "restricted") {
		t.Fatalf("stoa account restrict: %s %v", out, err)
	}
	mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "bob", password: "bob password"})
	if list, err := srv.stoa(ctx, "", "account", "list"); err != nil || !strings.Contains(list, bob+": restricted") {
		t.Errorf("stoa account list: %s %v", list, err)
	}
	if !srv.logHas("login refused", "account_suspended") {
		t.Error("no log line for the refused logins")
	}
	if n := srv.metric(t, `stoa_policy_denied_total{policy="account_suspended"}`); n < 3 {
		t.Errorf("stoa_policy_denied_total{policy=account_suspended} = %v, want at least 3", n)
	}
}
