package netpark

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func running(t *testing.T) *Poller {
	t.Helper()
	if !Supported() {
		t.Skip("netpark is not supported on this system")
	}
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run() }()
	t.Cleanup(func() {
		p.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not woken", what)
	}
}

func TestWakeOnData(t *testing.T) {
	p := running(t)
	s, c := pair(t)
	woke := make(chan struct{})
	var calls atomic.Int32
	if _, err := p.Park(rawConn(t, s), 0, func() { calls.Add(1); close(woke) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
		t.Fatal("woken before any data")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, woke, "data")
	// The bytes are still there for the owner to read, once.
	buf := make([]byte, 16)
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if p.Parked() != 0 || calls.Load() != 1 {
		t.Fatalf("parked %d, calls %d", p.Parked(), calls.Load())
	}
}

// Bytes that arrived before the park fire at once (level-triggered).
func TestWakeOnDataAlreadyWaiting(t *testing.T) {
	p := running(t)
	s, c := pair(t)
	if _, err := c.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	woke := make(chan struct{})
	if _, err := p.Park(rawConn(t, s), 0, func() { close(woke) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, woke, "waiting data")
}

func TestWakeOnHangUp(t *testing.T) {
	p := running(t)
	s, c := pair(t)
	woke := make(chan struct{})
	if _, err := p.Park(rawConn(t, s), 0, func() { close(woke) }); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, woke, "hang-up")
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after hang-up: no error")
	}
}

func TestTimer(t *testing.T) {
	p := running(t)
	s, _ := pair(t)
	woke := make(chan struct{})
	start := time.Now()
	if _, err := p.Park(rawConn(t, s), 30*time.Millisecond, func() { close(woke) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, woke, "timer")
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("woken after %v, before the timer", d)
	}
	if p.Parked() != 0 {
		t.Fatalf("parked %d after the timer", p.Parked())
	}
}

func TestCancel(t *testing.T) {
	p := running(t)
	s, c := pair(t)
	var calls atomic.Int32
	w, err := p.Park(rawConn(t, s), 20*time.Millisecond, func() { calls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if !w.Cancel() {
		t.Fatal("Cancel of a waiting park reported false")
	}
	if w.Cancel() {
		t.Fatal("second Cancel reported true")
	}
	c.Write([]byte("x"))
	time.Sleep(100 * time.Millisecond)
	if calls.Load() != 0 {
		t.Fatalf("fn called %d times after Cancel", calls.Load())
	}
	// The socket can be parked again, and fires for the waiting byte.
	woke := make(chan struct{})
	if _, err := p.Park(rawConn(t, s), 0, func() { close(woke) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, woke, "second park")
}

// After a wake-up, Cancel reports false: the owner must not resume the
// connection twice.
func TestCancelAfterWake(t *testing.T) {
	p := running(t)
	s, c := pair(t)
	woke := make(chan struct{})
	w, err := p.Park(rawConn(t, s), 0, func() { close(woke) })
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	waitFor(t, woke, "data")
	if w.Cancel() {
		t.Fatal("Cancel after the wake-up reported true")
	}
}

func TestParkClosedSocket(t *testing.T) {
	p := running(t)
	s, _ := pair(t)
	rc := rawConn(t, s)
	s.Close()
	if _, err := p.Park(rc, 0, func() { t.Error("fn called for a closed socket") }); err == nil {
		t.Fatal("Park of a closed socket succeeded")
	}
	if p.Parked() != 0 {
		t.Fatalf("parked %d", p.Parked())
	}
}

// Close wakes every parked connection once; Park fails afterwards.
func TestCloseWakesAll(t *testing.T) {
	if !Supported() {
		t.Skip("not supported")
	}
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run() }()
	const n = 50
	var wg sync.WaitGroup
	wg.Add(n)
	var socks []*net.TCPConn
	for range n {
		s, _ := pair(t)
		socks = append(socks, s)
		if _, err := p.Park(rawConn(t, s), time.Hour, wg.Done); err != nil {
			t.Fatal(err)
		}
	}
	if p.Parked() != n {
		t.Fatalf("parked %d, want %d", p.Parked(), n)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := p.Park(rawConn(t, socks[0]), 0, func() {}); err != ErrClosed {
		t.Fatalf("Park after Close: %v, want ErrClosed", err)
	}
}

// Many connections parked and woken concurrently, each exactly once.
func TestManyConcurrent(t *testing.T) {
	p := running(t)
	const n = 200
	var calls [n]atomic.Int32
	var wg sync.WaitGroup
	wg.Add(n)
	clients := make([]*net.TCPConn, n)
	for i := range n {
		s, c := pair(t)
		clients[i] = c
		if _, err := p.Park(rawConn(t, s), 0, func() { calls[i].Add(1); wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		go c.Write([]byte("x"))
	}
	wg.Wait()
	time.Sleep(20 * time.Millisecond)
	for i := range n {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("connection %d woken %d times", i, c)
		}
	}
}

// Close before Run releases the poller; Run then returns at once.
func TestCloseBeforeRun(t *testing.T) {
	if !Supported() {
		t.Skip("not supported")
	}
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run after Close did not return")
	}
}
