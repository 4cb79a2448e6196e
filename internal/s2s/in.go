package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// inConn is an incoming server stream.
type inConn struct {
	svc    *Service
	c      *conn
	direct bool

	// Set by the serving goroutine only.
	streamID string
	to       string // the local host the stream is for
	from     string // the peer's domain from its stream header ("" if none)
	sasl     bool   // authenticated with SASL EXTERNAL
	verified bool   // answered a db:verify (a verification-only stream)

	authDeadline time.Time // when an unauthenticated stream times out

	mu      sync.Mutex
	bidiReq bool     // the peer asked for a bidirectional stream
	events  []func() // work for the serving goroutine (see post)
	// authed maps an authenticated pair (local, remote) to its mechanism.
	authed map[pair]string
}

func (ic *inConn) isAuthed() bool {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return len(ic.authed) > 0
}

// authorized reports whether stanzas from remote to local may come on this
// stream, and whether remote authenticated at all.
func (ic *inConn) authorized(local, remote string) (ok, fromKnown bool) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if _, ok := ic.authed[pair{local, remote}]; ok {
		return true, true
	}
	for p := range ic.authed {
		if p.remote == remote {
			return false, true
		}
	}
	return false, false
}

// authorize records an authenticated pair; on a bidirectional stream it
// also becomes a route for stanzas from local to remote.
func (ic *inConn) authorize(p pair, mech string) {
	svc := ic.svc
	ic.mu.Lock()
	first := len(ic.authed) == 0
	ic.authed[p] = mech
	bidi := ic.bidiReq
	ic.mu.Unlock()
	if first {
		_ = ic.c.shaped.SetDeadline(time.Time{})
		ic.c.authenticated(p.local, p.remote)
	}
	ic.c.touch()
	svc.metrics.outcome("in", p.remote, mech)
	ic.c.log.Info("s2s: remote server authenticated", "local", p.local, "remote", p.remote, "mechanism", mech, "bidi", bidi)
	if bidi {
		svc.mu.Lock()
		if !svc.closing {
			svc.bidiIn[p] = ic
		}
		svc.mu.Unlock()
	}
}

// serve runs the stream until it ends.
func (ic *inConn) serve(ctx context.Context) {
	svc := ic.svc
	c := ic.c
	ic.authDeadline = svc.now().Add(time.Duration(svc.cfg.ConnectTimeout))
	_ = c.shaped.SetDeadline(ic.authDeadline)
	err := ic.run(ctx)
	svc.retireIn(ic)
	svc.mu.Lock()
	delete(svc.ins, ic)
	for k, w := range svc.verifies {
		if w == ic {
			delete(svc.verifies, k)
		}
	}
	svc.mu.Unlock()
	if se := streamErrorOf(err); se != nil && ic.verified && !ic.isAuthed() && isTimeout(err) {
		// A stream that only asked us to verify dialback keys: done.
		c.closeNow(nil)
	} else if se != nil && !isGone(err) {
		if se.Condition == stanza.ConnectionTimeout && !ic.isAuthed() {
			svc.srv.CountDenied("s2s_auth_timeout")
			svc.metrics.outcome("in", orUnknown(ic.from), "timeout")
			se = stanza.NewStreamError(stanza.ConnectionTimeout, "Authentication took too long.")
		}
		c.log.Info("s2s: stream error", "condition", string(se.Condition), "text", se.Text, "remote", ic.from)
		c.closeNow(se)
	} else if err != nil && !isGone(err) {
		c.log.Debug("s2s: connection ended", "err", err)
	} else {
		c.closeNow(nil)
	}
	for _, it := range c.finish() {
		svc.bounce(context.WithoutCancel(ctx), it, stanza.RemoteServerTimeout, "The connection closed before the stanza was sent.")
	}
	c.log.Debug("s2s: incoming connection closed", "remote", ic.from)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// run negotiates and reads; it returns why the stream ended.
func (ic *inConn) run(ctx context.Context) error {
	svc := ic.svc
	c := ic.c
	if ic.direct {
		tc := tls.Server(c.shaped, svc.serverTLS())
		hctx, cancel := context.WithTimeout(ctx, time.Duration(svc.cfg.ConnectTimeout))
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.log.Info("s2s: direct TLS handshake failed", "err", err)
			svc.metrics.outcome("in", "unknown", "tls")
			return nil
		}
		c.tls, c.nc = tc, tc
		c.dec.Reset(c.nc)
	}
	for {
		err := ic.stream(ctx)
		if err == errRestart {
			continue
		}
		return err
	}
}

