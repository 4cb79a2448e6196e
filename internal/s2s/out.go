package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// outConn is the outgoing connection of one domain pair: stanzas queue
// while it is set up, then go out in order; when setting it up fails they
// bounce.
type outConn struct {
	svc *Service
	p   pair

	mu           sync.Mutex
	pending      []qitem
	pendingBytes int
	c            *conn   // set once authenticated: stanzas go to its queue
	ready        *conn   // set once dialback elements may be sent on it
	verifies     []qitem // db:verify waiting for ready
	dead         bool
	bidi         bool
	raw          *conn // the connection being negotiated (for Shutdown)
}

// outError is why an outgoing connection failed.
type outError struct {
	outcome string // metric label
	cond    stanza.Condition
	text    string // for the bounce and the log
	trust   bool   // an encryption or certificate problem: tell the admins
	status  certStatus
	err     error
}

func (e *outError) Error() string {
	if e.err != nil {
		return e.text + ": " + e.err.Error()
	}
	return e.text
}

func (e *outError) Unwrap() error { return e.err }

// established returns the authenticated connection, or nil.
func (oc *outConn) established() *conn {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return oc.c
}

// current returns whatever connection exists (for shutdown).
func (oc *outConn) current() *conn {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.c != nil {
		return oc.c
	}
	return oc.raw
}

// enqueue queues a stanza. It returns errClosed when the connection is
// gone (the caller retries on a new one) and errQueueFull over the limit.
func (oc *outConn) enqueue(it qitem) error {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.dead {
		return errClosed
	}
	if oc.c != nil {
		return oc.c.send(it)
	}
	if oc.pendingBytes+len(it.b) > int(oc.svc.cfg.MaxQueue) {
		return errQueueFull
	}
	oc.pending = append(oc.pending, it)
	oc.pendingBytes += len(it.b)
	return nil
}

// sendVerify queues a db:verify for the authoritative server.
func (oc *outConn) sendVerify(b []byte) error {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.dead {
		return errClosed
	}
	if oc.ready != nil {
		return oc.ready.send(qitem{b: b})
	}
	oc.verifies = append(oc.verifies, qitem{b: b})
	return nil
}

// markReady lets queued db:verify elements go out on c.
func (oc *outConn) markReady(c *conn) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.ready != nil {
		return
	}
	oc.ready = c
	for _, it := range oc.verifies {
		_ = c.send(it)
	}
	oc.verifies = nil
}

// run sets the connection up, flushes the queue, then reads until the
// connection ends.
func (oc *outConn) run(ctx context.Context) {
	svc := oc.svc
	log := svc.log.With("local", oc.p.local, "remote", oc.p.remote, "direction", "out")
	started := svc.now()
	c, mech, err := oc.connect(ctx)
	if err != nil {
		oc.fail(ctx, err)
		return
	}
	svc.metrics.conns.WithLabelValues("out").Inc()
	defer svc.metrics.conns.WithLabelValues("out").Dec()
	svc.metrics.outcome("out", oc.p.remote, mech)
	c.log = c.log.With("local", oc.p.local, "remote", oc.p.remote)
	log.Info("s2s: connected", "mechanism", mech, "bidi", oc.bidi, "addr", c.remote.String(),
		"took", svc.now().Sub(started).Round(time.Millisecond).String())
	var refused []qitem
	oc.mu.Lock()
	oc.c = c
	for _, it := range oc.pending {
		if err := c.send(it); err != nil {
			refused = append(refused, it)
		}
	}
	oc.pending, oc.pendingBytes = nil, 0
	oc.mu.Unlock()
	for _, it := range refused {
		svc.bounce(ctx, it, stanza.ResourceConstraint, fmt.Sprintf("Too much is waiting for %s; try again later.", oc.p.remote))
	}
	oc.markReady(c)

	err = oc.read(ctx, c)
	svc.retireOut(oc)
	oc.mu.Lock()
	oc.dead = true
	oc.mu.Unlock()
	if se := streamErrorOf(err); se != nil && !isGone(err) {
		if errors.As(err, new(*stanza.StreamError)) && se.Condition != stanza.ConnectionTimeout {
			c.log.Info("s2s: closing the stream", "condition", string(se.Condition), "text", se.Text)
		}
		c.closeNow(se)
	} else if err != nil && !isGone(err) {
		c.log.Debug("s2s: connection ended", "err", err)
	} else {
		c.closeNow(nil)
	}
	for _, it := range c.finish() {
		svc.bounce(ctx, it, stanza.RemoteServerTimeout, fmt.Sprintf("The connection to %s closed before the stanza was sent.", oc.p.remote))
	}
	svc.failVerifies(oc.p)
	log.Info("s2s: connection closed")
}

