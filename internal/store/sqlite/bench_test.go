package sqlite

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

func benchStore(b *testing.B, accounts ...string) *Store {
	b.Helper()
	s, err := Open(b.Context(), b.TempDir()+"/stoa.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for _, a := range accounts {
		if err := s.Accounts().Create(b.Context(), a, store.Credentials{}); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

var benchStanza = []byte(`<message xmlns='jabber:client' from='bob@example.org/phone' to='alice@example.org' type='chat' id='a1b2c3'><body>Hello, this is a message of typical length.</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)

func BenchmarkOfflinePush(b *testing.B) {
	s := benchStore(b, "alice@example.org")
	ctx := b.Context()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Offline().Push(ctx, "alice@example.org", benchStanza, now, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOfflinePushQuota pushes with a quota of 1000 round-robin into
// 1000 accounts, so the quota count runs over realistic queue lengths.
func BenchmarkOfflinePushQuota(b *testing.B) {
	owners := make([]string, 1000)
	for i := range owners {
		owners[i] = fmt.Sprintf("u%d@example.org", i)
	}
	s := benchStore(b, owners...)
	ctx := b.Context()
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		err := s.Offline().Push(ctx, owners[i%len(owners)], benchStanza, now, 1000)
		if err != nil && !errors.Is(err, store.ErrQuotaExceeded) {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkOfflinePushParallel(b *testing.B) {
	owners := make([]string, 64)
	for i := range owners {
		owners[i] = fmt.Sprintf("u%d@example.org", i)
	}
	s := benchStore(b, owners...)
	ctx := b.Context()
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := s.Offline().Push(ctx, owners[i%len(owners)], benchStanza, now, 0); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkOfflineList(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprint(n, "msgs"), func(b *testing.B) {
			s := benchStore(b, "alice@example.org")
			ctx := b.Context()
			for range n {
				if err := s.Offline().Push(ctx, "alice@example.org", benchStanza, time.Now(), 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				ms, err := s.Offline().List(ctx, "alice@example.org")
				if err != nil || len(ms) != n {
					b.Fatal(len(ms), err)
				}
			}
		})
	}
}

func BenchmarkRosterPut(b *testing.B) {
	s := benchStore(b, "alice@example.org")
	ctx := b.Context()
	item := store.RosterItem{Name: "Bob", Subscription: store.SubBoth, Groups: []string{"Friends", "Work"}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		item.JID = fmt.Sprintf("c%d@example.net", i%200)
		if _, err := s.Roster().Put(ctx, "alice@example.org", item); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchRoster returns a store whose alice has a roster of ten contacts,
// the shape of a login in docs/benchmarks.md.
func benchRoster(b *testing.B) *Store {
	s := benchStore(b, "alice@example.org")
	for i := range 10 {
		it := store.RosterItem{JID: fmt.Sprintf("contact%d@example.org", i), Subscription: store.SubBoth}
		if i%3 == 0 {
			it.Name, it.Groups = "Friend", []string{"Friends"}
		}
		if _, err := s.Roster().Put(b.Context(), "alice@example.org", it); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkRosterItems reads a roster of ten items with its version (each
// login reads its own twice: the client's roster get and presence).
func BenchmarkRosterItems(b *testing.B) {
	s := benchRoster(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		items, ver, err := s.Roster().Items(ctx, "alice@example.org")
		if err != nil || len(items) != 10 || ver != 10 {
			b.Fatal(len(items), ver, err)
		}
	}
}

// BenchmarkRosterGet reads one item (a presence probe reads the contact's
// item for the prober, once per contact of each login).
func BenchmarkRosterGet(b *testing.B) {
	s := benchRoster(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Roster().Get(ctx, "alice@example.org", "contact4@example.org"); err != nil {
			b.Fatal(err)
		}
	}
}
