package c2s

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod"
	"stoa.im/stoa/internal/mod/mam"
	"stoa.im/stoa/internal/mod/push"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	sxml "stoa.im/stoa/internal/xmpp/xml"
)

// The tests of docs/messages.md: one per row of the table (the state of
// the recipient), each checking every column (live delivery, offline
// storage, archive, carbons, stream management, push) on a node with the
// complete feature list of internal/mod, driven by TLS clients.

const appServer = "app@localhost/srv" // the test's push service

// detachLog records the resumption timeouts granted to detached sessions.
type detachLog struct {
	mu       sync.Mutex
	timeouts map[string]time.Duration
}

func (d *detachLog) feature() server.Feature {
	return server.Feature{
		Name: "detachlog", Doc: "Test observer of detached sessions.",
		Setup: func(s *server.Setup, _ any) error {
			server.On(s, server.SessionDetached, server.PrioObserve, func(_ context.Context, ev server.DetachedEvent) error {
				d.mu.Lock()
				defer d.mu.Unlock()
				d.timeouts[ev.Session.JID().String()] = ev.Timeout
				return nil
			})
			return nil
		},
	}
}

func (d *detachLog) timeout(full string) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.timeouts[full]
}

type rowNode struct {
	*testNode
	app     *servertest.Client
	detach  *detachLog
	mallory *servertest.Client
}

func newRowNode(t *testing.T) *rowNode {
	t.Helper()
	mc := mam.Feature.Defaults.(mam.Config)
	mc.DefaultPolicy = store.PolicyAlways
	pc := push.Feature.Defaults.(push.Config)
	pc.MinInterval = 0
	d := &detachLog{timeouts: map[string]time.Duration{}}
	features := append(mod.All(), d.feature())
	n := newNodeWith(t, features, map[string]any{"mam": mc, "push": pc}, func(c *Config) {
		c.StreamManagement.ResumeTimeout = config.Duration(time.Hour)
		c.StreamManagement.PushResumeTimeout = config.Duration(72 * time.Hour)
	})
	for _, u := range []string{"alice", "bob", "mallory", "app"} {
		n.addUser(u)
	}
	env := &servertest.Env{T: t, Srv: n.srv, Ctx: n.ctx}
	return &rowNode{testNode: n, app: env.Bind(appServer), detach: d, mallory: env.Bind("mallory@localhost/x")}
}

// iq sends an IQ (with id q) and waits for its answer; it returns the
// stanzas read before it.
func (c *tclient) iq(id, payload string) []elem {
	c.t.Helper()
	c.send(`<iq type='set' id='` + id + `'>` + payload + `</iq>`)
	for {
		e, before := c.expect("iq")
		if e.attr("id") == id {
			if e.attr("type") != "result" {
				c.t.Fatalf("%s: iq %s: %s", c.user, id, e)
			}
			return before
		}
	}
}

// device logs alice in with SM (resumable), carbons, push registered to
// appServer and initial presence; it returns the client and its SM-ID.
func (n *rowNode) device(resource string, withPush bool) (*tclient, string) {
	n.t.Helper()
	c := n.connect("alice", resource)
	id := c.enable(true, 0).attr("id")
	c.iq("carbons", `<enable xmlns='urn:xmpp:carbons:2'/>`)
	if withPush {
		c.iq("push", `<enable xmlns='urn:xmpp:push:0' jid='`+appServer+`' node='node-`+resource+`'/>`)
	}
	c.send(`<presence/>`)
	c.expect("presence")
	return c, id
}

// fromBob delivers a chat message from bob to alice (to: full or bare).
func (n *rowNode) fromBob(to, id, body string) {
	n.route(fmt.Sprintf(`<message from='bob@localhost/pc' to='%s' type='chat' id='%s'><body>%s</body></message>`, to, id, body))
}

func (n *rowNode) offlineCount() int {
	k, err := n.srv.Store().Offline().Count(n.ctx, "alice@localhost")
	if err != nil {
		n.t.Fatal(err)
	}
	return k
}

// archived waits until alice's archive holds want messages (the archive
// writes in batches, off the delivery path) and checks it holds no more.
func (n *rowNode) archived(want int) {
	n.t.Helper()
	count := func() int {
		p, err := n.srv.Store().Archive().Query(n.ctx, "alice@localhost", store.ArchiveQuery{Max: 100})
		if err != nil {
			n.t.Fatal(err)
		}
		return len(p.Messages)
	}
	waitFor(n.t, fmt.Sprintf("%d archived messages", want), func() bool { return count() >= want })
	if got := count(); got != want {
		n.t.Errorf("archive holds %d messages, want %d", got, want)
	}
}

