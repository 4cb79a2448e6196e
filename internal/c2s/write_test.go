package c2s

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"stoa.im/stoa/internal/config"
)

// Tests of the write path (write.go): stanzas written from the sender's
// goroutine (sendNow), the rest left pending in the socket, and the
// writer goroutine that takes over.

// connOf returns the server's connection of a client's session.
func (n *testNode) connOf(c *tclient) *conn {
	n.t.Helper()
	n.svc.mu.Lock()
	defer n.svc.mu.Unlock()
	for sc := range n.svc.conns {
		if id := sc.logID.Load(); id != nil && id.jid == c.jid {
			return sc
		}
	}
	n.t.Fatalf("no connection for %s", c.jid)
	return nil
}

func msg(i int, pad string) string {
	return fmt.Sprintf(`<message from='carol@localhost/x' to='alice@localhost/r' type='chat' id='m%d'><body>%s</body></message>`, i, pad)
}

// A client that stops reading: the first stanzas go out from the routing
// goroutine until the socket is full, the rest of the one that did not fit
// stays pending and a writer takes over; when the client reads again it
// gets every stanza, in order.
func TestWritePendingThenQueued(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("stanzas are written from the sender's goroutine on Linux only")
	}
	n := newNode(t, func(c *Config) { c.MaxQueue = config.Size(64 << 20) })
	n.addUser("alice")
	alice := n.online("alice")
	sc := n.connOf(alice)
	if sc.rs == nil {
		t.Fatal("the connection's socket is not a rawsock.Conn")
	}
	idle := func() bool {
		sc.qmu.Lock()
		defer sc.qmu.Unlock()
		return !sc.writing && sc.spilled == nil && len(sc.queue) == 0
	}
	waitFor(t, "the writer of the login's stanzas to finish", idle)
	pad := strings.Repeat("x", 4000)
	sent := 0
	for ; sent < 20000; sent++ {
		n.route(msg(sent, pad))
		sc.qmu.Lock()
		// sendNow returned with the writer role handed to a goroutine:
		// the socket took only part of the stanza.
		handedOver := sc.writing || sc.spilled != nil
		sc.qmu.Unlock()
		if handedOver {
			if sent < 1 {
				t.Fatalf("a writer took over after %d stanzas", sent)
			}
			break
		}
	}
	if sent == 20000 {
		t.Fatal("the client's socket never filled")
	}
	// Now the writer owns the socket: more stanzas queue behind.
	for i := 0; i < 50; i++ {
		sent++
		n.route(msg(sent, pad))
	}
	sent++
	alice.guard()
	for i := 0; i < sent; i++ {
		e, _ := alice.expect("message")
		if got, want := e.attr("id"), fmt.Sprintf("m%d", i); got != want {
			t.Fatalf("message %d: got id %s, want %s", i, got, want)
		}
	}
	// And once it is drained, stanzas go out directly again.
	waitFor(t, "the writer to finish", idle)
	n.route(msg(sent, "again"))
	if e, _ := alice.expect("message"); e.attr("id") != fmt.Sprintf("m%d", sent) {
		t.Fatalf("got %s", e)
	}
}

// A client that never reads is disconnected once its queue is full, the
// stanza cut in half by the full socket included in what is counted as not
// delivered; the messages not written are stored offline.
func TestWriteSlowReaderDisconnected(t *testing.T) {
	n := newNode(t, func(c *Config) { c.MaxQueue = config.Size(64 << 10) })
	n.addUser("alice")
	alice := n.online("alice")
	pad := strings.Repeat("x", 4000)
	sc := n.connOf(alice)
	for i := 0; i < 5000; i++ {
		n.route(msg(i, pad))
		sc.qmu.Lock()
		closing := sc.closing
		sc.qmu.Unlock()
		if closing {
			break
		}
	}
	sc.qmu.Lock()
	closing := sc.closing
	sc.qmu.Unlock()
	if !closing {
		t.Fatal("a client that does not read was not disconnected")
	}
	// The client reads what was written: messages in order, then the
	// stream error.
	alice.guard()
	next := 0
	for {
		e, err := alice.read()
		if err != nil {
			break
		}
		switch e.XMLName.Local {
		case "message":
			if got, want := e.attr("id"), fmt.Sprintf("m%d", next); got != want {
				t.Fatalf("got id %s, want %s", got, want)
			}
			next++
			continue
		case "error":
			if !strings.Contains(e.Inner, "policy-violation") {
				t.Fatalf("stream error %s", e)
			}
		}
		break
	}
	if next == 0 {
		t.Fatal("the client got no message before the stream error")
	}
}