var errRestart = errors.New("s2s: stream restart")

// stream runs one stream (until a restart or the end).
func (ic *inConn) stream(ctx context.Context) error {
	svc := ic.svc
	c := ic.c
	h, err := c.dec.Header()
	if err != nil {
		var xe *xml.Error
		if errors.As(err, &xe) {
			_ = c.writeRaw(streamHeader(svc.srv.Hosts()[0], "", server.NewSessionID()))
		}
		return err
	}
	to, from := h.Attr("to"), h.Attr("from")
	ic.streamID = server.NewSessionID()
	myFrom := svc.srv.Hosts()[0]
	if d, err := normDomain(to); err == nil && svc.srv.Host(d) != nil {
		myFrom = d
	}
	if err := c.writeRaw(streamHeader(myFrom, from, ic.streamID)); err != nil {
		return err
	}
	if h.DefaultNS != xml.NSServer {
		return stanza.NewStreamError(stanza.InvalidNamespace, "The stream's default namespace must be jabber:server.")
	}
	if v := h.Attr("version"); v == "" || v[0] < '1' {
		return stanza.NewStreamError(stanza.UnsupportedVersion, "This server requires XMPP 1.0 with TLS.")
	}
	d, err := normDomain(to)
	if err != nil || svc.srv.Host(d) == nil {
		svc.srv.CountDenied("s2s_host_unknown")
		return stanza.NewStreamError(stanza.HostUnknown, fmt.Sprintf("%q is not served here.", to))
	}
	if ic.to != "" && ic.to != d {
		return stanza.NewStreamError(stanza.HostUnknown, "The stream's 'to' changed on restart.")
	}
	ic.to = d
	if from != "" {
		f, err := normDomain(from)
		if err != nil {
			return stanza.NewStreamError(stanza.InvalidFrom, fmt.Sprintf("%q is not a domain.", from))
		}
		if svc.srv.Host(f) != nil {
			svc.srv.CountDenied("s2s_invalid_from")
			return stanza.NewStreamError(stanza.InvalidFrom, f+" is served here; another server cannot speak for it.")
		}
		if svc.blocked(f) {
			svc.srv.CountDenied("s2s_blocked_domain")
			svc.metrics.outcome("in", f, "blocked")
			c.log.Info("s2s: refused a connection from a blocked domain", "remote", f)
			return stanza.NewStreamError(stanza.StreamPolicyViolation, "This server does not federate with "+f+".")
		}
		ic.from = f
	}
	if err := c.write(ic.features()); err != nil {
		return err
	}
	for {
		el, err := c.dec.Next()
		if err != nil {
			if isTimeout(err) && ic.runEvents() {
				continue // woken up by post
			}
			return err
		}
		if err := ic.handle(ctx, el); err != nil {
			return err
		}
		ic.runEvents()
		if c.dec.Buffered() == 0 {
			c.dec.Idle()
		}
	}
}

// post runs f on the serving goroutine, which owns the decoder and the
// deadlines: it is woken from its read by an expired read deadline.
func (ic *inConn) post(f func()) {
	ic.mu.Lock()
	ic.events = append(ic.events, f)
	ic.mu.Unlock()
	_ = ic.c.shaped.SetReadDeadline(time.Now())
}

