package c2s

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Stream management (XEP-0198 version 1.6.3): acknowledgements and
// resumption. The per-session state lives in smState, owned by the link
// (link.go), so that it survives the connection.

const (
	nsSM    = "urn:xmpp:sm:3"
	nsDelay = "urn:xmpp:delay"
)

// SMConfig is the [c2s.stream_management] table.
type SMConfig struct {
	Enabled           bool            `toml:"enabled" help:"Offer stream management (XEP-0198): the client and the server acknowledge stanzas, and a client whose connection drops can resume its session without losing anything."`
	ResumeTimeout     config.Duration `toml:"resume_timeout" min:"0s" help:"How long a session whose connection dropped stays resumable (a client may ask for less). Stanzas for it wait meanwhile; when it runs out, the messages the client never acknowledged go to offline storage. 0 turns resumption off (acknowledgements stay)."`
	PushResumeTimeout config.Duration `toml:"push_resume_timeout" min:"0s" help:"The same for sessions whose client enabled push notifications (XEP-0357) in that session: a push wakes the app, which then resumes."`
	MaxUnacked        int             `toml:"max_unacked" min:"10" help:"Stanzas kept until the client acknowledges them (their size is also bounded by c2s max_queue). A client that lets more pile up is disconnected with policy-violation, and the messages among them go to offline storage."`
	RequestEvery      int             `toml:"request_every" min:"1" help:"Ask the client to acknowledge (send <r/>) after this many unacknowledged stanzas..."`
	RequestAfter      config.Duration `toml:"request_after" min:"100ms" help:"...or this long after the first stanza not yet covered by a request, whichever comes first."`
}

// smDefaults are the [c2s.stream_management] defaults.
var smDefaults = SMConfig{
	Enabled:           true,
	ResumeTimeout:     config.Duration(10 * time.Minute),
	PushResumeTimeout: config.Duration(72 * time.Hour),
	MaxUnacked:        1000,
	RequestEvery:      5,
	RequestAfter:      config.Duration(10 * time.Second),
}

// unacked is a stanza sent but not yet acknowledged, with the time it
// was first sent.
type unacked struct {
	el *xml.Element
	at time.Time
	n  int // approximate size
}

// smState is one session's stream management state. inH is touched by
// the reader of the current connection only, and read when the session
// moves; everything else is guarded by the link's mutex.
type smState struct {
	id      string        // SM-ID for resumption; "" when not resumable
	timeout time.Duration // resumption timeout granted
	inH     atomic.Uint32 // stanzas handled from the client (XEP-0198 'h')

	sent        uint32 // stanzas sent to the client (mod 2^32)
	acked       uint32 // the client's last 'h'
	queue       []unacked
	qbytes      int
	unrequested int // stanzas sent since the last <r/>
	reqTimer    *time.Timer
	r           *xml.Element // <r/>, allocated once (never changed)
}

// add appends a stanza to the unacked queue; false when the queue is full.
func (sm *smState) add(el *xml.Element, now time.Time, maxN, maxBytes int) bool {
	n := approxSize(el)
	if len(sm.queue) >= maxN || sm.qbytes+n > maxBytes {
		return false
	}
	sm.queue = append(sm.queue, unacked{el: el, at: now, n: n})
	sm.qbytes += n
	sm.sent++
	return true
}

// sentOne counts a stanza written to the connection and reports whether
// it is time to ask for an acknowledgement.
func (sm *smState) sentOne(every int) bool {
	sm.unrequested++
	if sm.unrequested >= every {
		sm.unrequested = 0
		return true
	}
	return false
}

// ack applies the client's 'h': the stanzas it covers leave the queue.
// It returns false (changing nothing) when h acknowledges more stanzas
// than were sent.
func (sm *smState) ack(h uint32) bool {
	n := h - sm.acked // modulo 2^32 (XEP-0198 §4)
	if n > uint32(len(sm.queue)) {
		return false
	}
	for i := range int(n) {
		sm.qbytes -= sm.queue[i].n
	}
	rest := copy(sm.queue, sm.queue[n:])
	clear(sm.queue[rest:])
	sm.queue = sm.queue[:rest]
	if len(sm.queue) == 0 {
		if cap(sm.queue) > 16 {
			sm.queue = nil // do not keep a large array for an idle session
		}
		sm.qbytes = 0
		sm.unrequested = 0
	}
	sm.acked = h
	return true
}

