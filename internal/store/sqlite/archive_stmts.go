package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// Statements on day tables, prepared once on the read pool: parsing and
// planning a statement costs modernc's SQLite more than running most
// archive reads, and a query touches several day tables.
//
// Queries hold use (shared) while they run statements from the cache;
// forgetting the statements of a dropped day takes it exclusively, so a
// statement is never closed under a running query.

// maxCachedStmts bounds the cache; past it, it starts over.
const maxCachedStmts = 1024

type stmtKey struct {
	day int64
	q   string
}

type stmtCache struct {
	db  *sql.DB
	max int // maxCachedStmts (smaller in tests)
	use sync.RWMutex

	mu    sync.Mutex
	m     map[stmtKey]*sql.Stmt
	reset bool // full: the next reader closes everything first
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, max: maxCachedStmts, m: make(map[stmtKey]*sql.Stmt)}
}

// stmt returns the prepared statement for q on day (use held), or nil
// when the cache is full (the caller runs q unprepared).
func (c *stmtCache) stmt(ctx context.Context, day int64, q string) (*sql.Stmt, error) {
	k := stmtKey{day, q}
	c.mu.Lock()
	st, full := c.m[k], len(c.m) >= c.max
	if full {
		c.reset = true
	}
	c.mu.Unlock()
	if st != nil || full {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[k]; old != nil {
		st.Close()
		return old, nil
	}
	c.m[k] = st
	return st, nil
}

// acquire takes use for reading, first emptying the cache if it filled
// up (recent days, which most queries read, are prepared again at once).
func (c *stmtCache) acquire() {
	c.mu.Lock()
	reset := c.reset
	c.mu.Unlock()
	if reset {
		c.use.Lock()
		c.mu.Lock()
		if c.reset {
			for k, st := range c.m {
				st.Close()
				delete(c.m, k)
			}
			c.reset = false
		}
		c.mu.Unlock()
		c.use.Unlock()
	}
	c.use.RLock()
}

// forgetDay closes the statements of a dropped day table.
func (c *stmtCache) forgetDay(day int64) {
	c.use.Lock()
	defer c.use.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, st := range c.m {
		if k.day == day {
			st.Close()
			delete(c.m, k)
		}
	}
}

// noTable reports an error about a day table dropped meanwhile.
func noTable(err error) bool { return err != nil && strings.Contains(err.Error(), "no such table") }

// query runs q on day's table. A table dropped meanwhile reads as empty
// (nil rows).
func (c *stmtCache) query(ctx context.Context, day int64, q string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, day, q)
	if noTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rows *sql.Rows
	if st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = c.db.QueryContext(ctx, q, args...)
	}
	if noTable(err) {
		return nil, nil
	}
	return rows, err
}

// queryRow scans the single row of q into dest; ok is false when there is
// no row (or no table).
func (c *stmtCache) queryRow(ctx context.Context, day int64, q string, args []any, dest ...any) (ok bool, err error) {
	rows, err := c.query(ctx, day, q, args...)
	if err != nil || rows == nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return false, err
	}
	return true, rows.Close()
}
