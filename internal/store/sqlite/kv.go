package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"stoa.im/stoa/internal/store"
)

type kv struct{ s *Store }

func (k kv) Get(ctx context.Context, owner, key string) ([]byte, error) {
	var v []byte
	err := k.s.r.QueryRowContext(ctx, `SELECT value FROM kv WHERE owner = ? AND key = ?`, owner, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: getting %q of %q: %w", key, owner, err)
	}
	return nonNil(v), nil
}

func (k kv) Put(ctx context.Context, owner, key string, value []byte) error {
	_, err := k.s.w.ExecContext(ctx, `INSERT INTO kv (owner, key, value) VALUES (?, ?, ?)
ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value`, owner, key, nonNil(value))
	if err != nil {
		return fmt.Errorf("sqlite: putting %q of %q: %w", key, owner, noAccount(err, owner))
	}
	return nil
}

func (k kv) Delete(ctx context.Context, owner, key string) error {
	if _, err := k.s.w.ExecContext(ctx, `DELETE FROM kv WHERE owner = ? AND key = ?`, owner, key); err != nil {
		return fmt.Errorf("sqlite: deleting %q of %q: %w", key, owner, err)
	}
	return nil
}
