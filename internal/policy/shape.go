package policy

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ByteRate is a bandwidth limit: PerSecond bytes per second on average,
// with bursts of up to PerSecond × Burst bytes after an idle period. A
// PerSecond of 0 (or less) means no limit.
type ByteRate struct {
	PerSecond float64
	Burst     time.Duration
}

// Unlimited reports whether r sets no limit.
func (r ByteRate) Unlimited() bool { return !(r.PerSecond > 0) }

// Capacity is the burst in bytes (at least 1).
func (r ByteRate) Capacity() float64 { return max(1, r.PerSecond*r.Burst.Seconds()) }

// NewBucket returns a full bucket for r, or nil when r sets no limit.
func (r ByteRate) NewBucket(now func() time.Time) *Bucket {
	if r.Unlimited() {
		return nil
	}
	return NewBucket(r.PerSecond, r.Capacity(), now)
}

// Direction is the direction of traffic on a shaped connection.
type Direction uint8

// Directions.
const (
	Read  Direction = iota // bytes the peer sends us
	Write                  // bytes we send the peer
)

func (d Direction) String() string {
	if d == Write {
		return "write"
	}
	return "read"
}

// ShapedConn is a net.Conn whose reads and writes are held to token
// buckets: one of its own per direction (the connection's ByteRate) and
// optionally one shared with other connections (all of an account's
// connections). Bytes pass only when every bucket of their direction has
// the tokens, so over any interval of t seconds a direction moves at most
// PerSecond·t + Capacity bytes of its own bucket, counted on the wire (TLS
// included when the ShapedConn is under TLS); a shared bucket holds within
// one read per connection (see take).
//
// Reading stops while tokens are missing: the peer's data waits in the
// kernel and TCP flow control slows the peer down (nothing is dropped).
// A wait for read tokens ends early with a timeout error at the read
// deadline, and with net.ErrClosed when the connection is closed. Waits
// for write tokens do not count against the write deadline: a deadline
// set with SetWriteDeadline is treated as a timeout for each chunk
// written after a wait (a write that blocks in the kernel that long still
// fails), so that a slow, shaped writer is not mistaken for a dead peer.
//
// Limits may change at any time (SetLimit), e.g. to exempt a connection
// once its user is known. Safe for one reader and one writer at a time,
// plus SetLimit, deadlines and Close from any goroutine.
type ShapedConn struct {
	net.Conn

	now   func() time.Time
	sleep func(c *ShapedConn, dir Direction, d time.Duration) error // tests replace it

	mu       sync.Mutex
	dirs     [2]shapeDir
	isClosed bool // guarded by mu

	readDeadline atomic.Int64 // unix nanoseconds; 0 = none
	writeTimeout atomic.Int64 // nanoseconds; 0 = none, <0 = already expired

	// waits is made (under mu) the first time a limit applies: a
	// connection that is never limited does without its channels.
	waits atomic.Pointer[shapeWaits]

	waited func(Direction, time.Duration)
	passed func(Direction, int)
}

// shapeWaits are what a wait for tokens selects on.
type shapeWaits struct {
	kick   [2]chan struct{} // per direction: limits or deadline changed
	closed chan struct{}    // closed by Close
}

type shapeDir struct {
	rate   ByteRate
	own    *Bucket
	shared *Bucket
}

// NewShapedConn wraps c with no limits; set them with SetLimit.
func NewShapedConn(c net.Conn) *ShapedConn {
	return &ShapedConn{
		Conn: c, now: time.Now, sleep: realSleep,
	}
}

// Observe registers functions told about each wait for tokens and about
// bytes that passed while a limit applied (for metrics). Call it before
// the connection is used.
func (c *ShapedConn) Observe(waited func(Direction, time.Duration), passed func(Direction, int)) {
	c.waited, c.passed = waited, passed
}

// SetLimit sets the limits of one direction: the connection's own rate
// (zero: none) and a bucket shared with other connections (nil: none). An
// unchanged own rate keeps its bucket and what it has used.
func (c *ShapedConn) SetLimit(dir Direction, own ByteRate, shared *Bucket) {
	c.mu.Lock()
	d := &c.dirs[dir]
	if own != d.rate || (d.own == nil) != own.Unlimited() {
		d.rate = own
		d.own = own.NewBucket(c.now)
	}
	d.shared = shared
	c.mu.Unlock()
	c.wake(dir)
}

// Limited reports whether a limit applies to dir.
func (c *ShapedConn) Limited(dir Direction) bool {
	own, shared := c.buckets(dir)
	return own != nil || shared != nil
}

func (c *ShapedConn) buckets(dir Direction) (own, shared *Bucket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	own, shared = c.dirs[dir].own, c.dirs[dir].shared
	if (own != nil || shared != nil) && c.waits.Load() == nil {
		// Made under mu, before the caller computes a wait from these
		// buckets: a SetLimit after this point finds the channels and
		// its wake-up is not lost.
		w := &shapeWaits{kick: [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}, closed: make(chan struct{})}
		if c.isClosed {
			close(w.closed)
		}
		c.waits.Store(w)
	}
	return own, shared
}

func (c *ShapedConn) wake(dir Direction) {
	w := c.waits.Load()
	if w == nil {
		return // nobody can be waiting: no limit ever applied
	}
	select {
	case w.kick[dir] <- struct{}{}:
	default:
	}
}

// quantum is the smallest grant worth waking up for: a tenth of a second
// of the rate, within [1, capacity] bytes.
func quantum(b *Bucket) int {
	if b == nil {
		return 1 << 30
	}
	return int(max(1, min(b.Rate()/10, b.Capacity())))
}

