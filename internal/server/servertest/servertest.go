// Package servertest runs an in-process server with fake client sessions,
// for feature tests: bind sessions, send stanzas as a client would, and
// read what each session received.
package servertest

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Env is a test server.
type Env struct {
	T   testing.TB
	Srv *server.Server
	Ctx context.Context
}

// New starts a server for host "localhost" (plus extra hosts) with the
// given features on st. Config values per feature may be given in cfg.
func New(t testing.TB, st store.Store, features []server.Feature, cfg map[string]any, hosts ...string) *Env {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"localhost"}
	}
	srv, err := server.New(server.Options{
		Hosts: hosts, Store: st, Features: features,
		Config:  func(name string) any { return cfg[name] },
		Version: "test",
	})
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	t.Cleanup(func() { srv.Stop(); cancel() })
	return &Env{T: t, Srv: srv, Ctx: ctx}
}

// AddUser creates an account.
func (e *Env) AddUser(bare, password string) {
	e.T.Helper()
	j := jid.MustParse(bare)
	if err := e.Srv.CreateUser(e.Ctx, j, password, "test"); err != nil {
		e.T.Fatalf("servertest: adding %s: %v", bare, err)
	}
}

// Client is a fake bound session.
type Client struct {
	env  *Env
	Sess *server.Session
	JID  jid.JID

	mu     sync.Mutex
	cond   *sync.Cond
	got    []*xml.Element
	closed *stanza.StreamError
	isShut bool
}

// Send implements server.Conn.
func (c *Client) Send(el *xml.Element) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isShut {
		return context.Canceled
	}
	// Serialize and re-parse would be more faithful; a deep copy keeps
	// later mutation by the sender from leaking into assertions.
	c.got = append(c.got, el.Copy())
	c.cond.Broadcast()
	return nil
}

// Close implements server.Conn.
func (c *Client) Close(err *stanza.StreamError) {
	c.mu.Lock()
	if !c.isShut {
		c.isShut = true
		c.closed = err
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

// RemoteAddr implements server.Conn.
func (c *Client) RemoteAddr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:40000") }

// Bind binds a session for a full JID (the account must exist for
// features that check it; the core does not).
func (e *Env) Bind(full string) *Client {
	e.T.Helper()
	j := jid.MustParse(full)
	c := &Client{env: e, JID: j}
	c.cond = sync.NewCond(&c.mu)
	s, err := e.Srv.Bind(e.Ctx, j, server.NewSessionID(), c)
	if err != nil {
		e.T.Fatalf("servertest: bind %s: %v", full, err)
	}
	c.Sess = s
	return c
}

// Disconnect ends the session as if the connection dropped.
func (c *Client) Disconnect() {
	c.Close(nil)
	c.env.Srv.Unbind(c.env.Ctx, c.Sess)
}

// SendXML sends a stanza as the client would: it is parsed in the
// jabber:client namespace, stamped with the session's full JID and run
// through the pipeline. Example: c.SendXML(`<message to='b@localhost' type='chat'><body>hi</body></message>`).
func (c *Client) SendXML(s string) {
	c.env.T.Helper()
	el := Parse(c.env.T, s)
	kind := server.KindOf(el)
	st := &server.Stanza{El: el, Kind: kind, Type: el.Attr("type"), ID: el.Attr("id"), Origin: c.Sess}
	st.SetFrom(c.JID)
	if t := el.Attr("to"); t != "" {
		st.SetTo(jid.MustParse(t))
	} else if kind != server.KindPresence {
		st.To = c.JID.Bare()
	}
	c.env.Srv.Inbound(c.env.Ctx, st)
}

// Parse parses one element in the jabber:client namespace.
func Parse(t testing.TB, s string) *xml.Element {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+s), xml.DefaultLimits())
	if _, err := d.Header(); err != nil {
		t.Fatalf("servertest: header: %v", err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatalf("servertest: parsing %s: %v", s, err)
	}
	return el
}

// Received returns and clears what the session got so far.
func (c *Client) Received() []*xml.Element {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.got
	c.got = nil
	return g
}

// Expect waits (up to 2s: delivery is synchronous in-process, the wait
// only covers goroutine hand-offs) for the next element matching match,
// dropping nothing else: non-matching elements stay queued.
func (c *Client) Expect(match func(*xml.Element) bool) *xml.Element {
	c.env.T.Helper()
	deadline := time.Now().Add(2 * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for i, el := range c.got {
			if match(el) {
				c.got = append(c.got[:i:i], c.got[i+1:]...)
				return el
			}
		}
		if time.Now().After(deadline) {
			var have []string
			for _, el := range c.got {
				have = append(have, el.String())
			}
			c.env.T.Fatalf("servertest: %s: expected element not received; have: %s", c.JID, strings.Join(have, " | "))
			return nil
		}
		go func() { time.Sleep(10 * time.Millisecond); c.cond.Broadcast() }()
		c.cond.Wait()
	}
}

// ExpectNothing asserts that nothing matching match was received.
func (c *Client) ExpectNothing(match func(*xml.Element) bool) {
	c.env.T.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, el := range c.got {
		if match(el) {
			c.env.T.Fatalf("servertest: %s: unexpected %s", c.JID, el.String())
		}
	}
}

// Closed returns the stream error the session was closed with, and
// whether it was closed.
func (c *Client) Closed() (*stanza.StreamError, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed, c.isShut
}

// Name matches elements by local name, and optionally type and from.
func Name(local string, attrs ...string) func(*xml.Element) bool {
	return func(el *xml.Element) bool {
		if el.Local != local {
			return false
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			if el.Attr(attrs[i]) != attrs[i+1] {
				return false
			}
		}
		return true
	}
}