// takeAll empties the queue and returns what it held.
func (sm *smState) takeAll() []unacked {
	q := sm.queue
	sm.queue, sm.qbytes = nil, 0
	return q
}

// elements returns the queued stanzas (shared; not to be changed).
func (sm *smState) elements() []*xml.Element {
	out := make([]*xml.Element, len(sm.queue))
	for i, u := range sm.queue {
		out[i] = u.el
	}
	return out
}

// newSMID returns an unguessable SM-ID (128 random bits). Resumption also
// checks that the resuming client authenticated as the session's account.
func newSMID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// markLost records that the transport failed, unless the server was
// already closing the stream (shutdown, slow reader, conflict).
func (c *conn) markLost() {
	c.qmu.Lock()
	if !c.closing {
		c.lost = true
	}
	c.qmu.Unlock()
}

// smFeature is the <sm/> stream feature, offered after authentication.
func (c *conn) smFeature() *xml.Element {
	if !c.svc.cfg.StreamManagement.Enabled {
		return nil
	}
	return xml.New(nsSM, "sm")
}

func smFailed(cond stanza.Condition, h *uint32) *xml.Element {
	f := xml.New(nsSM, "failed")
	if h != nil {
		f.SetAttr("h", strconv.FormatUint(uint64(*h), 10))
	}
	return f.Append(xml.New(stanza.NSStanzas, string(cond)))
}

func parseH(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("'h' must be a number from 0 to 4294967295, got %q", s)
	}
	return uint32(n), nil
}

// smBeforeBind handles stream management elements after authentication
// and before binding: <resume/> (instead of binding) and a premature
// <enable/>. It reports false for other elements.
func (c *conn) smBeforeBind(ctx context.Context, el *xml.Element) (bool, error) {
	if el.Space != nsSM {
		return false, nil
	}
	switch el.Local {
	case "resume":
		return true, c.resume(ctx, el)
	case "enable":
		// XEP-0198 §3: enable only after binding.
		return true, c.write(smFailed(stanza.UnexpectedRequest, nil))
	}
	return true, stanza.NewStreamError(stanza.StreamNotAuthorized, "Bind a resource (or resume a session) first.")
}

// boundElement handles one top-level element of a bound session: stream
// management elements here, everything else as before; stanzas are
// counted as handled once the server took them (XEP-0198 'h').
func (c *conn) boundElement(ctx context.Context, el *xml.Element) error {
	if c.replaced.Load() {
		// The session was resumed elsewhere: this connection no longer
		// speaks for it.
		return stanza.NewStreamError(stanza.StreamConflict, "This session was resumed on another connection.")
	}
	if el.Space == nsSM {
		return c.smBound(ctx, el)
	}
	err := c.stanza(ctx, el)
	if c.sm != nil && server.KindOf(el) != 0 {
		c.sm.inH.Add(1)
	}
	return err
}

// sendStanza sends a stanza the connection layer produced itself (ping,
// session establishment answer) through the link, so that stream
// management counts it.
func (c *conn) sendStanza(el *xml.Element) error {
	if c.link != nil {
		return c.link.Send(el)
	}
	return c.Send(el)
}

// smBound handles stream management elements on a bound session.
func (c *conn) smBound(ctx context.Context, el *xml.Element) error {
	l := c.link
	switch el.Local {
	case "enable":
		return c.smEnable(el)
	case "r":
		if c.sm == nil {
			return c.Send(smFailed(stanza.UnexpectedRequest, nil))
		}
		return c.Send(xml.New(nsSM, "a").SetAttr("h", strconv.FormatUint(uint64(c.sm.inH.Load()), 10)))
	case "a":
		if c.sm == nil {
			return nil // nothing to acknowledge; ignored
		}
		h, err := parseH(el.Attr("h"))
		if err != nil {
			return stanza.NewStreamError(stanza.InvalidXML, "<a/>: "+err.Error())
		}
		l.mu.Lock()
		ok := c.sm.ack(h)
		sent := c.sm.sent
		if ok && len(c.sm.queue) == 0 && c.sm.reqTimer != nil {
			c.sm.reqTimer.Stop()
			c.sm.reqTimer = nil
		}
		l.mu.Unlock()
		if !ok {
			return c.handledTooHigh(h, sent)
		}
		return nil
	case "resume":
		return c.Send(smFailed(stanza.UnexpectedRequest, nil))
	}
	return stanza.NewStreamError(stanza.UnsupportedStanzaType, fmt.Sprintf("<%s xmlns='%s'/> is not supported here.", el.Local, nsSM))
}

