//go:build !linux

package rawsock

import "net"

// Wrap returns c unchanged: raw socket I/O is implemented for Linux only.
func Wrap(c net.Conn) net.Conn { return c }

// Conn is never made on this system (Wrap returns its argument); the
// type exists so that callers can test for it everywhere.
type Conn struct{ net.Conn }

// SetNoWait does nothing here.
func (c *Conn) SetNoWait(bool) {}

// Pending returns 0 here.
func (c *Conn) Pending() int { return 0 }

// Flush does nothing here.
func (c *Conn) Flush() error { return nil }

// TCP returns nil here.
func (c *Conn) TCP() *net.TCPConn { return nil }

// CloseWrite does nothing here.
func (c *Conn) CloseWrite() error { return nil }
