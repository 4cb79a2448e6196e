package c2s

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// link is what a bound session's server.Session holds as its Conn. Without
// stream management it only forwards to the connection. With stream
// management (XEP-0198) it numbers the stanzas sent to the client and
// keeps them until the client acknowledges them; when the connection is
// lost and the client asked for resumption, the link outlives it: the
// session stays bound ("detached"), stanzas for it wait in the unacked
// queue, and a new connection that resumes takes the link over. When the
// session ends instead, the messages the client never confirmed go to
// offline storage (server.Undelivered).
//
// Lock order: link.mu, then conn.qmu. The link never calls into the server
// while holding mu.
type link struct {
	svc  *Service
	sess *server.Session // set right after Bind, never changed

	mu      sync.Mutex
	c       *conn // current connection; nil while detached or after the end
	remote  netip.AddrPort
	sm      *smState // nil until the client enabled stream management
	ended   bool     // the session is over: nothing more is accepted
	closing bool     // the server ends the session: no detaching
	expiry  *time.Timer
	waiting bool // counted in svc.wg while detached
}

func newLink(svc *Service, c *conn) *link {
	return &link{svc: svc, c: c, remote: c.remote}
}

var (
	_ server.Conn     = (*link)(nil)
	_ server.Detacher = (*link)(nil)
)

// Send implements server.Conn. Stanzas are numbered and kept until
// acknowledged when stream management is on; while detached they are
// only kept. Non-stanza elements go to the connection when there is one.
func (l *link) Send(el *xml.Element) error {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return errClosed
	}
	sm := l.sm
	c := l.c
	if sm == nil || server.KindOf(el) == 0 {
		l.mu.Unlock()
		if c == nil {
			return errClosed
		}
		return c.Send(el)
	}
	if !sm.add(el, time.Now(), l.svc.cfg.StreamManagement.MaxUnacked, int(l.svc.cfg.MaxQueue)) {
		l.closing = true
		n := len(sm.queue)
		l.mu.Unlock()
		l.svc.srv.CountDenied("sm_unacked_overflow")
		l.svc.log.Info("client does not acknowledge what it receives; ending its session",
			"jid", l.sess.JID().String(), "unacked", n, "detached", c == nil)
		if c != nil {
			c.Close(stanza.NewStreamError(stanza.StreamPolicyViolation,
				"Too many stanzas are waiting for your acknowledgement (XEP-0198); they will be delivered at your next login."))
		} else {
			// Detached: end it off the caller's path (it is delivering a
			// stanza, maybe under its own locks). The detached link is
			// counted in svc.wg, so this Add cannot race with Shutdown.
			l.svc.wg.Add(1)
			go func() {
				defer l.svc.wg.Done()
				l.end(context.Background(), "unacked_overflow")
			}()
		}
		return errClosed
	}
	if c != nil {
		// An error means the connection is closing; the stanza stays in
		// the queue for a resumed connection or offline storage.
		if c.Send(el) == nil && sm.sentOne(l.svc.cfg.StreamManagement.RequestEvery) {
			_ = c.Send(sm.r)
		}
		l.armRequestLocked()
	}
	l.mu.Unlock()
	return nil
}

// armRequestLocked makes sure unacknowledged stanzas get an <r/> within
// request_after even when fewer than request_every were sent.
func (l *link) armRequestLocked() {
	sm := l.sm
	if sm.unrequested == 0 || sm.reqTimer != nil {
		return
	}
	sm.reqTimer = time.AfterFunc(time.Duration(l.svc.cfg.StreamManagement.RequestAfter), l.requestAck)
}

// requestAck is the request_after timer: it sends <r/> if stanzas are
// still unacknowledged and none was requested since they were sent.
func (l *link) requestAck() {
	l.mu.Lock()
	defer l.mu.Unlock()
	sm := l.sm
	if sm == nil {
		return
	}
	sm.reqTimer = nil
	if l.ended || l.c == nil || sm.unrequested == 0 || len(sm.queue) == 0 {
		return
	}
	sm.unrequested = 0
	_ = l.c.Send(sm.r)
}

// Close implements server.Conn: the server ends the session (replaced,
// account deleted, shutdown). A detached session ends at once.
func (l *link) Close(err *stanza.StreamError) {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.closing = true
	c := l.c
	l.mu.Unlock()
	if c != nil {
		c.Close(err)
		return
	}
	l.end(context.Background(), "closed")
}

// RemoteAddr implements server.Conn: the address of the current (or last)
// connection.
func (l *link) RemoteAddr() netip.AddrPort {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.remote
}

// Detached implements server.Detacher.
func (l *link) Detached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c == nil && !l.ended
}

// hasSM reports whether stream management is on; the connection then
// leaves its unwritten stanzas to the link.
func (l *link) hasSM() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sm != nil
}

