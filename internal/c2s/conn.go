package c2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"stoa.im/stoa/internal/netpark"
	"stoa.im/stoa/internal/rawsock"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/sasl"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces of stream negotiation.
const (
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsSASLCB  = "urn:xmpp:sasl-cb:0"
	nsPing    = "urn:xmpp:ping"
)

type connState uint8

const (
	stateNew connState = iota
	stateAuthed
	stateBound
)

// conn is one client connection. One goroutine (serve) reads and parses;
// writes after binding go through a bounded queue drained by a writer
// goroutine that exists only while there is something to write, so an idle
// session holds no writer goroutine.
type conn struct {
	svc    *Service
	raw    net.Conn
	rs     *rawsock.Conn // the socket under raw, or nil (sendNow, write.go)
	cr     *countingConn
	nc     net.Conn // raw, or the TLS connection over it
	tls    *tls.Conn
	direct bool
	dec    *xml.Decoder
	logID  atomic.Pointer[logID] // the session's id and JID for log lines, once bound
	remote netip.AddrPort

	host      string
	streamID  string
	info      server.ConnInfo // what features see of this connection
	acceptErr error           // a ConnectionAccepted veto, sent after the stream opens
	state     connState
	user      string // localpart after auth
	mech      string // SASL mechanism of the last attempt
	sess      *server.Session
	started   time.Time

	wmu     sync.Mutex // serializes writes to nc
	qmu     sync.Mutex
	queue   []*xml.Element
	qbytes  int
	writing bool         // a writer (drain, or sendNow's caller) owns the socket's writes
	spilled *xml.Element // written by sendNow in part; the rest is pending in rs
	closing bool         // no more stanzas accepted; close after the queue drains
	closeEl *xml.Element
	done    chan struct{} // closed when the writer finished the final close

	pingSeq atomic.Uint64

	handedOff bool // the read loop moved to a fresh goroutine (handoff.go)

	// Parking (park.go). ctx is the serve context, for the goroutines
	// that resume a parked connection; sock is the TCP socket (nil if the
	// listener gave something else). The reader owns probe, activeAt and
	// pingAt; waiter is guarded by pmu.
	ctx      context.Context
	sock     syscall.RawConn
	pmu      sync.Mutex
	waiter   *netpark.Waiter
	probe    bool      // park as soon as nothing is buffered
	activeAt time.Time // when the wait for the next element began
	pingAt   time.Time // when the outstanding keepalive ping was sent

	// Stream management (sm.go, link.go): the session's link (its
	// server.Conn), the SM state once enabled, whether the transport was
	// lost (a resumable session then detaches instead of ending), and
	// whether the session was resumed on another connection.
	link     *link
	sm       *smState
	lost     bool // guarded by qmu
	replaced atomic.Bool
}

// countingConn counts bytes read, for the pre-authentication byte budget.
type countingConn struct {
	net.Conn
	n     atomic.Int64
	limit atomic.Int64 // 0 = unlimited
}

var errBudget = errors.New("c2s: pre-authentication byte budget exhausted")