// handledTooHigh ends the stream when the client acknowledges stanzas it
// was never sent (XEP-0198 §6).
func (c *conn) handledTooHigh(h, sent uint32) error {
	c.svc.srv.CountDenied("sm_handled_count_too_high")
	text := fmt.Sprintf("You acknowledged %d stanzas, but only %d were sent to you.", h, sent)
	el := stanza.NewStreamError(stanza.StreamUndefined, text).Element()
	el.Append(xml.New(nsSM, "handled-count-too-high").
		SetAttr("h", strconv.FormatUint(uint64(h), 10)).SetAttr("send-count", strconv.FormatUint(uint64(sent), 10)))
	c.closeWithElement(el)
	return stanza.NewStreamError(stanza.StreamUndefined, text)
}

// closeWithElement is Close with a prepared <stream:error/>.
func (c *conn) closeWithElement(el *xml.Element) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	c.closing = true
	c.closeEl = el
	c.startWriterLocked()
	c.qmu.Unlock()
	c.wake()
}

// smEnable answers <enable/> on a bound session (once).
func (c *conn) smEnable(el *xml.Element) error {
	cfg := c.svc.cfg.StreamManagement
	if !cfg.Enabled {
		return c.Send(smFailed(stanza.FeatureNotImplemented, nil))
	}
	l := c.link
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sm != nil {
		// XEP-0198 §3: at most one enable per session.
		return c.Send(smFailed(stanza.UnexpectedRequest, nil))
	}
	sm := &smState{r: xml.New(nsSM, "r")}
	enabled := xml.New(nsSM, "enabled")
	if r := el.Attr("resume"); (r == "true" || r == "1") && cfg.ResumeTimeout > 0 {
		sm.timeout = time.Duration(cfg.ResumeTimeout)
		if m, err := strconv.ParseUint(el.Attr("max"), 10, 32); err == nil && m > 0 {
			sm.timeout = min(sm.timeout, time.Duration(m)*time.Second)
		}
		sm.id = newSMID()
		c.svc.addResumable(sm.id, l)
		enabled.SetAttr("id", sm.id).SetAttr("resume", "true").
			SetAttr("max", strconv.FormatInt(int64(sm.timeout/time.Second), 10))
	}
	// <enabled/> is queued under the link's lock: every stanza queued
	// after it is counted, every one before it is not (XEP-0198 §4).
	if err := c.Send(enabled); err != nil {
		return err
	}
	l.sm = sm
	c.sm = sm
	c.svc.sm.enabled.WithLabelValues(strconv.FormatBool(sm.id != "")).Inc()
	return nil
}

