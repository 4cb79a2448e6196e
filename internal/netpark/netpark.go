// Package netpark lets a server hold an idle connection without a
// goroutine. A goroutine blocked in Read keeps its stack (2 to 8 KiB) for
// as long as the peer is quiet, which for an XMPP server is most of a
// session's life; on Linux, Park instead registers the socket with an epoll
// instance of its own and the caller's goroutine ends. When the socket
// becomes readable (data, end of stream or an error), or when the park's
// timer runs out, the Poller calls the function given to Park, which starts
// a goroutine to read again.
//
// The epoll registration is level-triggered and one-shot, independent of
// the Go runtime's own (edge-triggered) registration of the same socket,
// which keeps working for writes and for later reads. A caller must only
// park a connection that has nothing buffered above the socket: bytes
// already read into user space (a TLS record, a parser's buffer) do not
// make the socket readable again.
//
// On other systems Supported reports false and Park fails; callers keep a
// goroutine per connection there.
package netpark

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrClosed is returned by Park after Close.
var ErrClosed = errors.New("netpark: poller closed")

// Waiter is one parked connection.
type Waiter struct {
	p     *Poller
	token uint64
	rc    syscall.RawConn
	fn    func()
	timer atomic.Pointer[time.Timer]
	done  atomic.Bool // set by whoever ends the wait first
}

// Cancel ends the wait. It reports true when it ended it before the Poller
// called fn: fn is then never called and the caller is responsible for
// the connection again. It reports false when fn has been or is being
// called.
func (w *Waiter) Cancel() bool {
	if !w.done.CompareAndSwap(false, true) {
		return false
	}
	w.release()
	return true
}

// fire ends the wait and calls fn, unless the wait already ended.
func (w *Waiter) fire() {
	if !w.done.CompareAndSwap(false, true) {
		return
	}
	w.release()
	w.fn()
}

// release forgets the waiter: map entry, timer and epoll registration.
func (w *Waiter) release() {
	p := w.p
	p.mu.Lock()
	delete(p.waiting, w.token)
	p.mu.Unlock()
	if t := w.timer.Load(); t != nil {
		t.Stop()
	}
	// Through Control, so that a socket closed meanwhile (the kernel then
	// dropped the registration itself) is not touched: its descriptor
	// number may already belong to another connection.
	_ = w.rc.Control(func(fd uintptr) { p.sys.unregister(int(fd)) })
}

// Poller wakes parked connections. Its zero value is not usable: call New,
// run Run on a goroutine, and Close when done.
type Poller struct {
	sys pollerSys // epoll instance (Linux)

	mu      sync.Mutex
	waiting map[uint64]*Waiter
	next    uint64
	closed  bool
}

// Supported reports whether Park works on this system.
func Supported() bool { return supported }

// New returns a Poller. On systems without support it returns an error.
func New() (*Poller, error) {
	p := &Poller{waiting: make(map[uint64]*Waiter)}
	if err := p.sys.open(); err != nil {
		return nil, err
	}
	return p, nil
}

// Park registers the socket behind rc (a *net.TCPConn's SyscallConn) and
// arranges for fn to be called once, from the Poller's goroutine or a
// timer's, when the socket is readable or hung up, or after the duration
// after (0: no timer). fn must not block; it typically starts a goroutine.
// Park fails, and fn is never called, if the socket is closed or the
// Poller closed.
func (p *Poller) Park(rc syscall.RawConn, after time.Duration, fn func()) (*Waiter, error) {
	w := &Waiter{p: p, rc: rc, fn: fn}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.next++
	w.token = p.next
	p.waiting[w.token] = w
	p.mu.Unlock()
	var rerr error
	err := rc.Control(func(fd uintptr) { rerr = p.sys.register(int(fd), w.token) })
	if err == nil {
		err = rerr
	}
	if err != nil {
		p.mu.Lock()
		delete(p.waiting, w.token)
		p.mu.Unlock()
		return nil, err
	}
	if after > 0 {
		// The socket may have fired already (release then found no
		// timer to stop): stop the timer if the wait is over.
		t := time.AfterFunc(after, w.fire)
		w.timer.Store(t)
		if w.done.Load() {
			t.Stop()
		}
	}
	return w, nil
}

// Parked returns the number of connections waiting.
func (p *Poller) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting)
}

// Run waits for events until Close and calls the parked connections'
// functions; it releases the Poller's descriptors when it returns. The
// caller owns the goroutine that runs it, and calls Run once.
func (p *Poller) Run() error {
	return p.sys.run(p.ready)
}

// ready is called by the system loop for a token whose socket is ready.
func (p *Poller) ready(token uint64) {
	p.mu.Lock()
	w := p.waiting[token]
	p.mu.Unlock()
	if w != nil {
		w.fire()
	}
}

// Close stops Run and calls the function of every connection still
// parked, so that their owners see them again (and, typically, their end).
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	left := make([]*Waiter, 0, len(p.waiting))
	for _, w := range p.waiting {
		left = append(left, w)
	}
	p.mu.Unlock()
	for _, w := range left {
		w.fire()
	}
	return p.sys.close()
}
