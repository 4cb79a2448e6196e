package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"stoa.im/stoa/internal/store"
)

type registration struct{ s *Store }

// Registration implements store.Store.
func (s *Store) Registration() store.Registration { return registration{s} }

const (
	qNameInsert = `INSERT INTO names (jid, domain, name_key, state, since, via)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	qNameHolder = `SELECT jid, domain, name_key, state, since, via FROM names
WHERE jid = ? OR (domain = ? AND name_key = ?) ORDER BY jid = ? DESC LIMIT 1`
	qNameTombstone = `UPDATE names SET state = 'tombstone', since = ?, via = ? WHERE jid = ?`
	qNameLookup    = `SELECT jid, domain, name_key, state, since, via FROM names WHERE domain = ? AND name_key = ?`
	qNameIndex     = `INSERT INTO names (jid, domain, name_key, state, since, via)
SELECT jid, domain, ?, 'account', created, '' FROM accounts WHERE jid = ? ON CONFLICT DO NOTHING`
	qNameUnindexed = `SELECT a.jid FROM accounts a LEFT JOIN names n ON n.jid = a.jid
WHERE a.domain = ? AND a.jid > ? AND n.jid IS NULL ORDER BY a.jid LIMIT ?`
	qTombstones      = `SELECT jid, domain, name_key, state, since, via FROM names WHERE domain = ? AND state = 'tombstone' ORDER BY since, jid`
	qTombstoneRemove = `DELETE FROM names WHERE jid = ? AND state = 'tombstone'`
	qTombstonePurge  = `DELETE FROM names WHERE domain = ? AND state = 'tombstone' AND since < ?`

	qLogAppend = `INSERT INTO registration_log (jid, domain, at, ip, method, invite) VALUES (?, ?, ?, ?, ?, ?)`
	qLogPurge  = `DELETE FROM registration_log WHERE at < ?`

	qThrottlePut = `INSERT INTO registration_throttle (key, times, newest) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET times = excluded.times, newest = excluded.newest`
	qThrottleDelete = `DELETE FROM registration_throttle WHERE key = ?`
	qThrottleAll    = `SELECT key, times FROM registration_throttle ORDER BY key`
	qThrottlePurge  = `DELETE FROM registration_throttle WHERE newest < ?`
)

func scanName(row interface{ Scan(...any) error }) (store.NameEntry, error) {
	var (
		e     store.NameEntry
		state string
		since int64
	)
	if err := row.Scan(&e.JID, &e.Domain, &e.Key, &state, &since, &e.Via); err != nil {
		return store.NameEntry{}, err
	}
	e.State = store.NameState(state)
	e.Since = fromNanos(since)
	return e, nil
}

func (r registration) CreateAccount(ctx context.Context, jid string, creds store.Credentials, key string) error {
	now, err := toNanos(time.Now())
	if err != nil {
		return fmt.Errorf("sqlite: creating account %q: %w", jid, err)
	}
	domain := domainOf(jid)
	err = r.s.w.run(ctx, false, func(t tx) error {
		args := append(append([]any{jid, domain}, credArgs(creds)...), now)
		res, err := t.exec(ctx, qCreateAccount, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrExists
		}
		res, err = t.exec(ctx, qNameInsert, jid, domain, key, string(store.NameAccount), now, "")
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		holder, err := scanName(t.queryRow(ctx, qNameHolder, jid, domain, key, jid))
		if err != nil {
			return fmt.Errorf("finding the holder of the name: %w", err)
		}
		return &store.NameTakenError{Holder: holder}
	})
	if err != nil {
		return fmt.Errorf("sqlite: creating account %q: %w", jid, err)
	}
	return nil
}

func (r registration) DeleteAccount(ctx context.Context, jid, key string, at time.Time, via string) error {
	ns, err := toNanos(at)
	if err != nil {
		return fmt.Errorf("sqlite: deleting account %q: %w", jid, err)
	}
	err = r.s.w.run(ctx, false, func(t tx) error {
		res, err := t.exec(ctx, qDeleteAccount, jid)
		if err := oneRow(res, err); err != nil {
			return err
		}
		res, err = t.exec(ctx, qNameTombstone, ns, via, jid)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		// Not indexed (created before the index): tombstone it now, unless
		// another entry holds the key (which then keeps the name blocked).
		_, err = t.exec(ctx, qNameInsert, jid, domainOf(jid), key, string(store.NameTombstone), ns, via)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: deleting account %q: %w", jid, err)
	}
	return nil
}

func (r registration) LookupName(ctx context.Context, domain, key string) (store.NameEntry, error) {
	e, err := scanName(r.s.r.queryRow(ctx, qNameLookup, domain, key))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.NameEntry{}, fmt.Errorf("sqlite: looking up name %q in %q: %w", key, domain, err)
	}
	return e, nil
}

func (r registration) IndexName(ctx context.Context, jid, key string) (bool, error) {
	var ok bool
	err := r.s.w.run(ctx, false, func(t tx) error {
		var one int
		if err := t.queryRow(ctx, `SELECT 1 FROM accounts WHERE jid = ?`, jid).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			return err
		}
		res, err := t.exec(ctx, qNameIndex, key, jid)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: indexing the name of %q: %w", jid, err)
	}
	return ok, nil
}

func (r registration) UnindexedAccounts(ctx context.Context, domain, after string, limit int) ([]string, error) {
	rows, err := r.s.r.query(ctx, qNameUnindexed, domain, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing unindexed accounts of %q: %w", domain, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("sqlite: listing unindexed accounts of %q: %w", domain, err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing unindexed accounts of %q: %w", domain, err)
	}
	return out, nil
}

func (r registration) Tombstones(ctx context.Context, domain string) ([]store.NameEntry, error) {
	rows, err := r.s.r.query(ctx, qTombstones, domain)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing tombstones of %q: %w", domain, err)
	}
	defer rows.Close()
	var out []store.NameEntry
	for rows.Next() {
		e, err := scanName(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing tombstones of %q: %w", domain, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing tombstones of %q: %w", domain, err)
	}
	return out, nil
}

func (r registration) RemoveTombstone(ctx context.Context, jid string) error {
	res, err := r.s.w.exec(ctx, qTombstoneRemove, jid)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: removing the tombstone of %q: %w", jid, err)
	}
	return nil
}

func (r registration) PurgeTombstones(ctx context.Context, domain string, before time.Time) (int, error) {
	ns, err := toNanos(before)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging tombstones: %w", err)
	}
	res, err := r.s.w.exec(ctx, qTombstonePurge, domain, ns)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging tombstones of %q: %w", domain, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging tombstones of %q: %w", domain, err)
	}
	return int(n), nil
}

func (r registration) AppendLog(ctx context.Context, e store.RegistrationLogEntry) (int64, error) {
	at, err := toNanos(e.At)
	if err != nil {
		return 0, fmt.Errorf("sqlite: logging the registration of %q: %w", e.JID, err)
	}
	domain := e.Domain
	if domain == "" {
		domain = domainOf(e.JID)
	}
	res, err := r.s.w.exec(ctx, qLogAppend, e.JID, domain, at, e.IP, e.Method, e.Invite)
	if err != nil {
		return 0, fmt.Errorf("sqlite: logging the registration of %q: %w", e.JID, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("sqlite: logging the registration of %q: %w", e.JID, err)
	}
	return id, nil
}

func (r registration) Log(ctx context.Context, q store.RegistrationLogQuery) ([]store.RegistrationLogEntry, error) {
	var (
		where []string
		args  []any
	)
	if q.Domain != "" {
		where = append(where, "domain = ?")
		args = append(args, q.Domain)
	}
	if q.IP != "" {
		where = append(where, "ip = ?")
		args = append(args, q.IP)
	}
	for _, b := range []struct {
		t  time.Time
		op string
	}{{q.Since, ">="}, {q.Before, "<"}} {
		if b.t.IsZero() {
			continue
		}
		ns, err := toNanos(b.t)
		if err != nil {
			return nil, fmt.Errorf("sqlite: reading the registration log: %w", err)
		}
		where = append(where, "at "+b.op+" ?")
		args = append(args, ns)
	}
	query := `SELECT id, jid, domain, at, ip, method, invite FROM registration_log`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at, id"
	if q.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := r.s.r.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading the registration log: %w", err)
	}
	defer rows.Close()
	var out []store.RegistrationLogEntry
	for rows.Next() {
		var (
			e  store.RegistrationLogEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &e.JID, &e.Domain, &at, &e.IP, &e.Method, &e.Invite); err != nil {
			return nil, fmt.Errorf("sqlite: reading the registration log: %w", err)
		}
		e.At = fromNanos(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: reading the registration log: %w", err)
	}
	return out, nil
}

func (r registration) PurgeLog(ctx context.Context, before time.Time) (int, error) {
	ns, err := toNanos(before)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging the registration log: %w", err)
	}
	res, err := r.s.w.exec(ctx, qLogPurge, ns)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging the registration log: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging the registration log: %w", err)
	}
	return int(n), nil
}

func (r registration) PutThrottle(ctx context.Context, entries []store.ThrottleEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := r.s.w.run(ctx, false, func(t tx) error {
		for _, e := range entries {
			if len(e.Times) == 0 {
				if _, err := t.exec(ctx, qThrottleDelete, e.Key); err != nil {
					return err
				}
				continue
			}
			ns := make([]int64, len(e.Times))
			newest := int64(0)
			for i, tm := range e.Times {
				n, err := toNanos(tm)
				if err != nil {
					return fmt.Errorf("key %q: %w", e.Key, err)
				}
				ns[i] = n
				newest = max(newest, n)
			}
			b, err := json.Marshal(ns)
			if err != nil {
				return err
			}
			if _, err := t.exec(ctx, qThrottlePut, e.Key, string(b), newest); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: saving throttle state: %w", err)
	}
	return nil
}

func (r registration) Throttle(ctx context.Context) ([]store.ThrottleEntry, error) {
	rows, err := r.s.r.query(ctx, qThrottleAll)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading throttle state: %w", err)
	}
	defer rows.Close()
	var out []store.ThrottleEntry
	for rows.Next() {
		var (
			key, times string
			ns         []int64
		)
		if err := rows.Scan(&key, &times); err != nil {
			return nil, fmt.Errorf("sqlite: reading throttle state: %w", err)
		}
		if err := json.Unmarshal([]byte(times), &ns); err != nil {
			return nil, fmt.Errorf("sqlite: reading throttle state of %q: %w", key, err)
		}
		e := store.ThrottleEntry{Key: key, Times: make([]time.Time, len(ns))}
		for i, n := range ns {
			e.Times[i] = fromNanos(n)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: reading throttle state: %w", err)
	}
	return out, nil
}

func (r registration) PurgeThrottle(ctx context.Context, before time.Time) (int, error) {
	ns, err := toNanos(before)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging throttle state: %w", err)
	}
	res, err := r.s.w.exec(ctx, qThrottlePurge, ns)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging throttle state: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging throttle state: %w", err)
	}
	return int(n), nil
}
