package policy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// endless is a net.Conn that always has data to read and takes every write.
type endless struct {
	net.Conn // nil: only the methods below are used
	mu       sync.Mutex
	read     int
	written  int
}

func (e *endless) Read(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.read += len(p)
	return len(p), nil
}

func (e *endless) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.written += len(p)
	return len(p), nil
}

func (e *endless) Close() error                     { return nil }
func (e *endless) SetDeadline(time.Time) error      { return nil }
func (e *endless) SetReadDeadline(time.Time) error  { return nil }
func (e *endless) SetWriteDeadline(time.Time) error { return nil }
func (e *endless) LocalAddr() net.Addr              { return nil }
func (e *endless) RemoteAddr() net.Addr             { return nil }

// fakeShaped returns a shaped endless connection on a fake clock whose
// waits advance the clock; sleeps counts them.
func fakeShaped(c *clock) (*ShapedConn, *endless, *int) {
	e := &endless{}
	s := NewShapedConn(e)
	s.now = c.now
	sleeps := new(int)
	s.sleep = func(_ *ShapedConn, _ Direction, d time.Duration) error {
		*sleeps++
		c.advance(d)
		return nil
	}
	return s, e, sleeps
}

// TestShapedExact: whatever the read and write sizes, bytes through each
// direction stay within rate·t + burst, come close to it while the peer
// keeps sending, and an idle connection earns its burst back.
func TestShapedExact(t *testing.T) {
	t.Parallel()
	for _, dir := range []Direction{Read, Write} {
		t.Run(dir.String(), func(t *testing.T) {
			t.Parallel()
			c := newClock()
			s, _, sleeps := fakeShaped(c)
			rate := ByteRate{PerSecond: 3000, Burst: 2 * time.Second} // "3kb/s", "2s"
			s.SetLimit(dir, rate, nil)
			start := c.now()
			total := 0
			buf := make([]byte, 16<<10)
			op := func(p []byte) int {
				var n int
				var err error
				if dir == Read {
					n, err = s.Read(p)
				} else {
					n, err = s.Write(p)
				}
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			for i := range 200 {
				total += op(buf[:1+(i*7919)%len(buf)])
				elapsed := c.now().Sub(start).Seconds()
				if limit := 3000*elapsed + 6000; float64(total) > limit+1e-6 {
					t.Fatalf("after %d ops: %d bytes in %.3fs, more than rate·t + burst = %.0f", i, total, elapsed, limit)
				}
			}
			elapsed := c.now().Sub(start).Seconds()
			if float64(total) < 3000*elapsed+6000-2*300 {
				t.Errorf("%d bytes in %.3fs: the shaper holds back more than the rate (%.0f)", total, elapsed, 3000*elapsed+6000)
			}
			// Idle for the burst duration: the whole burst passes at once.
			c.advance(2 * time.Second)
			before := *sleeps
			got := 0
			for got < 6000 {
				got += op(buf[:min(len(buf), 6000-got)])
			}
			if *sleeps != before {
				t.Errorf("after idling for the burst time, %d bytes waited %d times; want no wait", got, *sleeps-before)
			}
			if op(buf[:1]) != 1 || *sleeps == before {
				t.Error("the byte after the burst did not wait")
			}
		})
	}
}

// TestShapedShared: two connections sharing a bucket together stay within
// the shared limit, each also within its own.
func TestShapedShared(t *testing.T) {
	t.Parallel()
	c := newClock()
	shared := NewBucket(1000, 1000, c.now)
	a, _, _ := fakeShaped(c)
	b, _, _ := fakeShaped(c)
	own := ByteRate{PerSecond: 800, Burst: time.Second}
	a.SetLimit(Read, own, shared)
	b.SetLimit(Read, own, shared)
	start := c.now()
	buf := make([]byte, 4096)
	na, nb := 0, 0
	for i := range 300 {
		if i%2 == 0 {
			n, _ := a.Read(buf)
			na += n
		} else {
			n, _ := b.Read(buf[:1000])
			nb += n
		}
		el := c.now().Sub(start).Seconds()
		if float64(na+nb) > 1000*el+1000+1e-6 {
			t.Fatalf("together %d bytes in %.3fs, above the shared limit", na+nb, el)
		}
		if float64(na) > 800*el+800+1e-6 || float64(nb) > 800*el+800+1e-6 {
			t.Fatalf("one connection above its own limit: %d, %d in %.3fs", na, nb, el)
		}
	}
	// Exempting b (no limits) lets it through at once.
	b.SetLimit(Read, ByteRate{}, nil)
	if b.Limited(Read) {
		t.Fatal("b still limited")
	}
	if n, _ := b.Read(buf); n != len(buf) {
		t.Fatalf("unlimited read got %d", n)
	}
}

// TestShapedKeepsBucket: setting the same rate again keeps what the
// connection used (no fresh burst at login).
func TestShapedKeepsBucket(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, _, sleeps := fakeShaped(c)
	r := ByteRate{PerSecond: 100, Burst: time.Second}
	s.SetLimit(Read, r, nil)
	buf := make([]byte, 100)
	if n, _ := s.Read(buf); n != 100 {
		t.Fatalf("read %d", n)
	}
	s.SetLimit(Read, r, nil)
	if _, err := s.Read(buf); err != nil || *sleeps == 0 {
		t.Fatalf("a second burst after SetLimit with the same rate (sleeps %d, err %v)", *sleeps, err)
	}
}

// TestShapedRealTime runs over TCP with the real clock: a wait ends with
// a timeout at the read deadline, and with net.ErrClosed on Close; an
// exemption wakes a waiting reader.
func TestShapedRealTime(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s := NewShapedConn(raw)
	defer s.Close()
	s.SetLimit(Read, ByteRate{PerSecond: 1, Burst: time.Second}, nil) // 1 byte/s, burst 1
	if _, err := client.Write([]byte("abcdefgh")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := io.ReadFull(s, buf[:1]); n != 1 || err != nil {
		t.Fatalf("first byte: %d, %v", n, err)
	}
	// The next byte needs a second; the deadline comes first.
	_ = s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: err %v, want a deadline error", err)
	}
	var ne net.Error
	if _, err := s.Read(buf); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read after the deadline: err %v, want a timeout net.Error", err)
	}
	_ = s.SetReadDeadline(time.Time{})

	// Lifting the limit wakes the waiting reader.
	got := make(chan int, 1)
	go func() {
		n, _ := s.Read(buf)
		got <- n
	}()
	s.SetLimit(Read, ByteRate{}, nil)
	if n := <-got; n == 0 {
		t.Fatal("no data after the limit was lifted")
	}

	// Close ends a wait.
	s.SetLimit(Read, ByteRate{PerSecond: 0.001, Burst: time.Second}, nil)
	if _, err := client.Write([]byte("ij")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Read(buf[:1]); n != 1 || err != nil { // spends the one-byte burst
		t.Fatalf("read of the burst: %d, %v", n, err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Read(buf)
		errc <- err
	}()
	s.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read waiting at Close: err %v, want net.ErrClosed", err)
	}
}
