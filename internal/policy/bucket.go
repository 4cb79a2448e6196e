package policy

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Bucket is a token bucket: it holds at most Capacity tokens, starts
// full, and earns Rate tokens per second. Whatever consumes tokens (bytes,
// stanzas) can therefore never exceed Capacity + Rate·t over any interval
// of t seconds, and a consumer that stays idle for Capacity/Rate seconds
// earns its whole burst back.
//
// A Bucket is safe for concurrent use. Its zero value is not usable; a nil
// *Bucket means "no limit" to the methods that accept one.
type Bucket struct {
	rate, capacity float64
	now            func() time.Time

	mu     sync.Mutex
	tokens float64 // may be negative: a debt from Reserve
	last   time.Time
}

// NewBucket returns a full bucket. rate is in tokens per second and must
// be positive; capacity below 1 is raised to 1 (a bucket must be able to
// pay for one unit). now is the clock (nil: time.Now).
func NewBucket(rate, capacity float64, now func() time.Time) *Bucket {
	if !(rate > 0) || math.IsInf(rate, 0) {
		panic(fmt.Sprintf("policy: NewBucket: rate %v must be positive and finite", rate))
	}
	capacity = max(capacity, 1)
	if now == nil {
		now = time.Now
	}
	return &Bucket{rate: rate, capacity: capacity, now: now, tokens: capacity, last: now()}
}

// Rate is the refill rate in tokens per second.
func (b *Bucket) Rate() float64 { return b.rate }

// Capacity is the most tokens the bucket holds (the burst).
func (b *Bucket) Capacity() float64 { return b.capacity }

// refill adds the tokens earned since the last call. b.mu must be held.
func (b *Bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.capacity, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// Tokens returns the tokens available now (negative while in debt).
func (b *Bucket) Tokens() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(b.now())
	return b.tokens
}

// Allow takes n tokens if they are available and reports whether it did.
func (b *Bucket) Allow(n float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(b.now())
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// TakeUpTo takes as many whole tokens as are available, at most max, and
// returns how many it took (0 when fewer than one is available).
func (b *Bucket) TakeUpTo(max int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(b.now())
	n := int(math.Min(math.Floor(b.tokens), float64(max)))
	if n <= 0 {
		return 0
	}
	b.tokens -= float64(n)
	return n
}

// Refund gives back n tokens taken and not used (never above capacity).
func (b *Bucket) Refund(n float64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.refill(b.now())
	b.tokens = min(b.capacity, b.tokens+n)
	b.mu.Unlock()
}

// WaitFor returns how long until n tokens are available (0 if they are
// now). n above capacity is treated as capacity.
func (b *Bucket) WaitFor(n float64) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(b.now())
	return b.waitLocked(min(n, b.capacity))
}

func (b *Bucket) waitLocked(n float64) time.Duration {
	if b.tokens >= n {
		return 0
	}
	return time.Duration(math.Ceil((n - b.tokens) / b.rate * float64(time.Second)))
}

// Reserve takes n tokens now, going into debt if needed, and returns how
// long the caller must wait before acting so that the rate holds (0 when
// the tokens were there). Callers that wait before going on keep the
// consumption within Capacity + Rate·t; use Allow to refuse instead.
func (b *Bucket) Reserve(n float64) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(b.now())
	b.tokens -= n
	return b.waitLocked(0)
}

// Full reports whether the bucket has its whole capacity (it has been
// idle long enough to forget every use).
func (b *Bucket) Full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(b.now())
	return b.tokens >= b.capacity
}
