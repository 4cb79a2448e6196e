package c2s

import (
	"context"
	"errors"
)

// Idle sessions and goroutine stacks.
//
// One goroutine reads each connection. During the login it runs the TLS
// handshake, SASL, resource binding and the first stanzas (roster,
// initial presence with its probes and storage lookups), which grow its
// stack to 8 or 16 KiB. A goroutine keeps a grown stack while it waits in
// Read; the garbage collector halves it only when less than a quarter is
// in use, and only when a collection runs, which an idle server may not
// do for minutes. That made the stack the largest single cost of an idle
// session (about 9 KB of 50; docs/benchmarks.md).
//
// Where sessions park (park.go: Linux, [c2s] park_after > 0), the login
// goroutine simply ends when the session parks after its login. Where
// they cannot, once a bound session has sent its initial presence and has
// nothing more buffered, the read loop continues on a fresh goroutine,
// which starts with the runtime's average stack size, and the login
// goroutine ends and frees its stack. This happens once per connection.

// errHandOff ends the login goroutine's read loop (see above).
var errHandOff = errors.New("c2s: read loop handed off")

// wantHandOff reports, once per connection, whether the read loop should
// move to a fresh goroutine now: the session is bound and available.
func (c *conn) wantHandOff() bool {
	if c.handedOff || c.state != stateBound || c.sess == nil || !c.sess.Available() {
		return false
	}
	c.handedOff = true
	return true
}

// handOff continues the connection's read loop on a new goroutine, which
// then owns the connection until it ends. It is called by the goroutine
// that served the connection so far, which is still counted in svc.wg.
func (c *conn) handOff(ctx context.Context) {
	c.svc.wg.Add(1)
	go func() {
		defer c.svc.wg.Done()
		c.readOn(ctx)
	}()
}

// readOn runs the read loop of a handed-off or resumed parked connection
// until it ends (then it cleans up) or parks again.
func (c *conn) readOn(ctx context.Context) {
	err := c.elements(ctx)
	for err == errRestart {
		err = c.stream(ctx)
	}
	if err == errParked {
		return
	}
	c.fail(err)
	c.finish(ctx)
	c.svc.connGone(c)
}

// connGone forgets a connection whose goroutine has finished.
func (svc *Service) connGone(c *conn) {
	svc.metrics.conns.Dec()
	svc.mu.Lock()
	delete(svc.conns, c)
	svc.mu.Unlock()
}