// resume takes over a session (XEP-0198 §5) instead of binding.
func (c *conn) resume(ctx context.Context, el *xml.Element) error {
	if !c.svc.cfg.StreamManagement.Enabled {
		return c.write(smFailed(stanza.FeatureNotImplemented, nil))
	}
	h, err := parseH(el.Attr("h"))
	if err != nil {
		c.svc.sm.resumeFailed.WithLabelValues("bad_request").Inc()
		return c.write(smFailed(stanza.BadRequest, nil))
	}
	previd := el.Attr("previd")
	l := c.svc.resumable(previd)
	if l == nil || l.sess.JID().Bare() != bareOf(c) {
		// Unknown, expired, or another account's: the same answer for
		// all, so SM-IDs of other accounts cannot be probed.
		c.svc.sm.resumeFailed.WithLabelValues("not_found").Inc()
		c.logger().Info("stream resumption failed: no such session", "user", bareOf(c).String())
		var hp *uint32
		if old, ok := c.svc.expiredH(previd, bareOf(c).String()); ok {
			hp = &old
		}
		return c.write(smFailed(stanza.ItemNotFound, hp))
	}

	l.mu.Lock()
	if l.ended || l.closing || l.sm == nil {
		l.mu.Unlock()
		c.svc.sm.resumeFailed.WithLabelValues("not_found").Inc()
		return c.write(smFailed(stanza.ItemNotFound, nil))
	}
	sm := l.sm
	if !sm.ack(h) {
		sent := sm.sent
		l.mu.Unlock()
		c.svc.sm.resumeFailed.WithLabelValues("handled_count_too_high").Inc()
		return c.handledTooHigh(h, sent)
	}
	old := l.c
	l.c = c
	l.remote = c.remote
	c.logID.Store(&logID{sid: l.sess.ID(), jid: l.sess.JID().String()})
	if l.expiry != nil {
		l.expiry.Stop()
		l.expiry = nil
	}
	waiting := l.waiting
	l.waiting = false
	_ = c.raw.SetDeadline(time.Time{})
	c.link, c.sm, c.sess = l, sm, l.sess
	c.state = stateBound
	// <resumed/> first, then every unacknowledged stanza again, all under
	// the lock: a stanza routed meanwhile waits and comes after them.
	err = c.Send(xml.New(nsSM, "resumed").SetAttr("previd", previd).
		SetAttr("h", strconv.FormatUint(uint64(sm.inH.Load()), 10)))
	host := l.sess.JID().Domain()
	resent := len(sm.queue)
	for _, u := range sm.queue {
		if err == nil {
			err = c.Send(withDelay(u.el, host, u.at, "Resent after stream resumption"))
		}
	}
	sm.unrequested = resent
	if resent > 0 {
		_ = c.Send(sm.r)
		sm.unrequested = 0
	}
	l.mu.Unlock()
	if old != nil {
		old.replaced.Store(true)
		old.Close(stanza.NewStreamError(stanza.StreamConflict, "This session was resumed on another connection."))
	}
	if waiting {
		c.svc.sm.detached.Dec()
		c.svc.wg.Done()
	}
	c.svc.sm.resumed.Inc()
	c.logger().Info("session resumed", "resent", resent, "client_h", h)
	server.Notify(ctx, c.svc.srv, server.SessionResumed, l.sess)
	return err
}

// maxRemembered bounds the memory of ended SM sessions (for the 'h' of a
// late resumption attempt, XEP-0198 §5).
const maxRemembered = 4096

type endedSM struct {
	user string
	h    uint32
}

// smRegistry holds the resumable sessions by SM-ID, and remembers the
// final 'h' of recently ended ones.
type smRegistry struct {
	live  map[string]*link
	ended map[string]endedSM
	order []string // ended ids, oldest first
}

func (svc *Service) addResumable(id string, l *link) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.smReg.live == nil {
		svc.smReg.live = make(map[string]*link)
	}
	svc.smReg.live[id] = l
}

func (svc *Service) resumable(id string) *link {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.smReg.live[id]
}

func (svc *Service) forgetResumable(id string, l *link, h uint32) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	r := &svc.smReg
	if r.live[id] == l {
		delete(r.live, id)
	}
	if r.ended == nil {
		r.ended = make(map[string]endedSM)
	}
	if len(r.order) >= maxRemembered {
		delete(r.ended, r.order[0])
		r.order = r.order[1:]
	}
	r.ended[id] = endedSM{user: l.sess.JID().Bare().String(), h: h}
	r.order = append(r.order, id)
}

func (svc *Service) expiredH(id, user string) (uint32, bool) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	e, ok := svc.smReg.ended[id]
	if !ok || e.user != user {
		return 0, false
	}
	return e.h, true
}

// isClosing reports whether Shutdown started.
func (svc *Service) isClosing() bool {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.closing
}

// endResumable ends every resumable session (at shutdown): detached ones
// at once, their messages to offline storage; attached ones when their
// connection closes.
func (svc *Service) endResumable() {
	svc.mu.Lock()
	links := make([]*link, 0, len(svc.smReg.live))
	for _, l := range svc.smReg.live {
		links = append(links, l)
	}
	svc.mu.Unlock()
	for _, l := range links {
		l.Close(stanza.NewStreamError(stanza.SystemShutdown, "The server is shutting down; please reconnect later."))
	}
}