// fail bounces everything queued and tells who needs to know.
func (oc *outConn) fail(ctx context.Context, err error) {
	svc := oc.svc
	svc.retireOut(oc)
	oc.mu.Lock()
	oc.dead = true
	pending := oc.pending
	oc.pending, oc.verifies = nil, nil
	oc.mu.Unlock()
	var oe *outError
	if !errors.As(err, &oe) {
		oe = &outError{outcome: "connect", cond: stanza.RemoteServerNotFound, text: "could not connect", err: err}
	}
	if ctx.Err() != nil {
		oe = &outError{outcome: "closed", cond: stanza.RemoteServerTimeout, text: "the server is shutting down"}
	}
	svc.metrics.outcome("out", oc.p.remote, oe.outcome)
	svc.log.Warn("s2s: could not connect to a remote server", "local", oc.p.local, "remote", oc.p.remote,
		"outcome", oe.outcome, "err", oe.Error(), "bounced", len(pending))
	if oe.trust {
		svc.notify.notify(ctx, trustFailure{
			local: oc.p.local, remote: oc.p.remote, problem: oe.text, fingerprint: oe.status.fingerprint(),
			advice: trustAdvice(oe, oc.p.remote),
		})
	}
	text := fmt.Sprintf("Could not reach %s: %s.", oc.p.remote, oe.text)
	for _, it := range pending {
		svc.bounce(ctx, it, oe.cond, text)
	}
	svc.failVerifies(oc.p)
}

func trustAdvice(oe *outError, remote string) string {
	if oe.outcome == "untrusted" {
		return fmt.Sprintf("Stanzas to %s bounce until its administrators fix this; to accept it anyway with dialback, add it to [s2s] insecure_domains.", remote)
	}
	return fmt.Sprintf("Stanzas to %s bounce until this is fixed.", remote)
}

// connect resolves the remote domain and tries its targets in order until
// one connection is encrypted and authenticated. It returns the
// authentication mechanism used ("external", "dialback").
func (oc *outConn) connect(ctx context.Context) (*conn, string, error) {
	svc := oc.svc
	ctx, cancel := context.WithTimeout(ctx, time.Duration(svc.cfg.ConnectTimeout))
	defer cancel()
	targets, err := lookupTargets(ctx, svc.res, oc.p.remote)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", &outError{outcome: "timeout", cond: stanza.RemoteServerTimeout, text: "looking up its address timed out", err: err}
		}
		return nil, "", &outError{outcome: "dns", cond: stanza.RemoteServerNotFound, text: "its address could not be found in DNS", err: err}
	}
	var last error
	for _, t := range targets {
		addrs, err := svc.res.LookupNetIP(ctx, "ip", t.host)
		if err != nil || len(addrs) == 0 {
			last = &outError{outcome: "dns", cond: stanza.RemoteServerNotFound, text: fmt.Sprintf("%s has no address in DNS", t.host), err: err}
			continue
		}
		for _, a := range addrs {
			if ctx.Err() != nil {
				break
			}
			addr := netip.AddrPortFrom(a.Unmap(), t.port)
			var d net.Dialer
			raw, err := d.DialContext(ctx, "tcp", addr.String())
			if err != nil {
				last = &outError{outcome: "connect", cond: stanza.RemoteServerNotFound, text: "could not connect to " + addr.String(), err: err}
				continue
			}
			c, mech, err := oc.negotiate(ctx, raw, t)
			if err == nil {
				return c, mech, nil
			}
			last = err
			var oe *outError
			if errors.As(err, &oe) && (oe.outcome == "untrusted" || oe.outcome == "auth_failed" || oe.outcome == "refused") {
				return nil, "", err // the next target is the same server
			}
		}
	}
	if ctx.Err() != nil {
		return nil, "", &outError{outcome: "timeout", cond: stanza.RemoteServerTimeout,
			text: fmt.Sprintf("no connection within %s", time.Duration(svc.cfg.ConnectTimeout)), err: last}
	}
	if last == nil {
		last = &outError{outcome: "dns", cond: stanza.RemoteServerNotFound, text: "no server to connect to"}
	}
	return nil, "", last
}

