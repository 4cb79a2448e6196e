package policy

import (
	"container/list"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Keyed holds one token bucket per key (an account, an address, a pair of
// JIDs), all with the same rate and capacity, in bounded memory.
//
// A key's bucket is forgotten once it has been idle long enough to be
// full again (Capacity/Rate seconds), since a fresh bucket is then the
// same thing. At most maxKeys keys are kept: when a new key arrives and
// the table is full, the least recently used key is dropped first, which
// gives that key a fresh burst if it comes back; key by account or by
// network prefix (PrefixBits) so that making new keys is expensive.
//
// A Keyed is safe for concurrent use.
type Keyed struct {
	rate, capacity float64
	idle           time.Duration // after this long unused a bucket is full
	maxKeys        int
	now            func() time.Time

	mu    sync.Mutex
	keys  map[string]*list.Element // of *keyedEntry
	order *list.List               // least recently used first
}

type keyedEntry struct {
	key  string
	b    *Bucket
	used time.Time
}

// NewKeyed returns a Keyed; rate must be positive and maxKeys at least 1.
// now is the clock (nil: time.Now).
func NewKeyed(rate, capacity float64, maxKeys int, now func() time.Time) *Keyed {
	if maxKeys <= 0 {
		panic(fmt.Sprintf("policy: NewKeyed: maxKeys %d must be positive", maxKeys))
	}
	if now == nil {
		now = time.Now
	}
	probe := NewBucket(rate, capacity, now) // validates rate and capacity
	return &Keyed{
		rate: rate, capacity: probe.Capacity(), maxKeys: maxKeys, now: now,
		idle:  time.Duration(probe.Capacity() / rate * float64(time.Second)),
		keys:  make(map[string]*list.Element),
		order: list.New(),
	}
}

// Bucket returns key's bucket, creating a full one, and marks the key
// used. The bucket stays valid when the key is later forgotten.
func (k *Keyed) Bucket(key string) *Bucket {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	k.sweep(now)
	if el, ok := k.keys[key]; ok {
		e := el.Value.(*keyedEntry)
		e.used = now
		k.order.MoveToBack(el)
		return e.b
	}
	for len(k.keys) >= k.maxKeys {
		f := k.order.Front()
		delete(k.keys, f.Value.(*keyedEntry).key)
		k.order.Remove(f)
	}
	e := &keyedEntry{key: key, b: NewBucket(k.rate, k.capacity, k.now), used: now}
	k.keys[key] = k.order.PushBack(e)
	return e.b
}

// sweep drops the keys unused for longer than it takes to refill a
// bucket. k.mu must be held.
func (k *Keyed) sweep(now time.Time) {
	for f := k.order.Front(); f != nil; f = k.order.Front() {
		e := f.Value.(*keyedEntry)
		if now.Sub(e.used) <= k.idle {
			return
		}
		delete(k.keys, e.key)
		k.order.Remove(f)
	}
}

// Allow takes n tokens from key's bucket if it has them.
func (k *Keyed) Allow(key string, n float64) bool { return k.Bucket(key).Allow(n) }

// Reserve takes n tokens from key's bucket and returns how long to wait
// (see Bucket.Reserve).
func (k *Keyed) Reserve(key string, n float64) time.Duration { return k.Bucket(key).Reserve(n) }

// Len returns the number of keys held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sweep(k.now())
	return len(k.keys)
}

// Recent remembers 64-bit keys (hashes of what is remembered) for a time,
// in bounded memory that holds no pointers, so that the collector never
// scans it however many keys it holds. Keys live in two generations: new
// and refreshed keys go into the current one; when it is ttl old, or holds
// half of maxKeys, it becomes the previous generation and the previous one
// is dropped. A key is found while it is younger than ttl and its
// generation is kept: at most maxKeys are kept, and when the bound bites,
// the oldest keys go first, a generation at a time.
//
// Callers hash their keys with a seed of their own (hash/maphash), so
// that nobody outside can make two keys collide on purpose; a collision
// can only make Has report a key that was not added.
//
// A Recent is safe for concurrent use.
type Recent struct {
	ttl     time.Duration
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	cur, prev map[uint64]int64 // key → when added, unix nanoseconds
	since     time.Time        // when cur became the current generation
}

// NewRecent returns a Recent; ttl and maxKeys must be positive.
func NewRecent(ttl time.Duration, maxKeys int, now func() time.Time) *Recent {
	if ttl <= 0 || maxKeys <= 0 {
		panic(fmt.Sprintf("policy: NewRecent(ttl=%v, maxKeys=%d): both must be positive", ttl, maxKeys))
	}
	if now == nil {
		now = time.Now
	}
	t := now()
	return &Recent{ttl: ttl, maxKeys: maxKeys, now: now, cur: make(map[uint64]int64), since: t}
}

// rotate starts a new generation when the current one is ttl old or full.
func (r *Recent) rotate(now time.Time) {
	if now.Sub(r.since) < r.ttl && len(r.cur) < max(1, r.maxKeys/2) {
		return
	}
	r.prev = r.cur
	r.cur = make(map[uint64]int64)
	r.since = now
}

// Add remembers key for ttl from now (again, if it was there).
func (r *Recent) Add(key uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.rotate(now)
	if r.prev != nil {
		delete(r.prev, key)
	}
	r.cur[key] = now.UnixNano()
}

// Has reports whether key was added less than ttl ago (and not dropped
// since for the bound).
func (r *Recent) Has(key uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.cur[key]
	if !ok {
		if t, ok = r.prev[key]; !ok {
			return false
		}
	}
	return r.now().UnixNano()-t < int64(r.ttl)
}

// Delete forgets key.
func (r *Recent) Delete(key uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cur, key)
	delete(r.prev, key)
}

// Len returns the number of keys held, expired ones of the previous
// generation included.
func (r *Recent) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cur) + len(r.prev)
}

// Concurrent counts things in use per key (open connections per address)
// against a maximum. Memory is bounded by the number of things in use:
// a key whose count returns to zero is forgotten.
//
// A Concurrent is safe for concurrent use.
type Concurrent struct {
	mu sync.Mutex
	m  map[string]int
}

// NewConcurrent returns an empty Concurrent.
func NewConcurrent() *Concurrent { return &Concurrent{m: make(map[string]int)} }

// Acquire counts one more use of key if that keeps it at most max (max ≤ 0
// means no limit) and reports whether it did.
func (c *Concurrent) Acquire(key string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.m[key] >= max {
		return false
	}
	c.m[key]++
	return true
}

// Release ends one use of key.
func (c *Concurrent) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.m[key]; n > 1 {
		c.m[key] = n - 1
	} else {
		delete(c.m, key)
	}
}

// Count returns the uses of key.
func (c *Concurrent) Count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// Len returns the number of keys in use.
func (c *Concurrent) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// PrefixBits returns the network of ip with the given prefix lengths for
// IPv4 (and IPv4-mapped IPv6) and IPv6 addresses, e.g. PrefixBits(ip, 24,
// 48) gives "203.0.113.0/24" or "2001:db8:1::/48". The zone is ignored;
// the zero Addr gives "".
func PrefixBits(ip netip.Addr, v4, v6 int) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	bits := v6
	if ip.Is4() {
		bits = v4
	}
	bits = max(0, min(bits, ip.BitLen()))
	return netip.PrefixFrom(ip, bits).Masked().String()
}
