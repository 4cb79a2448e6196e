// Package rostercache keeps rosters in memory in front of a store.
//
// Rosters are read far more often than they change: a login reads its own
// roster twice (the client's roster get, then presence to every contact)
// and each of its contacts' rosters once more (the presence probe asks
// whether the contact lets the user see its presence), and every presence
// change reads the roster again. With SQLite each read is a query of tens
// of microseconds; from memory it is a binary search.
//
// A roster is cached whole, as one compact string (about 25 bytes per
// item) with an index of item offsets, so that thousands of online users'
// rosters cost little memory. Every roster write through this store drops
// the owner's entry, and so does deleting the account; the next read loads
// it again. A read that started before a write never installs what it
// read (internal/readcache, one per shard), so the cache never serves a
// roster older than the last write it saw.
//
// The cache assumes it sees every write: the server owns its store while
// it runs (the stoa command goes through the admin socket then). Several
// nodes sharing one database would each need the others' invalidations.
package rostercache

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"sort"

	"stoa.im/stoa/internal/readcache"
	"stoa.im/stoa/internal/store"
)

// MaxItems is the largest roster cached; bigger ones are read from the
// store each time (a few accounts, bots mostly).
const MaxItems = 2000

const shards = 32

// Store is a store.Store whose Roster reads come from memory.
type Store struct {
	store.Store
	c        *cache
	roster   store.Roster   // roster{...}, built once: Roster() is hot
	accounts store.Accounts // accounts{...}
}

// Wrap returns st with a cache of up to max rosters; max <= 0 returns st
// unchanged.
func Wrap(st store.Store, max int) store.Store {
	if max <= 0 {
		return st
	}
	c := &cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i] = readcache.New[*entry](max/shards + 1)
	}
	// The backend's repositories are handles on it (the store.Store
	// contract), so they are taken once.
	return &Store{Store: st, c: c, roster: roster{Roster: st.Roster(), c: c}, accounts: accounts{Accounts: st.Accounts(), c: c}}
}

// Roster returns the cached roster repository.
func (s *Store) Roster() store.Roster { return s.roster }

// Accounts returns the account repository; deleting an account drops its
// cached roster.
func (s *Store) Accounts() store.Accounts { return s.accounts }

// Len returns the number of cached rosters.
func (s *Store) Len() int {
	n := 0
	for _, sh := range s.c.shards {
		n += sh.Len()
	}
	return n
}

// cache spreads the rosters over shards, each with its own lock and its
// own generation (readcache: a read that raced a write does not install).
type cache struct {
	seed   maphash.Seed
	shards [shards]*readcache.Cache[*entry]
}

func (c *cache) shard(owner string) *readcache.Cache[*entry] {
	return c.shards[maphash.String(c.seed, owner)%shards]
}

func (c *cache) get(owner string) (*entry, readcache.Ticket) {
	e, _, t := c.shard(owner).Get(owner)
	return e, t
}

func (c *cache) put(owner string, e *entry, t readcache.Ticket) { c.shard(owner).Fill(owner, e, t) }

func (c *cache) invalidate(owner string) { c.shard(owner).Forget(owner) }

// entry is one roster: its version and its items encoded in data, sorted
// by JID, item i starting at offs[i]. A big entry stands for a roster of
// more than MaxItems items, read from the store each time.
type entry struct {
	ver  int64
	data string
	offs []uint32
	big  bool
}

// bigEntry marks the rosters that are not cached.
var bigEntry = &entry{big: true}

type roster struct {
	store.Roster
	c *cache
}

// load returns the owner's roster entry, from the cache or read from the
// store and cached.
func (r roster) load(ctx context.Context, owner string) (*entry, error) {
	e, tk := r.c.get(owner)
	if e != nil {
		return e, nil
	}
	items, ver, err := r.Roster.Items(ctx, owner)
	if err != nil {
		return nil, err
	}
	e = encode(items, ver)
	r.c.put(owner, e, tk)
	return e, nil
}

// Items returns the roster from the cache.
func (r roster) Items(ctx context.Context, owner string) ([]store.RosterItem, int64, error) {
	if err := ctx.Err(); err != nil { // as the store would: done is done
		return nil, 0, fmt.Errorf("rostercache: reading roster of %q: %w", owner, err)
	}
	e, tk := r.c.get(owner)
	switch {
	case e == nil:
		items, ver, err := r.Roster.Items(ctx, owner)
		if err == nil {
			r.c.put(owner, encode(items, ver), tk)
		}
		return items, ver, err
	case e.big:
		return r.Roster.Items(ctx, owner)
	}
	return e.items(), e.ver, nil
}

