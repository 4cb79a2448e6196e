package c2s

import (
	"context"
	"errors"
	"time"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

var errClosed = errors.New("c2s: connection closed")

// maxWriteBuf is the largest write buffer kept for reuse.
const maxWriteBuf = 64 << 10

// getWriteBuf returns a buffer for a writer goroutine: writers come and
// go with each burst of stanzas (an idle session has none), so their
// buffers are shared through a pool instead of being grown anew by
// every burst.
func (svc *Service) getWriteBuf() *[]byte {
	if bp, ok := svc.wbufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 2048)
	return &b
}

func (svc *Service) putWriteBuf(bp *[]byte) {
	if cap(*bp) > maxWriteBuf {
		return
	}
	*bp = (*bp)[:0]
	svc.wbufs.Put(bp)
}

// writeRaw writes bytes synchronously with the write timeout, after the
// bytes sendNow left pending in the socket (with no bytes, only those).
func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(time.Duration(c.svc.cfg.WriteTimeout)))
	if len(b) == 0 {
		if c.rs != nil {
			return c.rs.Flush()
		}
		return nil
	}
	_, err := c.nc.Write(b)
	return err
}

// write writes one element synchronously (stream negotiation, before the
// session is bound: nobody else writes then).
func (c *conn) write(el *xml.Element) error {
	return c.writeRaw(el.AppendTo(nil, xml.NSClient))
}

// Send implements server.Conn: it queues el without blocking. A client
// whose queue is over the limit is disconnected.
func (c *conn) Send(el *xml.Element) error {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return errClosed
	}
	size := approxSize(el)
	if c.qbytes+size > int(c.svc.cfg.MaxQueue) {
		c.qmu.Unlock()
		c.svc.srv.CountDenied("slow_reader")
		c.logger().Info("client reads too slowly; disconnecting", "queued_bytes", c.qbytes)
		c.Close(stanza.NewStreamError(stanza.StreamPolicyViolation, "Your client does not read fast enough; its outgoing queue is full."))
		return errClosed
	}
	if !c.writing && len(c.queue) == 0 && c.rs != nil && !c.writeShaped() {
		c.writing = true // the caller is the writer until sendNow returns
		c.qmu.Unlock()
		c.sendNow(el)
		return nil
	}
	c.queue = append(c.queue, el)
	c.qbytes += size
	c.startWriterLocked()
	c.qmu.Unlock()
	return nil
}

// sendNow writes el from the caller's goroutine when nothing else is
// queued or being written, without waiting for the socket: what the kernel
// does not take at once stays in the socket's pending bytes (rawsock) and
// a writer goroutine writes it. Most stanzas to a client that reads go out
// this way, with no goroutine started and no second thread woken for them
// (docs/benchmarks.md). The caller holds the writer role (c.writing).
func (c *conn) sendNow(el *xml.Element) {
	bp := c.svc.getWriteBuf()
	*bp = el.AppendTo((*bp)[:0], xml.NSClient)
	c.wmu.Lock()
	c.rs.SetNoWait(true)
	_, err := c.nc.Write(*bp)
	c.rs.SetNoWait(false)
	spilled := c.rs.Pending() > 0
	c.wmu.Unlock()
	c.svc.putWriteBuf(bp)
	if err != nil {
		c.writeFailed(err, []*xml.Element{el})
		return
	}
	c.qmu.Lock()
	c.writing = false
	if spilled {
		c.spilled = el // requeued if the rest cannot be written
	}
	if spilled || len(c.queue) > 0 || c.closing {
		c.startWriterLocked()
	}
	c.qmu.Unlock()
}

// writeShaped tells whether a bandwidth limit applies to writes (the
// shaper may then make a write wait, so it is left to the writer).
func (c *conn) writeShaped() bool {
	sc, ok := c.raw.(*policy.ShapedConn)
	return ok && sc.Limited(policy.Write)
}

// approxSize estimates the serialized size without serializing.
func approxSize(el *xml.Element) int {
	n := 2*len(el.Local) + len(el.Space) + len(el.Text) + 5
	for _, a := range el.Attrs {
		n += len(a.Local) + len(a.Value) + 4
	}
	for _, ch := range el.Children {
		n += approxSize(ch)
	}
	return n
}

// startWriterLocked starts the writer goroutine if it is not running.
// The connection owns it: it ends when the queue is empty.
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

