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

type accountStates struct{ s *Store }

type blocklist struct{ s *Store }

type reports struct{ s *Store }

// AccountStates implements store.Store.
func (s *Store) AccountStates() store.AccountStates { return accountStates{s} }

// Blocklist implements store.Store.
func (s *Store) Blocklist() store.Blocklist { return blocklist{s} }

// Reports implements store.Store.
func (s *Store) Reports() store.Reports { return reports{s} }

const (
	qStateGet = `SELECT jid, state, reason, set_by, since, expires FROM account_states WHERE jid = ?`
	qStatePut = `INSERT INTO account_states (jid, domain, state, reason, set_by, since, expires)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (jid) DO UPDATE SET state = excluded.state, reason = excluded.reason,
set_by = excluded.set_by, since = excluded.since, expires = excluded.expires`
	qStateDelete  = `DELETE FROM account_states WHERE jid = ?`
	qStateList    = `SELECT jid, state, reason, set_by, since, expires FROM account_states WHERE domain = ? ORDER BY jid`
	qStateListAll = `SELECT jid, state, reason, set_by, since, expires FROM account_states ORDER BY jid`

	qBlockList  = `SELECT jid FROM blocklist WHERE owner = ? ORDER BY jid`
	qBlockAdd   = `INSERT INTO blocklist (owner, jid, added) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`
	qBlockDel   = `DELETE FROM blocklist WHERE owner = ? AND jid = ?`
	qBlockClear = `DELETE FROM blocklist WHERE owner = ?`

	reportCols = `id, created, reporter, offender, reason, text, stanza_ids, evidence, source, state,
resolved_at, resolved_by, resolution, forwarded`
	qReportAdd = `INSERT INTO reports (created, reporter, offender, reason, text, stanza_ids, evidence, source)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qReportGet     = `SELECT ` + reportCols + ` FROM reports WHERE id = ?`
	qReportResolve = `UPDATE reports SET state = 'resolved', resolved_at = ?, resolved_by = ?, resolution = ? WHERE id = ?`
	qReportForward = `UPDATE reports SET forwarded = ? WHERE id = ?`
)

func scanState(row interface{ Scan(...any) error }) (store.AccountState, error) {
	var (
		st      store.AccountState
		status  string
		since   int64
		expires sql.NullInt64
	)
	if err := row.Scan(&st.JID, &status, &st.Reason, &st.By, &since, &expires); err != nil {
		return store.AccountState{}, err
	}
	st.Status = store.AccountStatus(status)
	st.Since = fromNanos(since)
	if expires.Valid {
		st.Expires = fromNanos(expires.Int64)
	}
	return st, nil
}

func (a accountStates) Get(ctx context.Context, jid string) (store.AccountState, error) {
	st, err := scanState(a.s.r.queryRow(ctx, qStateGet, jid))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.AccountState{}, fmt.Errorf("sqlite: getting the state of %q: %w", jid, err)
	}
	return st, nil
}

func (a accountStates) Put(ctx context.Context, st store.AccountState) error {
	if st.Status != store.StatusRestricted && st.Status != store.StatusSuspended {
		return fmt.Errorf("sqlite: account state %q cannot be stored (restricted or suspended)", st.Status)
	}
	since, err := toNanos(st.Since)
	if err != nil {
		return fmt.Errorf("sqlite: state of %q: %w", st.JID, err)
	}
	var expires sql.NullInt64
	if !st.Expires.IsZero() {
		ns, err := toNanos(st.Expires)
		if err != nil {
			return fmt.Errorf("sqlite: state of %q: %w", st.JID, err)
		}
		expires = sql.NullInt64{Int64: ns, Valid: true}
	}
	if _, err := a.s.w.exec(ctx, qStatePut, st.JID, domainOf(st.JID), string(st.Status), st.Reason, st.By, since, expires); err != nil {
		return fmt.Errorf("sqlite: setting the state of %q: %w", st.JID, noAccount(err, st.JID))
	}
	return nil
}

func (a accountStates) Delete(ctx context.Context, jid string) error {
	if _, err := a.s.w.exec(ctx, qStateDelete, jid); err != nil {
		return fmt.Errorf("sqlite: clearing the state of %q: %w", jid, err)
	}
	return nil
}

func (a accountStates) List(ctx context.Context, domain string) ([]store.AccountState, error) {
	var rows *sql.Rows
	var err error
	if domain == "" {
		rows, err = a.s.r.query(ctx, qStateListAll)
	} else {
		rows, err = a.s.r.query(ctx, qStateList, domain)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing account states: %w", err)
	}
	defer rows.Close()
	var out []store.AccountState
	for rows.Next() {
		st, err := scanState(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing account states: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing account states: %w", err)
	}
	return out, nil
}

func (b blocklist) List(ctx context.Context, owner string) ([]string, error) {
	rows, err := b.s.r.query(ctx, qBlockList, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading the block list of %q: %w", owner, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("sqlite: reading the block list of %q: %w", owner, err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: reading the block list of %q: %w", owner, err)
	}
	return out, nil
}

func (b blocklist) Add(ctx context.Context, owner string, jids []string) error {
	now, err := toNanos(time.Now())
	if err != nil {
		return err
	}
	err = b.s.w.run(ctx, false, func(t tx) error {
		for _, j := range jids {
			if _, err := t.exec(ctx, qBlockAdd, owner, j, now); err != nil {
				return noAccount(err, owner)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: blocking for %q: %w", owner, err)
	}
	return nil
}

func (b blocklist) Remove(ctx context.Context, owner string, jids []string) error {
	err := b.s.w.run(ctx, false, func(t tx) error {
		for _, j := range jids {
			if _, err := t.exec(ctx, qBlockDel, owner, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: unblocking for %q: %w", owner, err)
	}
	return nil
}

func (b blocklist) Clear(ctx context.Context, owner string) ([]string, error) {
	var out []string
	err := b.s.w.run(ctx, false, func(t tx) error {
		rows, err := t.query(ctx, qBlockList, owner)
		if err != nil {
			return err
		}
		for rows.Next() {
			var j string
			if err := rows.Scan(&j); err != nil {
				rows.Close()
				return err
			}
			out = append(out, j)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		_, err = t.exec(ctx, qBlockClear, owner)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: clearing the block list of %q: %w", owner, err)
	}
	return out, nil
}

func scanReport(row interface{ Scan(...any) error }) (store.Report, error) {
	var (
		r          store.Report
		created    int64
		ids        string
		state      string
		resolvedAt sql.NullInt64
	)
	if err := row.Scan(&r.ID, &created, &r.Reporter, &r.Offender, &r.Reason, &r.Text, &ids, &r.Evidence,
		&r.Source, &state, &resolvedAt, &r.ResolvedBy, &r.Resolution, &r.Forwarded); err != nil {
		return store.Report{}, err
	}
	r.Created = fromNanos(created)
	r.State = store.ReportState(state)
	if resolvedAt.Valid {
		r.ResolvedAt = fromNanos(resolvedAt.Int64)
	}
	if err := json.Unmarshal([]byte(ids), &r.StanzaIDs); err != nil {
		return store.Report{}, fmt.Errorf("report %d: stanza ids: %w", r.ID, err)
	}
	if len(r.StanzaIDs) == 0 {
		r.StanzaIDs = nil
	}
	return r, nil
}

func (rp reports) Add(ctx context.Context, r store.Report) (int64, error) {
	created, err := toNanos(r.Created)
	if err != nil {
		return 0, fmt.Errorf("sqlite: adding a report: %w", err)
	}
	ids := r.StanzaIDs
	if ids == nil {
		ids = []store.StanzaRef{}
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return 0, fmt.Errorf("sqlite: adding a report: %w", err)
	}
	res, err := rp.s.w.exec(ctx, qReportAdd, created, r.Reporter, r.Offender, r.Reason, r.Text, string(b), r.Evidence, r.Source)
	if err != nil {
		return 0, fmt.Errorf("sqlite: adding a report: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("sqlite: adding a report: %w", err)
	}
	return id, nil
}

func (rp reports) Get(ctx context.Context, id int64) (store.Report, error) {
	r, err := scanReport(rp.s.r.queryRow(ctx, qReportGet, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Report{}, fmt.Errorf("sqlite: getting report %d: %w", id, err)
	}
	return r, nil
}

func (rp reports) List(ctx context.Context, f store.ReportFilter) ([]store.Report, error) {
	q := `SELECT ` + reportCols + ` FROM reports`
	var conds []string
	var args []any
	if f.State != "" {
		conds = append(conds, "state = ?")
		args = append(args, string(f.State))
	}
	if f.Offender != "" {
		conds = append(conds, "offender = ?")
		args = append(args, f.Offender)
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := rp.s.r.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing reports: %w", err)
	}
	defer rows.Close()
	var out []store.Report
	for rows.Next() {
		r, err := scanReport(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing reports: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing reports: %w", err)
	}
	return out, nil
}

func (rp reports) Resolve(ctx context.Context, id int64, by, resolution string, at time.Time) error {
	ns, err := toNanos(at)
	if err != nil {
		return fmt.Errorf("sqlite: resolving report %d: %w", id, err)
	}
	res, err := rp.s.w.exec(ctx, qReportResolve, ns, by, resolution, id)
	if err != nil {
		return fmt.Errorf("sqlite: resolving report %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: resolving report %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: resolving report %d: %w", id, store.ErrNotFound)
	}
	return nil
}

func (rp reports) SetForwarded(ctx context.Context, id int64, to string) error {
	res, err := rp.s.w.exec(ctx, qReportForward, to, id)
	if err != nil {
		return fmt.Errorf("sqlite: recording the forwarding of report %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: recording the forwarding of report %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: recording the forwarding of report %d: %w", id, store.ErrNotFound)
	}
	return nil
}

func (rp reports) Count(ctx context.Context, state store.ReportState) (int, error) {
	var n int
	var err error
	if state == "" {
		err = rp.s.r.queryRow(ctx, `SELECT count(*) FROM reports`).Scan(&n)
	} else {
		err = rp.s.r.queryRow(ctx, `SELECT count(*) FROM reports WHERE state = ?`, string(state)).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: counting reports: %w", err)
	}
	return n, nil
}
