package s2s

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces of server streams.
const (
	nsTLS             = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL            = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsDialback        = "jabber:server:dialback"
	nsDialbackFeature = "urn:xmpp:features:dialback"
	nsBidi            = "urn:xmpp:bidi"
	nsBidiFeature     = "urn:xmpp:features:bidi"
	nsStanzas         = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// unauthedStanzaSize bounds elements before a stream is authenticated.
const unauthedStanzaSize = 10000

var errClosed = errors.New("s2s: connection closed")

// qitem is one stanza waiting to be written.
type qitem struct {
	b  []byte
	st *server.Stanza // nil for protocol elements (dialback)
}

// conn is one server-to-server TCP connection, in either direction. The
// goroutine that owns it reads and negotiates; writes after negotiation
// go through a bounded queue drained by a writer goroutine that exists
// only while something is queued.
type conn struct {
	svc      *Service
	incoming bool
	raw      net.Conn
	shaped   *policy.ShapedConn
	nc       net.Conn // shaped, or the TLS connection over it
	tls      *tls.Conn
	dec      *xml.Decoder
	remote   netip.AddrPort
	kind     server.ConnKind
	info     server.ConnInfo // for the bandwidth policy; User is the peer's domain once known
	log      *slog.Logger
	active   atomic.Int64 // unix nanoseconds of the last stanza either way

	wmu     sync.Mutex // serializes writes to nc
	qmu     sync.Mutex
	queue   []qitem
	qbytes  int
	writing bool
	closing bool
	closeEl *xml.Element
	done    chan struct{} // closed when the writer finished the final close
	// failed receives stanzas that could not be written (bounced by the owner).
	failed []qitem
}

func (svc *Service) newConn(raw net.Conn, incoming bool) *conn {
	var remote netip.AddrPort
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort()
	}
	sc := policy.NewShapedConn(raw)
	dir, kind := "out", server.ConnS2SOut
	if incoming {
		dir, kind = "in", server.ConnS2SIn
	}
	c := &conn{
		svc: svc, incoming: incoming, raw: raw, shaped: sc, nc: sc, remote: remote,
		kind: kind, info: server.ConnInfo{Remote: remote, Transport: "s2s"},
		log:  svc.log.With("direction", dir, "remote_addr", remote.String()),
		done: make(chan struct{}),
	}
	// Bandwidth limits come from the server's policy (the limits
	// feature: bandwidth.s2s_in / s2s_out), asked again once the peer's
	// domain is known.
	server.ApplyBandwidth(sc, svc.srv.Bandwidth(kind, &c.info))
	c.dec = xml.NewDecoder(c.nc, xml.Limits{MaxStanza: unauthedStanzaSize})
	c.touch()
	return c
}

func (c *conn) touch() { c.active.Store(c.svc.now().UnixNano()) }

func (c *conn) idleSince() time.Time { return time.Unix(0, c.active.Load()) }

// authenticated raises the stanza size limit once the peer is known, and
// applies the bandwidth policy for its domain.
func (c *conn) authenticated(local, remote string) {
	lim := xml.DefaultLimits()
	lim.MaxStanza = int(c.svc.cfg.MaxStanzaSize)
	c.dec.SetLimits(lim)
	if j, err := jid.Parse(remote); err == nil {
		c.info.User = j
		c.info.Host = local
		server.ApplyBandwidth(c.shaped, c.svc.srv.Bandwidth(c.kind, &c.info))
	}
}

// peerChain is the peer's certificate chain (nil before TLS).
func (c *conn) peerChain() []*x509.Certificate {
	if c.tls == nil {
		return nil
	}
	return c.tls.ConnectionState().PeerCertificates
}

// streamHeader is a server stream header declaring the dialback prefix.
func streamHeader(from, to, id string) []byte {
	b := []byte("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'")
	attr := func(k, v string) {
		if v == "" {
			return
		}
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, "='"...)
		b = append(b, escAttr(v)...)
		b = append(b, '\'')
	}
	attr("from", from)
	attr("to", to)
	attr("id", id)
	attr("version", "1.0")
	b = append(b, " xml:lang='en'>"...)
	return b
}

var attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", "\"", "&quot;")

func escAttr(s string) string { return attrEscaper.Replace(s) }

// dbElement serializes a dialback element (result or verify) with the db:
// prefix the stream header declares. cond, when set, adds a stanza error
// (type='error').
func dbElement(name, from, to, id, typ, key string, cond stanza.Condition) []byte {
	b := []byte("<db:" + name)
	for _, a := range [][2]string{{"from", from}, {"to", to}, {"id", id}, {"type", typ}} {
		if a[1] != "" {
			b = append(b, " "+a[0]+"='"+escAttr(a[1])+"'"...)
		}
	}
	if key == "" && cond == "" {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	if cond != "" {
		b = append(b, "<error type='"+string(cond.DefaultType())+"'><"+string(cond)+" xmlns='"+nsStanzas+"'/></error>"...)
	}
	b = append(b, escAttr(key)...)
	return append(b, "</db:"+name+">"...)
}

// writeRaw writes bytes synchronously with the write timeout.
func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.shaped.SetWriteDeadline(time.Now().Add(time.Duration(c.svc.cfg.WriteTimeout)))
	_, err := c.nc.Write(b)
	return err
}