// runEvents runs posted work and restores the read deadline; it reports
// whether there was any.
func (ic *inConn) runEvents() bool {
	ic.mu.Lock()
	ev := ic.events
	ic.events = nil
	ic.mu.Unlock()
	if len(ev) == 0 {
		return false
	}
	for _, f := range ev {
		f()
	}
	if ic.isAuthed() {
		_ = ic.c.shaped.SetReadDeadline(time.Time{})
	} else {
		_ = ic.c.shaped.SetReadDeadline(ic.authDeadline)
	}
	return true
}

// features are the stream features for the stream's current state.
func (ic *inConn) features() *xml.Element {
	svc := ic.svc
	f := xml.New(xml.NSStream, "features")
	if ic.c.tls == nil {
		f.Append(xml.New(nsTLS, "starttls").Append(xml.New(nsTLS, "required")))
		return f
	}
	if ic.sasl {
		return f
	}
	chain := ic.c.peerChain()
	if len(chain) > 0 {
		st := verifyCert(chain, svc.roots, ic.from, svc.now())
		if st.chainErr == nil && (ic.from == "" || st.nameErr == nil) {
			f.Append(xml.New(nsSASL, "mechanisms").AppendText(nsSASL, "mechanism", "EXTERNAL"))
		}
	}
	f.Append(xml.New(nsDialbackFeature, "dialback").Append(xml.New(nsDialbackFeature, "errors")))
	if svc.cfg.Bidi {
		f.Append(xml.New(nsBidiFeature, "bidi"))
	}
	return f
}

// handle processes one top-level element.
func (ic *inConn) handle(ctx context.Context, el *xml.Element) error {
	svc := ic.svc
	c := ic.c
	switch {
	case el.Space == nsTLS && el.Local == "starttls":
		if c.tls != nil {
			return stanza.NewStreamError(stanza.StreamPolicyViolation, "TLS is already active.")
		}
		if err := c.write(xml.New(nsTLS, "proceed")); err != nil {
			return err
		}
		tc := tls.Server(c.shaped, svc.serverTLS())
		hctx, cancel := context.WithTimeout(ctx, time.Duration(svc.cfg.ConnectTimeout))
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			svc.metrics.outcome("in", orUnknown(ic.from), "tls")
			c.log.Info("s2s: TLS handshake failed", "remote", ic.from, "err", err)
			return fmt.Errorf("s2s: TLS handshake: %w", err)
		}
		c.tls, c.nc = tc, tc
		c.dec.Reset(c.nc)
		return errRestart
	case c.tls == nil:
		svc.srv.CountDenied("s2s_no_tls")
		svc.metrics.outcome("in", orUnknown(ic.from), "no_tls")
		return stanza.NewStreamError(stanza.StreamPolicyViolation, "This server requires encryption: use STARTTLS first.")
	case el.Space == nsBidi && el.Local == "bidi":
		ic.mu.Lock()
		if svc.cfg.Bidi && len(ic.authed) == 0 {
			ic.bidiReq = true
		}
		ic.mu.Unlock()
		return nil
	case el.Space == nsSASL && el.Local == "auth":
		return ic.external(el)
	case el.Space == nsDialback && el.Local == "result":
		return ic.dialbackResult(el)
	case el.Space == nsDialback && el.Local == "verify":
		return ic.dialbackVerify(el)
	case el.Space == xml.NSServer && (el.Local == "message" || el.Local == "presence" || el.Local == "iq"):
		if !ic.isAuthed() {
			svc.srv.CountDenied("s2s_not_authenticated")
			return stanza.NewStreamError(stanza.StreamNotAuthorized, "Authenticate before sending stanzas.")
		}
		return svc.inbound(ctx, c, el, ic.authorized)
	case el.Space == xml.NSStream && el.Local == "error":
		c.log.Info("s2s: the remote server closed the stream", "remote", ic.from, "error", describeStreamError(el))
		return xml.ErrStreamClosed
	default:
		return stanza.NewStreamError(stanza.UnsupportedStanzaType, fmt.Sprintf("<%s xmlns='%s'/> is not supported here.", el.Local, el.Space))
	}
}

