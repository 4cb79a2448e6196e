package policy

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t.Parallel()
	c := newClock()
	b := NewBucket(10, 30, c.now) // 10/s, burst 30
	if !b.Full() || b.Tokens() != 30 {
		t.Fatalf("new bucket: tokens %v, want full (30)", b.Tokens())
	}
	for i := range 30 {
		if !b.Allow(1) {
			t.Fatalf("Allow %d of the burst refused", i)
		}
	}
	if b.Allow(1) {
		t.Fatal("Allow after the burst succeeded")
	}
	if w := b.WaitFor(1); w != 100*time.Millisecond {
		t.Fatalf("WaitFor(1) = %v, want 100ms", w)
	}
	c.advance(250 * time.Millisecond)
	if n := b.TakeUpTo(10); n != 2 {
		t.Fatalf("TakeUpTo after 250ms = %d, want 2", n)
	}
	b.Refund(1)
	if got := b.Tokens(); math.Abs(got-1.5) > 1e-9 {
		t.Fatalf("tokens after refund = %v, want 1.5", got)
	}
	// Idle for capacity/rate: full again, never above capacity.
	c.advance(time.Hour)
	if got := b.Tokens(); got != 30 {
		t.Fatalf("tokens after an hour = %v, want 30", got)
	}
	// Reserve goes into debt and says how long to wait.
	if w := b.Reserve(35); w != 500*time.Millisecond {
		t.Fatalf("Reserve(35) from 30 = %v, want 500ms", w)
	}
	if w := b.Reserve(1); w != 600*time.Millisecond {
		t.Fatalf("Reserve(1) in debt = %v, want 600ms", w)
	}
	c.advance(600 * time.Millisecond)
	if w := b.Reserve(0); w != 0 {
		t.Fatalf("debt not repaid after 600ms: wait %v", w)
	}
}

// TestBucketNeverExceeds checks the defining property: over any interval
// t, at most rate·t + capacity tokens are taken, whatever the pattern.
func TestBucketNeverExceeds(t *testing.T) {
	t.Parallel()
	tests := []struct{ rate, capacity float64 }{{1, 1}, {3000, 6000}, {0.5, 3}, {1e6, 10}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.rate, "/", tc.capacity), func(t *testing.T) {
			t.Parallel()
			c := newClock()
			start := c.now()
			b := NewBucket(tc.rate, tc.capacity, c.now)
			total := 0.0
			for i := range 5000 {
				switch i % 4 {
				case 0:
					total += float64(b.TakeUpTo(int(tc.capacity*2) + 1))
				case 1:
					if b.Allow(1) {
						total++
					}
				case 2:
					c.advance(time.Duration(i%7) * time.Second / time.Duration(tc.rate*3+1))
				case 3:
					if w := b.WaitFor(2); w > 0 {
						c.advance(w)
					}
				}
				limit := tc.rate*c.now().Sub(start).Seconds() + tc.capacity
				if total > limit+1e-6 {
					t.Fatalf("step %d: %v tokens taken, limit %v", i, total, limit)
				}
			}
		})
	}
}

func TestNewBucketArgs(t *testing.T) {
	t.Parallel()
	if b := NewBucket(1, 0.2, nil); b.Capacity() != 1 {
		t.Errorf("capacity below 1 = %v, want raised to 1", b.Capacity())
	}
	for _, r := range []float64{0, -1, math.Inf(1), math.NaN()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewBucket(rate %v) did not panic", r)
				}
			}()
			NewBucket(r, 1, nil)
		}()
	}
}

func TestKeyed(t *testing.T) {
	t.Parallel()
	c := newClock()
	k := NewKeyed(1, 3, 3, c.now) // 1/s, burst 3, 3 keys
	for range 3 {
		if !k.Allow("a", 1) {
			t.Fatal("a refused within its burst")
		}
	}
	if k.Allow("a", 1) {
		t.Fatal("a allowed beyond its burst")
	}
	if !k.Allow("b", 1) {
		t.Fatal("b shares a's bucket")
	}
	// The LRU bound: a fourth key pushes out the least recently used (a).
	k.Allow("c", 1)
	k.Allow("d", 1)
	if k.Len() != 3 {
		t.Fatalf("Len %d, want 3", k.Len())
	}
	if !k.Allow("a", 3) {
		t.Fatal("a was not forgotten when pushed out")
	}
	// Keys idle for capacity/rate are forgotten.
	c.advance(3*time.Second + time.Nanosecond)
	if n := k.Len(); n != 0 {
		t.Fatalf("Len after idling %d, want 0", n)
	}
	// Reserve: the debt is per key.
	if w := k.Reserve("x", 5); w != 2*time.Second {
		t.Fatalf("Reserve = %v, want 2s", w)
	}
	for i := range 1000 {
		k.Allow(fmt.Sprint("flood", i), 1)
	}
	if k.Len() > 3 {
		t.Fatalf("Len %d exceeds the bound", k.Len())
	}
}

