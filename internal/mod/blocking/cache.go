package blocking

import (
	"container/list"
	"slices"
	"sync"

	"stoa.im/stoa/internal/xmpp/jid"
)

// entry is one account's block list; it is never changed once cached
// (a change replaces it), so readers need no lock.
type entry struct {
	items map[string]struct{}
}

func newEntry(items []string) *entry {
	e := &entry{}
	for _, s := range items {
		e.add(s)
	}
	return e
}

func (e *entry) add(s string) {
	if e.items == nil {
		e.items = make(map[string]struct{})
	}
	e.items[s] = struct{}{}
}

func (e *entry) has(s string) bool {
	_, ok := e.items[s]
	return ok
}

func (e *entry) len() int { return len(e.items) }

func (e *entry) sorted() []string {
	out := make([]string, 0, len(e.items))
	for s := range e.items {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// matches applies XEP-0191 §5 (XEP-0016 order): the full JID, the bare
// JID, the domain with the resource, the domain.
func (e *entry) matches(j jid.JID) bool {
	if len(e.items) == 0 {
		return false
	}
	if e.has(j.String()) || e.has(j.Bare().String()) || e.has(j.Domain()) {
		return true
	}
	return j.Resource() != "" && e.has(j.Domain()+"/"+j.Resource())
}

// cache keeps the block lists of the most recently used accounts.
type cache struct {
	max int

	mu    sync.Mutex
	gen   uint64 // bumped by every drop: a load that started before must not be cached
	m     map[string]*list.Element
	order *list.List // of *cacheItem, least recently used first
}

type cacheItem struct {
	owner string
	e     *entry
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[string]*list.Element), order: list.New()}
}

func (c *cache) get(owner string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[owner]
	if !ok {
		return nil
	}
	c.order.MoveToBack(el)
	return el.Value.(*cacheItem).e
}

// generation is read before loading from storage; put with it caches
// the result only if nothing changed meanwhile.
func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *cache) put(owner string, e *entry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if el, ok := c.m[owner]; ok {
		el.Value.(*cacheItem).e = e
		c.order.MoveToBack(el)
		return
	}
	for len(c.m) >= c.max {
		f := c.order.Front()
		delete(c.m, f.Value.(*cacheItem).owner)
		c.order.Remove(f)
	}
	c.m[owner] = c.order.PushBack(&cacheItem{owner: owner, e: e})
}

// drop forgets an account's list after a change.
func (c *cache) drop(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if el, ok := c.m[owner]; ok {
		delete(c.m, owner)
		c.order.Remove(el)
	}
}