// connEnded is called by a connection's reader when it finished. lost
// says the transport failed (not a clean close or a stream error): a
// resumable session then detaches; otherwise the session ends.
func (l *link) connEnded(ctx context.Context, c *conn, lost bool) {
	l.mu.Lock()
	if l.c != c {
		// Resumed on another connection meanwhile: nothing to do here.
		l.mu.Unlock()
		return
	}
	l.c = nil
	sm := l.sm
	if !lost || l.closing || l.ended || sm == nil || sm.id == "" || l.svc.isClosing() {
		l.mu.Unlock()
		l.end(ctx, "connection_closed")
		return
	}
	timeout := sm.timeout
	if l.sess.PushEnabled() {
		timeout = max(timeout, time.Duration(l.svc.cfg.StreamManagement.PushResumeTimeout))
	}
	if sm.reqTimer != nil {
		sm.reqTimer.Stop()
		sm.reqTimer = nil
	}
	// The connection's goroutine is still counted in svc.wg, so adding
	// here cannot race with Shutdown's Wait.
	l.svc.wg.Add(1)
	l.waiting = true
	l.expiry = time.AfterFunc(timeout, func() {
		l.svc.sm.expired.Inc()
		l.svc.log.Info("session not resumed in time; unacknowledged messages go to offline storage",
			"jid", l.sess.JID().String(), "timeout", timeout.String())
		l.end(context.Background(), "resume_timeout")
	})
	unacked := sm.elements()
	l.mu.Unlock()
	l.svc.sm.detached.Inc()
	c.logger().Info("connection lost; session kept for resumption", "timeout", timeout.String(), "unacked", len(unacked))
	server.Notify(ctx, l.svc.srv, server.SessionDetached, server.DetachedEvent{Session: l.sess, Unacked: unacked, Timeout: timeout})
}

// end ends the session: it leaves the session table, and the messages the
// client never acknowledged go to offline storage, stamped with the time
// they were first sent (XEP-0198 §4, XEP-0203).
func (l *link) end(ctx context.Context, why string) {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.ended = true
	l.c = nil
	if l.expiry != nil {
		l.expiry.Stop()
		l.expiry = nil
	}
	waiting := l.waiting
	l.waiting = false
	var q []unacked
	var id string
	var h uint32
	if sm := l.sm; sm != nil {
		q = sm.takeAll()
		id, h = sm.id, sm.inH.Load()
		if sm.reqTimer != nil {
			sm.reqTimer.Stop()
			sm.reqTimer = nil
		}
	}
	l.mu.Unlock()
	if id != "" {
		l.svc.forgetResumable(id, l, h)
	}
	if l.sess != nil {
		// The unacknowledged messages first: what features hold for the
		// session (CSI) is newer and goes to storage when it is unbound.
		// Undelivered does not look at sessions, so the order is safe.
		bare := l.sess.JID().Bare()
		host := l.sess.JID().Domain()
		n := 0
		for _, u := range q {
			if u.el.Local != "message" || isCarbon(u.el) || onlyChatState(u.el) {
				// Carbon copies: the original reached another resource.
				// Chat states are stale by now (XEP-0160 §4).
				continue
			}
			n++
			l.svc.srv.Undelivered(ctx, bare, withDelay(u.el, host, u.at, "Not acknowledged by the client"))
		}
		if n > 0 {
			l.svc.sm.undelivered.Add(float64(n))
			l.svc.log.Info("session ended with unacknowledged messages; they went to offline storage",
				"jid", l.sess.JID().String(), "messages", n, "reason", why)
		}
		l.svc.srv.Unbind(ctx, l.sess)
	}
	if waiting {
		l.svc.sm.detached.Dec()
		l.svc.wg.Done()
	}
}

// withDelay returns a copy of a message or presence with a XEP-0203 delay
// saying when it was first sent, unless it already has one from this
// host (el itself is shared and never changed). Other elements are
// returned as they are.
func withDelay(el *xml.Element, host string, at time.Time, why string) *xml.Element {
	if el.Local != "message" && el.Local != "presence" {
		return el
	}
	for _, c := range el.Elements() {
		if c.Space == nsDelay && c.Local == "delay" && c.Attr("from") == host {
			return el
		}
	}
	cp := el.Copy()
	d := xml.New(nsDelay, "delay").SetAttr("from", host).SetAttr("stamp", at.UTC().Format("2006-01-02T15:04:05.000Z"))
	d.Text = why
	cp.Append(d)
	return cp
}

// isCarbon reports whether a message is a XEP-0280 carbon copy.
func isCarbon(el *xml.Element) bool {
	return el.Child("urn:xmpp:carbons:2", "received") != nil || el.Child("urn:xmpp:carbons:2", "sent") != nil
}

// onlyChatState reports whether a message carries nothing but chat states
// (XEP-0085) and their companions (thread, hints, ids).
func onlyChatState(el *xml.Element) bool {
	state := false
	for _, c := range el.Elements() {
		switch {
		case c.Space == "http://jabber.org/protocol/chatstates":
			state = true
		case c.Space == xml.NSClient && c.Local == "thread", c.Space == "urn:xmpp:hints", c.Space == "urn:xmpp:sid:0":
		default:
			return false
		}
	}
	return state
}

// bareOf returns the bare JID of an authenticated connection.
func bareOf(c *conn) jid.JID { return c.info.User.Bare() }
