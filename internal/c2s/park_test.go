package c2s

import (
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/netpark"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// Tests of parked sessions (park.go): a parked connection must behave
// exactly as one whose goroutine waits in Read.

func parkNode(t *testing.T, mod func(*Config)) *testNode {
	t.Helper()
	if !netpark.Supported() {
		t.Skip("parking is not supported on this system")
	}
	return newNode(t, func(c *Config) {
		c.ParkAfter = config.Duration(100 * time.Millisecond)
		if mod != nil {
			mod(c)
		}
	})
}

func (n *testNode) waitParked(want int) {
	n.t.Helper()
	waitFor(n.t, "parked connections", func() bool { return n.svc.park.Parked() == want })
}

// online connects user, sends initial presence and reads it back.
func (n *testNode) online(user string) *tclient {
	n.t.Helper()
	c := n.connect(user, "r")
	c.send(`<presence/>`)
	c.expect("presence")
	return c
}

func TestParkAfterLoginAndTraffic(t *testing.T) {
	n := parkNode(t, nil)
	n.addUser("alice")
	n.addUser("bob")
	alice := n.online("alice")
	// Parked at once after the login: no goroutine reads alice.
	n.waitParked(1)
	bob := n.online("bob")
	n.waitParked(2)

	// Stanzas to a parked session are written without waking it.
	n.route(`<message from='carol@localhost/x' to='alice@localhost/r' type='chat' id='m1'><body>to parked</body></message>`)
	if e, _ := alice.expect("message"); e.attr("id") != "m1" {
		t.Fatalf("got %s", e)
	}
	// A stanza from a parked session wakes it, is routed, and the session
	// parks again once quiet for park_after.
	for i := range 3 {
		alice.send(`<message to='bob@localhost' type='chat' id='a` + string(rune('0'+i)) + `'><body>hi</body></message>`)
		if e, _ := bob.expect("message"); e.attr("from") != "alice@localhost/r" {
			t.Fatalf("got %s", e)
		}
		n.waitParked(2)
	}
	if n.srv.Session(jid.MustParse(alice.jid)) == nil {
		t.Fatal("alice's session is gone")
	}
}

// A stanza split over two writes with a pause longer than park_after
// between them: the reader waits for the rest (it cannot park with half a
// stanza buffered) and nothing is lost.
func TestParkPartialStanza(t *testing.T) {
	n := parkNode(t, nil)
	n.addUser("alice")
	n.addUser("bob")
	alice := n.online("alice")
	bob := n.online("bob")
	n.waitParked(2)
	alice.send(`<message to='bob@localhost' type='chat' id='split'><bo`)
	time.Sleep(400 * time.Millisecond)
	alice.send(`dy>two halves</body></message>`)
	if e, _ := bob.expect("message"); e.attr("id") != "split" || !strings.Contains(e.Inner, "two halves") {
		t.Fatalf("got %s", e)
	}
}

// splitConn delays the second half of one TLS record on the wire, or
// holds records back to send several in one write.
type splitConn struct {
	net.Conn
	mu    sync.Mutex
	split bool   // split the next write in two, with a pause
	hold  bool   // keep writes until flush
	held  []byte // kept writes
}

func (s *splitConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.hold:
		s.held = append(s.held, p...)
		return len(p), nil
	case s.split:
		s.split = false
		h := len(p) / 2
		if _, err := s.Conn.Write(p[:h]); err != nil {
			return 0, err
		}
		time.Sleep(400 * time.Millisecond)
		if _, err := s.Conn.Write(p[h:]); err != nil {
			return h, err
		}
		return len(p), nil
	}
	return s.Conn.Write(p)
}

func (s *splitConn) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = false
	_, err := s.Conn.Write(s.held)
	s.held = nil
	return err
}

// dialSplit is dial over a splitConn.
func (n *testNode) dialSplit(user string) (*tclient, *splitConn) {
	n.t.Helper()
	raw, err := net.Dial("tcp", n.addr)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { raw.Close() })
	sc := &splitConn{Conn: raw}
	tc := tls.Client(sc, &tls.Config{ServerName: "localhost", RootCAs: n.roots, NextProtos: []string{"xmpp-client"}})
	c := &tclient{t: n.t, n: n, raw: raw.(*net.TCPConn), conn: tc, user: user}
	c.guard()
	if err := tc.Handshake(); err != nil {
		n.t.Fatal(err)
	}
	c.open()
	c.login()
	c.bind("r")
	return c, sc
}

// Half a TLS record arrives before the park, the rest after: crypto/tls
// keeps the first half, the socket becomes readable for the second.
func TestParkPartialRecord(t *testing.T) {
	n := parkNode(t, nil)
	n.addUser("alice")
	n.addUser("bob")
	bob := n.online("bob")
	alice, sc := n.dialSplit("alice")
	alice.send(`<presence/>`)
	alice.expect("presence")
	n.waitParked(2)
	sc.mu.Lock()
	sc.split = true
	sc.mu.Unlock()
	alice.send(`<message to='bob@localhost' type='chat' id='rec'><body>split record</body></message>`)
	if e, _ := bob.expect("message"); e.attr("id") != "rec" {
		t.Fatalf("got %s", e)
	}
}

