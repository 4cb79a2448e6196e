package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// pool is a connection pool with its hot statements prepared once at open:
// modernc's SQLite spends more time preparing a statement than running
// most of ours. Queries not in stmts are prepared on each call.
type pool struct {
	db    *sql.DB
	stmts map[string]*sql.Stmt // read-only after newPool
	// quick marks the read pool: its prepared statements are point
	// lookups and small per-user lists that take microseconds, and run
	// without the caller's cancellation (see quick).
	quick bool
}

// quick returns ctx without its cancellation for a short read. With a
// context that can be cancelled, database/sql and the SQLite driver start
// a goroutine per statement (and per transaction) to watch it, and the
// driver installs a progress handler: for the statements of a login that
// cost more than the statements themselves (docs/benchmarks.md). Reads on
// the read pool never wait for the writer (WAL), so nothing is lost by
// letting them finish.
// A context already done is kept: the statement then fails at once with
// its error, as the store's contract says.
func quick(ctx context.Context) context.Context {
	if ctx.Err() != nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

func newPool(ctx context.Context, db *sql.DB, queries []string) (*pool, error) {
	p := &pool{db: db, stmts: make(map[string]*sql.Stmt, len(queries))}
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("preparing %q: %w", q, err), p.close())
		}
		p.stmts[q] = st
	}
	return p, nil
}

func (p *pool) close() error {
	var errs []error
	for _, st := range p.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(append(errs, p.db.Close())...)
}

func (p *pool) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := p.stmts[q]; st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.db.ExecContext(ctx, q, args...)
}

func (p *pool) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := p.stmts[q]; st != nil {
		if p.quick {
			ctx = quick(ctx)
		}
		return st.QueryContext(ctx, args...)
	}
	return p.db.QueryContext(ctx, q, args...)
}

func (p *pool) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := p.stmts[q]; st != nil {
		if p.quick {
			ctx = quick(ctx)
		}
		return st.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, q, args...)
}

// tx is a transaction on a pool, using the pool's prepared statements.
type tx struct {
	tx *sql.Tx
	p  *pool
}

func (t tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.p.stmts[q]; st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.p.stmts[q]; st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.p.stmts[q]; st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

// run runs fn in one transaction: BEGIN IMMEDIATE on the writer, a plain
// (snapshot) BEGIN on the read pool.
func (p *pool) run(ctx context.Context, readOnly bool, fn func(tx) error) error {
	t, err := p.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly})
	if err != nil {
		return err
	}
	if err := fn(tx{t, p}); err != nil {
		return errors.Join(err, ignoreDone(t.Rollback()))
	}
	if readOnly {
		return ignoreDone(t.Rollback())
	}
	return t.Commit()
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