// negotiate runs the initiating side of a server stream on raw.
func (oc *outConn) negotiate(ctx context.Context, raw net.Conn, t target) (_ *conn, mech string, err error) {
	svc := oc.svc
	local, remote := oc.p.local, oc.p.remote
	c := svc.newConn(raw, false)
	c.log = c.log.With("local", local, "remote", remote)
	oc.mu.Lock()
	oc.raw = c
	oc.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.shaped.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.shaped.SetDeadline(time.Now()) })
	defer stop()
	defer func() {
		if err != nil {
			var oe *outError
			if errors.As(err, &oe) && oe.outcome == "untrusted" {
				c.closeNow(stanza.NewStreamError(stanza.StreamPolicyViolation, "Your certificate is not valid for "+remote+": "+oe.status.problem()))
			} else {
				_ = c.writeRaw([]byte(xml.StreamClose))
			}
			_ = c.finish()
			oc.mu.Lock()
			oc.ready = nil
			oc.mu.Unlock()
		}
	}()
	fail := func(outcome, text string, err error) error {
		cond := stanza.RemoteServerNotFound
		if isTimeout(err) {
			outcome, cond = "timeout", stanza.RemoteServerTimeout
		}
		return &outError{outcome: outcome, cond: cond, text: text, err: err, trust: outcome == "tls" || outcome == "no_tls"}
	}
	startTLS := func() error {
		tc := tls.Client(c.shaped, svc.clientTLS(local, remote, t.direct))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("tls", "the TLS handshake failed", err)
		}
		c.tls, c.nc = tc, tc
		c.dec.Reset(c.nc)
		return nil
	}
	if t.direct {
		if err := startTLS(); err != nil {
			return nil, "", err
		}
	}
	var status certStatus
	checked, authed, triedExternal := false, false, false
	for {
		if err := c.writeRaw(streamHeader(local, remote, "")); err != nil {
			return nil, "", fail("connect", "writing the stream header failed", err)
		}
		h, err := c.dec.Header()
		if err != nil {
			return nil, "", fail("stream_error", "the stream did not open", err)
		}
		if h.DefaultNS != xml.NSServer {
			return nil, "", fail("stream_error", "the peer does not speak the jabber:server protocol", nil)
		}
		streamID := h.Attr("id")
		if v := h.Attr("version"); v == "" || v[0] < '1' {
			return nil, "", fail("no_tls", "the server does not support XMPP 1.0 (and so no TLS)", nil)
		}
		features, err := c.dec.Next()
		if err != nil {
			return nil, "", fail("stream_error", "no stream features", err)
		}
		if features.Space != xml.NSStream || features.Local != "features" {
			if features.Space == xml.NSStream && features.Local == "error" {
				return nil, "", &outError{outcome: "refused", cond: stanza.RemoteServerNotFound,
					text: "it refused the stream: " + describeStreamError(features)}
			}
			return nil, "", fail("stream_error", "expected stream features, got <"+features.Local+"/>", nil)
		}
		if c.tls == nil {
			if features.Child(nsTLS, "starttls") == nil {
				return nil, "", fail("no_tls", "the server does not offer encryption (STARTTLS)", nil)
			}
			if err := c.write(xml.New(nsTLS, "starttls")); err != nil {
				return nil, "", fail("connect", "writing starttls failed", err)
			}
			el, err := c.dec.Next()
			if err != nil || el.Space != nsTLS || el.Local != "proceed" {
				return nil, "", fail("tls", "the server did not proceed with STARTTLS", err)
			}
			if err := startTLS(); err != nil {
				return nil, "", err
			}
			continue
		}
		if !checked {
			checked = true
			status = verifyCert(c.peerChain(), svc.roots, remote, svc.now())
			if !status.valid() && svc.requireValid(remote) {
				return nil, "", &outError{outcome: "untrusted", cond: stanza.RemoteServerNotFound, trust: true, status: status,
					text: "its certificate is not accepted (" + status.problem() + ")"}
			}
			if !status.valid() {
				c.log.Info("s2s: the remote certificate is not valid; using dialback as the policy allows", "problem", status.problem())
			}
		}
		if authed {
			c.authenticated(local, remote)
			_ = c.shaped.SetDeadline(time.Time{})
			return c, "external", nil
		}
		if features.Child(nsBidiFeature, "bidi") != nil && svc.cfg.Bidi && !oc.bidi {
			if err := c.write(xml.New(nsBidi, "bidi")); err != nil {
				return nil, "", fail("connect", "writing bidi failed", err)
			}
			oc.mu.Lock()
			oc.bidi = true
			oc.mu.Unlock()
		}
		if mechs := features.Child(nsSASL, "mechanisms"); mechs != nil && !triedExternal && hasMechanism(mechs, "EXTERNAL") {
			triedExternal = true
			auth := xml.New(nsSASL, "auth").SetAttr("mechanism", "EXTERNAL")
			auth.Text = base64.StdEncoding.EncodeToString([]byte(local))
			if err := c.write(auth); err != nil {
				return nil, "", fail("connect", "writing auth failed", err)
			}
			el, err := c.dec.Next()
			if err != nil {
				return nil, "", fail("stream_error", "no answer to SASL EXTERNAL", err)
			}
			if el.Space == nsSASL && el.Local == "success" {
				authed = true
				c.dec.Reset(c.nc)
				continue
			}
			c.log.Info("s2s: SASL EXTERNAL refused; trying dialback", "answer", el.String())
		}
		// Server Dialback (XEP-0220): our key for this stream; the
		// receiving server asks our authoritative server (us) about it.
		oc.markReady(c)
		key := svc.dialbackKey(remote, local, streamID)
		if err := c.writeRaw(dbElement("result", local, remote, "", "", key, "")); err != nil {
			return nil, "", fail("connect", "writing the dialback key failed", err)
		}
		for {
			el, err := c.dec.Next()
			if err != nil {
				return nil, "", fail("stream_error", "the stream ended during dialback", err)
			}
			switch {
			case el.Space == nsDialback && el.Local == "result":
				if el.Attr("from") != remote || el.Attr("to") != local {
					continue
				}
				switch el.Attr("type") {
				case "valid":
					c.authenticated(local, remote)
					_ = c.shaped.SetDeadline(time.Time{})
					return c, "dialback", nil
				default:
					return nil, "", &outError{outcome: "auth_failed", cond: stanza.RemoteServerNotFound,
						text: "it did not accept our dialback key (" + el.Attr("type") + describeDialbackError(el) + ")"}
				}
			case el.Space == nsDialback && el.Local == "verify":
				svc.verifyAnswered(oc.p, el)
			case el.Space == xml.NSStream && el.Local == "error":
				return nil, "", &outError{outcome: "refused", cond: stanza.RemoteServerNotFound,
					text: "it closed the stream: " + describeStreamError(el)}
			}
		}
	}
}

