package rostercache

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/store/storetest"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// The cached store passes the conformance suite every backend passes: it
// changes nothing a caller can see. A cache of 4 rosters also evicts.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, max := range []int{4, 10000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) store.Store { return Wrap(openSQLite(t), max) })
		})
	}
}

func TestWrapZeroIsTheStore(t *testing.T) {
	st := openSQLite(t)
	defer st.Close()
	if Wrap(st, 0) != st {
		t.Error("Wrap(st, 0) is not st")
	}
}

// counting counts the reads that reach the store below.
type counting struct {
	store.Store
	mu           sync.Mutex
	items, gets  int
	beforeReturn func() // run inside Items after reading, before returning
}

func (c *counting) Roster() store.Roster { return countingRoster{c.Store.Roster(), c} }

type countingRoster struct {
	store.Roster
	c *counting
}

func (r countingRoster) Items(ctx context.Context, owner string) ([]store.RosterItem, int64, error) {
	items, ver, err := r.Roster.Items(ctx, owner)
	r.c.mu.Lock()
	r.c.items++
	f := r.c.beforeReturn
	r.c.mu.Unlock()
	if f != nil {
		f()
	}
	return items, ver, err
}

func (r countingRoster) Get(ctx context.Context, owner, contact string) (store.RosterItem, error) {
	r.c.mu.Lock()
	r.c.gets++
	r.c.mu.Unlock()
	return r.Roster.Get(ctx, owner, contact)
}

func (c *counting) reads() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.items, c.gets
}

