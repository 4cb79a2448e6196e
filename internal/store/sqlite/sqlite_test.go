package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/migrate"
	"stoa.im/stoa/internal/store/storetest"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "stoa.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	const alice = "alice@example.org"
	stored := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := s.Accounts().Create(ctx, alice, store.Credentials{SHA256: store.ScramCredentials{Salt: []byte("s"), Iterations: 4096}}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Roster().Put(ctx, alice, store.RosterItem{JID: "bob@example.org", Subscription: store.SubBoth, Groups: []string{"g"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Offline().Push(ctx, alice, []byte("<message/>"), stored, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.KV().Put(ctx, alice, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for i := range 2 { // reopening twice also re-runs the (now empty) migrations
		s, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		a, err := s.Accounts().Get(ctx, alice)
		if err != nil || a.Credentials.SHA256.Iterations != 4096 {
			t.Errorf("reopen %d: Get = %+v, %v", i, a, err)
		}
		items, ver, err := s.Roster().Items(ctx, alice)
		if err != nil || len(items) != 1 || ver != v {
			t.Errorf("reopen %d: Items = %v, %d, %v; want 1 item, version %d", i, items, ver, err, v)
		}
		ms, err := s.Offline().List(ctx, alice)
		if err != nil || len(ms) != 1 || !ms[0].Stored.Equal(stored) {
			t.Errorf("reopen %d: Offline.List = %v, %v", i, ms, err)
		}
		if got, err := s.KV().Get(ctx, alice, "k"); err != nil || string(got) != "v" {
			t.Errorf("reopen %d: KV.Get = %q, %v", i, got, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTemp(t)
	defer s.Close()
	ms, err := migrate.Load(Migrations())
	if err != nil || len(ms) == 0 {
		t.Fatalf("Load = %d migrations, %v", len(ms), err)
	}
	for i := range 2 {
		if err := migrate.Apply(ctx, s.w.db, Migrations(), "sqlite"); err != nil {
			t.Fatalf("Apply %d on a migrated database: %v", i, err)
		}
	}
	var rows int
	if err := s.r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_version`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if v, err := migrate.Version(ctx, s.r.db); err != nil || v != len(ms) || rows != len(ms) {
		t.Errorf("version %d (%v) with %d rows, want %d and %d", v, err, rows, len(ms), len(ms))
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "stoa.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.db.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied) VALUES (9999, '9999_future.sql', 'later')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if !errors.Is(err, migrate.ErrTooNew) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer database: %v, want ErrTooNew", err)
	}
	t.Log(err)
}

func TestFileModes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "stoa")
	path := filepath.Join(dir, "stoa.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Write something so that the -wal file exists.
	if err := s.Accounts().Create(t.Context(), "a@b", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{path, 0o600},
		{path + "-wal", 0o600},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		// The umask may only remove bits.
		if fi.Mode()&^tc.want != 0 {
			t.Errorf("%s: mode %v, want at most %v", tc.path, fi.Mode(), tc.want)
		}
	}
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTemp(t)
	defer s.Close()
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "1"}, // NORMAL
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	}
	for _, tc := range tests {
		var got string
		if err := s.w.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("%s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("writer %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
	if got := s.w.db.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", got)
	}
	// The read pool cannot write.
	if _, err := s.r.db.ExecContext(ctx, `DELETE FROM accounts`); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

func TestRejectsOutOfRangeTimes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTemp(t)
	defer s.Close()
	if err := s.Accounts().Create(ctx, "a@b", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	for _, tm := range []time.Time{{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if err := s.Offline().Push(ctx, "a@b", []byte("m"), tm, 0); err == nil {
			t.Errorf("Push with stored time %v: no error", tm)
		}
	}
}

func TestOpenFails(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	notDB := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(notDB, []byte("this is not an SQLite database, not at all, no"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(file, "stoa.db"), notDB} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		s, err := Open(ctx, path)
		cancel()
		if err == nil {
			s.Close()
			t.Errorf("Open(%q): no error", path)
		}
	}
}
