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
	w *sql.DB // exactly one connection: every write
	r *sql.DB // read-only pool
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

	w, err := sql.Open("sqlite", base+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	if err := migrate.Apply(ctx, w, Migrations(), "sqlite"); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", abs, err)
	}

	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: opening %s for reading: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: opening %s for reading: %w", abs, err)
	}
	return &Store{w: w, r: r}, nil
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
	return errors.Join(s.r.Close(), s.w.Close())
}

// write runs fn in one write transaction (BEGIN IMMEDIATE on the writer).
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	return tx.Commit()
}

// read runs fn in one read transaction, so that it sees one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	err = fn(tx)
	return errors.Join(err, ignoreDone(tx.Rollback()))
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
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