func saslFailure(cond, text string) *xml.Element {
	f := xml.New(nsSASL, "failure").Append(xml.New(nsSASL, cond))
	if text != "" {
		f.Append(&xml.Element{Space: nsSASL, Local: "text", Text: text})
	}
	return f
}

// external runs SASL EXTERNAL (XEP-0178): the certificate must be valid
// for the claimed domain.
func (ic *inConn) external(el *xml.Element) error {
	svc := ic.svc
	c := ic.c
	if ic.sasl {
		return stanza.NewStreamError(stanza.StreamPolicyViolation, "Already authenticated.")
	}
	if el.Attr("mechanism") != "EXTERNAL" {
		return c.write(saslFailure("invalid-mechanism", "Only EXTERNAL is offered to servers."))
	}
	authzid := ""
	if el.Text != "" && el.Text != "=" {
		b, err := base64.StdEncoding.DecodeString(el.Text)
		if err != nil {
			return c.write(saslFailure("incorrect-encoding", ""))
		}
		authzid = string(b)
	}
	id := authzid
	if id == "" {
		id = ic.from
	}
	d, err := normDomain(id)
	if err != nil {
		return c.write(saslFailure("invalid-authzid", "Say which domain you are."))
	}
	if svc.srv.Host(d) != nil {
		svc.srv.CountDenied("s2s_invalid_from")
		return stanza.NewStreamError(stanza.InvalidFrom, d+" is served here; another server cannot speak for it.")
	}
	if authzid != "" && ic.from != "" && d != ic.from {
		return c.write(saslFailure("invalid-authzid", "The authorization identity differs from the stream's 'from'."))
	}
	if svc.blocked(d) {
		svc.srv.CountDenied("s2s_blocked_domain")
		svc.metrics.outcome("in", d, "blocked")
		return stanza.NewStreamError(stanza.StreamPolicyViolation, "This server does not federate with "+d+".")
	}
	st := verifyCert(c.peerChain(), svc.roots, d, svc.now())
	if !st.valid() {
		c.log.Info("s2s: SASL EXTERNAL refused", "remote", d, "problem", st.problem())
		return c.write(saslFailure("not-authorized", "Your certificate is not valid for "+d+": "+st.problem()+"."))
	}
	if err := c.write(xml.New(nsSASL, "success")); err != nil {
		return err
	}
	ic.sasl = true
	ic.from = d
	ic.authorize(pair{ic.to, d}, "external")
	c.dec.Reset(c.nc)
	return errRestart
}

