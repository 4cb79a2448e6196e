package c2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/mod/offline"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
)

// testNode is an in-process server with a c2s Service on a loopback
// direct-TLS port, for driving the connection layer with raw clients.
type testNode struct {
	t     *testing.T
	srv   *server.Server
	svc   *Service
	addr  string
	roots *x509.CertPool
	ctx   context.Context
}

// newNode starts a node for host "localhost" with the roster, presence
// and offline features; mod changes the c2s configuration.
func newNode(t *testing.T, mod func(*Config)) *testNode {
	t.Helper()
	return newNodeWith(t, []server.Feature{roster.Feature, presence.Feature, offline.Feature}, nil, mod)
}

// newNodeWith starts a node with the given features and their
// configuration values (by feature name; missing ones get defaults).
func newNodeWith(t *testing.T, features []server.Feature, fcfg map[string]any, mod func(*Config)) *testNode {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("STOA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(server.Options{
		Hosts: []string{"localhost"}, Store: st, Logger: log,
		Features: features,
		Config:   func(name string) any { return fcfg[name] },
		Version:  "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	files, err := certs.GenerateDev(filepath.Join(dir, "tls"), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := certs.Load([]certs.Pair{{Cert: files.Cert, Key: files.Key}})
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)

	cfg := Defaults
	cfg.Listen = nil
	cfg.ListenTLS = []string{"127.0.0.1:0"}
	if mod != nil {
		mod(&cfg)
	}
	svc := New(srv, cfg, cs, []byte("test secret"), log)
	if err := svc.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	svc.Serve(ctx)
	_, direct := svc.Addrs()
	n := &testNode{t: t, srv: srv, svc: svc, addr: direct[0].String(), roots: roots, ctx: ctx}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := svc.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Stop()
		cancel()
		if err := st.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return n
}

func (n *testNode) addUser(local string) {
	n.t.Helper()
	if err := n.srv.CreateUser(n.ctx, jid.MustParse(local+"@localhost"), "pw-"+local, "test"); err != nil {
		n.t.Fatal(err)
	}
}

// route sends a stanza from the server side (as if another user sent it).
func (n *testNode) route(s string) {
	n.t.Helper()
	el := parseEl(n.t, s)
	if err := n.srv.RouteElement(n.ctx, el); err != nil {
		n.t.Fatal(err)
	}
}

// waitFor polls cond (a guard, not a timing assertion: it fails only if
// the condition never becomes true).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// elem is one top-level element a test client read.
type elem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (e elem) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (e elem) String() string {
	return fmt.Sprintf("<%s xmlns=%q %v>%s</%s>", e.XMLName.Local, e.XMLName.Space, e.Attrs, e.Inner, e.XMLName.Local)
}

// tclient is a hand-driven client.
type tclient struct {
	t    *testing.T
	n    *testNode
	raw  *net.TCPConn
	conn *tls.Conn
	dec  *xml.Decoder
	user string
	jid  string

	sm      bool // stream management enabled: count what is read
	handled int
}

var errStreamEnd = errors.New("the server closed its stream")

// dial connects with direct TLS and opens a stream (reading the features).
func (n *testNode) dial(user string) *tclient {
	n.t.Helper()
	raw, err := net.Dial("tcp", n.addr)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { raw.Close() })
	tc := tls.Client(raw, &tls.Config{ServerName: "localhost", RootCAs: n.roots, NextProtos: []string{"xmpp-client"}})
	c := &tclient{t: n.t, n: n, raw: raw.(*net.TCPConn), conn: tc, user: user}
	c.guard()
	if err := tc.Handshake(); err != nil {
		n.t.Fatal(err)
	}
	c.open()
	return c
}

func (c *tclient) guard() { _ = c.raw.SetDeadline(time.Now().Add(20 * time.Second)) }

// open sends a stream header and returns the features' inner XML.
func (c *tclient) open() string {
	c.t.Helper()
	c.dec = xml.NewDecoder(c.conn)
	c.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`)
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.t.Fatalf("reading the stream header: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	f := c.next()
	if f.XMLName.Local != "features" {
		c.t.Fatalf("got %s, want features", f)
	}
	return f.Inner
}

func (c *tclient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("%s: writing: %v", c.user, err)
	}
}

// read returns the next top-level element, or errStreamEnd.
func (c *tclient) read() (elem, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return elem{}, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			var e elem
			if err := c.dec.DecodeElement(&e, &tok); err != nil {
				return elem{}, err
			}
			if c.sm && e.XMLName.Space == "jabber:client" {
				c.handled++
			}
			return e, nil
		case xml.EndElement:
			return elem{}, errStreamEnd
		}
	}
}

func (c *tclient) next() elem {
	c.t.Helper()
	e, err := c.read()
	if err != nil {
		c.t.Fatalf("%s: reading: %v", c.user, err)
	}
	return e
}

// expect reads until an element named local arrives, returning it and
// the stanzas read before it.
func (c *tclient) expect(local string) (elem, []elem) {
	c.t.Helper()
	var before []elem
	for {
		e := c.next()
		if e.XMLName.Local == local {
			return e, before
		}
		before = append(before, e)
	}
}

// login authenticates with PLAIN and restarts the stream; it returns the
// post-authentication features.
func (c *tclient) login() string {
	c.t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + c.user + "\x00pw-" + c.user))
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + auth + `</auth>`)
	if e := c.next(); e.XMLName.Local != "success" {
		c.t.Fatalf("%s: auth: %s", c.user, e)
	}
	return c.open()
}

// bind binds resource.
func (c *tclient) bind(resource string) {
	c.t.Helper()
	c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
	e := c.next()
	if e.attr("type") != "result" {
		c.t.Fatalf("%s: bind: %s", c.user, e)
	}
	c.jid = c.user + "@localhost/" + resource
}

// connect dials, logs in and binds.
func (n *testNode) connect(user, resource string) *tclient {
	n.t.Helper()
	c := n.dial(user)
	c.login()
	c.bind(resource)
	return c
}

// closeAcked acknowledges every stanza read so far (XEP-0198) and closes
// the stream cleanly.
func (c *tclient) closeAcked() {
	c.t.Helper()
	c.send(fmt.Sprintf(`<a xmlns='urn:xmpp:sm:3' h='%d'/></stream:stream>`, c.handled))
}

// cut drops the TCP connection without closing the stream or TLS (an RST).
func (c *tclient) cut() {
	_ = c.raw.SetLinger(0)
	_ = c.raw.Close()
}

// session returns the server's session of the client's full JID.
func (c *tclient) session() *server.Session {
	return c.n.srv.Session(jid.MustParse(c.jid))
}

// messageIDs returns the ids of the messages among els.
func messageIDs(els []elem) []string {
	var out []string
	for _, e := range els {
		if e.XMLName.Local == "message" {
			out = append(out, e.attr("id"))
		}
	}
	return out
}

func hasDelay(e elem) bool { return strings.Contains(e.Inner, "urn:xmpp:delay") }
