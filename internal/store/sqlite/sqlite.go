// Package sqlite is stoa's embedded storage backend: one SQLite file in WAL
// mode, driven by the pure-Go modernc.org/sqlite driver.
//
// All writes go through a single connection (so writers queue in Go instead
// of failing with "database is locked"), and reads use a separate pool of
// read-only connections, which WAL lets run beside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the schema migrations of this backend.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // cannot happen: the directory is embedded
	}
	return sub
}

// busyTimeout is how long a connection waits for a lock held by another
// process (an admin command, a backup) before giving up.
const busyTimeout = 10 * time.Second

// Store is an SQLite-backed store.Store.
type Store struct {
	w   *pool // exactly one connection: every write
	r   *pool // read-only connections
	arc *archiveState
}

var _ store.Store = (*Store)(nil)

// Open opens the database at path, creating it (mode 0600) and its parent
// directory (mode 0700) when missing, and applies pending migrations. It
// fails with an error wrapping migrate.ErrTooNew if the file was migrated by
// a newer stoa.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: resolving %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: creating directory: %w", err)
	}
	// Create the file ourselves so it gets mode 0600; SQLite gives its -wal
	// and -shm files the mode of the database file.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: creating database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: creating database file: %w", err)
	}

	// A file: URI, so that '?', '#' and '%' in the path are escaped.
	base := "file:" + (&url.URL{Path: abs}).EscapedPath() +
		fmt.Sprintf("?_pragma=busy_timeout(%d)", busyTimeout.Milliseconds())

	wdb, err := sql.Open("sqlite", base+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"+
		// 64 MiB of page cache for the writer (the default is 2 MiB): an
		// archive batch touches many index pages, which a small cache
		// spills to the WAL mid-transaction. The archive figures in
		// docs/benchmarks.md were measured with it.
		"&_pragma=cache_size(-65536)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	if err := wdb.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: opening %s: %w", abs, err), wdb.Close())
	}
	if err := migrate.Apply(ctx, wdb, Migrations(), "sqlite"); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %s: %w", abs, err), wdb.Close())
	}
	w, err := newPool(ctx, wdb, writeQueries())
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	arc, err := openArchive(ctx, w)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: opening %s: %w", abs, err), w.close())
	}

	// Readers keep a small page cache (256 KiB each; SQLite's default is
	// 2 MiB): every reader connection caches the same pages of the same
	// file, which the kernel's page cache holds anyway, so with four or
	// more readers the default cost more memory than 1 000 idle sessions
	// (6 MB in the idle measurement of docs/benchmarks.md) for reads that
	// a pread from the page cache serves almost as fast.
	rdb, err := sql.Open("sqlite", base+"&_pragma=query_only(1)&_pragma=cache_size(-256)")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: opening %s for reading: %w", abs, err), w.close())
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	r, err := newPool(ctx, rdb, readQueries())
	if err == nil {
		r.quick = true
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: opening %s for reading: %w", abs, err), w.close())
	}
	return &Store{w: w, r: r, arc: arc}, nil
}

// writeQueries and readQueries are the statements prepared at open.
func writeQueries() []string {
	return []string{
		qCreateAccount, qSetCredentials, qSetLastLogout, qDeleteAccount,
		qRosterUpsert, qRosterDelete, qRosterBump, qPendingAdd, qPendingRemove,
		qOfflinePush, qOfflinePushQuota,
		qKVPut, qKVDelete,
		qArchOwnerID, qArchOwnerCreate, qArchCountAdd, qArchCountSub, qArchCountClean, qArchHighSeq, qArchTotal, qArchOwnerDays, qArchPrefsPut, qArchOwnerGen, qArchCountClear,
	}
}

func readQueries() []string {
	return []string{
		qGetAccount, qListAccounts, qCountAccounts,
		qRosterItems, qRosterGet, qPendingList,
		qOfflineList, qOfflineCount,
		qKVGet, qStateGet,
		qArchOwnerID, qArchOwnerDays, qArchPrefsGet,
	}
}

// Accounts implements store.Store.
func (s *Store) Accounts() store.Accounts { return accounts{s} }

// Roster implements store.Store.
func (s *Store) Roster() store.Roster { return roster{s} }

// Offline implements store.Store.
func (s *Store) Offline() store.Offline { return offline{s} }

// KV implements store.Store.
func (s *Store) KV() store.KV { return kv{s} }

// Close closes the database. The writer closes last, so that SQLite
// checkpoints the WAL into the main file.
func (s *Store) Close() error {
	if err := errors.Join(s.r.close(), s.w.close()); err != nil {
		return fmt.Errorf("sqlite: closing: %w", err)
	}
	return nil
}

// noAccount maps a foreign-key violation (writing for an owner with no
// account) to store.ErrNotFound.
func noAccount(err error, owner string) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return fmt.Errorf("no account %q: %w", owner, store.ErrNotFound)
	}
	return err
}

// toNanos converts t to UTC unix nanoseconds, the storage format of times.
func toNanos(t time.Time) (int64, error) {
	ns := t.UnixNano()
	if !time.Unix(0, ns).Equal(t) {
		return 0, fmt.Errorf("time %v out of range (years 1678 to 2262)", t)
	}
	return ns, nil
}

func fromNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }
