package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stoa.im/stoa/internal/rawsock"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces the client uses.
const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsRoster   = "jabber:iq:roster"
	nsRegister = "jabber:iq:register"
	nsPing     = "urn:xmpp:ping"
)

// dialer opens authenticated client sessions.
type dialer struct {
	addr     string
	domain   string
	direct   bool // direct TLS (XEP-0368) instead of STARTTLS
	mech     string
	resource string
	tls      *tls.Config
	sources  []netip.Addr // local addresses, used in turn
	next     atomic.Uint64
	keys     *keyCache
	bufs     xml.BufferPool
	timeout  time.Duration
}

func newTLSConfig(domain, caFile string) (*tls.Config, error) {
	// X25519 only: the peers' OpenSSL (Debian 12) has no post-quantum
	// key exchange, and Go's default X25519MLKEM768 would make the
	// handshake costlier for the one server that supports it.
	cfg := &tls.Config{ServerName: domain, MinVersion: tls.VersionTLS12,
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
	if caFile == "" {
		// Loopback benchmarks against private instances with their own
		// certificates; the handshake costs the same either way.
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("stoa-bench: reading the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("stoa-bench: no certificate in %s", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// handler receives every element a logged-in client reads.
type handler interface {
	element(c *client, el *xml.Element)
	closed(c *client, err error)
}

// client is one session.
type client struct {
	d    *dialer
	idx  int
	user string
	pass string
	jid  string // full JID after binding

	conn net.Conn
	dec  *xml.Decoder

	wmu  sync.Mutex
	wbuf []byte

	mu     sync.Mutex
	roster map[string]string // bare JID -> subscription
	asked  map[string]bool   // subscription requests sent

	closing atomic.Bool
	done    chan struct{}
}

// loginResult tells what one login cost.
type loginResult struct {
	total   time.Duration
	derived bool // the client ran PBKDF2 (no cached SCRAM keys)
}

// errRefused marks an authentication failure (wrong password, unknown
// account), as opposed to a transport problem.
type errRefused struct{ what string }

func (e errRefused) Error() string { return e.what }

func (d *dialer) source() *net.TCPAddr {
	if len(d.sources) == 0 {
		return nil
	}
	a := d.sources[d.next.Add(1)%uint64(len(d.sources))]
	return &net.TCPAddr{IP: a.AsSlice()}
}

// connect opens a stream and negotiates TLS; it returns the stream
// features offered under TLS.
func (d *dialer) connect(ctx context.Context) (net.Conn, *xml.Decoder, *xml.Element, error) {
	nd := net.Dialer{LocalAddr: d.source(), Timeout: d.timeout}
	raw, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connecting: %w", err)
	}
	raw = rawsock.Wrap(raw) // the tool's own CPU share counts too
	_ = raw.SetDeadline(time.Now().Add(d.timeout))
	var conn net.Conn = raw
	fail := func(err error) (net.Conn, *xml.Decoder, *xml.Element, error) {
		_ = raw.Close()
		return nil, nil, nil, err
	}
	if d.direct {
		cfg := d.tls.Clone()
		cfg.NextProtos = []string{"xmpp-client"}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("TLS handshake: %w", err))
		}
		conn = tc
	}
	dec := xml.NewDecoder(conn, xml.Limits{MaxStanza: 1 << 20})
	dec.SetBufferPool(&d.bufs)
	f, err := d.open(conn, dec)
	if err != nil {
		return fail(err)
	}
	if !d.direct {
		if f.Child(nsTLS, "starttls") == nil {
			return fail(errors.New("the server offers no STARTTLS"))
		}
		if _, err := conn.Write([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
			return fail(err)
		}
		el, err := dec.Next()
		if err != nil {
			return fail(fmt.Errorf("STARTTLS: %w", err))
		}
		if el.Local != "proceed" {
			return fail(fmt.Errorf("STARTTLS refused: <%s/>", el.Local))
		}
		tc := tls.Client(raw, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("TLS handshake: %w", err))
		}
		conn = tc
		dec.Reset(conn)
		if f, err = d.open(conn, dec); err != nil {
			return fail(err)
		}
	}
	return conn, dec, f, nil
}

// open sends a stream header and reads the server's header and features.
func (d *dialer) open(conn net.Conn, dec *xml.Decoder) (*xml.Element, error) {
	hdr := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		d.domain + "' version='1.0' xml:lang='en'>"
	if _, err := conn.Write([]byte(hdr)); err != nil {
		return nil, fmt.Errorf("writing the stream header: %w", err)
	}
	if _, err := dec.Header(); err != nil {
		return nil, fmt.Errorf("reading the stream header: %w", err)
	}
	f, err := dec.Next()
	if err != nil {
		return nil, fmt.Errorf("reading the stream features: %w", err)
	}
	if f.Local == "error" {
		return nil, fmt.Errorf("stream error: %s", f.String())
	}
	if f.Local != "features" {
		return nil, fmt.Errorf("expected stream features, got <%s/>", f.Local)
	}
	return f, nil
}

// login connects, authenticates, binds, optionally fetches the roster
// and sends initial presence (if presence is not empty). The client is
// then ready for run.
func (d *dialer) login(ctx context.Context, c *client, fetchRoster bool, presence string) (loginResult, error) {
	start := time.Now()
	var res loginResult
	conn, dec, f, err := d.connect(ctx)
	if err != nil {
		return res, err
	}
	fail := func(err error) (loginResult, error) {
		_ = conn.Close()
		return res, err
	}
	c.conn, c.dec = conn, dec
	mechs := map[string]bool{}
	if m := f.Child(nsSASL, "mechanisms"); m != nil {
		for _, e := range m.Elements() {
			mechs[e.Text] = true
		}
	}
	if !mechs[d.mech] {
		return fail(fmt.Errorf("the server does not offer %s (offered: %v)", d.mech, keys(mechs)))
	}
	if err := c.auth(&res); err != nil {
		return fail(err)
	}
	dec.Reset(conn)
	if f, err = d.open(conn, dec); err != nil {
		return fail(err)
	}
	if err := c.bind(f); err != nil {
		return fail(err)
	}
	if fetchRoster {
		if err := c.fetchRoster(); err != nil {
			return fail(err)
		}
	}
	if presence != "" {
		if err := c.write([]byte(presence)); err != nil {
			return fail(err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	res.total = time.Since(start)
	return res, nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (c *client) auth(res *loginResult) error {
	d := c.d
	switch d.mech {
	case mechPlain:
		msg := "<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString(plainResponse(c.user, c.pass)) + "</auth>"
		if err := c.write([]byte(msg)); err != nil {
			return err
		}
		el, err := c.dec.Next()
		if err != nil {
			return fmt.Errorf("SASL: %w", err)
		}
		if el.Local != "success" {
			return errRefused{"SASL PLAIN failed: " + el.String()}
		}
		return nil
	case mechSCRAM256, mechSCRAM1:
		s := newSCRAM(d.mech, c.user, c.pass, d.keys, &res.derived)
		msg := "<auth xmlns='" + nsSASL + "' mechanism='" + d.mech + "'>" + base64.StdEncoding.EncodeToString(s.first()) + "</auth>"
		if err := c.write([]byte(msg)); err != nil {
			return err
		}
		el, err := c.dec.Next()
		if err != nil {
			return fmt.Errorf("SASL: %w", err)
		}
		if el.Local != "challenge" {
			return errRefused{"SASL failed: " + el.String()}
		}
		sf, err := base64.StdEncoding.DecodeString(el.Text)
		if err != nil {
			return fmt.Errorf("SASL challenge: %w", err)
		}
		final, err := s.final(sf)
		if err != nil {
			return err
		}
		if err := c.write([]byte("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(final) + "</response>")); err != nil {
			return err
		}
		el, err = c.dec.Next()
		if err != nil {
			return fmt.Errorf("SASL: %w", err)
		}
		if el.Local == "challenge" {
			// Some servers send the server-final-message in a challenge.
			if err := c.write([]byte("<response xmlns='" + nsSASL + "'/>")); err != nil {
				return err
			}
			sig, _ := base64.StdEncoding.DecodeString(el.Text)
			if err := s.verify(sig); err != nil {
				return err
			}
			if el, err = c.dec.Next(); err != nil {
				return fmt.Errorf("SASL: %w", err)
			}
			if el.Local != "success" {
				return errRefused{"SASL failed: " + el.String()}
			}
			return nil
		}
		if el.Local != "success" {
			return errRefused{"SASL failed: " + el.String()}
		}
		sig, err := base64.StdEncoding.DecodeString(el.Text)
		if err != nil {
			return fmt.Errorf("SASL success data: %w", err)
		}
		return s.verify(sig)
	}
	return fmt.Errorf("unsupported mechanism %s", d.mech)
}

func (c *client) bind(f *xml.Element) error {
	if f.Child(nsBind, "bind") == nil {
		return errors.New("the server offers no resource binding")
	}
	res := c.d.resource
	if err := c.write([]byte("<iq type='set' id='bind'><bind xmlns='" + nsBind + "'><resource>" + res + "</resource></bind></iq>")); err != nil {
		return err
	}
	el, err := c.waitIQ("bind")
	if err != nil {
		return fmt.Errorf("binding: %w", err)
	}
	if el.Attr("type") != "result" {
		return fmt.Errorf("binding refused: %s", el.String())
	}
	if b := el.Child(nsBind, "bind"); b != nil {
		c.jid = b.ChildText(nsBind, "jid")
	}
	// RFC 3921 sessions: only when the server says they are needed.
	if s := f.Child(nsSession, "session"); s != nil && s.Child(nsSession, "optional") == nil {
		if err := c.write([]byte("<iq type='set' id='sess'><session xmlns='" + nsSession + "'/></iq>")); err != nil {
			return err
		}
		el, err := c.waitIQ("sess")
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		if el.Attr("type") != "result" {
			return fmt.Errorf("session refused: %s", el.String())
		}
	}
	return nil
}

// waitIQ reads until the IQ with id arrives (during login, before the
// read loop runs); other stanzas are handled or ignored.
func (c *client) waitIQ(id string) (*xml.Element, error) {
	for {
		el, err := c.dec.Next()
		if err != nil {
			return nil, err
		}
		if el.Local == "iq" && el.Attr("id") == id {
			return el, nil
		}
		if el.Local == "error" && el.Space == "http://etherx.jabber.org/streams" {
			return nil, fmt.Errorf("stream error: %s", el.String())
		}
		c.handleControl(el)
	}
}

func (c *client) fetchRoster() error {
	if err := c.write([]byte("<iq type='get' id='roster'><query xmlns='" + nsRoster + "'/></iq>")); err != nil {
		return err
	}
	el, err := c.waitIQ("roster")
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	if el.Attr("type") != "result" {
		return fmt.Errorf("roster refused: %s", el.String())
	}
	c.mu.Lock()
	c.roster = map[string]string{}
	if q := el.Child(nsRoster, "query"); q != nil {
		for _, it := range q.Elements() {
			c.roster[it.Attr("jid")] = it.Attr("subscription")
		}
	}
	c.mu.Unlock()
	return nil
}

// handleControl answers what the server asks of every client: pings,
// roster pushes, IQs nobody here handles; it reports whether el was
// such a control stanza.
func (c *client) handleControl(el *xml.Element) bool {
	if el.Local != "iq" {
		return false
	}
	typ := el.Attr("type")
	if typ != "get" && typ != "set" {
		return typ == "result" || typ == "error"
	}
	id := el.Attr("id")
	from := el.Attr("from")
	reply := func(body string) {
		s := "<iq type='" + body + "' id='" + xmlEscape(id) + "'"
		if from != "" {
			s += " to='" + xmlEscape(from) + "'"
		}
		if body == "error" {
			s += "><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
		} else {
			s += "/>"
		}
		_ = c.write([]byte(s))
	}
	if q := el.Child(nsRoster, "query"); q != nil && typ == "set" {
		c.mu.Lock()
		if c.roster == nil {
			c.roster = map[string]string{}
		}
		for _, it := range q.Elements() {
			if it.Attr("subscription") == "remove" {
				delete(c.roster, it.Attr("jid"))
			} else {
				c.roster[it.Attr("jid")] = it.Attr("subscription")
			}
		}
		c.mu.Unlock()
		reply("result")
		return true
	}
	if el.Child(nsPing, "ping") != nil {
		reply("result")
		return true
	}
	reply("error")
	return true
}

// run reads until the connection ends, passing stanzas to h.
func (c *client) run(h handler) {
	defer close(c.done)
	for {
		el, err := c.dec.Next()
		if err != nil {
			h.closed(c, err)
			return
		}
		if !c.handleControl(el) {
			h.element(c, el)
		}
		if c.dec.Buffered() == 0 {
			c.dec.Idle()
		}
	}
}

func (c *client) write(b []byte) error {
	c.wmu.Lock()
	_, err := c.conn.Write(b)
	c.wmu.Unlock()
	return err
}

// writeFunc builds a stanza into the client's buffer under the write lock
// (no allocation per message) and writes it.
func (c *client) writeFunc(build func(b []byte) []byte) error {
	c.wmu.Lock()
	c.wbuf = build(c.wbuf[:0])
	_, err := c.conn.Write(c.wbuf)
	if cap(c.wbuf) > 4096 {
		c.wbuf = nil
	}
	c.wmu.Unlock()
	return err
}

// close ends the stream politely and closes the connection.
func (c *client) close() {
	if c.closing.Swap(true) || c.conn == nil {
		return
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_ = c.write([]byte("<presence type='unavailable'/></stream:stream>"))
	_ = c.conn.Close()
}

func (c *client) bare() string { return c.user + "@" + c.d.domain }

// contactState returns the roster subscription for bare.
func (c *client) contactState(bare string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.roster[bare]
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", "\"", "&quot;")

func xmlEscape(s string) string { return xmlEscaper.Replace(s) }

// register creates an account with in-band registration (XEP-0077); an
// existing account (conflict) counts as success.
func (d *dialer) register(ctx context.Context, user, pass string) (created bool, err error) {
	conn, dec, f, err := d.connect(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if f.Child("http://jabber.org/features/iq-register", "register") == nil {
		// Not all servers advertise the feature; try anyway.
		_ = f
	}
	q := "<iq type='set' id='reg'><query xmlns='" + nsRegister + "'><username>" + xmlEscape(user) +
		"</username><password>" + xmlEscape(pass) + "</password></query></iq>"
	if _, err := conn.Write([]byte(q)); err != nil {
		return false, err
	}
	for {
		el, err := dec.Next()
		if err != nil {
			return false, fmt.Errorf("registering %s: %w", user, err)
		}
		if el.Local != "iq" || el.Attr("id") != "reg" {
			continue
		}
		_, _ = conn.Write([]byte("</stream:stream>"))
		if el.Attr("type") == "result" {
			return true, nil
		}
		if e := el.Child("jabber:client", "error"); e != nil && e.Child("urn:ietf:params:xml:ns:xmpp-stanzas", "conflict") != nil {
			return false, nil
		}
		return false, fmt.Errorf("registering %s refused: %s", user, el.String())
	}
}

// appendMessage appends a chat message whose body carries the sender's
// index, a sequence number and the send time in Unix nanoseconds.
func appendMessage(b []byte, to string, from int, seq uint64, now int64, pad string) []byte {
	b = append(b, "<message type='chat' to='"...)
	b = append(b, to...)
	b = append(b, "' id='m"...)
	b = strconv.AppendUint(b, seq, 36)
	b = append(b, "'><body>sb "...)
	b = strconv.AppendInt(b, int64(from), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, now, 10)
	b = append(b, ' ')
	b = append(b, pad...)
	b = append(b, "</body></message>"...)
	return b
}

// appendPresence appends a presence broadcast whose status carries the
// sender's index and the send time.
func appendPresence(b []byte, from int, show string, now int64) []byte {
	b = append(b, "<presence><show>"...)
	b = append(b, show...)
	b = append(b, "</show><status>sbp "...)
	b = strconv.AppendInt(b, int64(from), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, now, 10)
	b = append(b, "</status></presence>"...)
	return b
}

// parseStamp reads "<prefix> <from> [<seq>] <unixnano> ..." fields.
func parseStamp(s string, withSeq bool) (from int, stamp int64, ok bool) {
	f := strings.Fields(s)
	need := 3
	if withSeq {
		need = 4
	}
	if len(f) < need {
		return 0, 0, false
	}
	from, err1 := strconv.Atoi(f[1])
	stamp, err2 := strconv.ParseInt(f[need-1], 10, 64)
	return from, stamp, err1 == nil && err2 == nil
}