// Initial presence and a message in two TLS records that reach the
// server together: the park probe must find the second record that
// crypto/tls read along with the first, instead of waiting for the socket.
func TestParkProbeFindsBufferedRecord(t *testing.T) {
	n := parkNode(t, nil)
	n.addUser("alice")
	n.addUser("bob")
	bob := n.online("bob")
	n.waitParked(1)
	alice, sc := n.dialSplit("alice")
	sc.mu.Lock()
	sc.hold = true
	sc.mu.Unlock()
	alice.send(`<presence/>`)
	alice.send(`<message to='bob@localhost' type='chat' id='second'><body>second record</body></message>`)
	if err := sc.flush(); err != nil {
		t.Fatal(err)
	}
	if e, _ := bob.expect("message"); e.attr("id") != "second" {
		t.Fatalf("got %s", e)
	}
}

// The keepalive ping comes while parked; an answer keeps the session, no
// answer ends it with connection-timeout.
func TestParkKeepalive(t *testing.T) {
	n := parkNode(t, func(c *Config) {
		c.IdleTimeout = config.Duration(300 * time.Millisecond)
		c.PingTimeout = config.Duration(500 * time.Millisecond)
	})
	n.addUser("alice")
	alice := n.online("alice")
	n.waitParked(1)
	ping, _ := alice.expect("iq")
	if ping.attr("type") != "get" || !strings.Contains(ping.Inner, "urn:xmpp:ping") {
		t.Fatalf("got %s, want a ping", ping)
	}
	alice.send(`<iq type='result' id='` + ping.attr("id") + `' to='localhost'/>`)
	// Answered: the next ping comes after another idle period.
	ping2, _ := alice.expect("iq")
	if !strings.Contains(ping2.Inner, "urn:xmpp:ping") {
		t.Fatalf("got %s, want a second ping", ping2)
	}
	// Not answered: the stream ends.
	e, _ := alice.expect("error")
	if !strings.Contains(e.Inner, "connection-timeout") {
		t.Fatalf("got %s, want connection-timeout", e)
	}
	if _, err := alice.read(); err != errStreamEnd {
		t.Fatalf("after the error: %v, want the stream's end", err)
	}
	waitFor(t, "the session's end", func() bool { return n.srv.Session(jid.MustParse(alice.jid)) == nil })
	n.waitParked(0)
}

// The server ends a parked session (an account deleted, a kick): the
// client gets the stream error and the connection is cleaned up.
func TestParkServerCloses(t *testing.T) {
	n := parkNode(t, nil)
	n.addUser("alice")
	alice := n.online("alice")
	n.waitParked(1)
	if k := n.srv.KickUser(n.ctx, jid.MustParse("alice@localhost"), stanza.NewStreamError(stanza.StreamPolicyViolation, "kicked for the test")); k != 1 {
		t.Fatalf("kicked %d sessions", k)
	}
	e, _ := alice.expect("error")
	if !strings.Contains(e.Inner, "kicked for the test") {
		t.Fatalf("got %s", e)
	}
	alice.send(`</stream:stream>`)
	waitFor(t, "the connection's end", func() bool {
		n.svc.mu.Lock()
		defer n.svc.mu.Unlock()
		return len(n.svc.conns) == 0
	})
	n.waitParked(0)
}

// The client drops the connection while parked: the session ends.
func TestParkClientHangsUp(t *testing.T) {
	n := parkNode(t, nil)
	n.addUser("alice")
	alice := n.online("alice")
	n.waitParked(1)
	alice.cut()
	waitFor(t, "the session's end", func() bool { return n.srv.Session(jid.MustParse(alice.jid)) == nil })
	waitFor(t, "the connection's end", func() bool {
		n.svc.mu.Lock()
		defer n.svc.mu.Unlock()
		return len(n.svc.conns) == 0
	})
	n.waitParked(0)
}

// Shutdown with parked sessions: they get system-shutdown and Shutdown
// returns (the node's cleanup fails the test otherwise).
func TestParkShutdown(t *testing.T) {
	n := parkNode(t, nil)
	var cs []*tclient
	for _, u := range []string{"alice", "bob", "carol"} {
		n.addUser(u)
		cs = append(cs, n.online(u))
	}
	n.waitParked(3)
	done := make(chan error, 1)
	go func() { done <- n.svc.Shutdown(n.ctx) }()
	for _, c := range cs {
		e, _ := c.expect("error")
		if !strings.Contains(e.Inner, "system-shutdown") {
			t.Fatalf("got %s", e)
		}
		c.send(`</stream:stream>`)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// park_after = 0: no parking, as before.
func TestParkOff(t *testing.T) {
	n := newNode(t, func(c *Config) { c.ParkAfter = 0 })
	n.addUser("alice")
	n.addUser("bob")
	alice := n.online("alice")
	bob := n.online("bob")
	if n.svc.park != nil {
		t.Fatal("a poller runs with park_after = 0")
	}
	alice.send(`<message to='bob@localhost' type='chat' id='x'><body>hi</body></message>`)
	if e, _ := bob.expect("message"); e.attr("id") != "x" {
		t.Fatalf("got %s", e)
	}
}
