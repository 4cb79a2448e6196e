package c2s

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/xmpp/jid"
	sxml "stoa.im/stoa/internal/xmpp/xml"
)

func parseEl(t testing.TB, s string) *sxml.Element {
	t.Helper()
	d := sxml.NewDecoder(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+s), sxml.DefaultLimits())
	if _, err := d.Header(); err != nil {
		t.Fatal(err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return el
}

// enable sends <enable resume='true'/> (with max when > 0) and returns
// the <enabled/> answer.
func (c *tclient) enable(resume bool, max int) elem {
	c.t.Helper()
	a := ""
	if resume {
		a = " resume='true'"
	}
	if max > 0 {
		a += fmt.Sprintf(" max='%d'", max)
	}
	c.send(`<enable xmlns='urn:xmpp:sm:3'` + a + `/>`)
	e := c.next()
	if e.XMLName.Local != "enabled" || e.XMLName.Space != nsSM {
		c.t.Fatalf("%s: enable: got %s", c.user, e)
	}
	c.sm = true
	return e
}

// chat routes n chat messages to the client's full JID with ids
// prefix-0..n-1.
func (n *testNode) chat(to, prefix string, count int) []string {
	var ids []string
	for i := range count {
		id := fmt.Sprintf("%s-%d", prefix, i)
		ids = append(ids, id)
		n.route(fmt.Sprintf(`<message from='bob@localhost/x' to='%s' type='chat' id='%s'><body>%s</body></message>`, to, id, id))
	}
	return ids
}

// readMessages reads until count messages arrived (answering nothing).
func (c *tclient) readMessages(count int) []elem {
	c.t.Helper()
	var got []elem
	for len(got) < count {
		e := c.next()
		if e.XMLName.Local == "message" {
			got = append(got, e)
		}
	}
	return got
}

func TestSMFeatureAndEnable(t *testing.T) {
	t.Parallel()
	n := newNode(t, nil)
	n.addUser("alice")
	c := n.dial("alice")
	if f := c.login(); !strings.Contains(f, "urn:xmpp:sm:3") {
		t.Fatalf("post-auth features do not offer stream management: %s", f)
	}
	// Before binding, enable fails (XEP-0198 §3) and the stream stays.
	c.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	if e := c.next(); e.XMLName.Local != "failed" || !strings.Contains(e.Inner, "unexpected-request") {
		t.Fatalf("enable before bind: got %s", e)
	}
	c.bind("phone")
	e := c.enable(true, 0)
	if e.attr("resume") != "true" || len(e.attr("id")) < 20 || e.attr("max") != "600" {
		t.Errorf("enabled = %s; want resume, a long id and max=600", e)
	}
	// Only once.
	c.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	if e := c.next(); e.XMLName.Local != "failed" {
		t.Errorf("second enable: got %s, want failed", e)
	}

	// Off in the configuration: not offered.
	n2 := newNode(t, func(c *Config) { c.StreamManagement.Enabled = false })
	n2.addUser("alice")
	c2 := n2.dial("alice")
	if f := c2.login(); strings.Contains(f, "urn:xmpp:sm:3") {
		t.Errorf("stream management offered although disabled: %s", f)
	}
}

func TestSMEnableWithoutResume(t *testing.T) {
	t.Parallel()
	n := newNode(t, nil)
	n.addUser("alice")
	c := n.connect("alice", "desk")
	if e := c.enable(false, 0); e.attr("id") != "" || e.attr("resume") != "" {
		t.Errorf("enabled without resume = %s; want no id", e)
	}
	// A client-requested max shortens the timeout.
	c2 := n.connect("alice", "phone")
	if e := c2.enable(true, 30); e.attr("max") != "30" {
		t.Errorf("enabled with max=30: %s", e)
	}
}

// TestSMCounting checks 'h' in both directions: the server counts every
// stanza it handled, asks for acknowledgements after request_every
// stanzas, drops what the client acknowledged (the rest goes to offline
// storage when the session ends), and ends the stream when the client
// acknowledges more than it was sent.
func TestSMCounting(t *testing.T) {
	t.Parallel()
	n := newNode(t, func(c *Config) { c.StreamManagement.RequestEvery = 3 })
	n.addUser("alice")
	c := n.connect("alice", "desk")
	c.enable(false, 0)
	// Inbound: an IQ (answered), a message to nobody (bounced), a
	// presence: 3 handled.
	c.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.send(`<message to='nobody@localhost' id='m1'><body>x</body></message>`)
	c.send(`<presence type='unavailable' to='bob@localhost'/>`)
	c.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	a, before := c.expect("a")
	if a.attr("h") != "3" {
		t.Errorf("after 3 stanzas: <a h=%q/>, want 3", a.attr("h"))
	}
	// Outbound: the ping result and the bounce, then three messages; an
	// <r/> comes after every third stanza.
	n.chat(c.jid, "m", 3)
	var got []elem
	got = append(got, before...)
	for len(got) < 5 {
		e := c.next()
		if e.XMLName.Local != "r" {
			got = append(got, e)
		}
	}
	if ids := messageIDs(got); !slices.Equal(ids, []string{"m1", "m-0", "m-1", "m-2"}) {
		t.Fatalf("received %v", got)
	}
	// Acknowledge the first three (result, bounce, m-0); m-1 and m-2
	// stay unacknowledged and go to offline storage when the session
	// ends with a clean close.
	c.send(`<a xmlns='urn:xmpp:sm:3' h='3'/></stream:stream>`)
	waitFor(t, "the session to end", func() bool { return n.srv.Session(jid.MustParse(c.jid)) == nil })
	msgs, err := n.srv.Store().Offline().List(n.ctx, "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, m := range msgs {
		stored = append(stored, parseEl(t, string(m.Stanza)).Attr("id"))
	}
	if !slices.Equal(stored, []string{"m-1", "m-2"}) {
		t.Errorf("offline storage holds %v, want the unacknowledged m-1, m-2", stored)
	}

	// Acknowledging more than was sent ends the stream.
	c2 := n.connect("alice", "desk2")
	c2.enable(false, 0)
	n.chat(c2.jid, "x", 2)
	c2.readMessages(2)
	c2.send(`<a xmlns='urn:xmpp:sm:3' h='5'/>`)
	for {
		e, err := c2.read()
		if err != nil {
			t.Fatalf("stream ended without the expected error: %v", err)
		}
		if e.XMLName.Local == "error" {
			if !strings.Contains(e.Inner, "handled-count-too-high") || !strings.Contains(e.Inner, "undefined-condition") {
				t.Errorf("stream error = %s", e)
			}
			break
		}
	}
}

// resume opens a new connection as user and resumes previd with h.
func (n *testNode) resume(user, previd string, h int) (*tclient, elem) {
	n.t.Helper()
	c := n.dial(user)
	c.login()
	c.send(fmt.Sprintf(`<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>`, previd, h))
	return c, c.next()
}

// TestSMResume is the drop test at the connection layer: messages are in
// flight when the TCP connection is cut; more arrive while the session is
// detached; the client resumes and gets each message it had not
// acknowledged exactly once, after <resumed/> with the right 'h'.
func TestSMResume(t *testing.T) {
	t.Parallel()
	n := newNode(t, nil)
	n.addUser("alice")
	c := n.connect("alice", "phone")
	id := c.enable(true, 0).attr("id")
	c.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.expect("iq") // stanza 1 from the server

	sent := n.chat(c.jid, "a", 6)
	got := c.readMessages(2) // the client handles only two; four are in flight
	sess := c.session()
	c.cut()
	waitFor(t, "the session to detach", sess.Detached)
	if n.srv.Session(jid.MustParse(c.jid)) != sess {
		t.Fatal("the detached session left the session table")
	}
	sent = append(sent, n.chat(c.jid, "b", 3)...) // while detached

	// The client saw 1 IQ + 2 messages.
	c2, e := n.resume("alice", id, 3)
	if e.XMLName.Local != "resumed" || e.attr("previd") != id || e.attr("h") != "1" {
		t.Fatalf("resume: got %s; want <resumed previd=%s h=1/>", e, id)
	}
	rest := c2.readMessages(len(sent) - 2)
	for _, m := range rest {
		if !hasDelay(m) {
			t.Errorf("resent message without a delay: %s", m)
		}
	}
	all := append(messageIDs(got), messageIDs(rest)...)
	if !slices.Equal(all, sent) {
		t.Fatalf("messages across both connections = %v, want each of %v once, in order", all, sent)
	}
	if sess.Detached() || n.srv.Session(jid.MustParse(c.jid)) != sess {
		t.Error("the resumed session is not the original one, attached")
	}
	// The resumed session keeps counting: a new message arrives once.
	n.chat(c.jid, "c", 1)
	if m := c2.readMessages(1); m[0].attr("id") != "c-0" {
		t.Errorf("after resumption got %s", m[0])
	}
	c2.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	if a, _ := c2.expect("a"); a.attr("h") != "1" {
		t.Errorf("inbound h after resumption = %s, want 1 (carried over)", a.attr("h"))
	}
}

// TestSMResumeTimeout is the second half of the drop test: the client does
// not come back in time; the unacknowledged messages go to offline storage
// (delivered once at the next login, stamped), and a late resumption gets
// item-not-found with the old 'h'.
func TestSMResumeTimeout(t *testing.T) {
	t.Parallel()
	n := newNode(t, nil)
	n.addUser("alice")
	c := n.connect("alice", "phone")
	id := c.enable(true, 1).attr("id") // 1 s: the shortest a client may ask
	c.send(`<presence/>`)
	c.expect("presence")
	sent := n.chat(c.jid, "a", 4)
	got := c.readMessages(1)
	// Acknowledge the presence echo and a-0 (the <r/> makes sure the
	// server handled the <a/> before the cut).
	c.send(`<a xmlns='urn:xmpp:sm:3' h='2'/><r xmlns='urn:xmpp:sm:3'/>`)
	c.expect("a")
	sess := c.session()
	c.cut()
	waitFor(t, "the session to detach", sess.Detached)
	waitFor(t, "the session to expire", func() bool { return n.srv.Session(jid.MustParse(c.jid)) == nil })
	waitFor(t, "offline storage", func() bool {
		k, _ := n.srv.Store().Offline().Count(n.ctx, "alice@localhost")
		return k >= 3
	})
	if k, _ := n.srv.Store().Offline().Count(n.ctx, "alice@localhost"); k != 3 {
		t.Errorf("offline storage holds %d messages, want the 3 unacknowledged ones", k)
	}
	c2, e := n.resume("alice", id, 2)
	if e.XMLName.Local != "failed" || !strings.Contains(e.Inner, "item-not-found") || e.attr("h") != "1" {
		t.Fatalf("late resume: got %s; want failed item-not-found h=1 (the presence it sent)", e)
	}
	// The same stream may bind instead (XEP-0198 §5).
	c2.bind("phone2")
	c2.send(`<presence/>`)
	_, before := c2.expect("presence")
	stored := messageIDs(before)
	if all := append(messageIDs(got), stored...); !slices.Equal(all, sent) {
		t.Errorf("messages = %v, want each of %v once", all, sent)
	}
	for _, m := range before {
		if m.XMLName.Local == "message" && !hasDelay(m) {
			t.Errorf("stored message without delay: %s", m)
		}
	}
}

// TestSMResumeOtherAccount: an SM-ID is bound to its account.
func TestSMResumeOtherAccount(t *testing.T) {
	t.Parallel()
	n := newNode(t, nil)
	n.addUser("alice")
	n.addUser("mallory")
	c := n.connect("alice", "phone")
	id := c.enable(true, 0).attr("id")
	sess := c.session()
	c.cut()
	waitFor(t, "the session to detach", sess.Detached)
	_, e := n.resume("mallory", id, 0)
	if e.XMLName.Local != "failed" || !strings.Contains(e.Inner, "item-not-found") || e.attr("h") != "" {
		t.Errorf("resuming another account's session: got %s, want failed item-not-found without h", e)
	}
	_, e = n.resume("alice", "guessed", 0)
	if e.XMLName.Local != "failed" {
		t.Errorf("resuming an unknown id: got %s", e)
	}
	if !sess.Detached() {
		t.Error("the session did not stay detached")
	}
}

// TestSMResumeWhileAttached: the client comes back on a new connection
// before the server noticed the old one is dead; the old stream gets a
// conflict error and the new one the unacknowledged stanzas.
func TestSMResumeWhileAttached(t *testing.T) {
	t.Parallel()
	n := newNode(t, nil)
	n.addUser("alice")
	c := n.connect("alice", "phone")
	id := c.enable(true, 0).attr("id")
	sent := n.chat(c.jid, "a", 3)
	c2, e := n.resume("alice", id, 0)
	if e.XMLName.Local != "resumed" {
		t.Fatalf("resume: %s", e)
	}
	if got := messageIDs(c2.readMessages(3)); !slices.Equal(got, sent) {
		t.Errorf("resent %v, want %v", got, sent)
	}
	for {
		e, err := c.read()
		if err != nil {
			t.Fatalf("old stream ended without conflict: %v", err)
		}
		if e.XMLName.Local == "error" {
			if !strings.Contains(e.Inner, "conflict") {
				t.Errorf("old stream error = %s", e)
			}
			break
		}
	}
	n.chat(c.jid, "b", 1)
	if m := c2.readMessages(1); m[0].attr("id") != "b-0" {
		t.Errorf("got %s", m[0])
	}
}

// TestSMEndsWithUnacked: when the session ends without resumption (clean
// close, a new login with the same resource, overflow, shutdown) the
// unacknowledged messages go to offline storage, never lost.
func TestSMEndsWithUnacked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*Config)
		end  func(t *testing.T, n *testNode, c *tclient)
		want int // messages expected in offline storage
	}{
		{"clean close", nil, func(t *testing.T, n *testNode, c *tclient) {
			c.send(`</stream:stream>`)
			waitFor(t, "the session to end", func() bool { return n.srv.Session(jid.MustParse(c.jid)) == nil })
		}, 3},
		{"replaced while detached", nil, func(t *testing.T, n *testNode, c *tclient) {
			sess := c.session()
			c.cut()
			waitFor(t, "the session to detach", sess.Detached)
			c2 := n.connect("alice", "phone") // same resource, no resumption
			if s := c2.session(); s == sess || s == nil {
				t.Fatal("the new login did not replace the detached session")
			}
		}, 3},
		{"overflow", func(c *Config) { c.StreamManagement.MaxUnacked = 10 }, func(t *testing.T, n *testNode, c *tclient) {
			n.chat(c.jid, "more", 8) // 11 unacknowledged: disconnected
			waitFor(t, "the session to end", func() bool { return n.srv.Session(jid.MustParse(c.jid)) == nil })
		}, 10},
		{"overflow while detached", func(c *Config) { c.StreamManagement.MaxUnacked = 10 }, func(t *testing.T, n *testNode, c *tclient) {
			sess := c.session()
			c.cut()
			waitFor(t, "the session to detach", sess.Detached)
			n.chat(c.jid, "more", 8)
			waitFor(t, "the session to end", func() bool { return n.srv.Session(jid.MustParse(c.jid)) == nil })
		}, 10},
		{"shutdown while detached", nil, func(t *testing.T, n *testNode, c *tclient) {
			sess := c.session()
			c.cut()
			waitFor(t, "the session to detach", sess.Detached)
			n.svc.endResumable()
			waitFor(t, "the session to end", func() bool { return n.srv.Session(jid.MustParse(c.jid)) == nil })
		}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, tc.mod)
			n.addUser("alice")
			c := n.connect("alice", "phone")
			c.enable(true, 0)
			n.chat(c.jid, "a", 3)
			c.readMessages(3) // read, never acknowledged
			tc.end(t, n, c)
			waitFor(t, "offline storage", func() bool {
				k, _ := n.srv.Store().Offline().Count(n.ctx, "alice@localhost")
				return k >= tc.want
			})
			if k, _ := n.srv.Store().Offline().Count(n.ctx, "alice@localhost"); k != tc.want {
				t.Errorf("offline storage holds %d messages, want %d", k, tc.want)
			}
		})
	}
}

// TestSMAckRequestAfter: a lone unacknowledged stanza gets an <r/> after
// request_after.
func TestSMAckRequestAfter(t *testing.T) {
	t.Parallel()
	n := newNode(t, func(c *Config) { c.StreamManagement.RequestAfter = config.Duration(50 * time.Millisecond) })
	n.addUser("alice")
	c := n.connect("alice", "desk")
	c.enable(false, 0)
	n.chat(c.jid, "a", 1)
	if _, before := c.expect("r"); len(messageIDs(before)) != 1 {
		t.Errorf("before <r/>: %v", before)
	}
}
