package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"stoa.im/stoa/internal/store"
)

type invites struct{ s *Store }

type nonces struct{ s *Store }

// Invites implements store.Store.
func (s *Store) Invites() store.Invites { return invites{s} }

// Nonces implements store.Store.
func (s *Store) Nonces() store.Nonces { return nonces{s} }

const (
	inviteCols   = `token, kind, host, creator, jid, allow_register, subscribe, note, created, expires, max_uses, uses`
	qInviteNew   = `INSERT INTO invites (` + inviteCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (token) DO NOTHING`
	qInviteGet   = `SELECT ` + inviteCols + ` FROM invites WHERE token = ?`
	qInviteUse   = `UPDATE invites SET uses = uses + 1 WHERE token = ? AND expires > ? AND uses < max_uses RETURNING ` + inviteCols
	qInviteRel   = `UPDATE invites SET uses = uses - 1 WHERE token = ? AND uses > 0`
	qInviteDel   = `DELETE FROM invites WHERE token = ?`
	qInviteList  = `SELECT ` + inviteCols + ` FROM invites WHERE host = ? AND expires > ? AND uses < max_uses ORDER BY created, token`
	qInviteCount = `SELECT COUNT(*) FROM invites WHERE creator = ? AND created >= ?`
	qInviteRes   = `SELECT ` + inviteCols + ` FROM invites WHERE jid = ? AND kind = 'account' AND expires > ? AND uses < max_uses ORDER BY created LIMIT 1`
	qInvitePurge = `DELETE FROM invites WHERE expires < ?`

	qNonceUse   = `INSERT INTO nonces (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`
	qNoncePurge = `DELETE FROM nonces WHERE expires < ?`
)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func scanInvite(row interface{ Scan(...any) error }) (store.Invite, error) {
	var (
		inv              store.Invite
		kind             string
		creator          sql.NullString
		allow, subscribe int
		created, expires int64
	)
	err := row.Scan(&inv.Token, &kind, &inv.Host, &creator, &inv.JID, &allow, &subscribe, &inv.Note,
		&created, &expires, &inv.MaxUses, &inv.Uses)
	if err != nil {
		return store.Invite{}, err
	}
	inv.Kind = store.InviteKind(kind)
	inv.Creator = creator.String
	inv.AllowRegister, inv.Subscribe = allow == 1, subscribe == 1
	inv.Created, inv.Expires = fromNanos(created), fromNanos(expires)
	return inv, nil
}

func (i invites) Create(ctx context.Context, inv store.Invite) error {
	switch inv.Kind {
	case store.InviteAccount, store.InviteContact, store.InviteReset:
	default:
		return fmt.Errorf("sqlite: creating invite: unknown kind %q", inv.Kind)
	}
	if inv.Token == "" || inv.Host == "" || inv.MaxUses < 1 {
		return fmt.Errorf("sqlite: creating invite: token, host and max uses (>= 1) are required")
	}
	created, err := toNanos(inv.Created)
	if err != nil {
		return fmt.Errorf("sqlite: creating invite: %w", err)
	}
	expires, err := toNanos(inv.Expires)
	if err != nil {
		return fmt.Errorf("sqlite: creating invite: %w", err)
	}
	var creator any
	if inv.Creator != "" {
		creator = inv.Creator
	}
	res, err := i.s.w.exec(ctx, qInviteNew, inv.Token, string(inv.Kind), inv.Host, creator, inv.JID,
		boolInt(inv.AllowRegister), boolInt(inv.Subscribe), inv.Note, created, expires, inv.MaxUses)
	if err != nil {
		return fmt.Errorf("sqlite: creating invite: %w", noAccount(err, inv.Creator))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: creating invite: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: creating invite: %w", store.ErrExists)
	}
	return nil
}

func (i invites) Get(ctx context.Context, token string) (store.Invite, error) {
	inv, err := scanInvite(i.s.r.queryRow(ctx, qInviteGet, token))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Invite{}, fmt.Errorf("sqlite: getting invite: %w", err)
	}
	return inv, nil
}

func (i invites) Use(ctx context.Context, token string, now time.Time) (store.Invite, error) {
	n, err := toNanos(now)
	if err != nil {
		return store.Invite{}, fmt.Errorf("sqlite: using invite: %w", err)
	}
	inv, err := scanInvite(i.s.w.queryRow(ctx, qInviteUse, token, n))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Invite{}, fmt.Errorf("sqlite: using invite: %w", err)
	}
	return inv, nil
}

func (i invites) Release(ctx context.Context, token string) error {
	if _, err := i.s.w.exec(ctx, qInviteRel, token); err != nil {
		return fmt.Errorf("sqlite: releasing invite: %w", err)
	}
	return nil
}

func (i invites) Delete(ctx context.Context, token string) error {
	if _, err := i.s.w.exec(ctx, qInviteDel, token); err != nil {
		return fmt.Errorf("sqlite: deleting invite: %w", err)
	}
	return nil
}

func (i invites) list(ctx context.Context, q string, args ...any) ([]store.Invite, error) {
	rows, err := i.s.r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Invite{}
	for rows.Next() {
		inv, err := scanInvite(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}

func (i invites) List(ctx context.Context, host string, now time.Time) ([]store.Invite, error) {
	n, err := toNanos(now)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing invites: %w", err)
	}
	out, err := i.list(ctx, qInviteList, host, n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing invites of %s: %w", host, err)
	}
	return out, nil
}

func (i invites) CountCreated(ctx context.Context, creator string, since time.Time) (int, error) {
	s, err := toNanos(since)
	if err != nil {
		return 0, fmt.Errorf("sqlite: counting invites: %w", err)
	}
	var n int
	if err := i.s.r.queryRow(ctx, qInviteCount, creator, s).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: counting invites of %s: %w", creator, err)
	}
	return n, nil
}

func (i invites) Reserved(ctx context.Context, jid string, now time.Time) (store.Invite, error) {
	n, err := toNanos(now)
	if err != nil {
		return store.Invite{}, fmt.Errorf("sqlite: looking up reservations: %w", err)
	}
	if jid == "" {
		return store.Invite{}, fmt.Errorf("sqlite: looking up reservations: %w", store.ErrNotFound)
	}
	inv, err := scanInvite(i.s.r.queryRow(ctx, qInviteRes, jid, n))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Invite{}, fmt.Errorf("sqlite: looking up reservations of %s: %w", jid, err)
	}
	return inv, nil
}

func (i invites) Purge(ctx context.Context, before time.Time) (int, error) {
	b, err := toNanos(before)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging invites: %w", err)
	}
	res, err := i.s.w.exec(ctx, qInvitePurge, b)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging invites: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (n nonces) Use(ctx context.Context, key string, expires time.Time) (bool, error) {
	e, err := toNanos(expires)
	if err != nil {
		return false, fmt.Errorf("sqlite: using nonce: %w", err)
	}
	res, err := n.s.w.exec(ctx, qNonceUse, key, e)
	if err != nil {
		return false, fmt.Errorf("sqlite: using nonce: %w", err)
	}
	c, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: using nonce: %w", err)
	}
	return c == 1, nil
}

func (n nonces) Purge(ctx context.Context, now time.Time) (int, error) {
	t, err := toNanos(now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging nonces: %w", err)
	}
	res, err := n.s.w.exec(ctx, qNoncePurge, t)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging nonces: %w", err)
	}
	c, err := res.RowsAffected()
	return int(c), err
}
