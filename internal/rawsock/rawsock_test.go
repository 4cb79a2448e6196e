package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// pair returns a wrapped client connection and the server's end of it.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	w := Wrap(c)
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s
}

func TestWrapOnLinuxOnly(t *testing.T) {
	c, _ := pair(t)
	_, ok := c.(*Conn)
	if ok != (runtime.GOOS == "linux") {
		t.Fatalf("Wrap gave %T on %s", c, runtime.GOOS)
	}
	var p net.Conn
	if got := Wrap(p); got != nil {
		t.Fatalf("Wrap(nil) = %v", got)
	}
}

func TestReadWrite(t *testing.T) {
	c, s := pair(t)
	msg := bytes.Repeat([]byte("stanza "), 1000)
	go func() { _, _ = s.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("read other bytes than were written")
	}
	if n, err := c.Write(msg); err != nil || n != len(msg) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(s, back); err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("the peer read %d bytes, %v", len(back), err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

func TestEOF(t *testing.T) {
	c, s := pair(t)
	s.Close()
	if _, err := c.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("Read after the peer closed: %v, want io.EOF", err)
	}
}

func TestReadDeadline(t *testing.T) {
	c, _ := pair(t)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %#v is not a read *net.OpError", err)
	}
	// An expired deadline returns at once; data already there is read.
	_ = c.SetReadDeadline(time.Unix(1, 0))
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with an expired deadline: %v", err)
	}
}

func TestClosed(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed connection: %v, want net.ErrClosed", err)
	}
}

func TestWriteToReset(t *testing.T) {
	c, s := pair(t)
	if tc, ok := s.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with a reset
	}
	s.Close()
	time.Sleep(20 * time.Millisecond)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Write(make([]byte, 1024))
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("error %#v is not a write *net.OpError", err)
	}
}

// TestNoWait fills the socket of a peer that does not read: no-wait writes
// return at once and keep what the kernel refused; the next normal write
// sends the kept bytes first, in order, once the peer reads.
func TestNoWait(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no-wait writes are Linux-only")
	}
	cc, s := pair(t)
	c := cc.(*Conn)
	c.TCP().SetWriteBuffer(4096)
	s.(*net.TCPConn).SetReadBuffer(4096)
	var want bytes.Buffer
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	c.SetNoWait(true)
	start := time.Now()
	for i := 0; c.Pending() == 0; i++ {
		if i > 10000 {
			t.Fatal("the socket never filled")
		}
		b := append([]byte{byte('A' + i%26)}, chunk...)
		want.Write(b)
		if n, err := c.Write(b); err != nil || n != len(b) {
			t.Fatalf("no-wait Write = %d, %v", n, err)
		}
	}
	// Once bytes are pending, later writes only queue behind them.
	extra := []byte("after the pending bytes")
	want.Write(extra)
	if n, err := c.Write(extra); err != nil || n != len(extra) {
		t.Fatalf("no-wait Write = %d, %v", n, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("no-wait writes took %v", d)
	}
	c.SetNoWait(false)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s)
		got <- b
	}()
	last := []byte("the end")
	want.Write(last)
	if _, err := c.Write(last); err != nil {
		t.Fatal(err)
	}
	if c.Pending() != 0 {
		t.Fatalf("%d bytes still pending after a normal write", c.Pending())
	}
	c.CloseWrite()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("the peer read %d bytes, want %d in order", len(b), want.Len())
	}
}

// TestFlushDeadline: Flush waits for the socket, and a write deadline
// stops it with the bytes not written still pending.
func TestFlushDeadline(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no-wait writes are Linux-only")
	}
	cc, s := pair(t)
	c := cc.(*Conn)
	c.SetNoWait(true)
	for i := 0; c.Pending() == 0; i++ {
		if i > 100000 {
			t.Fatal("the socket never filled")
		}
		_, _ = c.Write(make([]byte, 64<<10))
	}
	c.SetNoWait(false)
	before := c.Pending()
	_ = c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if err := c.Flush(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Flush to a peer that does not read: %v, want a timeout", err)
	}
	if p := c.Pending(); p == 0 || p > before {
		t.Fatalf("pending %d after the timeout (was %d)", p, before)
	}
	_ = c.SetWriteDeadline(time.Time{})
	go func() { _, _ = io.Copy(io.Discard, s) }()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if c.Pending() != 0 {
		t.Fatal("bytes pending after Flush")
	}
}

// The wrapper must not offer the TCPConn's ReadFrom: io.Copy would then
// write around bytes kept by no-wait writes.
func TestNoReadFrom(t *testing.T) {
	c, _ := pair(t)
	if _, ok := c.(io.ReaderFrom); ok && runtime.GOOS == "linux" {
		t.Fatal("Conn implements io.ReaderFrom")
	}
}