// dialbackResult handles a dialback request (XEP-0220 §2.1.2): the peer
// claims to be 'from'. A certificate valid for it is enough (XEP-0344);
// otherwise, if the policy allows, the key is checked with the
// authoritative server.
func (ic *inConn) dialbackResult(el *xml.Element) error {
	svc := ic.svc
	c := ic.c
	if el.Attr("type") != "" {
		// An answer on an incoming stream is the "unsolicited dialback"
		// of XEP-0288 §5: ignore it.
		return nil
	}
	local, err1 := normDomain(el.Attr("to"))
	remote, err2 := normDomain(el.Attr("from"))
	if err1 != nil || err2 != nil {
		return stanza.NewStreamError(stanza.ImproperAddressing, "A dialback request needs valid 'from' and 'to' domains.")
	}
	if svc.srv.Host(local) == nil {
		_ = c.writeRaw(dbElement("result", local, remote, "", "error", "", stanza.ItemNotFound))
		return nil
	}
	if svc.srv.Host(remote) != nil {
		svc.srv.CountDenied("s2s_invalid_from")
		return stanza.NewStreamError(stanza.InvalidFrom, remote+" is served here; another server cannot speak for it.")
	}
	if svc.blocked(remote) {
		svc.srv.CountDenied("s2s_blocked_domain")
		svc.metrics.outcome("in", remote, "blocked")
		return stanza.NewStreamError(stanza.StreamPolicyViolation, "This server does not federate with "+remote+".")
	}
	if ok, _ := ic.authorized(local, remote); ok {
		return c.writeRaw(dbElement("result", local, remote, "", "valid", "", ""))
	}
	st := verifyCert(c.peerChain(), svc.roots, remote, svc.now())
	if st.valid() {
		ic.authorize(pair{local, remote}, "dialback_cert")
		return c.writeRaw(dbElement("result", local, remote, "", "valid", "", ""))
	}
	if svc.requireValid(remote) {
		svc.srv.CountDenied("s2s_untrusted_cert")
		svc.metrics.outcome("in", remote, "untrusted")
		c.log.Warn("s2s: refused a remote server whose certificate is not valid", "remote", remote, "problem", st.problem())
		svc.notify.notify(context.Background(), trustFailure{
			local: local, remote: remote, incoming: true, problem: "its certificate is not accepted (" + st.problem() + ")",
			fingerprint: st.fingerprint(),
			advice:      fmt.Sprintf("Stanzas from %s are refused until its administrators fix this; to accept it anyway with dialback, add it to [s2s] insecure_domains.", remote),
		})
		return stanza.NewStreamError(stanza.StreamNotAuthorized, fmt.Sprintf("Your certificate is not valid for %s (%s), and this server requires valid certificates.", remote, st.problem()))
	}
	key := el.AllText()
	if key == "" {
		return stanza.NewStreamError(stanza.ImproperAddressing, "A dialback request needs a key.")
	}
	k := verifyKey{local: local, remote: remote, id: ic.streamID}
	svc.mu.Lock()
	svc.verifies[k] = ic
	svc.mu.Unlock()
	b := dbElement("verify", local, remote, ic.streamID, "", key, "")
	if err := svc.sendVerify(pair{local, remote}, b); err != nil {
		svc.verifyDone(k, "error")
	}
	return nil
}

// dialbackVerify answers as the authoritative server (XEP-0220 §2.3):
// is this key one we generated?
func (ic *inConn) dialbackVerify(el *xml.Element) error {
	svc := ic.svc
	receiving, originating, id := el.Attr("from"), el.Attr("to"), el.Attr("id")
	if el.Attr("type") != "" {
		return nil
	}
	typ := "invalid"
	if svc.srv.Host(originating) != nil && id != "" {
		if hmacEqual(svc.dialbackKey(receiving, originating, id), el.AllText()) {
			typ = "valid"
		}
	}
	if typ == "invalid" {
		svc.srv.CountDenied("s2s_dialback_key_invalid")
		ic.c.log.Warn("s2s: asked to verify a dialback key that is not ours; someone may be impersonating this server",
			"receiving", receiving, "claimed", originating)
	}
	ic.verified = true
	return ic.c.writeRaw(dbElement("verify", originating, receiving, id, typ, "", ""))
}

// dialbackVerified is called with the authoritative server's answer (on
// another connection's goroutine).
func (ic *inConn) dialbackVerified(k verifyKey, typ string) {
	ic.post(func() { ic.dialbackAnswer(k, typ) })
}

func (ic *inConn) dialbackAnswer(k verifyKey, typ string) {
	svc := ic.svc
	switch typ {
	case "valid":
		ic.authorize(pair{k.local, k.remote}, "dialback")
		_ = ic.c.send(qitem{b: dbElement("result", k.local, k.remote, "", "valid", "", "")})
	case "invalid":
		svc.srv.CountDenied("s2s_dialback_invalid")
		svc.metrics.outcome("in", k.remote, "auth_failed")
		ic.c.log.Warn("s2s: the authoritative server denied a dialback key", "remote", k.remote)
		_ = ic.c.send(qitem{b: dbElement("result", k.local, k.remote, "", "invalid", "", "")})
	default:
		svc.metrics.outcome("in", k.remote, "auth_failed")
		_ = ic.c.send(qitem{b: dbElement("result", k.local, k.remote, "", "error", "", stanza.RemoteServerNotFound)})
	}
}
