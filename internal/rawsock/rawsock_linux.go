//go:build linux

package rawsock

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls; its
// other methods are the TCPConn's. It does not embed the TCPConn, so that
// the TCPConn's ReadFrom and WriteTo (splice, sendfile) cannot write
// around the bytes Write keeps in no-wait mode.
type Conn struct {
	tc *net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex // guards the read state during a Read
	rp     []byte
	rn     int
	rerr   syscall.Errno
	readFn func(fd uintptr) bool

	wmu     sync.Mutex // guards the write state during a Write
	wp      []byte
	wn      int
	werr    syscall.Errno
	writeFn func(fd uintptr) bool
	tryFn   func(fd uintptr) // doWrite without waiting
	noWait  bool             // Write keeps what the socket does not take at once
	pending []byte           // bytes accepted by Write and not yet written
}

// Wrap returns c as a Conn when it is a TCP connection whose socket Go
// can reach, and c unchanged otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{tc: tc, rc: rc}
	w.readFn = w.doRead
	w.writeFn = w.doWrite
	w.tryFn = func(fd uintptr) { w.doWrite(fd) }
	return w
}

// TCP returns the wrapped connection, for socket options.
func (c *Conn) TCP() *net.TCPConn { return c.tc }

// Close implements net.Conn.
func (c *Conn) Close() error { return c.tc.Close() }

// CloseWrite shuts down the writing side of the socket.
func (c *Conn) CloseWrite() error { return c.tc.CloseWrite() }

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.tc.LocalAddr() }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error { return c.tc.SetDeadline(t) }

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.tc.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.tc.SetWriteDeadline(t) }

// SyscallConn implements syscall.Conn.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rp, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rp = nil
	if err := c.failure("read", err, errno); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rp[0])), uintptr(len(c.rp)))
		switch e {
		case 0:
			c.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = e
			return true
		}
	}
}

// Write implements net.Conn: it returns once all of p is written, or
// with the error that stopped it (a deadline included). Bytes kept by an
// earlier Write in no-wait mode are written first.
//
// In no-wait mode (SetNoWait) Write never waits for the socket: it writes
// what the kernel takes at once and keeps the rest, which counts as
// written; Pending tells how much is kept, and the next Write in the
// normal mode (or Flush) writes it. A caller that must not block (a
// router handing a stanza to a slow client) writes in no-wait mode and
// leaves the rest to a goroutine of its own.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.noWait {
		return c.writeNoWait(p)
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	return c.write(p)
}

// maxKeep is the largest pending buffer kept for reuse once written.
const maxKeep = 16 << 10

// write writes all of b, waiting for the socket as needed (c.wmu held);
// it returns how much it wrote.
func (c *Conn) write(b []byte) (int, error) {
	c.wp, c.wn, c.werr = b, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werr
	c.wp = nil
	return n, c.failure("write", err, errno)
}

// writeNoWait writes what the socket takes now and keeps the rest (c.wmu
// held). Once something is kept, later bytes are only appended, so they
// go out in order.
func (c *Conn) writeNoWait(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(c.pending) > 0 {
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	c.wp, c.wn, c.werr = p, 0, 0
	err := c.rc.Control(c.tryFn)
	n, errno := c.wn, c.werr
	c.wp = nil
	if err := c.failure("write", err, errno); err != nil {
		return n, err
	}
	if n < len(p) {
		c.pending = append(c.pending, p[n:]...)
	}
	return len(p), nil
}

// SetNoWait switches the no-wait mode of Write on or off (see Write).
func (c *Conn) SetNoWait(on bool) {
	c.wmu.Lock()
	c.noWait = on
	c.wmu.Unlock()
}

// Pending returns how many bytes no-wait writes kept.
func (c *Conn) Pending() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.pending)
}

// Flush writes the bytes no-wait writes kept, waiting as a normal Write
// does (deadlines apply).
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flush()
}

// flush writes the pending bytes (c.wmu held); after an error, what was
// not written stays pending.
func (c *Conn) flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	n, err := c.write(c.pending)
	if err != nil {
		c.pending = c.pending[n:]
		return err
	}
	c.pending = c.pending[:0]
	if cap(c.pending) > maxKeep {
		c.pending = nil
	}
	return nil
}

func (c *Conn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wp) {
		chunk := c.wp[c.wn:]
		if len(chunk) > maxRW {
			chunk = chunk[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&chunk[0])), uintptr(len(chunk)))
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// maxRW caps one system call's length, as internal/poll does.
const maxRW = 1 << 30

// failure returns the error of a read or write (op): the poller's (err,
// from the RawConn) or the system call's (errno), or nil.
func (c *Conn) failure(op string, err error, errno syscall.Errno) error {
	switch {
	case err != nil:
		return c.opError(op, err)
	case errno != 0:
		return c.opError(op, os.NewSyscallError(op, errno))
	}
	return nil
}

// opError gives err the shape net.TCPConn's own errors have: an
// *net.OpError for op whose Err is the poller's error (net.ErrClosed,
// os.ErrDeadlineExceeded) or the system call's.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
