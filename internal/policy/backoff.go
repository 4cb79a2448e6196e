package policy

import (
	"container/list"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Backoff tracks consecutive failures (for example failed logins) per key
// and makes a key that failed wait longer after each failure: after n
// consecutive failures the key must wait base·2^(n-1), capped at max,
// counted from its last failure. A failure more than forget after the
// previous one starts a new count, and a key idle for forget is dropped, so
// forget should be at least max.
//
// Memory is bounded: at most maxKeys keys are tracked; when a new key arrives
// and the table is full, the key that failed longest ago is dropped first.
// (An attacker who can create keys at will can therefore push other keys
// out; key by prefix, see Prefix, to make that expensive.)
//
// A Backoff is safe for concurrent use.
type Backoff struct {
	base, max, forget time.Duration
	maxKeys           int
	now               func() time.Time

	mu    sync.Mutex
	keys  map[string]*list.Element // of *entry
	order *list.List               // *entry, least recently failed first
}

type entry struct {
	key      string
	failures int
	last     time.Time
}

// NewBackoff returns a Backoff; now is the clock (nil means time.Now). It
// panics if base, forget or maxKeys is not positive; a max below base is
// raised to base.
func NewBackoff(base, max, forget time.Duration, maxKeys int, now func() time.Time) *Backoff {
	if base <= 0 || forget <= 0 || maxKeys <= 0 {
		panic(fmt.Sprintf("policy: NewBackoff(base=%v, max=%v, forget=%v, maxKeys=%d): base, forget and maxKeys must be positive",
			base, max, forget, maxKeys))
	}
	if max < base {
		max = base
	}
	if now == nil {
		now = time.Now
	}
	return &Backoff{
		base: base, max: max, forget: forget, maxKeys: maxKeys, now: now,
		keys:  make(map[string]*list.Element),
		order: list.New(),
	}
}

// delay returns the wait after n (≥ 1) consecutive failures.
func (b *Backoff) delay(n int) time.Duration {
	d := b.base
	for i := 1; i < n && d < b.max; i++ {
		if d > b.max/2 { // also keeps d*2 from overflowing
			return b.max
		}
		d *= 2
	}
	return min(d, b.max)
}

// expired reports whether e has been idle for forget at now.
func (b *Backoff) expired(e *entry, now time.Time) bool {
	return !now.Before(e.last.Add(b.forget))
}

// sweep drops idle keys from the front of the list, which is ordered by
// last failure, so afterwards no tracked key is idle. b.mu must be held.
func (b *Backoff) sweep(now time.Time) {
	for f := b.order.Front(); f != nil; f = b.order.Front() {
		e := f.Value.(*entry)
		if !b.expired(e, now) {
			return
		}
		b.remove(f)
	}
}

func (b *Backoff) remove(el *list.Element) {
	delete(b.keys, el.Value.(*entry).key)
	b.order.Remove(el)
}

// Wait returns how long key must wait before its next attempt; 0 means it
// may try now.
func (b *Backoff) Wait(key string) time.Duration {
	if b == nil { // a nil Backoff is a throttle that is off
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.sweep(now)
	el, ok := b.keys[key]
	if !ok {
		return 0
	}
	e := el.Value.(*entry)
	return max(e.last.Add(b.delay(e.failures)).Sub(now), 0)
}

// Fail records a failure of key.
func (b *Backoff) Fail(key string) {
	if b == nil { // a nil Backoff is a throttle that is off
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.sweep(now) // drops key if its last failure is forget ago: it starts over
	if el, ok := b.keys[key]; ok {
		e := el.Value.(*entry)
		if e.failures < 64 { // the delay is capped long before
			e.failures++
		}
		e.last = now
		b.order.MoveToBack(el)
		return
	}
	for len(b.keys) >= b.maxKeys {
		b.remove(b.order.Front())
	}
	b.keys[key] = b.order.PushBack(&entry{key: key, failures: 1, last: now})
}

// Succeed forgets key's failures.
func (b *Backoff) Succeed(key string) {
	if b == nil { // a nil Backoff is a throttle that is off
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if el, ok := b.keys[key]; ok {
		b.remove(el)
	}
}

// Len returns the number of keys tracked.
func (b *Backoff) Len() int {
	if b == nil { // a nil Backoff is a throttle that is off
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.keys)
}

// Prefix returns the network an address belongs to for per-network limits:
// its /24 for IPv4 (and IPv4-mapped IPv6) and its /64 for IPv6, for example
// "203.0.113.0/24" or "2001:db8:1:2::/64". The zone is ignored. It returns
// "" for the zero Addr.
func Prefix(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(ip, bits).Masked().String()
}