func setup(t *testing.T, max int) (*counting, *Store, context.Context) {
	t.Helper()
	under := &counting{Store: openSQLite(t)}
	t.Cleanup(func() { under.Close() })
	ctx := t.Context()
	for _, a := range []string{"alice@example.org", "bob@example.org", "carol@example.org"} {
		if err := under.Accounts().Create(ctx, a, store.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	return under, Wrap(under, max).(*Store), ctx
}

// Items and Get come from memory after the first read, and the items are
// exactly the store's: names, groups, every subscription and flag, order.
func TestServesFromMemory(t *testing.T) {
	under, s, ctx := setup(t, 100)
	want := []store.RosterItem{
		{JID: "bob@example.org", Name: "Bob", Subscription: store.SubBoth, Groups: []string{"Friends", "Work"}},
		{JID: "carol@example.org", Subscription: store.SubTo, Ask: true},
		{JID: "dave@example.net", Name: "Dävé ☃", Subscription: store.SubFrom, Approved: true, Groups: []string{""}},
		{JID: "eve@example.net", Subscription: store.SubNone, Ask: true, Approved: true},
	}
	for _, it := range []int{2, 0, 3, 1} { // out of order
		if _, err := s.Roster().Put(ctx, "alice@example.org", want[it]); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		items, ver, err := s.Roster().Items(ctx, "alice@example.org")
		if err != nil || ver != 4 || !reflect.DeepEqual(items, want) {
			t.Fatalf("Items: %+v, version %d, %v; want %+v, 4", items, ver, err, want)
		}
		for _, w := range want {
			it, err := s.Roster().Get(ctx, "alice@example.org", w.JID)
			if err != nil || !reflect.DeepEqual(it, w) {
				t.Fatalf("Get %s: %+v, %v", w.JID, it, err)
			}
		}
		if _, err := s.Roster().Get(ctx, "alice@example.org", "zed@example.org"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get of a missing contact: %v", err)
		}
		if _, err := s.Roster().Get(ctx, "alice@example.org", "a@example.org"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get of a missing contact before the first: %v", err)
		}
	}
	if items, gets := under.reads(); items != 1 || gets != 0 {
		t.Errorf("the store was read %d times (Items) and %d (Get); want once", items, gets)
	}
	// An empty roster is cached too.
	for range 2 {
		if _, err := s.Roster().Get(ctx, "bob@example.org", "alice@example.org"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get on an empty roster: %v", err)
		}
	}
	if items, _ := under.reads(); items != 2 {
		t.Errorf("the empty roster was read %d times; want once", items-1)
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
}

// Every write drops the roster: Put, Delete, and deleting the account.
func TestWritesInvalidate(t *testing.T) {
	_, s, ctx := setup(t, 100)
	r := s.Roster()
	get := func(contact string) (store.RosterItem, error) { return r.Get(ctx, "alice@example.org", contact) }
	if _, err := get("bob@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := r.Put(ctx, "alice@example.org", store.RosterItem{JID: "bob@example.org", Subscription: store.SubTo}); err != nil {
		t.Fatal(err)
	}
	if it, err := get("bob@example.org"); err != nil || it.Subscription != store.SubTo {
		t.Fatalf("after Put: %+v, %v", it, err)
	}
	if _, err := r.Put(ctx, "alice@example.org", store.RosterItem{JID: "bob@example.org", Subscription: store.SubBoth}); err != nil {
		t.Fatal(err)
	}
	if items, ver, err := r.Items(ctx, "alice@example.org"); err != nil || ver != 2 || len(items) != 1 || items[0].Subscription != store.SubBoth {
		t.Fatalf("after the second Put: %+v, %d, %v", items, ver, err)
	}
	if _, err := r.Delete(ctx, "alice@example.org", "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := get("bob@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
	if _, err := r.Put(ctx, "alice@example.org", store.RosterItem{JID: "carol@example.org", Subscription: store.SubBoth}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("carol@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := s.Accounts().Delete(ctx, "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := get("carol@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the roster of a deleted account is still served: %v", err)
	}
}

// A read that started before a write does not install what it read: the
// write's invalidation came after the read's snapshot could have been
// taken.
func TestReadRacingWriteNotInstalled(t *testing.T) {
	under, s, ctx := setup(t, 100)
	r := s.Roster()
	once := true
	under.beforeReturn = func() {
		if !once {
			return
		}
		once = false
		// The store has answered (empty roster); a write lands before the
		// reader installs the answer.
		if _, err := r.Put(ctx, "alice@example.org", store.RosterItem{JID: "bob@example.org", Subscription: store.SubBoth}); err != nil {
			t.Error(err)
		}
	}
	if items, _, err := r.Items(ctx, "alice@example.org"); err != nil || len(items) != 0 {
		t.Fatalf("first read: %+v, %v", items, err)
	}
	if it, err := r.Get(ctx, "alice@example.org", "bob@example.org"); err != nil || it.Subscription != store.SubBoth {
		t.Errorf("a stale roster was cached: %+v, %v", it, err)
	}
}

// The cache holds at most about max rosters, and rosters past MaxItems are
// read from the store every time.
func TestBounds(t *testing.T) {
	under, s, ctx := setup(t, 64)
	for i := range 1000 {
		owner := fmt.Sprintf("u%d@example.org", i)
		if _, _, err := s.Roster().Items(ctx, owner); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n > 64+shards {
		t.Errorf("%d rosters cached, want at most about 64", n)
	}
	for i := range MaxItems + 1 {
		if _, err := under.Roster().Put(ctx, "carol@example.org", store.RosterItem{JID: fmt.Sprintf("c%05d@example.org", i), Subscription: store.SubBoth}); err != nil {
			t.Fatal(err)
		}
	}
	items0, gets0 := under.reads()
	for range 3 {
		it, err := s.Roster().Get(ctx, "carol@example.org", "c00007@example.org")
		if err != nil || it.JID != "c00007@example.org" {
			t.Fatalf("Get in a big roster: %+v, %v", it, err)
		}
		if items, _, err := s.Roster().Items(ctx, "carol@example.org"); err != nil || len(items) != MaxItems+1 {
			t.Fatalf("Items of a big roster: %d, %v", len(items), err)
		}
	}
	// One load finds it big; then Gets and Items go to the store.
	if items, gets := under.reads(); items-items0 != 4 || gets-gets0 != 3 {
		t.Errorf("big roster: %d Items and %d Gets reached the store, want 4 and 3", items-items0, gets-gets0)
	}
}