func hasMechanism(mechs *xml.Element, name string) bool {
	for _, m := range mechs.Elements() {
		if m.Local == "mechanism" && m.Text == name {
			return true
		}
	}
	return false
}

func describeStreamError(el *xml.Element) string {
	cond, text := "", ""
	for _, ch := range el.Elements() {
		if ch.Local == "text" {
			text = ch.Text
		} else if cond == "" {
			cond = ch.Local
		}
	}
	if text != "" {
		return cond + " (" + text + ")"
	}
	return cond
}

func describeDialbackError(el *xml.Element) string {
	if e := el.Child(xml.NSServer, "error"); e != nil {
		for _, ch := range e.Elements() {
			return ": " + ch.Local
		}
	}
	return ""
}

// read handles what the remote server sends on an established outgoing
// stream: dialback verification answers, and stanzas when the stream is
// bidirectional.
func (oc *outConn) read(ctx context.Context, c *conn) error {
	svc := oc.svc
	for {
		el, err := c.dec.Next()
		if err != nil {
			return err
		}
		switch {
		case el.Space == nsDialback && el.Local == "verify":
			svc.verifyAnswered(oc.p, el)
		case el.Space == nsDialback:
			// db:result answers on an established stream: nothing to do.
		case el.Space == xml.NSStream && el.Local == "error":
			c.log.Info("s2s: the remote server closed the stream", "error", describeStreamError(el))
			return xml.ErrStreamClosed
		case el.Space == xml.NSServer && (el.Local == "message" || el.Local == "presence" || el.Local == "iq"):
			oc.mu.Lock()
			bidi := oc.bidi
			oc.mu.Unlock()
			if !bidi {
				svc.srv.CountDenied("s2s_unexpected_stanza")
				return stanza.NewStreamError(stanza.UnsupportedStanzaType, "This stream is not bidirectional; send stanzas on your own connection.")
			}
			err := svc.inbound(ctx, c, el, func(local, remote string) (bool, bool) {
				return local == oc.p.local && remote == oc.p.remote, remote == oc.p.remote
			})
			if err != nil {
				return err
			}
		default:
			c.log.Debug("s2s: ignoring an unexpected element", "element", el.Local, "ns", el.Space)
		}
		if c.dec.Buffered() == 0 {
			c.dec.Idle()
		}
	}
}
