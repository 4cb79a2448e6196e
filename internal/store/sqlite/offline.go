package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"stoa.im/stoa/internal/store"
)

type offline struct{ s *Store }

const (
	qOfflinePush = `INSERT INTO offline (owner, stored, stanza) VALUES (?, ?, ?)`
	// Count and insert in one statement, which SQLite runs atomically on
	// the single writer connection.
	qOfflinePushQuota = `INSERT INTO offline (owner, stored, stanza)
SELECT ?, ?, ? WHERE (SELECT COUNT(*) FROM offline WHERE owner = ?) < ?`
	qOfflineList  = `SELECT id, stored, stanza FROM offline WHERE owner = ? ORDER BY id`
	qOfflineCount = `SELECT COUNT(*) FROM offline WHERE owner = ?`
)

func (o offline) Push(ctx context.Context, owner string, stanza []byte, stored time.Time, quota int) error {
	ns, err := toNanos(stored)
	if err != nil {
		return fmt.Errorf("sqlite: storing offline message for %q: %w", owner, err)
	}
	if quota > 0 {
		res, xerr := o.s.w.exec(ctx, qOfflinePushQuota, owner, ns, nonNil(stanza), owner, quota)
		if err = oneRow(res, xerr); err == store.ErrNotFound {
			err = store.ErrQuotaExceeded
		}
	} else {
		_, err = o.s.w.exec(ctx, qOfflinePush, owner, ns, nonNil(stanza))
	}
	if err != nil {
		return fmt.Errorf("sqlite: storing offline message for %q: %w", owner, noAccount(err, owner))
	}
	return nil
}

func (o offline) List(ctx context.Context, owner string) ([]store.OfflineMessage, error) {
	rows, err := o.s.r.query(ctx, qOfflineList, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing offline messages of %q: %w", owner, err)
	}
	defer rows.Close()
	var ms []store.OfflineMessage
	for rows.Next() {
		var (
			m  store.OfflineMessage
			ns int64
		)
		if err := rows.Scan(&m.ID, &ns, &m.Stanza); err != nil {
			return nil, fmt.Errorf("sqlite: listing offline messages of %q: %w", owner, err)
		}
		m.Stored = fromNanos(ns)
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing offline messages of %q: %w", owner, err)
	}
	return ms, nil
}

// deleteBatch keeps each statement well under SQLite's bound-parameter limit.
const deleteBatch = 500

func (o offline) Delete(ctx context.Context, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := o.s.w.run(ctx, false, func(tx tx) error {
		for len(ids) > 0 {
			batch := ids[:min(len(ids), deleteBatch)]
			ids = ids[len(batch):]
			args := make([]any, 0, len(batch)+1)
			args = append(args, owner)
			for _, id := range batch {
				args = append(args, id)
			}
			q := `DELETE FROM offline WHERE owner = ? AND id IN (?` + strings.Repeat(", ?", len(batch)-1) + `)`
			if _, err := tx.exec(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: deleting offline messages of %q: %w", owner, err)
	}
	return nil
}

func (o offline) Count(ctx context.Context, owner string) (int, error) {
	var n int
	if err := o.s.r.queryRow(ctx, qOfflineCount, owner).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: counting offline messages of %q: %w", owner, err)
	}
	return n, nil
}
