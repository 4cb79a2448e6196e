// Package readcache holds values read from the store in memory, bounded,
// for data that is read far more often than it changes (rosters, archiving
// preferences).
//
// The one rule that makes such a cache correct is about a read that races
// a write: a reader misses, reads the store, and installs what it read; if
// a write (and its Forget) lands between the reader's store read and its
// install, the reader would install the old value for good. So Get hands
// out a ticket, Forget moves the cache's generation on, and Fill installs
// only when no Forget happened since the ticket. Writers write the store
// first and Forget after.
package readcache

import "sync"

// Cache maps keys to values, holding at most max keys; when full, adding
// a key drops an arbitrary other one. It is safe for concurrent use.
type Cache[V any] struct {
	max int

	mu  sync.Mutex
	m   map[string]V
	gen uint64 // moved on by every Forget
}

// Ticket is what Fill needs from the Get that missed.
type Ticket struct{ gen uint64 }

// New returns a cache of at most size keys (at least one).
func New[V any](size int) *Cache[V] {
	return &Cache[V]{max: max(size, 1), m: make(map[string]V)}
}

// Get returns the value of key if cached; otherwise the ticket for
// installing what the caller then reads from the store.
func (c *Cache[V]) Get(key string) (V, bool, Ticket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok, Ticket{c.gen}
}

// Fill installs v, read from the store after Get returned t, unless a
// Forget came in between (v may then be older than the store).
func (c *Cache[V]) Fill(key string, v V, t Ticket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != t.gen {
		return
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = v
}

// Forget drops key, and keeps the reads in flight from installing what
// they read: call it after every write of key's value to the store.
func (c *Cache[V]) Forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
	c.gen++
}

// Len returns the number of cached keys.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
