package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"stoa.im/stoa/internal/store"
)

type roster struct{ s *Store }

func validSubscription(s store.Subscription) bool {
	switch s {
	case store.SubNone, store.SubTo, store.SubFrom, store.SubBoth:
		return true
	}
	return false
}

func (r roster) Items(ctx context.Context, owner string) ([]store.RosterItem, int64, error) {
	var (
		items []store.RosterItem
		ver   int64
	)
	err := r.s.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT version FROM roster_versions WHERE owner = ?`, owner).Scan(&ver)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT contact, name, subscription, ask, approved, groups
FROM roster_items WHERE owner = ? ORDER BY contact`, owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: reading roster of %q: %w", owner, err)
	}
	return items, ver, nil
}

func scanItem(row interface{ Scan(...any) error }) (store.RosterItem, error) {
	var (
		it     store.RosterItem
		sub    string
		groups []byte
	)
	if err := row.Scan(&it.JID, &it.Name, &sub, &it.Ask, &it.Approved, &groups); err != nil {
		return it, err
	}
	it.Subscription = store.Subscription(sub)
	if err := json.Unmarshal(groups, &it.Groups); err != nil {
		return it, fmt.Errorf("decoding groups of %q: %w", it.JID, err)
	}
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it, nil
}

func (r roster) Get(ctx context.Context, owner, contact string) (store.RosterItem, error) {
	it, err := scanItem(r.s.r.QueryRowContext(ctx, `SELECT contact, name, subscription, ask, approved, groups
FROM roster_items WHERE owner = ? AND contact = ?`, owner, contact))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.RosterItem{}, fmt.Errorf("sqlite: getting roster item %q of %q: %w", contact, owner, err)
	}
	return it, nil
}

// bumpVersion increments the roster version of owner and returns it.
func bumpVersion(ctx context.Context, tx *sql.Tx, owner string) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `INSERT INTO roster_versions (owner, version) VALUES (?, 1)
ON CONFLICT (owner) DO UPDATE SET version = version + 1 RETURNING version`, owner).Scan(&v)
	return v, err
}

func (r roster) Put(ctx context.Context, owner string, item store.RosterItem) (int64, error) {
	if !validSubscription(item.Subscription) {
		return 0, fmt.Errorf("sqlite: putting roster item %q of %q: invalid subscription %q", item.JID, owner, item.Subscription)
	}
	groups := item.Groups
	if groups == nil {
		groups = []string{}
	}
	gj, err := json.Marshal(groups)
	if err != nil {
		return 0, fmt.Errorf("sqlite: putting roster item %q of %q: %w", item.JID, owner, err)
	}
	var ver int64
	err = r.s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO roster_items (owner, contact, name, subscription, ask, approved, groups)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
	ask = excluded.ask, approved = excluded.approved, groups = excluded.groups`,
			owner, item.JID, item.Name, string(item.Subscription), item.Ask, item.Approved, string(gj))
		if err != nil {
			return noAccount(err, owner)
		}
		ver, err = bumpVersion(ctx, tx, owner)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: putting roster item %q of %q: %w", item.JID, owner, err)
	}
	return ver, nil
}

func (r roster) Delete(ctx context.Context, owner, contact string) (int64, error) {
	var ver int64
	err := r.s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM roster_items WHERE owner = ? AND contact = ?`, owner, contact)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		ver, err = bumpVersion(ctx, tx, owner)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: deleting roster item %q of %q: %w", contact, owner, err)
	}
	return ver, nil
}

// AddPendingIn stores the request; INSERT OR REPLACE deletes an earlier one
// from the same contact and inserts with a new id, so a replaced request
// counts as the newest.
func (r roster) AddPendingIn(ctx context.Context, owner string, p store.PendingIn) error {
	_, err := r.s.w.ExecContext(ctx, `INSERT OR REPLACE INTO pending_in (owner, contact, stanza) VALUES (?, ?, ?)`,
		owner, p.JID, nonNil(p.Stanza))
	if err != nil {
		return fmt.Errorf("sqlite: adding pending request from %q to %q: %w", p.JID, owner, noAccount(err, owner))
	}
	return nil
}

func (r roster) RemovePendingIn(ctx context.Context, owner, contact string) error {
	if _, err := r.s.w.ExecContext(ctx, `DELETE FROM pending_in WHERE owner = ? AND contact = ?`, owner, contact); err != nil {
		return fmt.Errorf("sqlite: removing pending request from %q to %q: %w", contact, owner, err)
	}
	return nil
}

func (r roster) PendingIn(ctx context.Context, owner string) ([]store.PendingIn, error) {
	rows, err := r.s.r.QueryContext(ctx, `SELECT contact, stanza FROM pending_in WHERE owner = ? ORDER BY id`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing pending requests to %q: %w", owner, err)
	}
	defer rows.Close()
	var ps []store.PendingIn
	for rows.Next() {
		var p store.PendingIn
		if err := rows.Scan(&p.JID, &p.Stanza); err != nil {
			return nil, fmt.Errorf("sqlite: listing pending requests to %q: %w", owner, err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing pending requests to %q: %w", owner, err)
	}
	return ps, nil
}