// grant takes up to want tokens from both buckets, and at least need; it
// returns 0 (taking nothing) when they do not have need.
func grant(own, shared *Bucket, want, need int) int {
	n := want
	if own != nil {
		if n = own.TakeUpTo(want); n < need {
			own.Refund(float64(n))
			return 0
		}
	}
	if shared != nil {
		m := shared.TakeUpTo(n)
		if m < need {
			shared.Refund(float64(m))
			if own != nil {
				own.Refund(float64(n))
			}
			return 0
		}
		if own != nil {
			own.Refund(float64(n - m))
		}
		n = m
	}
	return n
}

func refund(own, shared *Bucket, n int) {
	if n <= 0 {
		return
	}
	if own != nil {
		own.Refund(float64(n))
	}
	if shared != nil {
		shared.Refund(float64(n))
	}
}

// take waits until the direction's buckets grant at least one quantum
// (or want, if smaller) and returns the grant with the buckets it was
// taken from (both nil when no limit applies).
//
// A read may block in the kernel for as long as the peer is quiet, so a
// read does not take tokens from a shared bucket ahead: it waits until
// the shared bucket has a quantum, reads at most what the bucket has,
// and pays after the read (Read). Several connections reading at once
// may thus overdraw a shared bucket by up to one read each, which the
// next reads wait for; the connection's own bucket is always exact.
func (c *ShapedConn) take(dir Direction, want int) (n int, own, shared *Bucket, err error) {
	waited := false
	for {
		own, shared = c.buckets(dir)
		if own == nil && shared == nil {
			return want, nil, nil, nil
		}
		need := min(want, quantum(own), quantum(shared))
		if dir == Read && shared != nil {
			if avail := int(shared.Tokens()); avail >= need {
				if n = grant(own, nil, min(want, avail), need); n > 0 {
					return n, own, shared, nil
				}
			}
		} else if n = grant(own, shared, want, need); n > 0 {
			if waited && dir == Write {
				c.rearmWrite()
			}
			return n, own, shared, nil
		}
		var d time.Duration
		if own != nil {
			d = own.WaitFor(float64(need))
		}
		if shared != nil {
			d = max(d, shared.WaitFor(float64(need)))
		}
		d = max(d, time.Millisecond)
		if c.waited != nil {
			c.waited(dir, d)
		}
		if err := c.sleep(c, dir, d); err != nil {
			return 0, nil, nil, err
		}
		waited = true
	}
}

// realSleep waits d, or less when the read deadline comes first (then it
// fails with a timeout), the limits or deadline change (it returns early;
// take looks again) or the connection closes.
func realSleep(c *ShapedConn, dir Direction, d time.Duration) error {
	if dir == Write && c.writeTimeout.Load() < 0 {
		return os.ErrDeadlineExceeded
	}
	var expired bool
	if dir == Read {
		if dl := c.readDeadline.Load(); dl != 0 {
			left := time.Until(time.Unix(0, dl))
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			if left < d {
				d, expired = left, true
			}
		}
	}
	w := c.waits.Load() // made by buckets, which take called first
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		if expired {
			return os.ErrDeadlineExceeded
		}
		return nil
	case <-w.kick[dir]:
		return nil
	case <-w.closed:
		return net.ErrClosed
	}
}

// Read implements net.Conn.
func (c *ShapedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p)
	}
	n, own, shared, err := c.take(Read, len(p))
	if err != nil {
		return 0, err
	}
	m, err := c.Conn.Read(p[:n])
	if own != nil || shared != nil {
		refund(own, nil, n-m)
		if shared != nil && m > 0 {
			shared.Reserve(float64(m)) // paid after the read (see take)
		}
		if c.passed != nil && m > 0 {
			c.passed(Read, m)
		}
	}
	return m, err
}

// Write implements net.Conn.
func (c *ShapedConn) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n, own, shared, err := c.take(Write, len(p))
		if err != nil {
			return total, err
		}
		m, err := c.Conn.Write(p[:n])
		total += m
		if own != nil || shared != nil {
			refund(own, shared, n-m)
			if c.passed != nil && m > 0 {
				c.passed(Write, m)
			}
		}
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}

// rearmWrite gives the next chunk a fresh write timeout after a wait.
func (c *ShapedConn) rearmWrite() {
	if t := c.writeTimeout.Load(); t > 0 {
		_ = c.Conn.SetWriteDeadline(c.now().Add(time.Duration(t)))
	}
}

// SetDeadline implements net.Conn.
func (c *ShapedConn) SetDeadline(t time.Time) error {
	c.noteRead(t)
	c.noteWrite(t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *ShapedConn) SetReadDeadline(t time.Time) error {
	c.noteRead(t)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *ShapedConn) SetWriteDeadline(t time.Time) error {
	c.noteWrite(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *ShapedConn) noteRead(t time.Time) {
	if t.IsZero() {
		c.readDeadline.Store(0)
	} else {
		c.readDeadline.Store(t.UnixNano())
	}
	c.wake(Read)
}

func (c *ShapedConn) noteWrite(t time.Time) {
	switch {
	case t.IsZero():
		c.writeTimeout.Store(0)
	default:
		d := t.Sub(c.now())
		if d <= 0 {
			d = -1
		}
		c.writeTimeout.Store(int64(d))
	}
	c.wake(Write)
}

// Close implements net.Conn; it also ends any wait for tokens.
func (c *ShapedConn) Close() error {
	c.mu.Lock()
	if !c.isClosed {
		c.isClosed = true
		if w := c.waits.Load(); w != nil {
			close(w.closed)
		}
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