// Get returns one item from the cached roster (loading the whole roster:
// its other contacts' probes follow).
func (r roster) Get(ctx context.Context, owner, contact string) (store.RosterItem, error) {
	if err := ctx.Err(); err != nil {
		return store.RosterItem{}, fmt.Errorf("rostercache: getting roster item %q of %q: %w", contact, owner, err)
	}
	e, err := r.load(ctx, owner)
	if err != nil {
		return store.RosterItem{}, err
	}
	if e.big {
		return r.Roster.Get(ctx, owner, contact)
	}
	if it, ok := e.find(contact); ok {
		return it, nil
	}
	return store.RosterItem{}, fmt.Errorf("rostercache: roster item %q of %q: %w", contact, owner, store.ErrNotFound)
}

// Put writes through and drops the cached roster.
func (r roster) Put(ctx context.Context, owner string, item store.RosterItem) (int64, error) {
	defer r.c.invalidate(owner)
	return r.Roster.Put(ctx, owner, item)
}

// Delete writes through and drops the cached roster.
func (r roster) Delete(ctx context.Context, owner, contact string) (int64, error) {
	defer r.c.invalidate(owner)
	return r.Roster.Delete(ctx, owner, contact)
}

type accounts struct {
	store.Accounts
	c *cache
}

// Delete removes the account (and its roster) and drops the cached roster.
func (a accounts) Delete(ctx context.Context, jid string) error {
	defer a.c.invalidate(jid)
	return a.Accounts.Delete(ctx, jid)
}

// The encoding of one item: uvarint length and bytes of the JID, of the
// name, one flags byte (subscription in the low two bits, ask, approved),
// uvarint group count, then each group as length and bytes.
const (
	flagAsk      = 1 << 2
	flagApproved = 1 << 3
)

var subs = [4]store.Subscription{store.SubNone, store.SubTo, store.SubFrom, store.SubBoth}

func subIndex(s store.Subscription) byte {
	for i, v := range subs {
		if v == s {
			return byte(i)
		}
	}
	return 0 // the store refuses unknown values on Put
}

// encode returns the entry of a roster (bigEntry past MaxItems).
func encode(items []store.RosterItem, ver int64) *entry {
	if len(items) > MaxItems {
		return bigEntry
	}
	sorted := items
	if !sort.SliceIsSorted(items, func(i, j int) bool { return items[i].JID < items[j].JID }) {
		sorted = append([]store.RosterItem(nil), items...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].JID < sorted[j].JID })
	}
	n := 0
	for _, it := range sorted {
		n += 2*binary.MaxVarintLen32 + len(it.JID) + len(it.Name) + 1
		for _, g := range it.Groups {
			n += binary.MaxVarintLen32 + len(g)
		}
	}
	b := make([]byte, 0, n)
	offs := make([]uint32, len(sorted))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for i, it := range sorted {
		offs[i] = uint32(len(b))
		str(it.JID)
		str(it.Name)
		f := subIndex(it.Subscription)
		if it.Ask {
			f |= flagAsk
		}
		if it.Approved {
			f |= flagApproved
		}
		b = append(b, f)
		b = binary.AppendUvarint(b, uint64(len(it.Groups)))
		for _, g := range it.Groups {
			str(g)
		}
	}
	return &entry{ver: ver, data: string(b), offs: offs}
}

// str decodes a length-prefixed string at off: the string (sharing
// e.data's memory) and the offset after it.
func (e *entry) str(off int) (string, int) {
	l, off := e.uvarint(off)
	return e.data[off : off+l], off + l
}

// uvarint decodes a uvarint at off (encoding/binary's, without a []byte).
func (e *entry) uvarint(off int) (int, int) {
	var v, shift uint
	for {
		c := e.data[off]
		off++
		v |= uint(c&0x7f) << shift
		if c < 0x80 {
			return int(v), off
		}
		shift += 7
	}
}

func (e *entry) item(i int) store.RosterItem {
	var it store.RosterItem
	off := int(e.offs[i])
	it.JID, off = e.str(off)
	it.Name, off = e.str(off)
	f := e.data[off]
	off++
	it.Subscription, it.Ask, it.Approved = subs[f&3], f&flagAsk != 0, f&flagApproved != 0
	ng, off := e.uvarint(off)
	if ng > 0 {
		it.Groups = make([]string, ng)
		for g := range it.Groups {
			it.Groups[g], off = e.str(off)
		}
	}
	return it
}

// jid returns item i's JID alone.
func (e *entry) jid(i int) string {
	s, _ := e.str(int(e.offs[i]))
	return s
}

func (e *entry) items() []store.RosterItem {
	if len(e.offs) == 0 {
		return nil
	}
	items := make([]store.RosterItem, len(e.offs))
	for i := range items {
		items[i] = e.item(i)
	}
	return items
}

func (e *entry) find(contact string) (store.RosterItem, bool) {
	i := sort.Search(len(e.offs), func(i int) bool { return e.jid(i) >= contact })
	if i < len(e.offs) && e.jid(i) == contact {
		return e.item(i), true
	}
	return store.RosterItem{}, false
}