func (c *countingConn) Read(p []byte) (int, error) {
	if lim := c.limit.Load(); lim > 0 {
		left := lim - c.n.Load()
		if left <= 0 {
			return 0, errBudget
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (svc *Service) newConn(ctx context.Context, raw net.Conn, direct bool) *conn {
	var sock syscall.RawConn
	if sc, ok := raw.(syscall.Conn); ok && svc.park != nil {
		sock, _ = sc.SyscallConn()
	}
	raw = rawsock.Wrap(raw) // reads and writes without the scheduler's syscall hand-off
	rs, _ := raw.(*rawsock.Conn)
	raw = shape(raw) // bandwidth limits (bandwidth.go)
	cr := &countingConn{Conn: raw}
	cr.limit.Store(int64(svc.cfg.PreAuth.MaxBytes))
	var remote netip.AddrPort
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort()
	}
	return &conn{
		svc: svc, raw: raw, rs: rs, cr: cr, nc: cr, direct: direct, remote: remote,
		ctx: ctx, sock: sock,
		info:    server.ConnInfo{Remote: remote, Transport: "c2s"},
		started: time.Now(),
		done:    make(chan struct{}),
	}
}

// logID names a bound session in log lines.
type logID struct{ sid, jid string }

// logger returns a logger with the connection's attributes. It is built
// for each use and not kept: a logger with attributes costs about 0.6 KB,
// which every idle session would keep (docs/benchmarks.md), and the lines
// a connection logs are few.
func (c *conn) logger() *slog.Logger {
	if id := c.logID.Load(); id != nil {
		return c.svc.log.With("remote", c.remote.String(), "sid", id.sid, "jid", id.jid)
	}
	return c.svc.log.With("remote", c.remote.String())
}

// RemoteAddr implements server.Conn.
func (c *conn) RemoteAddr() netip.AddrPort { return c.remote }

// serve runs the connection until it ends, or until it hands the bound
// session's read loop to a fresh goroutine or parks it (handedOff true;
// handoff.go, park.go).
func (c *conn) serve(ctx context.Context) (handedOff bool) {
	defer func() {
		if !handedOff {
			c.finish(ctx)
		}
	}()
	c.acceptErr = server.Emit(ctx, c.svc.srv, server.ConnectionAccepted, &c.info)
	c.applyBandwidth()
	_ = c.raw.SetDeadline(c.started.Add(time.Duration(c.svc.cfg.PreAuth.Timeout)))
	if c.direct {
		if err := c.startTLS(); err != nil {
			c.logger().Debug("direct TLS handshake failed", "err", err)
			return false
		}
	}
	lim := xml.DefaultLimits()
	lim.MaxStanza = int(c.svc.cfg.PreAuth.MaxStanzaSize)
	c.dec = xml.NewDecoder(c.nc, lim)
	c.dec.SetBufferPool(&c.svc.bufs)
	for {
		err := c.stream(ctx)
		if err == errRestart {
			continue
		}
		if err == errHandOff {
			c.handOff(ctx)
			return true
		}
		if err == errParked {
			return true
		}
		c.fail(err)
		return false
	}
}

var errRestart = errors.New("stream restart")

// fail ends the stream according to err.
func (c *conn) fail(err error) {
	var se *stanza.StreamError
	var xe *xml.Error
	switch {
	case err == nil, errors.Is(err, xml.ErrStreamClosed):
		c.closeStream(nil)
	case errors.As(err, &se):
		c.logger().Info("stream error", "condition", string(se.Condition), "text", se.Text, "jid", c.jidString())
		c.closeStream(se)
	case errors.As(err, &xe):
		c.logger().Info("bad XML from client", "condition", xe.Condition, "text", xe.Text, "jid", c.jidString())
		c.closeStream(stanza.NewStreamError(stanza.StreamCondition(xe.Condition), xe.Text))
	case errors.Is(err, errBudget):
		c.svc.srv.CountDenied("pre_auth_bytes")
		c.closeStream(stanza.NewStreamError(stanza.StreamPolicyViolation, "Too much data before authentication."))
	case isTimeout(err):
		if c.state != stateBound {
			c.svc.srv.CountDenied("pre_auth_timeout")
			c.closeStream(stanza.NewStreamError(stanza.ConnectionTimeout, "Authentication took too long."))
		} else {
			c.markLost()
			c.closeStream(stanza.NewStreamError(stanza.ConnectionTimeout, "No answer to the keepalive ping."))
		}
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		c.markLost()
		c.abort()
	default:
		c.logger().Debug("connection ended", "err", err)
		c.markLost()
		c.abort()
	}
}

func (c *conn) jidString() string {
	if c.sess != nil {
		return c.sess.JID().String()
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stream runs one stream: header, features, then elements until a restart
// (errRestart) or the end.
func (c *conn) stream(ctx context.Context) error {
	h, err := c.dec.Header()
	if err != nil {
		var xe *xml.Error
		if errors.As(err, &xe) || isTimeout(err) || errors.Is(err, errBudget) {
			// RFC 6120 §4.9.1.1: open our stream before the error.
			c.openStream("")
		}
		return err
	}
	to := ""
	for _, a := range h.Attrs {
		if a.Space == "" && a.Local == "to" {
			to = a.Value
		}
	}
	c.openStream(to)
	if h.DefaultNS != xml.NSClient {
		return stanza.NewStreamError(stanza.InvalidNamespace, "The stream's default namespace must be jabber:client.")
	}
	version := ""
	for _, a := range h.Attrs {
		if a.Space == "" && a.Local == "version" {
			version = a.Value
		}
	}
	if version == "" || version[0] < '1' {
		return stanza.NewStreamError(stanza.UnsupportedVersion, "This server speaks XMPP 1.0 only.")
	}
	c.dec.DropHeader() // read: the session need not keep its text
	if c.host == "" {
		return stanza.NewStreamError(stanza.HostUnknown, fmt.Sprintf("%q is not served here.", to))
	}
	if c.acceptErr != nil {
		c.svc.srv.CountDenied(refusalReason(c.acceptErr, "connection_refused"))
		return stanza.NewStreamError(stanza.StreamPolicyViolation, c.acceptErr.Error())
	}
	if err := c.write(c.features()); err != nil {
		return err
	}
	return c.elements(ctx)
}

// elements reads and handles top-level elements until a restart, an
// error, a handoff (errHandOff, handoff.go) or a park (errParked, park.go).
func (c *conn) elements(ctx context.Context) error {
	for {
		if c.state == stateBound {
			c.armRead()
		}
		el, err := c.dec.Next()
		if err != nil {
			if c.state == stateBound && isTimeout(err) {
				switch c.quiet(c.dec.Buffered() > 0) {
				case quietGoOn:
					continue
				case quietParked:
					return errParked
				}
			}
			return err
		}
		c.activeAt = time.Time{}
		c.pingSeq.Store(0)
		if err := c.handle(ctx, el); err != nil {
			return err
		}
		if c.dec.Buffered() == 0 {
			if c.svc.park == nil {
				// Without parking the goroutine may now wait for long
				// with the buffers; parked connections release them in
				// park, and an active one keeps them for the next stanza.
				c.dec.Idle()
			}
			if c.wantHandOff() {
				if c.svc.park == nil || c.sock == nil {
					return errHandOff
				}
				c.probe = true // park once crypto/tls has nothing buffered either
			}
		}
	}
}

// openStream writes our stream header. The host is decided by the first
// header's 'to' and never changes on restarts.
func (c *conn) openStream(to string) {
	if c.host == "" {
		if j, err := jid.Parse(to); err == nil && j.IsDomain() && c.svc.srv.Host(j.Domain()) != nil {
			c.host = j.Domain()
		} else if to == "" && len(c.svc.srv.Hosts()) == 1 {
			c.host = c.svc.srv.Hosts()[0]
		}
	}
	c.streamID = server.NewSessionID()
	c.info.ID = c.streamID
	c.info.Host = c.host
	c.info.TLS = c.tls != nil
	from := c.host
	if from == "" {
		from = c.svc.srv.Hosts()[0]
	}
	attrs := []xml.Attr{
		{Local: "id", Value: c.streamID},
		{Local: "from", Value: from},
		{Local: "version", Value: "1.0"},
		{Space: xml.NSXML, Local: "lang", Value: "en"},
	}
	if c.sess != nil {
		attrs = append(attrs, xml.Attr{Local: "to", Value: c.sess.JID().String()})
	}
	_ = c.writeRaw(xml.AppendStreamHeader(nil, xml.NSClient, attrs))
}

func (c *conn) tlsInfo() sasl.TLSInfo {
	if c.tls == nil {
		return sasl.TLSInfo{}
	}
	st := c.tls.ConnectionState()
	return sasl.TLSInfo{State: &st, Leaf: c.svc.certs.For(st.ServerName).Leaf}
}

func (c *conn) plainAllowed() bool { return c.tls != nil }

func (c *conn) features() *xml.Element {
	f := xml.New(xml.NSStream, "features")
	switch c.state {
	case stateNew:
		if c.tls == nil {
			st := xml.New(nsTLS, "starttls")
			if c.svc.cfg.RequireTLS {
				st.Append(xml.New(nsTLS, "required"))
				f.Append(st)
				return f
			}
			f.Append(st)
		}
		mechs := xml.New(nsSASL, "mechanisms")
		for _, m := range sasl.Mechanisms(c.tlsInfo(), c.plainAllowed()) {
			mechs.AppendText(nsSASL, "mechanism", m)
		}
		f.Append(mechs)
		if cb := sasl.ChannelBindingTypes(c.tlsInfo()); len(cb) > 0 {
			el := xml.New(nsSASLCB, "sasl-channel-binding")
			for _, t := range cb {
				el.Append(xml.New(nsSASLCB, "channel-binding").SetAttr("type", t))
			}
			f.Append(el)
		}
		f.Append(c.svc.srv.PreAuthFeatures(&c.info)...)
	case stateAuthed:
		f.Append(xml.New(nsBind, "bind"))
		f.Append(xml.New(nsSession, "session").Append(xml.New(nsSession, "optional")))
		if sm := c.smFeature(); sm != nil {
			f.Append(sm)
		}
		f.Append(c.svc.srv.StreamFeatures(&c.info)...)
	}
	return f
}

// handle processes one top-level element.
func (c *conn) handle(ctx context.Context, el *xml.Element) error {
	switch c.state {
	case stateNew:
		switch {
		case el.Space == nsTLS && el.Local == "starttls":
			if c.tls != nil {
				return stanza.NewStreamError(stanza.StreamPolicyViolation, "TLS is already active.")
			}
			if err := c.write(xml.New(nsTLS, "proceed")); err != nil {
				return err
			}
			if err := c.startTLS(); err != nil {
				return err
			}
			c.dec.Reset(c.nc)
			return errRestart
		case el.Space == nsSASL && el.Local == "auth":
			if c.tls == nil && c.svc.cfg.RequireTLS {
				return c.write(saslFailure("encryption-required", "Use STARTTLS before authenticating."))
			}
			return c.authenticate(ctx, el)
		case server.KindOf(el) == server.KindIQ && c.preAuthIQ(ctx, el):
			return nil
		case server.KindOf(el) != 0:
			return stanza.NewStreamError(stanza.StreamNotAuthorized, "Authenticate before sending stanzas.")
		default:
			return stanza.NewStreamError(stanza.UnsupportedStanzaType, fmt.Sprintf("Unexpected <%s xmlns='%s'/> before authentication.", el.Local, el.Space))
		}
	case stateAuthed:
		if el.Local == "iq" && server.KindOf(el) == server.KindIQ {
			if b := el.Child(nsBind, "bind"); b != nil && el.Attr("type") == "set" {
				return c.bind(ctx, el, b)
			}
			if el.Child(nsSession, "session") != nil {
				return c.write(stanza.ErrorReply(el, stanza.NewError(stanza.NotAllowed, "Bind a resource first.")))
			}
		}
		if ok, err := c.smBeforeBind(ctx, el); ok {
			return err
		}
		return stanza.NewStreamError(stanza.StreamNotAuthorized, "Bind a resource before sending stanzas.")
	default:
		return c.boundElement(ctx, el)
	}
}

// startTLS runs the server side of the TLS handshake on the raw connection.
func (c *conn) startTLS() error {
	tc := tls.Server(c.cr, c.svc.tlsConfig())
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("c2s: TLS handshake: %w", err)
	}
	c.tls = tc
	c.nc = tc
	return nil
}

func saslFailure(cond, text string) *xml.Element {
	f := xml.New(nsSASL, "failure").Append(xml.New(nsSASL, cond))
	if text != "" {
		t := &xml.Element{Space: nsSASL, Local: "text", Text: text}
		t.SetAttrNS(xml.NSXML, "lang", "en")
		f.Append(t)
	}
	return f
}

// authenticate runs one SASL exchange (RFC 6120 §6.4).
func (c *conn) authenticate(ctx context.Context, auth *xml.Element) error {
	ip := c.remote.Addr().String()
	if w := c.svc.failIP.Wait(ip); w > 0 {
		c.svc.srv.CountDenied("login_backoff")
		c.svc.metrics.auth.WithLabelValues("throttled", auth.Attr("mechanism")).Inc()
		return c.write(saslFailure("temporary-auth-failure",
			fmt.Sprintf("Too many failed logins from your address; try again in %s.", w.Round(time.Second))))
	}
	host := c.host
	srv := c.svc.srv
	ss := sasl.NewServer(sasl.Config{
		Lookup: func(ctx context.Context, user string) (sasl.Credentials, error) {
			acc, err := srv.Store().Accounts().Get(ctx, user+"@"+host)
			if errors.Is(err, store.ErrNotFound) {
				return sasl.Credentials{}, sasl.ErrUnknownUser
			} else if err != nil {
				return sasl.Credentials{}, fmt.Errorf("looking up %s@%s: %w", user, host, err)
			}
			return sasl.Credentials{SHA1: sasl.ScramKeys(acc.Credentials.SHA1), SHA256: sasl.ScramKeys(acc.Credentials.SHA256)}, nil
		},
		Domain:     host,
		Secret:     c.svc.secret,
		Iterations: server.ScramIterations,
		Expensive:  srv.Expensive,
	})
	info := c.tlsInfo()
	offered := sasl.Mechanisms(info, c.plainAllowed())
	c.mech = auth.Attr("mechanism")
	if !slices.Contains(offered, c.mech) {
		c.mech = "other" // keep the metric's label set bounded
	}
	conv, err := ss.Start(ctx, auth.Attr("mechanism"), info, offered)
	if err != nil {
		return c.saslFailed(err, "")
	}
	in, err := decode64(auth.Text, true)
	if err != nil {
		return c.write(saslFailure("incorrect-encoding", "The initial response is not valid base64."))
	}
	for {
		out, done, err := conv.Step(ctx, in)
		if err != nil {
			return c.saslFailed(err, conv.Username())
		}
		if done {
			return c.authSucceeded(conv.Username(), out)
		}
		ch := &xml.Element{Space: nsSASL, Local: "challenge", Text: base64.StdEncoding.EncodeToString(out)}
		if err := c.write(ch); err != nil {
			return err
		}
		resp, err := c.dec.Next()
		if err != nil {
			return err
		}
		switch {
		case resp.Space == nsSASL && resp.Local == "response":
			if in, err = decode64(resp.Text, false); err != nil {
				return c.write(saslFailure("incorrect-encoding", "The response is not valid base64."))
			}
		case resp.Space == nsSASL && resp.Local == "abort":
			return c.write(saslFailure("aborted", ""))
		default:
			return stanza.NewStreamError(stanza.StreamNotAuthorized, "Unexpected element during authentication.")
		}
	}
}

func decode64(s string, initial bool) ([]byte, error) {
	if s == "=" && initial {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

func (c *conn) saslFailed(err error, user string) error {
	var f *sasl.Failure
	if !errors.As(err, &f) {
		c.logger().Error("authentication error", "err", err)
		f = &sasl.Failure{Condition: "temporary-auth-failure", Text: "The server could not check your credentials; try again later."}
	}
	// Only a wrong password counts towards the throttle: a failure before
	// any credential was checked (an unsupported channel binding a client
	// tries first, say) names no user and is not a guess.
	if f.Condition == "not-authorized" && user != "" {
		ip := c.remote.Addr().String()
		c.svc.failIP.Fail(ip)
		delay := time.Duration(0)
		if user != "" {
			key := user + "@" + c.host
			// Per-account throttle: the answer to a failed guess is
			// delayed, so guessing one account's password from many
			// addresses is slow, while the owner can still log in.
			delay = c.svc.failUser.Wait(key)
			c.svc.failUser.Fail(key)
		}
		c.svc.srv.CountDenied("auth_failed")
		c.svc.metrics.auth.WithLabelValues("failure", c.mech).Inc()
		c.logger().Info("authentication failed", "user", user, "host", c.host)
		if delay > 0 {
			if delay > 5*time.Second {
				delay = 5 * time.Second
			}
			time.Sleep(delay)
		}
	}
	return c.write(saslFailure(f.Condition, f.Text))
}

func (c *conn) authSucceeded(user string, additional []byte) error {
	bare, err := jid.New(user, c.host, "")
	if err != nil {
		return c.write(saslFailure("not-authorized", ""))
	}
	c.info.User = bare
	if err := server.Emit(context.Background(), c.svc.srv, server.Authenticated, &c.info); err != nil {
		c.info.User = jid.JID{}
		reason := refusalReason(err, "login_refused")
		c.svc.srv.CountDenied(reason)
		c.svc.metrics.auth.WithLabelValues("refused", c.mech).Inc()
		c.logger().Info("login refused", "user", bare.String(), "reason", reason, "text", err.Error())
		return c.write(saslFailure("account-disabled", err.Error()))
	}
	succ := xml.New(nsSASL, "success")
	if len(additional) > 0 {
		succ.Text = base64.StdEncoding.EncodeToString(additional)
	}
	if err := c.write(succ); err != nil {
		return err
	}
	c.svc.metrics.auth.WithLabelValues("success", c.mech).Inc()
	c.svc.failIP.Succeed(c.remote.Addr().String())
	c.svc.failUser.Succeed(user + "@" + c.host)
	c.user = user
	c.state = stateAuthed
	c.applyBandwidth() // exemptions and per-account limits now that the user is known
	c.logger().Info("authenticated", "user", user, "host", c.host)
	c.cr.limit.Store(0)
	lim := xml.DefaultLimits()
	lim.MaxStanza = int(c.svc.cfg.MaxStanzaSize)
	c.dec.SetLimits(lim)
	c.dec.Reset(c.nc)
	return errRestart
}

// bind binds a resource (RFC 6120 §7).
func (c *conn) bind(ctx context.Context, iq, b *xml.Element) error {
	res := b.ChildText(nsBind, "resource")
	if res != "" {
		p, err := jid.PrepResource(res)
		if err != nil {
			return c.write(stanza.ErrorReply(iq, stanza.NewError(stanza.BadRequest, "The resource is not valid: "+err.Error())))
		}
		res = p
	} else {
		res = "stoa-" + server.NewSessionID()[:12]
	}
	full, err := jid.New(c.user, c.host, res)
	if err != nil {
		return c.write(stanza.ErrorReply(iq, stanza.NewError(stanza.BadRequest, "The resource is not valid: "+err.Error())))
	}
	if err := server.Emit(ctx, c.svc.srv, server.SessionBinding, server.BindEvent{JID: full, Conn: &c.info}); err != nil {
		c.svc.srv.CountDenied(refusalReason(err, "bind_refused"))
		return c.write(stanza.ErrorReply(iq, stanza.NewError(stanza.ResourceConstraint, err.Error())))
	}
	// The account may have been deleted while we negotiated.
	if _, err := c.svc.srv.Store().Accounts().Get(ctx, full.Bare().String()); err != nil {
		return stanza.NewStreamError(stanza.StreamNotAuthorized, "This account no longer exists.")
	}
	_ = c.raw.SetDeadline(time.Time{})
	c.logID.Store(&logID{sid: c.streamID, jid: full.String()})
	c.link = newLink(c.svc, c)
	sess, err := c.svc.srv.Bind(ctx, full, c.streamID, c.link)
	if err != nil {
		c.link = nil
		return stanza.NewStreamError(stanza.StreamInternalError, "Could not bind the resource.")
	}
	c.link.sess = sess
	c.sess = sess
	c.state = stateBound
	c.logger().Info("session bound")
	res2 := stanza.Result(iq, xml.New(nsBind, "bind").AppendText(nsBind, "jid", full.String()))
	res2.SetAttr("to", "")
	res2.SetAttr("from", "")
	if err := c.Send(res2); err != nil {
		return err
	}
	// Post-bind stream features are sent before binding in this RFC 6120
	// flow; features that need a bound session (SM, CSI) are offered in
	// the features above through the registry on the next restart-free path.
	return nil
}

// stanza handles one element from a bound session.
func (c *conn) stanza(ctx context.Context, el *xml.Element) error {
	kind := server.KindOf(el)
	if kind == 0 {
		if h := c.svc.srv.StreamElement(el.Space, el.Local); h != nil {
			return h(ctx, c.sess, el)
		}
		return stanza.NewStreamError(stanza.UnsupportedStanzaType, fmt.Sprintf("<%s xmlns='%s'/> is not supported here.", el.Local, el.Space))
	}
	if kind == server.KindIQ && el.Child(nsSession, "session") != nil && el.Attr("type") == "set" &&
		(el.Attr("to") == "" || el.Attr("to") == c.host) {
		// RFC 3921 session establishment, kept for old clients and tsung.
		r := stanza.Result(el)
		r.SetAttr("to", "")
		if el.Attr("to") != "" {
			r.SetAttr("from", c.host)
		}
		return c.sendStanza(r)
	}
	st := &server.Stanza{El: el, Kind: kind, Type: el.Attr("type"), ID: el.Attr("id"), Origin: c.sess}
	// RFC 6120 §8.1.2.1: the server stamps the full JID as 'from'.
	st.SetFrom(c.sess.JID())
	if t := el.Attr("to"); t != "" {
		to, err := jid.Parse(t)
		if err != nil {
			c.svc.srv.Bounce(ctx, st, stanza.Errorf(stanza.JIDMalformed, "The address %q is not valid: %v", t, err))
			return nil
		}
		st.SetTo(to)
	} else if kind != server.KindPresence {
		// RFC 6120 §10.3: no 'to' means the user's own account.
		st.To = c.sess.JID().Bare()
	}
	if kind == server.KindIQ {
		switch st.Type {
		case "get", "set":
			if st.ID == "" {
				c.svc.srv.Bounce(ctx, st, stanza.NewError(stanza.BadRequest, "An IQ needs an id."))
				return nil
			}
		case "result", "error":
		default:
			c.svc.srv.Bounce(ctx, st, stanza.NewError(stanza.BadRequest, "Unknown IQ type."))
			return nil
		}
	}
	c.svc.srv.Inbound(ctx, st)
	return nil
}

// ping sends a whitespace keepalive and an XEP-0199 ping after an idle
// period; it reports false when a ping was already outstanding.
func (c *conn) ping() bool {
	if c.pingSeq.Load() > 0 {
		return false
	}
	c.qmu.Lock()
	closing := c.closing
	c.qmu.Unlock()
	if closing {
		// The deadline is the close's grace period, not idleness.
		return false
	}
	n := c.pingSeq.Add(1)
	// A whitespace keepalive first (RFC 6120 §4.6.1): it keeps NAT state
	// alive for clients that do not answer pings.
	_ = c.Send(&xml.Element{Text: " "})
	iq := xml.New(xml.NSClient, "iq").SetAttr("type", "get").SetAttr("id", fmt.Sprintf("c2s-ping-%d", n)).
		SetAttr("from", c.host).SetAttr("to", c.sess.JID().String())
	iq.Append(xml.New(nsPing, "ping"))
	_ = c.sendStanza(iq)
	return true
}

// preAuthIQ answers an IQ on an unauthenticated stream through the
// handlers features registered (in-band registration); it reports false
// when no handler takes the payload.
func (c *conn) preAuthIQ(ctx context.Context, el *xml.Element) bool {
	var payload *xml.Element
	for _, ch := range el.Children {
		if !ch.IsText() {
			payload = ch
			break
		}
	}
	if payload == nil {
		return false
	}
	h := c.svc.srv.PreAuthIQ(payload.Space)
	if h == nil {
		return false
	}
	typ := el.Attr("type")
	if typ != "get" && typ != "set" {
		return true // stray results and errors: ignored
	}
	res, err := h(ctx, &c.info, el)
	var reply *xml.Element
	if err != nil {
		var se *stanza.Error
		if !errors.As(err, &se) {
			c.logger().Error("pre-authentication IQ failed", "ns", payload.Space, "err", err)
			se = stanza.NewError(stanza.InternalServerError, "The server failed to handle this request; the error was logged.")
		}
		reply = stanza.ErrorReply(el, se)
	} else if res != nil {
		reply = stanza.Result(el, res)
	} else {
		reply = stanza.Result(el)
	}
	reply.SetAttr("to", "")
	if err := c.write(reply); err != nil {
		c.logger().Debug("write failed", "err", err)
	}
	return true
}

// refusalReason returns the reason of a *server.Refusal in err, or def.
func refusalReason(err error, def string) string {
	var r *server.Refusal
	if errors.As(err, &r) && r.Reason != "" {
		return r.Reason
	}
	return def
}