func (n *rowNode) metric(name string) float64 {
	mfs, err := n.srv.Registry().Gather()
	if err != nil {
		n.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// pushed waits for a notification to the app server and answers it.
func (n *rowNode) pushed() map[string]string {
	n.t.Helper()
	iq := n.app.Expect(func(el *sxml.Element) bool {
		return el.Local == "iq" && strings.Contains(el.String(), "urn:xmpp:push:summary")
	})
	n.app.SendXML(`<iq type='result' id='` + iq.Attr("id") + `' to='localhost'/>`)
	out := map[string]string{}
	for _, f := range iq.Child("http://jabber.org/protocol/pubsub", "pubsub").Child("http://jabber.org/protocol/pubsub", "publish").
		Child("http://jabber.org/protocol/pubsub", "item").Child("urn:xmpp:push:0", "notification").Child("jabber:x:data", "x").Elements() {
		out[f.Attr("var")] = f.ChildText("jabber:x:data", "value")
	}
	return out
}

func isCarbonOf(e elem, id string) bool {
	return e.XMLName.Local == "message" && strings.Contains(e.Inner, "urn:xmpp:carbons:2") &&
		(strings.Contains(e.Inner, "id=\""+id+"\"") || strings.Contains(e.Inner, "id='"+id+"'"))
}

// sync makes sure the server handled everything the client sent (the
// server processes a stream in order): a ping round trip.
func (c *tclient) sync() {
	c.t.Helper()
	c.send(`<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for {
		if e, _ := c.expect("iq"); e.attr("id") == "sync" {
			return
		}
	}
}

// Row: online, active. Delivered at once, archived, copied to the other
// carbons-enabled device, counted by SM; nothing stored offline, no push.
func TestMessagesOnlineActive(t *testing.T) {
	t.Parallel()
	n := newRowNode(t)
	desk, _ := n.device("desk", false)
	phone, _ := n.device("phone", true)
	n.fromBob(desk.jid, "m1", "hello")
	if m := desk.readMessages(1); m[0].attr("id") != "m1" {
		t.Errorf("desk got %s", m[0])
	}
	if m := phone.readMessages(1); !isCarbonOf(m[0], "m1") {
		t.Errorf("phone got %s, want a carbon of m1", m[0])
	}
	desk.send(`<r xmlns='urn:xmpp:sm:3'/>`) // SM: both sides count
	desk.expect("a")
	if k := n.offlineCount(); k != 0 {
		t.Errorf("offline storage holds %d", k)
	}
	if v := n.metric("stoa_push_triggered_total"); v != 0 {
		t.Errorf("push triggered %v times for an active account", v)
	}
	n.archived(1)
}

// Row: online, inactive (CSI). Chat states wait; a message with a body
// flushes them and is delivered at once; push wakes the app since no
// session is reachable; archived; nothing offline.
func TestMessagesInactive(t *testing.T) {
	t.Parallel()
	n := newRowNode(t)
	phone, _ := n.device("phone", true)
	phone.send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	phone.sync()
	n.route(`<message from='bob@localhost/pc' to='alice@localhost/phone' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	if v := n.metric("stoa_push_triggered_total"); v != 0 {
		t.Errorf("a chat state triggered push")
	}
	n.fromBob(phone.jid, "m1", "wake up")
	got := phone.readMessages(2)
	if got[0].attr("id") != "cs" || !hasDelay(got[0]) || got[1].attr("id") != "m1" || hasDelay(got[1]) {
		t.Errorf("inactive client got %v, want the held chat state (delayed) then m1", got)
	}
	if s := n.pushed(); s["message-count"] != "1" || s["last-message-sender"] != "bob@localhost/pc" {
		t.Errorf("notification = %v", s)
	}
	if k := n.offlineCount(); k != 0 {
		t.Errorf("offline storage holds %d", k)
	}
	n.archived(1)
}

// Row: detached (SM, waiting for resumption). The message waits in the
// session's queue (not offline storage), is archived, copied to other
// devices, triggers push when no other session is reachable (here the
// desktop is inactive); on resumption it is delivered once.
func TestMessagesDetached(t *testing.T) {
	t.Parallel()
	n := newRowNode(t)
	desk, _ := n.device("desk", false)
	desk.send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	desk.sync()
	phone, id := n.device("phone", true)
	sess := phone.session()
	phone.cut()
	waitFor(t, "the session to detach", sess.Detached)
	n.fromBob(phone.jid, "m1", "are you there?")
	if m := desk.readMessages(1); !isCarbonOf(m[0], "m1") {
		t.Errorf("desk got %s, want a carbon", m[0])
	}
	if s := n.pushed(); s["message-count"] != "1" {
		t.Errorf("notification = %v", s)
	}
	if k := n.offlineCount(); k != 0 {
		t.Errorf("offline storage holds %d while the session is resumable", k)
	}
	n.archived(1)
	// The client resumes without having acknowledged anything: every
	// stanza since <enabled/> comes again, m1 among them, once.
	c2, e := n.resume("alice", id, 0)
	if e.XMLName.Local != "resumed" {
		t.Fatalf("resume: %s", e)
	}
	c2.send(`<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	var resent []elem
	for {
		e, before := c2.expect("iq")
		resent = append(resent, before...)
		if e.attr("id") == "sync" {
			break
		}
	}
	if ids := messageIDs(resent); len(ids) != 1 || ids[0] != "m1" {
		t.Errorf("after resumption: messages %v, want m1 once", ids)
	}
	if k := n.offlineCount(); k != 0 {
		t.Errorf("offline storage holds %d after resumption", k)
	}
}

// Row: offline. Stored offline (delivered once at the next login, with a
// delay), archived, push.
func TestMessagesOffline(t *testing.T) {
	t.Parallel()
	n := newRowNode(t)
	c := n.connect("alice", "phone")
	c.iq("push", `<enable xmlns='urn:xmpp:push:0' jid='`+appServer+`' node='n'/>`)
	c.send(`</stream:stream>`)
	waitFor(t, "the session to end", func() bool { return c.session() == nil })
	n.fromBob("alice@localhost", "m1", "see you later")
	if k := n.offlineCount(); k != 1 {
		t.Errorf("offline storage holds %d, want 1", k)
	}
	if s := n.pushed(); s["message-count"] != "1" {
		t.Errorf("notification = %v", s)
	}
	n.archived(1)
	c2 := n.connect("alice", "phone")
	c2.send(`<presence/>`)
	_, before := c2.expect("presence")
	if ids := messageIDs(before); len(ids) != 1 || ids[0] != "m1" || !hasDelay(before[0]) {
		t.Errorf("at login: %v", before)
	}
	if k := n.offlineCount(); k != 0 {
		t.Errorf("offline storage still holds %d", k)
	}
}

// Row: push-enabled. A session whose client enabled push stays resumable
// for push_resume_timeout instead of resume_timeout; when it expires the
// messages go to offline storage like any other.
func TestMessagesPushEnabled(t *testing.T) {
	t.Parallel()
	n := newRowNode(t)
	plain, _ := n.device("plain", false)
	phone, _ := n.device("phone", true)
	for _, c := range []*tclient{plain, phone} {
		sess := c.session()
		c.cut()
		waitFor(t, "the session to detach", sess.Detached)
	}
	if got := n.detach.timeout(plain.jid); got != time.Hour {
		t.Errorf("a session without push is resumable for %v, want resume_timeout (1h)", got)
	}
	if got := n.detach.timeout(phone.jid); got != 72*time.Hour {
		t.Errorf("a push-enabled session is resumable for %v, want push_resume_timeout (72h)", got)
	}
	// It expires like any other (shown here by a new login taking the
	// resource): the unacknowledged message goes to offline storage.
	n.fromBob(phone.jid, "m1", "hi")
	n.pushed()
	c := n.connect("alice", "phone")
	c.send(`<presence/>`)
	if _, before := c.expect("presence"); len(messageIDs(before)) != 1 {
		t.Errorf("after the push-enabled session ended: %v", before)
	}
}

// Row: blocked (XEP-0191, the blocking feature). Refused before any of
// the rest, online or offline: the sender gets service-unavailable;
// nothing is delivered, copied, stored, archived or pushed.
func TestMessagesBlocked(t *testing.T) {
	t.Parallel()
	n := newRowNode(t)
	desk, _ := n.device("desk", false)
	phone, _ := n.device("phone", true)
	desk.iq("block", `<block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block>`)

	n.mallory.SendXML(`<message to='alice@localhost/desk' type='chat' id='spam1'><body>buy</body></message>`)
	n.mallory.Expect(servertest.Name("message", "id", "spam1", "type", "error"))
	n.fromBob(desk.jid, "m1", "real")
	if m := desk.readMessages(1); m[0].attr("id") != "m1" {
		t.Errorf("desk got %s before bob's message", m[0])
	}
	if m := phone.readMessages(1); !isCarbonOf(m[0], "m1") {
		t.Errorf("phone got %s before the carbon of bob's message", m[0])
	}

	// Offline now: still nothing is kept or pushed for mallory.
	for _, c := range []*tclient{desk, phone} {
		c.closeAcked()
		waitFor(t, "the session to end", func() bool { return c.session() == nil })
	}
	n.mallory.SendXML(`<message to='alice@localhost' type='chat' id='spam2'><body>buy</body></message>`)
	n.mallory.Expect(servertest.Name("message", "id", "spam2", "type", "error"))
	if k := n.offlineCount(); k != 0 {
		t.Errorf("offline storage holds %d", k)
	}
	if v := n.metric("stoa_push_triggered_total"); v != 0 {
		t.Errorf("push triggered by a blocked sender")
	}
	// Bob, not blocked, for contrast: stored and pushed.
	n.fromBob("alice@localhost", "m2", "later")
	if k := n.offlineCount(); k != 1 {
		t.Errorf("offline storage holds %d, want bob's message", k)
	}
	n.pushed()
	n.archived(2) // bob's two only
}
