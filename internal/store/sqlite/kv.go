package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"stoa.im/stoa/internal/store"
)

type kv struct{ s *Store }

const (
	qKVGet = `SELECT value FROM kv WHERE owner = ? AND key = ?`
	qKVPut = `INSERT INTO kv (owner, key, value) VALUES (?, ?, ?)
ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value`
	qKVDelete = `DELETE FROM kv WHERE owner = ? AND key = ?`
)

func (k kv) Get(ctx context.Context, owner, key string) ([]byte, error) {
	var v []byte
	err := k.s.r.queryRow(ctx, qKVGet, owner, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: getting %q of %q: %w", key, owner, err)
	}
	return nonNil(v), nil
}

func (k kv) Put(ctx context.Context, owner, key string, value []byte) error {
	if _, err := k.s.w.exec(ctx, qKVPut, owner, key, nonNil(value)); err != nil {
		return fmt.Errorf("sqlite: putting %q of %q: %w", key, owner, noAccount(err, owner))
	}
	return nil
}

func (k kv) Delete(ctx context.Context, owner, key string) error {
	if _, err := k.s.w.exec(ctx, qKVDelete, owner, key); err != nil {
		return fmt.Errorf("sqlite: deleting %q of %q: %w", key, owner, err)
	}
	return nil
}
