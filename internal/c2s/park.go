package c2s

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/netpark"
)

// Parking idle sessions.
//
// Most of a client session's life is silence: the phone in a pocket, the
// desktop client between messages. A goroutine blocked in Read for that
// time keeps its stack (4 to 8 KiB after the TLS and parsing frames it ran
// through), which was the largest single cost of an idle session. So a
// bound session's reader parks instead (internal/netpark): when nothing
// is buffered above the socket, it registers the socket with the
// service's poller and its goroutine ends; a new goroutine starts when
// the socket is readable again, when the idle timer runs out (time for
// the keepalive ping, or for giving up on it), or when the server closes
// the connection (wake). The writer side needs no goroutine while idle
// anyway (write.go).
//
// When to park: right after the login (the session is bound and
// available and nothing more is buffered; a read with an expired deadline
// proves that crypto/tls holds no complete record either), and later
// whenever the client has sent nothing for [c2s] park_after. Between
// those, an active client keeps its goroutine, so a chatty session does
// not pay two system calls per stanza.
//
// Invariants: exactly one of {a goroutine reading, a netpark.Waiter} owns
// a connection; whoever closes a connection or changes its deadlines from
// outside the reader calls wake first, which turns a parked connection
// back into a reading goroutine (the reader then sees the close as it
// would have while blocked in Read). park refuses once the connection is
// closing, and it checks under pmu, which wake also takes, so a close
// cannot slip between the check and the registration.

// errParked ends a reader goroutine whose connection is now parked.
var errParked = errors.New("c2s: connection parked")

// quietAction is what the reader does after a read deadline passed.
type quietAction uint8

const (
	quietEnd    quietAction = iota // return the timeout: the connection ends
	quietGoOn                      // read again
	quietParked                    // parked: the goroutine ends
)

// armRead sets the read deadline of a bound session before it waits for
// the next element: the idle timeout (or the ping's), and, when parking
// is on, park_after from now at most; a probe for parking gets an
// expired deadline, so the read returns at once unless bytes are buffered.
func (c *conn) armRead() {
	now := time.Now()
	if c.activeAt.IsZero() {
		c.activeAt = now
	}
	var dl time.Time
	switch {
	case c.probe:
		dl = time.Unix(1, 0)
	case c.pingSeq.Load() > 0:
		dl = c.pingAt.Add(time.Duration(c.svc.cfg.PingTimeout))
	default:
		dl = c.activeAt.Add(time.Duration(c.svc.cfg.IdleTimeout))
	}
	if c.svc.park != nil && !c.probe {
		if p := now.Add(time.Duration(c.svc.cfg.ParkAfter)); p.Before(dl) {
			dl = p
		}
	}
	_ = c.raw.SetReadDeadline(dl)
}

// quiet decides what a bound session's reader does when its read
// deadline passed; buffered tells whether part of a stanza is waiting.
func (c *conn) quiet(buffered bool) quietAction {
	c.qmu.Lock()
	closing := c.closing
	c.qmu.Unlock()
	if closing {
		// The deadline is the close's grace period (finalWrite).
		return quietEnd
	}
	now := time.Now()
	probe := c.probe
	c.probe = false
	var due time.Time
	if c.pingSeq.Load() > 0 {
		due = c.pingAt.Add(time.Duration(c.svc.cfg.PingTimeout))
		if !now.Before(due) {
			return quietEnd // no answer to the ping
		}
	} else {
		due = c.activeAt.Add(time.Duration(c.svc.cfg.IdleTimeout))
		if !now.Before(due) {
			if buffered {
				return quietEnd // half a stanza for the whole idle time
			}
			if !c.ping() {
				return quietEnd
			}
			c.pingAt = now
			return quietGoOn
		}
	}
	if buffered || (!probe && now.Sub(c.activeAt) < time.Duration(c.svc.cfg.ParkAfter)) {
		return quietGoOn
	}
	if c.park(due.Sub(now)) {
		return quietParked
	}
	return quietGoOn
}

// park registers the connection with the poller; after it reported true
// the calling goroutine must end without touching the connection.
func (c *conn) park(after time.Duration) bool {
	if c.svc.park == nil || c.sock == nil {
		return false
	}
	c.dec.Idle()
	c.pmu.Lock()
	defer c.pmu.Unlock()
	c.qmu.Lock()
	closing := c.closing
	c.qmu.Unlock()
	if closing {
		return false
	}
	w, err := c.svc.park.Park(c.sock, after, c.unpark)
	if err != nil {
		c.logger().Debug("cannot park the connection", "err", err)
		return false
	}
	c.waiter = w
	return true
}

// unpark is called by the poller (or its timer) when a parked connection
// is readable or its timer ran out: a new goroutine reads it.
func (c *conn) unpark() {
	c.pmu.Lock()
	c.waiter = nil
	c.pmu.Unlock()
	c.readAgain()
}

// wake turns a parked connection back into a reading goroutine; callers
// that close the connection or change its read deadline from outside the
// reader call it first (see the invariants above). It does nothing when
// the connection is not parked.
func (c *conn) wake() {
	c.pmu.Lock()
	w := c.waiter
	c.waiter = nil
	c.pmu.Unlock()
	if w != nil && w.Cancel() {
		c.readAgain()
	}
}

// readAgain starts a goroutine that reads the connection until it ends or
// parks again. It is counted in the service's WaitGroup.
func (c *conn) readAgain() {
	c.svc.wg.Add(1)
	go func() {
		defer c.svc.wg.Done()
		c.readOn(c.ctx)
	}()
}

// runPoller starts the service's poller when parking is on and the system
// supports it. The poller's goroutine is the service's; it ends at
// Shutdown (stopPoller).
func (svc *Service) runPoller() {
	if svc.cfg.ParkAfter <= 0 || !netpark.Supported() {
		return
	}
	p, err := netpark.New()
	if err != nil {
		svc.log.Warn("idle connections keep their goroutines", "err", err)
		return
	}
	svc.park = p
	svc.parkDone = make(chan struct{})
	svc.srv.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "stoa", Subsystem: "c2s", Name: "parked_connections",
		Help: "Client connections waiting in the kernel without a goroutine ([c2s] park_after).",
	}, func() float64 { return float64(p.Parked()) }))
	go func() {
		defer close(svc.parkDone)
		if err := p.Run(); err != nil {
			// Parked connections would wait forever: wake them all, and
			// park no more.
			svc.log.Error("poller of idle connections stopped", "err", err)
			_ = p.Close()
		}
	}()
}

// stopPoller stops the poller once no connection can park any more: every
// connection that was still parked is woken (and so ends).
func (svc *Service) stopPoller() {
	if svc.park == nil {
		return
	}
	_ = svc.park.Close()
	<-svc.parkDone
}
