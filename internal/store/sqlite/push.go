package sqlite

import (
	"context"
	"fmt"

	"stoa.im/stoa/internal/store"
)

// Push implements store.Store.
func (s *Store) Push() store.Push { return push{s} }

type push struct{ s *Store }

const (
	qPushDelete = `DELETE FROM push_registrations WHERE owner = ? AND service = ? AND node = ?`
	qPushInsert = `INSERT INTO push_registrations (owner, service, node, options, created, errors) VALUES (?, ?, ?, ?, ?, 0)`
	// Keep the newest max rows of the owner.
	qPushTrim = `DELETE FROM push_registrations WHERE owner = ? AND id NOT IN
(SELECT id FROM push_registrations WHERE owner = ? ORDER BY id DESC LIMIT ?)`
	qPushRemoveNode = `DELETE FROM push_registrations WHERE owner = ? AND service = ? AND node = ?`
	qPushRemoveAll  = `DELETE FROM push_registrations WHERE owner = ? AND service = ?`
	qPushList       = `SELECT service, node, options, created, errors FROM push_registrations WHERE owner = ? ORDER BY id`
	qPushErrors     = `UPDATE push_registrations SET errors = ? WHERE owner = ? AND service = ? AND node = ?`
	qPushOwners     = `SELECT DISTINCT owner FROM push_registrations ORDER BY owner`
)

func (p push) Put(ctx context.Context, owner string, r store.PushRegistration, max int) error {
	ns, err := toNanos(r.Created)
	if err != nil {
		return fmt.Errorf("sqlite: storing a push registration of %q: %w", owner, err)
	}
	var opts any // NULL when absent
	if r.Options != nil {
		opts = r.Options
	}
	err = p.s.w.run(ctx, false, func(t tx) error {
		// Delete and insert: a replaced registration counts as the newest.
		if _, err := t.exec(ctx, qPushDelete, owner, r.Service, r.Node); err != nil {
			return err
		}
		if _, err := t.exec(ctx, qPushInsert, owner, r.Service, r.Node, opts, ns); err != nil {
			return err
		}
		if max > 0 {
			if _, err := t.exec(ctx, qPushTrim, owner, owner, max); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: storing a push registration of %q: %w", owner, noAccount(err, owner))
	}
	return nil
}

func (p push) Remove(ctx context.Context, owner, service, node string) (int, error) {
	var (
		n   int64
		err error
	)
	q, args := qPushRemoveNode, []any{owner, service, node}
	if node == "" {
		q, args = qPushRemoveAll, []any{owner, service}
	}
	res, err := p.s.w.exec(ctx, q, args...)
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: removing push registrations of %q: %w", owner, err)
	}
	return int(n), nil
}

func (p push) List(ctx context.Context, owner string) ([]store.PushRegistration, error) {
	rows, err := p.s.r.query(ctx, qPushList, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing push registrations of %q: %w", owner, err)
	}
	defer rows.Close()
	var out []store.PushRegistration
	for rows.Next() {
		var (
			r  store.PushRegistration
			ns int64
		)
		if err := rows.Scan(&r.Service, &r.Node, &r.Options, &ns, &r.Errors); err != nil {
			return nil, fmt.Errorf("sqlite: listing push registrations of %q: %w", owner, err)
		}
		r.Created = fromNanos(ns)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing push registrations of %q: %w", owner, err)
	}
	return out, nil
}

func (p push) SetErrors(ctx context.Context, owner, service, node string, n int) error {
	if _, err := p.s.w.exec(ctx, qPushErrors, n, owner, service, node); err != nil {
		return fmt.Errorf("sqlite: recording push errors of %q: %w", owner, err)
	}
	return nil
}

func (p push) Owners(ctx context.Context) ([]string, error) {
	rows, err := p.s.r.query(ctx, qPushOwners)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing accounts with push registrations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, fmt.Errorf("sqlite: listing accounts with push registrations: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing accounts with push registrations: %w", err)
	}
	return out, nil
}
