package sqlite

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

// benchArchive fills an archive with rows messages of users accounts over
// days days, ending now, and returns the store and the time span.
func benchArchive(b *testing.B, users, rows, days int) (*Store, time.Time, time.Time) {
	b.Helper()
	owners := make([]string, users)
	for i := range owners {
		owners[i] = fmt.Sprintf("u%d@example.org", i)
	}
	s := benchStore(b, owners...)
	end := time.Now()
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	step := end.Sub(start) / time.Duration(rows)
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]store.ArchiveMessage, 0, 1000)
	for i := 0; i < rows; {
		batch = batch[:0]
		for ; len(batch) < 1000 && i < rows; i++ {
			id, _ := s.Archive().NewID(start.Add(time.Duration(i) * step))
			batch = append(batch, store.ArchiveMessage{ID: id, Owner: owners[rng.IntN(users)], With: owners[rng.IntN(users)] + "/r", Stanza: benchStanza})
		}
		if _, err := s.Archive().Append(b.Context(), batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	return s, start, end
}

func BenchmarkArchiveAppend(b *testing.B) {
	owners := make([]string, 1000)
	for i := range owners {
		owners[i] = fmt.Sprintf("u%d@example.org", i)
	}
	s := benchStore(b, owners...)
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]store.ArchiveMessage, 1000)
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			id, _ := s.Archive().NewID(time.Now())
			batch[i] = store.ArchiveMessage{ID: id, Owner: owners[rng.IntN(len(owners))], With: "peer@example.net/r", Stanza: benchStanza}
		}
		if _, err := s.Archive().Append(b.Context(), batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkArchiveQuery(b *testing.B) {
	const users = 1000
	s, start, end := benchArchive(b, users, 200_000, 20)
	rng := rand.New(rand.NewPCG(3, 4))
	owner := func() string { return fmt.Sprintf("u%d@example.org", rng.IntN(users)) }
	b.Run("by-time", func(b *testing.B) {
		for b.Loop() {
			t := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start) * 9 / 10))))
			if _, err := s.Archive().Query(b.Context(), owner(), store.ArchiveQuery{Start: t, Max: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("last-page", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Archive().Query(b.Context(), owner(), store.ArchiveQuery{Last: true, Max: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("with", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Archive().Query(b.Context(), owner(), store.ArchiveQuery{With: owner(), Max: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