func TestRecent(t *testing.T) {
	t.Parallel()
	c := newClock()
	r := NewRecent(time.Minute, 100, c.now)
	r.Add(1)
	c.advance(30 * time.Second)
	r.Add(2)
	if !r.Has(1) || !r.Has(2) || r.Has(3) {
		t.Fatal("Has wrong after adding 1 and 2")
	}
	c.advance(30 * time.Second)
	if r.Has(1) {
		t.Fatal("1 kept past its ttl")
	}
	r.Add(2) // refreshed (a new generation began: it moves there)
	c.advance(45 * time.Second)
	if !r.Has(2) {
		t.Fatal("a refreshed key expired early")
	}
	c.advance(20 * time.Second)
	if r.Has(2) {
		t.Fatal("2 kept past its ttl after the refresh")
	}
	r.Add(3)
	r.Delete(3)
	if r.Has(3) {
		t.Fatal("Delete did not forget 3")
	}
}

// The bound: a flood of keys keeps at most maxKeys, and the newest stay.
func TestRecentBound(t *testing.T) {
	t.Parallel()
	c := newClock()
	r := NewRecent(time.Hour, 10, c.now)
	for k := range uint64(1000) {
		r.Add(k)
		if r.Len() > 10 {
			t.Fatalf("Len %d after %d keys exceeds the bound", r.Len(), k+1)
		}
	}
	for k := uint64(995); k < 1000; k++ {
		if !r.Has(k) {
			t.Fatalf("recent key %d dropped", k)
		}
	}
	if r.Has(0) {
		t.Fatal("the oldest key kept")
	}
	// Generations also turn over with time: old keys are freed.
	c.advance(3 * time.Hour)
	r.Add(5000)
	c.advance(2 * time.Hour)
	r.Add(5001)
	if r.Len() > 2 {
		t.Fatalf("Len %d after the keys expired", r.Len())
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	c := NewConcurrent()
	first, second := c.Acquire("ip", 2), c.Acquire("ip", 2)
	if !first || !second {
		t.Fatal("refused below the limit")
	}
	if c.Acquire("ip", 2) {
		t.Fatal("allowed above the limit")
	}
	if !c.Acquire("ip", 0) {
		t.Fatal("max 0 must mean no limit")
	}
	c.Release("ip")
	c.Release("ip")
	if c.Count("ip") != 1 {
		t.Fatalf("Count %d, want 1", c.Count("ip"))
	}
	c.Release("ip")
	c.Release("ip") // one too many: harmless
	if c.Len() != 0 {
		t.Fatalf("Len %d after releasing everything", c.Len())
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if c.Acquire("k", 5) {
					c.Release("k")
				}
			}
		})
	}
	wg.Wait()
	if c.Len() != 0 {
		t.Fatalf("Len %d after concurrent use", c.Len())
	}
}

func TestPrefixBits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		v4, v6 int
		want   string
	}{
		{"203.0.113.77", 24, 64, "203.0.113.0/24"},
		{"::ffff:203.0.113.77", 24, 48, "203.0.113.0/24"},
		{"2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"},
		{"203.0.113.77", 32, 128, "203.0.113.77/32"},
		{"203.0.113.77", 40, 128, "203.0.113.77/32"},
		{"fe80::1%eth0", 24, 64, "fe80::/64"},
	}
	for _, tc := range tests {
		if got := PrefixBits(netip.MustParseAddr(tc.in), tc.v4, tc.v6); got != tc.want {
			t.Errorf("PrefixBits(%s, %d, %d) = %q, want %q", tc.in, tc.v4, tc.v6, got, tc.want)
		}
	}
	if PrefixBits(netip.Addr{}, 24, 64) != "" {
		t.Error("PrefixBits(zero) not empty")
	}
}
