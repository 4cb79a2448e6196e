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

const (
	// qRosterItems reads the version and the items in one statement (one
	// snapshot, so they match) instead of a transaction of two: a login
	// reads its roster twice, and BEGIN/ROLLBACK cost more than the reads.
	// The owner row always comes back, with NULL item columns when the
	// roster is empty.
	qRosterItems = `SELECT COALESCE(v.version, 0), i.contact, COALESCE(i.name, ''), COALESCE(i.subscription, ''),
	COALESCE(i.ask, 0), COALESCE(i.approved, 0), COALESCE(i.groups, '[]')
FROM (SELECT ? AS owner) o
LEFT JOIN roster_versions v ON v.owner = o.owner
LEFT JOIN roster_items i ON i.owner = o.owner
ORDER BY i.contact`
	qRosterGet = `SELECT contact, name, subscription, ask, approved, groups
FROM roster_items WHERE owner = ? AND contact = ?`
	qRosterUpsert = `INSERT INTO roster_items (owner, contact, name, subscription, ask, approved, groups)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
	ask = excluded.ask, approved = excluded.approved, groups = excluded.groups`
	qRosterDelete = `DELETE FROM roster_items WHERE owner = ? AND contact = ?`
	qRosterBump   = `INSERT INTO roster_versions (owner, version) VALUES (?, 1)
ON CONFLICT (owner) DO UPDATE SET version = version + 1 RETURNING version`
	// INSERT OR REPLACE deletes an earlier request from the same contact and
	// inserts with a new id, so a replaced request counts as the newest.
	qPendingAdd    = `INSERT OR REPLACE INTO pending_in (owner, contact, stanza) VALUES (?, ?, ?)`
	qPendingRemove = `DELETE FROM pending_in WHERE owner = ? AND contact = ?`
	qPendingList   = `SELECT contact, stanza FROM pending_in WHERE owner = ? ORDER BY id`
)

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
	rows, err := r.s.r.query(ctx, qRosterItems, owner)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: reading roster of %q: %w", owner, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			contact sql.NullString
			it      store.RosterItem
			sub     string
			groups  []byte
		)
		if err := rows.Scan(&ver, &contact, &it.Name, &sub, &it.Ask, &it.Approved, &groups); err != nil {
			return nil, 0, fmt.Errorf("sqlite: reading roster of %q: %w", owner, err)
		}
		if !contact.Valid {
			continue // empty roster: the owner row alone
		}
		it.JID, it.Subscription = contact.String, store.Subscription(sub)
		if it.Groups, err = decodeGroups(groups); err != nil {
			return nil, 0, fmt.Errorf("sqlite: reading roster of %q: decoding groups of %q: %w", owner, it.JID, err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlite: reading roster of %q: %w", owner, err)
	}
	return items, ver, nil
}

// decodeGroups decodes a groups column (a JSON array of strings); no
// groups is nil. Most contacts have none, and "[]" skips encoding/json.
func decodeGroups(b []byte) ([]string, error) {
	if string(b) == "[]" {
		return nil, nil
	}
	var groups []string
	if err := json.Unmarshal(b, &groups); err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		groups = nil
	}
	return groups, nil
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
	var err error
	if it.Groups, err = decodeGroups(groups); err != nil {
		return it, fmt.Errorf("decoding groups of %q: %w", it.JID, err)
	}
	return it, nil
}

func (r roster) Get(ctx context.Context, owner, contact string) (store.RosterItem, error) {
	it, err := scanItem(r.s.r.queryRow(ctx, qRosterGet, owner, contact))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.RosterItem{}, fmt.Errorf("sqlite: getting roster item %q of %q: %w", contact, owner, err)
	}
	return it, nil
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
	err = r.s.w.run(ctx, false, func(tx tx) error {
		_, err := tx.exec(ctx, qRosterUpsert, owner, item.JID, item.Name, string(item.Subscription), item.Ask, item.Approved, string(gj))
		if err != nil {
			return noAccount(err, owner)
		}
		return tx.queryRow(ctx, qRosterBump, owner).Scan(&ver)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: putting roster item %q of %q: %w", item.JID, owner, err)
	}
	return ver, nil
}

func (r roster) Delete(ctx context.Context, owner, contact string) (int64, error) {
	var ver int64
	err := r.s.w.run(ctx, false, func(tx tx) error {
		res, err := tx.exec(ctx, qRosterDelete, owner, contact)
		if err := oneRow(res, err); err != nil {
			return err
		}
		return tx.queryRow(ctx, qRosterBump, owner).Scan(&ver)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: deleting roster item %q of %q: %w", contact, owner, err)
	}
	return ver, nil
}

func (r roster) AddPendingIn(ctx context.Context, owner string, p store.PendingIn) error {
	if _, err := r.s.w.exec(ctx, qPendingAdd, owner, p.JID, nonNil(p.Stanza)); err != nil {
		return fmt.Errorf("sqlite: adding pending request from %q to %q: %w", p.JID, owner, noAccount(err, owner))
	}
	return nil
}

func (r roster) RemovePendingIn(ctx context.Context, owner, contact string) error {
	if _, err := r.s.w.exec(ctx, qPendingRemove, owner, contact); err != nil {
		return fmt.Errorf("sqlite: removing pending request from %q to %q: %w", contact, owner, err)
	}
	return nil
}

func (r roster) PendingIn(ctx context.Context, owner string) ([]store.PendingIn, error) {
	rows, err := r.s.r.query(ctx, qPendingList, owner)
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