// drain writes queued stanzas until the queue is empty; if the connection
// is closing, it then writes the closing elements and closes the socket.
func (c *conn) drain() {
	bp := c.svc.getWriteBuf()
	defer c.svc.putWriteBuf(bp)
	buf := *bp
	defer func() { *bp = buf }()
	for {
		c.qmu.Lock()
		q := c.queue
		c.queue = nil
		c.qbytes = 0
		spilled := c.spilled
		c.spilled = nil
		if len(q) == 0 && spilled == nil {
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
		for _, el := range q {
			buf = el.AppendTo(buf, xml.NSClient)
		}
		if spilled != nil {
			// The rest of a stanza sendNow began is pending in the
			// socket; the write sends it first (writeRaw).
			q = append([]*xml.Element{spilled}, q...)
		}
		if err := c.writeRaw(buf); err != nil {
			c.writeFailed(err, q)
			return
		}
		if cap(buf) > maxWriteBuf {
			buf = nil // do not keep a large buffer
		}
	}
}

// writeFailed ends a connection whose transport failed while the writer
// (drain or sendNow) wrote q: the unwritten stanzas go back to the server
// and the socket closes. The caller holds the writer role, which ends.
func (c *conn) writeFailed(err error, q []*xml.Element) {
	c.logger().Debug("write failed", "err", err)
	c.qmu.Lock()
	c.closing = true
	c.lost = true // the transport failed: a resumable session detaches
	rest := c.queue
	c.queue = nil
	c.qmu.Unlock()
	c.requeue(append(q, rest...))
	c.wake() // a parked reader must see the close (park.go)
	_ = c.raw.Close()
	c.qmu.Lock()
	c.writing = false
	c.qmu.Unlock()
	c.signalDone()
}

func (c *conn) finalWrite(closeEl *xml.Element) {
	var b []byte
	if closeEl != nil {
		b = closeEl.AppendTo(b, xml.NSClient)
	}
	b = append(b, xml.StreamClose...)
	_ = c.writeRaw(b)
	if c.tls != nil {
		_ = c.raw.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.tls.CloseWrite()
	}
	// Give the client a moment to close its side, then close ours; the
	// reader goroutine sees the close and finishes.
	_ = c.raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	c.signalDone()
}

func (c *conn) signalDone() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}

// Close implements server.Conn: queued stanzas are written, then the
// stream error (if any) and the stream close; the socket closes after.
func (c *conn) Close(err *stanza.StreamError) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	c.closing = true
	if err != nil {
		c.closeEl = err.Element()
	}
	c.startWriterLocked()
	c.qmu.Unlock()
	c.wake() // a parked reader must see the close (park.go)
}

// closeStream is Close from the reader goroutine: it also waits for the
// writer to finish (bounded by the write timeout).
func (c *conn) closeStream(err *stanza.StreamError) {
	c.Close(err)
	select {
	case <-c.done:
	case <-time.After(time.Duration(c.svc.cfg.WriteTimeout)):
		_ = c.raw.Close()
	}
}

// abort closes the socket without writing (the peer is gone).
func (c *conn) abort() {
	c.qmu.Lock()
	c.closing = true
	q := c.queue
	c.queue = nil
	c.qmu.Unlock()
	c.requeue(q)
	_ = c.raw.Close()
}

// shutdown is called at server shutdown.
func (c *conn) shutdown() {
	c.Close(stanza.NewStreamError(stanza.SystemShutdown, "The server is shutting down; please reconnect later."))
	// Unblock the reader so serve returns.
	go func() {
		select {
		case <-c.done:
		case <-time.After(time.Duration(c.svc.cfg.WriteTimeout)):
		}
		_ = c.raw.SetReadDeadline(time.Now())
	}()
}

// finish runs when serve returns: the session leaves the table, and
// messages that were queued but never written are stored for later.
func (c *conn) finish(ctx context.Context) {
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
	_ = c.raw.Close()
	c.qmu.Lock()
	q := c.queue
	c.queue = nil
	c.qmu.Unlock()
	c.requeue(q)
	if c.link != nil && !c.replaced.Load() {
		c.qmu.Lock()
		lost := c.lost
		c.qmu.Unlock()
		c.link.connEnded(context.WithoutCancel(ctx), c, lost)
		c.logger().Info("connection closed", "duration", time.Since(c.started).Round(time.Second).String(), "lost", lost)
	}
	c.notifyClosed(ctx) // bandwidth.go
}

// requeue hands messages that could not be written back to the server,
// which delivers them to another resource or stores them offline.
func (c *conn) requeue(q []*xml.Element) {
	if c.sess == nil || c.link == nil || c.link.hasSM() {
		// With stream management every stanza is in the link's unacked
		// queue, which decides (resumption or offline storage).
		return
	}
	for _, el := range q {
		if el.Local != "message" || el.Attr("type") == "error" || el.Attr("type") == "groupchat" || el.Attr("type") == "headline" {
			continue
		}
		to, err := jid.Parse(el.Attr("to"))
		if err != nil {
			continue
		}
		c.svc.srv.Redeliver(context.Background(), to.Bare(), el)
	}
}
