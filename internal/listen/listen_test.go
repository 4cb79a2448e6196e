package listen

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeListener returns its results in order, then blocks until closed.
type fakeListener struct {
	mu      sync.Mutex
	results []result
	calls   int
	closed  chan struct{}
}

type result struct {
	c   net.Conn
	err error
}

func newFake(rs ...result) *fakeListener {
	return &fakeListener{results: rs, closed: make(chan struct{})}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	f.calls++
	if len(f.results) > 0 {
		r := f.results[0]
		f.results = f.results[1:]
		f.mu.Unlock()
		return r.c, r.err
	}
	f.mu.Unlock()
	<-f.closed
	return nil, net.ErrClosed
}

func (f *fakeListener) Close() error   { close(f.closed); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5222} }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type tempErr struct{}

func (tempErr) Error() string   { return "temporary" }
func (tempErr) Temporary() bool { return true }

// Out of descriptors, then temporary errors: the loop waits and goes on,
// and hands over the connection that comes after them.
func TestServeBacksOff(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	emfile := &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	l := newFake(result{err: emfile}, result{err: emfile}, result{err: tempErr{}}, result{c: a})
	got := make(chan net.Conn, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(context.Background(), l, quiet(), func(c net.Conn) { got <- c })
	}()
	select {
	case c := <-got:
		if c != a {
			t.Fatal("handed a different connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection after the errors never came")
	}
	l.Close()
	<-done
	if l.calls != 5 {
		t.Fatalf("Accept called %d times, want 5 (3 failures, 1 connection, 1 after Close)", l.calls)
	}
}

// A permanent error stops the loop.
func TestServeStopsOnPermanentError(t *testing.T) {
	l := newFake(result{err: errors.New("broken")})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(context.Background(), l, quiet(), func(net.Conn) { t.Error("handle called") })
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

// The context ends a back-off wait.
func TestServeStopsDuringBackoff(t *testing.T) {
	emfile := os.NewSyscallError("accept4", syscall.ENFILE)
	rs := make([]result, 100)
	for i := range rs {
		rs[i] = result{err: emfile}
	}
	l := newFake(rs...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(ctx, l, quiet(), func(net.Conn) {})
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop when its context ended")
	}
}
