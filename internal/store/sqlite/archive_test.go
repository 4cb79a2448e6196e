package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

// archiveRows counts the rows of every day table, and the tables.
func archiveRows(t *testing.T, s *Store) (rows, tables int) {
	t.Helper()
	r, err := s.w.db.QueryContext(t.Context(), `SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'archive_p[0-9]*'`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for r.Next() {
		var n string
		if err := r.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	r.Close()
	for _, n := range names {
		var c int
		if err := s.w.db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+n).Scan(&c); err != nil {
			t.Fatal(err)
		}
		rows += c
	}
	return rows, len(names)
}

func appendDays(t *testing.T, s *Store, owner string, start time.Time, n int) {
	t.Helper()
	var msgs []store.ArchiveMessage
	for i := range n {
		id, _ := s.Archive().NewID(start.Add(time.Duration(i) * 6 * time.Hour))
		msgs = append(msgs, store.ArchiveMessage{ID: id, Owner: owner, With: "peer@example.net/r", Stanza: []byte(fmt.Sprintf("<message>%d</message>", i))})
	}
	if _, err := s.Archive().Append(t.Context(), msgs, 0); err != nil {
		t.Fatal(err)
	}
}

func purgeAll(t *testing.T, s *Store, p store.ArchivePurge) int {
	t.Helper()
	total := 0
	for more := true; more; {
		n, m, err := s.Archive().Purge(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		more = m
	}
	return total
}

// TestArchiveDeletedAccountRowsReaped checks that the rows of a deleted
// account leave the disk with the next purge, not only the queries.
func TestArchiveDeletedAccountRowsReaped(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTemp(t)
	defer s.Close()
	for _, a := range []string{"alice@example.org", "bob@example.org"} {
		if err := s.Accounts().Create(ctx, a, store.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	appendDays(t, s, "alice@example.org", start, 12) // 3 days
	appendDays(t, s, "bob@example.org", start.Add(72*time.Hour), 4)
	if rows, tables := archiveRows(t, s); rows != 16 || tables != 4 {
		t.Fatalf("%d rows in %d tables, want 16 in 4", rows, tables)
	}
	err := s.Accounts().Delete(ctx, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	var orphans int
	if err := s.r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM archive_orphans`).Scan(&orphans); err != nil || orphans != 1 {
		t.Fatalf("%d orphans (%v), want 1: the trigger did not fire on the cascade", orphans, err)
	}
	for more := true; more; {
		if _, more, err = s.Archive().ReapDeleted(ctx, 5); err != nil {
			t.Fatal(err)
		}
	}
	if rows, _ := archiveRows(t, s); rows != 4 {
		t.Errorf("%d rows left, want bob's 4", rows)
	}
	if err := s.r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM archive_orphans`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d orphans left (%v)", orphans, err)
	}
}

// TestArchivePurgeDropsDays checks that whole expired days are dropped
// as tables and the sequence survives a reopen.
func TestArchivePurgeDropsDays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "stoa.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Accounts().Create(ctx, "alice@example.org", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	appendDays(t, s, "alice@example.org", start, 20) // 5 days
	if n := purgeAll(t, s, store.ArchivePurge{Before: start.Add(54 * time.Hour), Limit: 1}); n != 9 {
		t.Errorf("purged %d, want 9", n)
	}
	rows, tables := archiveRows(t, s)
	if rows != 11 || tables != 3 {
		t.Errorf("%d rows in %d tables, want 11 in 3", rows, tables)
	}
	var parts int
	if err := s.r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM archive_partitions`).Scan(&parts); err != nil || parts != 3 {
		t.Errorf("archive_partitions has %d rows (%v), want 3", parts, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The stored messages' highest number is respected after a restart,
	// even for an earlier clock.
	id, _ := s.Archive().NewID(start)
	seq, err := s.arc.codec.Decode(id)
	if err != nil {
		t.Fatal(err)
	}
	var high int64
	if err := s.r.db.QueryRowContext(ctx, `SELECT value FROM archive_meta WHERE key = 'high_seq'`).Scan(&high); err != nil {
		t.Fatal(err)
	}
	if seq <= high {
		t.Errorf("after reopening, NewID gave %d, not above the highest stored %d", seq, high)
	}
	p, err := s.Archive().Query(ctx, "alice@example.org", store.ArchiveQuery{Max: 100})
	if err != nil || len(p.Messages) != 11 {
		t.Errorf("after reopening: %d messages, %v", len(p.Messages), err)
	}
}

// TestArchiveStatementCacheFull checks that queries stay right when the
// cache of day-table statements fills up and starts over, and when a day
// table is dropped under it.
func TestArchiveStatementCacheFull(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTemp(t)
	defer s.Close()
	if err := s.Accounts().Create(ctx, "alice@example.org", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	appendDays(t, s, "alice@example.org", start, 40) // 10 days
	cache := s.arc.readCache(s.r.db)
	cache.max = 3
	for round := range 3 {
		for _, q := range []store.ArchiveQuery{{Max: 100}, {Max: 7, Last: true}, {Max: 100, With: "peer@example.net"}} {
			p, err := s.Archive().Query(ctx, "alice@example.org", q)
			want := min(q.Max, 40-4*round)
			if err != nil || len(p.Messages) != want || p.Count != 40-4*round {
				t.Fatalf("round %d, %+v: %d messages, count %d, %v; want %d of %d", round, q, len(p.Messages), p.Count, err, want, 40-4*round)
			}
		}
		cache.mu.Lock()
		n := len(cache.m)
		cache.mu.Unlock()
		if n > cache.max {
			t.Errorf("cache holds %d statements, more than %d", n, cache.max)
		}
		// Drop the oldest day.
		purgeAll(t, s, store.ArchivePurge{Before: start.Add(time.Duration(round+1) * 24 * time.Hour)})
	}
}