// write writes one element synchronously (negotiation).
func (c *conn) write(el *xml.Element) error {
	return c.writeRaw(el.AppendTo(nil, xml.NSServer))
}

// send queues bytes without blocking. It fails when the connection is
// closing or the queue is over the limit.
func (c *conn) send(it qitem) error {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closing {
		return errClosed
	}
	if c.qbytes+len(it.b) > int(c.svc.cfg.MaxQueue) {
		return errQueueFull
	}
	c.queue = append(c.queue, it)
	c.qbytes += len(it.b)
	if it.st != nil {
		c.touch()
	}
	c.startWriterLocked()
	return nil
}

var errQueueFull = errors.New("s2s: queue full")

func (c *conn) startWriterLocked() {
	if c.writing {
		return
	}
	c.writing = true
	c.svc.wg.Add(1)
	go func() {
		defer c.svc.wg.Done()
		c.drain()
	}()
}

// drain writes queued elements until the queue is empty; if the
// connection is closing, it then writes the closing elements.
func (c *conn) drain() {
	var buf []byte
	for {
		c.qmu.Lock()
		q := c.queue
		c.queue = nil
		c.qbytes = 0
		if len(q) == 0 {
			if c.closing {
				closeEl := c.closeEl
				c.qmu.Unlock()
				c.finalWrite(closeEl)
				return
			}
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		buf = buf[:0]
		for _, it := range q {
			buf = append(buf, it.b...)
		}
		if err := c.writeRaw(buf); err != nil {
			c.log.Debug("s2s: write failed", "err", err)
			c.qmu.Lock()
			c.closing = true
			c.failed = append(c.failed, q...)
			c.failed = append(c.failed, c.queue...)
			c.queue = nil
			c.writing = false
			c.qmu.Unlock()
			_ = c.shaped.Close()
			c.signalDone()
			return
		}
		for _, it := range q {
			if it.st != nil {
				c.svc.metrics.stanza("out", it.st.To.Domain())
			}
		}
		if cap(buf) > 64<<10 {
			buf = nil
		}
	}
}

func (c *conn) finalWrite(closeEl *xml.Element) {
	var b []byte
	if closeEl != nil {
		b = closeEl.AppendTo(b, xml.NSServer)
	}
	b = append(b, xml.StreamClose...)
	_ = c.writeRaw(b)
	// Give the peer a moment to close its side; the reader sees the
	// close (or the deadline) and finishes.
	_ = c.shaped.SetReadDeadline(time.Now().Add(2 * time.Second))
	c.signalDone()
}

func (c *conn) signalDone() {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}

// close ends the stream after the queued elements: the stream error (if
// any), then the stream close.
func (c *conn) close(err *stanza.StreamError) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closing {
		return
	}
	c.closing = true
	if err != nil {
		c.closeEl = err.Element()
	}
	c.startWriterLocked()
}

// closeNow is close from the owning goroutine: it waits (bounded) for the
// writer to finish.
func (c *conn) closeNow(err *stanza.StreamError) {
	c.close(err)
	select {
	case <-c.done:
	case <-time.After(time.Duration(c.svc.cfg.WriteTimeout)):
	}
}

// finish releases the connection after its owner stopped reading, and
// returns the stanzas that were never written.
func (c *conn) finish() []qitem {
	c.qmu.Lock()
	c.closing = true
	writing := c.writing
	c.qmu.Unlock()
	if writing {
		select {
		case <-c.done:
		case <-time.After(time.Duration(c.svc.cfg.WriteTimeout)):
		}
	}
	_ = c.shaped.Close()
	c.qmu.Lock()
	defer c.qmu.Unlock()
	out := append(c.failed, c.queue...)
	c.failed, c.queue = nil, nil
	return out
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isGone reports whether err means the peer went away.
func isGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, xml.ErrStreamClosed)
}

// streamErrorOf converts a read error into the stream error to send, or
// nil when the peer is gone or closed the stream.
func streamErrorOf(err error) *stanza.StreamError {
	var se *stanza.StreamError
	var xe *xml.Error
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &xe):
		if xe.Condition == "policy-violation" || strings.Contains(xe.Text, "too large") || strings.Contains(xe.Text, "exceeds") {
			return stanza.NewStreamError(stanza.StreamPolicyViolation, xe.Text)
		}
		return stanza.NewStreamError(stanza.StreamCondition(xe.Condition), xe.Text)
	case isTimeout(err):
		return stanza.NewStreamError(stanza.ConnectionTimeout, "The connection was idle or too slow.")
	}
	return nil
}

// toClientNS moves an element tree received on a server stream from the
// jabber:server namespace to jabber:client, as the pipeline expects.
func toClientNS(el *xml.Element) {
	if el.Space == xml.NSServer {
		el.Space = xml.NSClient
	}
	for _, ch := range el.Children {
		toClientNS(ch)
	}
}
