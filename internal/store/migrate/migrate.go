// Package migrate applies a backend's embedded SQL migrations at open.
//
// Migrations are files named NNNN_name.sql at the root of an fs.FS (usually an
// embed.FS narrowed with fs.Sub), numbered from 1 without gaps. Applied
// versions are recorded in a schema_version table; each migration runs in its
// own transaction together with the row that records it, so a failed
// migration leaves no trace. A database whose version is newer than the
// highest migration known to the binary is refused with ErrTooNew.
//
// Migrations run inside a transaction, so they cannot change SQLite pragmas
// such as foreign_keys (use PRAGMA defer_foreign_keys for table rebuilds).
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrTooNew is returned when the database was migrated by a newer binary.
var ErrTooNew = errors.New("migrate: database schema is newer than this binary supports")

// Migration is one parsed migration file.
type Migration struct {
	Version int
	Name    string // file name, e.g. "0001_initial.sql"
	SQL     string
}

// dialect holds what differs between SQL engines.
type dialect struct {
	placeholders [3]string // first three bind parameters
	lock         string    // run first in every migration transaction ("" if none)
}

func lookupDialect(name string) (dialect, error) {
	switch name {
	case "sqlite":
		// Writers are serialized by SQLite's own lock; open the database with
		// BEGIN IMMEDIATE so the version check below happens under it.
		return dialect{placeholders: [3]string{"?", "?", "?"}}, nil
	case "postgres":
		// 0x73746f61 is "stoa": one advisory lock shared by every stoa process.
		return dialect{placeholders: [3]string{"$1", "$2", "$3"}, lock: "SELECT pg_advisory_xact_lock(1937010529)"}, nil
	}
	return dialect{}, fmt.Errorf("migrate: unknown dialect %q", name)
}

// Load reads and checks the migrations at the root of files, sorted by version.
func Load(files fs.FS) ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrate: listing migrations: %w", err)
	}
	ms := make([]Migration, 0, len(names))
	for _, name := range names {
		num, _, ok := strings.Cut(path.Base(name), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || len(num) != 4 {
			return nil, fmt.Errorf("migrate: file %q is not named NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, fmt.Errorf("migrate: reading %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrate: %s: expected version %d (versions must start at 1 with no gaps or duplicates)", m.Name, i+1)
		}
	}
	return ms, nil
}

// Apply brings the database up to the newest migration in files and returns
// nil when it is already there. It is safe to run concurrently from several
// processes sharing the database.
func Apply(ctx context.Context, db *sql.DB, files fs.FS, dialectName string) error {
	d, err := lookupDialect(dialectName)
	if err != nil {
		return err
	}
	ms, err := Load(files)
	if err != nil {
		return err
	}
	err = inTx(ctx, db, d, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
	version INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	applied TEXT NOT NULL
)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: creating schema_version: %w", err)
	}
	cur, err := Version(ctx, db)
	if err != nil {
		return err
	}
	if cur > len(ms) {
		return fmt.Errorf("%w: the database is at version %d, this binary knows versions up to %d; run a newer stoa or restore a backup taken before the upgrade",
			ErrTooNew, cur, len(ms))
	}
	for _, m := range ms[cur:] {
		err := inTx(ctx, db, d, func(tx *sql.Tx) error {
			// Check again under the write lock: another process may have
			// applied it since.
			var cur int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur); err != nil {
				return fmt.Errorf("reading schema version: %w", err)
			}
			if cur >= m.Version {
				return nil // applied before, or by a concurrent process
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			p := d.placeholders
			_, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version, name, applied) VALUES ("+p[0]+", "+p[1]+", "+p[2]+")",
				m.Version, m.Name, time.Now().UTC().Format(time.RFC3339Nano))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: applying %s: %w", m.Name, err)
		}
	}
	return nil
}

// Version returns the highest applied version (0 when none).
func Version(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("migrate: reading schema version: %w", err)
	}
	return v, nil
}

func inTx(ctx context.Context, db *sql.DB, d dialect, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if d.lock != "" {
		if _, err := tx.ExecContext(ctx, d.lock); err != nil {
			return fmt.Errorf("taking migration lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
