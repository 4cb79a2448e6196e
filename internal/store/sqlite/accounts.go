package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"stoa.im/stoa/internal/store"
)

type accounts struct{ s *Store }

const (
	qCreateAccount = `INSERT INTO accounts (jid, domain,
	sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
	sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key, created)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (jid) DO NOTHING`
	qGetAccount = `SELECT
	sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
	sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key,
	created, last_logout, last_status
FROM accounts WHERE jid = ?`
	qSetCredentials = `UPDATE accounts SET
	sha1_salt = ?, sha1_iterations = ?, sha1_stored_key = ?, sha1_server_key = ?,
	sha256_salt = ?, sha256_iterations = ?, sha256_stored_key = ?, sha256_server_key = ?
WHERE jid = ?`
	qSetLastLogout = `UPDATE accounts SET last_logout = ?, last_status = ? WHERE jid = ?`
	// The foreign keys' ON DELETE CASCADE removes the account's roster,
	// roster version, pending requests, offline messages and kv in the same
	// statement, hence the same transaction.
	qDeleteAccount = `DELETE FROM accounts WHERE jid = ?`
	qListAccounts  = `SELECT jid FROM accounts WHERE domain = ? ORDER BY jid`
	qCountAccounts = `SELECT COUNT(*) FROM accounts WHERE domain = ?`
)

// domainOf returns the domain part of a bare JID.
func domainOf(jid string) string {
	if _, d, ok := strings.Cut(jid, "@"); ok {
		return d
	}
	return jid
}

// nonNil keeps NOT NULL blob columns happy with nil slices.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func credArgs(c store.Credentials) []any {
	return []any{
		nonNil(c.SHA1.Salt), c.SHA1.Iterations, nonNil(c.SHA1.StoredKey), nonNil(c.SHA1.ServerKey),
		nonNil(c.SHA256.Salt), c.SHA256.Iterations, nonNil(c.SHA256.StoredKey), nonNil(c.SHA256.ServerKey),
	}
}

func (a accounts) Create(ctx context.Context, jid string, creds store.Credentials) error {
	created, err := toNanos(time.Now())
	if err != nil {
		return fmt.Errorf("sqlite: creating account %q: %w", jid, err)
	}
	args := append(append([]any{jid, domainOf(jid)}, credArgs(creds)...), created)
	res, err := a.s.w.exec(ctx, qCreateAccount, args...)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = store.ErrExists
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: creating account %q: %w", jid, err)
	}
	return nil
}

func (a accounts) Get(ctx context.Context, jid string) (store.Account, error) {
	acc := store.Account{JID: jid}
	var (
		c1, c256   = &acc.Credentials.SHA1, &acc.Credentials.SHA256
		created    int64
		lastLogout sql.NullInt64
	)
	err := a.s.r.queryRow(ctx, qGetAccount, jid).Scan(
		&c1.Salt, &c1.Iterations, &c1.StoredKey, &c1.ServerKey,
		&c256.Salt, &c256.Iterations, &c256.StoredKey, &c256.ServerKey,
		&created, &lastLogout, &acc.LastStatus)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: getting account %q: %w", jid, err)
	}
	acc.Created = fromNanos(created)
	if lastLogout.Valid {
		acc.LastLogout = fromNanos(lastLogout.Int64)
	}
	return acc, nil
}

func (a accounts) SetCredentials(ctx context.Context, jid string, creds store.Credentials) error {
	res, err := a.s.w.exec(ctx, qSetCredentials, append(credArgs(creds), jid)...)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: setting credentials of %q: %w", jid, err)
	}
	return nil
}

func (a accounts) SetLastLogout(ctx context.Context, jid string, t time.Time, status string) error {
	var ns sql.NullInt64
	if !t.IsZero() {
		n, err := toNanos(t)
		if err != nil {
			return fmt.Errorf("sqlite: setting last logout of %q: %w", jid, err)
		}
		ns = sql.NullInt64{Int64: n, Valid: true}
	}
	res, err := a.s.w.exec(ctx, qSetLastLogout, ns, status, jid)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: setting last logout of %q: %w", jid, err)
	}
	return nil
}

func (a accounts) Delete(ctx context.Context, jid string) error {
	// An indexed name becomes a tombstone in the same transaction (see
	// Registration.DeleteAccount, which the server uses), so no deletion
	// path frees a name.
	now, err := toNanos(time.Now())
	if err != nil {
		return fmt.Errorf("sqlite: deleting account %q: %w", jid, err)
	}
	err = a.s.w.run(ctx, false, func(t tx) error {
		res, err := t.exec(ctx, qDeleteAccount, jid)
		if err := oneRow(res, err); err != nil {
			return err
		}
		_, err = t.exec(ctx, qNameTombstone, now, "store", jid)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: deleting account %q: %w", jid, err)
	}
	return nil
}

func (a accounts) List(ctx context.Context, domain string) ([]string, error) {
	rows, err := a.s.r.query(ctx, qListAccounts, domain)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing accounts of %q: %w", domain, err)
	}
	defer rows.Close()
	var jids []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("sqlite: listing accounts of %q: %w", domain, err)
		}
		jids = append(jids, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing accounts of %q: %w", domain, err)
	}
	return jids, nil
}

func (a accounts) Count(ctx context.Context, domain string) (int, error) {
	var n int
	if err := a.s.r.queryRow(ctx, qCountAccounts, domain).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: counting accounts of %q: %w", domain, err)
	}
	return n, nil
}

// oneRow turns the result of an UPDATE or DELETE into an error:
// store.ErrNotFound when no row matched.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
