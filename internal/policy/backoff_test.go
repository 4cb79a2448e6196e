package policy

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestBackoffGrows(t *testing.T) {
	t.Parallel()
	c := newClock()
	b := NewBackoff(time.Second, 10*time.Second, time.Minute, 100, c.now)
	if w := b.Wait("k"); w != 0 {
		t.Fatalf("fresh key waits %v", w)
	}
	// base·2^(n-1), capped at max.
	for n, want := range []time.Duration{1, 2, 4, 8, 10, 10, 10} {
		b.Fail("k")
		if w := b.Wait("k"); w != want*time.Second {
			t.Fatalf("after %d failures: wait %v, want %v", n+1, w, want*time.Second)
		}
	}
	// The wait counts down from the last failure.
	c.advance(3 * time.Second)
	if w := b.Wait("k"); w != 7*time.Second {
		t.Fatalf("3s later: wait %v, want 7s", w)
	}
	c.advance(7 * time.Second)
	if w := b.Wait("k"); w != 0 {
		t.Fatalf("after the delay: wait %v, want 0", w)
	}
	// Other keys are independent.
	if w := b.Wait("other"); w != 0 {
		t.Fatalf("other key waits %v", w)
	}
}

func TestBackoffSucceedClears(t *testing.T) {
	t.Parallel()
	c := newClock()
	b := NewBackoff(time.Second, time.Hour, 2*time.Hour, 100, c.now)
	b.Fail("k")
	b.Fail("k")
	b.Fail("j")
	b.Succeed("k")
	b.Succeed("absent")
	if w := b.Wait("k"); w != 0 {
		t.Fatalf("after Succeed: wait %v", w)
	}
	b.Fail("k")
	if w := b.Wait("k"); w != time.Second {
		t.Fatalf("first failure after Succeed: wait %v, want 1s", w)
	}
	if w := b.Wait("j"); w != time.Second {
		t.Fatalf("other key: wait %v, want 1s", w)
	}
}

func TestBackoffForget(t *testing.T) {
	t.Parallel()
	c := newClock()
	b := NewBackoff(time.Second, time.Minute, 10*time.Minute, 100, c.now)
	for range 5 {
		b.Fail("k")
	}
	if w := b.Wait("k"); w != 16*time.Second {
		t.Fatalf("wait %v, want 16s", w)
	}
	// A failure within forget keeps counting.
	c.advance(9 * time.Minute)
	b.Fail("k")
	if w := b.Wait("k"); w != 32*time.Second {
		t.Fatalf("6th failure: wait %v, want 32s", w)
	}
	// A failure after forget starts over.
	c.advance(10 * time.Minute)
	b.Fail("k")
	if w := b.Wait("k"); w != time.Second {
		t.Fatalf("failure after forget: wait %v, want 1s", w)
	}
	// Idle keys are dropped.
	b.Fail("j")
	c.advance(10*time.Minute - time.Nanosecond)
	if b.Len() != 2 {
		t.Fatalf("Len %d before forget, want 2", b.Len())
	}
	c.advance(time.Nanosecond)
	if w := b.Wait("k"); w != 0 || b.Len() != 0 {
		t.Fatalf("after forget: wait %v, Len %d; want 0, 0", w, b.Len())
	}
}

func TestBackoffMaxKeys(t *testing.T) {
	t.Parallel()
	c := newClock()
	b := NewBackoff(time.Minute, time.Hour, 2*time.Hour, 3, c.now)
	for i := range 3 {
		b.Fail(fmt.Sprint(i))
		c.advance(time.Second)
	}
	b.Fail("0") // 0 is now the most recent
	c.advance(time.Second)
	b.Fail("3") // evicts 1, the oldest
	if b.Len() != 3 {
		t.Fatalf("Len %d, want 3", b.Len())
	}
	for key, tracked := range map[string]bool{"0": true, "1": false, "2": true, "3": true} {
		if got := b.Wait(key) > 0; got != tracked {
			t.Errorf("key %s tracked=%v, want %v", key, got, tracked)
		}
	}
	// Many keys never exceed the bound.
	for i := range 1000 {
		b.Fail(fmt.Sprint("flood", i))
	}
	if b.Len() != 3 {
		t.Fatalf("Len %d after flood, want 3", b.Len())
	}
}

func TestBackoffConcurrent(t *testing.T) {
	t.Parallel()
	c := newClock()
	b := NewBackoff(time.Millisecond, time.Second, time.Minute, 50, c.now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprint(g, "/", i%70)
				b.Fail(key)
				b.Wait(key)
				if i%7 == 0 {
					b.Succeed(key)
				}
				if i%50 == 0 {
					c.advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	if n := b.Len(); n > 50 {
		t.Fatalf("Len %d exceeds maxKeys", n)
	}
}

func TestNewBackoffArgs(t *testing.T) {
	t.Parallel()
	b := NewBackoff(time.Second, time.Millisecond, time.Minute, 1, nil)
	b.Fail("k")
	b.Fail("k")
	if w := b.Wait("k"); w <= 0 || w > time.Second {
		t.Fatalf("max below base: wait %v, want at most base", w)
	}
	for _, args := range [][3]time.Duration{{0, time.Second, time.Second}, {time.Second, time.Second, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewBackoff%v did not panic", args)
				}
			}()
			NewBackoff(args[0], args[1], args[2], 1, nil)
		}()
	}
	defer func() {
		if recover() == nil {
			t.Errorf("NewBackoff with maxKeys 0 did not panic")
		}
	}()
	NewBackoff(time.Second, time.Second, time.Second, 0, nil)
}

func TestPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"203.0.113.77", "203.0.113.0/24"},
		{"203.0.113.0", "203.0.113.0/24"},
		{"::ffff:203.0.113.77", "203.0.113.0/24"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:DB8::1", "2001:db8::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
	}
	for _, tc := range tests {
		if got := Prefix(netip.MustParseAddr(tc.in)); got != tc.want {
			t.Errorf("Prefix(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Prefix(netip.Addr{}); got != "" {
		t.Errorf("Prefix(zero) = %q", got)
	}
}
