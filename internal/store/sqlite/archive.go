package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"stoa.im/stoa/internal/store"
)

// The message archive: see migrations/0002_archive.sql for the layout.
// Messages are partitioned by UTC day of their sequence number; writes to
// the archive (Append, Purge) hold archiveState.wmu for their transaction
// so that the in-memory list of day tables changes only together with the
// database.

const msPerDay = 24 * 60 * 60 * 1000

// dayOf returns the partition (UTC day number) of a sequence number.
func dayOf(seq int64) int64 { return (seq >> 21) / msPerDay }

// firstSeqOfDay returns the lowest sequence number of a day.
func firstSeqOfDay(day int64) int64 { return day * msPerDay << 21 }

func partTable(day int64) string { return fmt.Sprintf("archive_p%d", day) }

// archiveState is the archive's in-memory state, part of the Store.
type archiveState struct {
	codec *store.ArchiveIDCodec
	gen   store.ArchiveSeqGen

	wmu  sync.Mutex         // held by archive write transactions
	days map[int64]struct{} // existing day tables; guarded by wmu

	readsOnce sync.Once
	reads     *stmtCache // statements on day tables, on the read pool

	// owners caches archive owner ids for Append (guarded by wmu); it
	// is forgotten when owner_gen says an owner was deleted. cleared
	// holds the oldest day for which an owner's counts of dropped days
	// were cleared.
	owners   map[string]int64
	ownerGen int64
	cleared  map[int64]int64
}

// maxCachedOwners bounds archiveState.owners.
const maxCachedOwners = 100000

// readCache returns the statement cache of the read pool.
func (a *archiveState) readCache(db *sql.DB) *stmtCache {
	a.readsOnce.Do(func() { a.reads = newStmtCache(db) })
	return a.reads
}

// openArchive loads the id key, the list of day tables and the highest
// sequence number stored.
func openArchive(ctx context.Context, w *pool) (*archiveState, error) {
	a := &archiveState{days: make(map[int64]struct{}), owners: make(map[string]int64), ownerGen: -1, cleared: make(map[int64]int64)}
	var key []byte
	if err := w.queryRow(ctx, `SELECT value FROM archive_meta WHERE key = 'id_key'`).Scan(&key); err != nil {
		return nil, fmt.Errorf("reading the archive id key: %w", err)
	}
	codec, err := store.NewArchiveIDCodec(key)
	if err != nil {
		return nil, err
	}
	a.codec = codec
	var high int64
	if err := w.queryRow(ctx, `SELECT value FROM archive_meta WHERE key = 'high_seq'`).Scan(&high); err != nil {
		return nil, fmt.Errorf("reading the archive sequence: %w", err)
	}
	rows, err := w.query(ctx, `SELECT day FROM archive_partitions ORDER BY day`)
	if err != nil {
		return nil, fmt.Errorf("listing archive partitions: %w", err)
	}
	defer rows.Close()
	var last int64 = -1
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("listing archive partitions: %w", err)
		}
		a.days[d] = struct{}{}
		last = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing archive partitions: %w", err)
	}
	if last >= 0 {
		var m sql.NullInt64
		if err := w.queryRow(ctx, `SELECT MAX(id) FROM `+partTable(last)).Scan(&m); err != nil {
			return nil, fmt.Errorf("reading the archive sequence: %w", err)
		}
		high = max(high, m.Int64)
	}
	a.gen.Init(high)
	return a, nil
}

// sortedDays returns the existing day tables, oldest first (wmu held).
func (a *archiveState) sortedDays() []int64 {
	out := make([]int64, 0, len(a.days))
	for d := range a.days {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

type archive struct{ s *Store }

// Archive implements store.Store.
func (s *Store) Archive() store.Archive { return archive{s} }

func (a archive) NewID(t time.Time) (string, time.Time) {
	seq := a.s.arc.gen.Next(t)
	return a.s.arc.codec.Encode(seq), store.ArchiveSeqTime(seq)
}

// splitJID returns the bare part and the resource of a JID string.
func splitJID(j string) (bare, res string) {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i], j[i+1:]
	}
	return j, ""
}

// writeArchive runs fn in a write transaction holding wmu; after fn
// succeeded and the transaction committed, apply runs (still under wmu)
// to update the in-memory state.
func (a archive) writeArchive(ctx context.Context, fn func(tx) (apply func(), err error)) error {
	a.s.arc.wmu.Lock()
	defer a.s.arc.wmu.Unlock()
	var apply func()
	err := a.s.w.run(ctx, false, func(t tx) error {
		var err error
		apply, err = fn(t)
		return err
	})
	if err == nil && apply != nil {
		apply()
	}
	return err
}

const (
	qArchOwnerID     = `SELECT id FROM archive_owners WHERE jid = ?`
	qArchOwnerCreate = `INSERT INTO archive_owners (jid, domain) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM accounts WHERE jid = ?)`
	qArchCountAdd    = `INSERT INTO archive_counts (owner, day, n) VALUES (?, ?, ?)
ON CONFLICT (owner, day) DO UPDATE SET n = n + excluded.n`
	qArchCountSub   = `UPDATE archive_counts SET n = n - ? WHERE owner = ? AND day = ? RETURNING n`
	qArchCountClean = `DELETE FROM archive_counts WHERE owner = ? AND day = ? AND n <= 0`
	qArchHighSeq    = `UPDATE archive_meta SET value = max(value, ?) WHERE key = 'high_seq'`
	// Counts of dropped days stay behind for a while (see purgeAll):
	// only days in archive_partitions count.
	qArchTotal = `SELECT COALESCE(SUM(c.n), 0) FROM archive_counts c JOIN archive_partitions p ON p.day = c.day
WHERE c.owner = ?`
	qArchOwnerDays = `SELECT c.day, c.n FROM archive_counts c JOIN archive_partitions p ON p.day = c.day
WHERE c.owner = ? AND c.n > 0 ORDER BY c.day`
	qArchOwnerGen   = `SELECT value FROM archive_meta WHERE key = 'owner_gen'`
	qArchCountClear = `DELETE FROM archive_counts WHERE owner = ? AND day < ?`
)

func createPartition(ctx context.Context, t tx, day int64) error {
	p := partTable(day)
	ddl := `CREATE TABLE IF NOT EXISTS ` + p + ` (
	id        INTEGER PRIMARY KEY,
	owner     INTEGER NOT NULL,
	with_bare TEXT    NOT NULL,
	with_res  TEXT    NOT NULL,
	stanza    BLOB    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS ` + p + `_owner ON ` + p + ` (owner);
CREATE INDEX IF NOT EXISTS ` + p + `_with ON ` + p + ` (owner, with_bare);
INSERT OR IGNORE INTO archive_partitions (day) VALUES (` + fmt.Sprint(day) + `);`
	if _, err := t.exec(ctx, ddl); err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

// ownerID returns the archive owner id of an account, creating it when
// create is set; 0 when the account does not exist.
func ownerID(ctx context.Context, t tx, jid string, create bool) (int64, error) {
	var id int64
	err := t.queryRow(ctx, qArchOwnerID, jid).Scan(&id)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	if !create {
		return 0, nil
	}
	res, err := t.exec(ctx, qArchOwnerCreate, jid, domainOf(jid), jid)
	if err != nil {
		return 0, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return 0, err
	}
	return res.LastInsertId()
}

type ownerDay struct{ owner, day int64 }

func (a archive) Append(ctx context.Context, msgs []store.ArchiveMessage, quota int) (store.AppendResult, error) {
	var res store.AppendResult
	if len(msgs) == 0 {
		return res, nil
	}
	type row struct {
		seq       int64
		msg       *store.ArchiveMessage
		bare, res string
	}
	rows := make([]row, len(msgs))
	for i := range msgs {
		seq, err := a.s.arc.codec.Decode(msgs[i].ID)
		if err != nil {
			return res, fmt.Errorf("sqlite: archiving for %q: id %q: %w", msgs[i].Owner, msgs[i].ID, err)
		}
		b, r := splitJID(msgs[i].With)
		rows[i] = row{seq: seq, msg: &msgs[i], bare: b, res: r}
	}
	// Insert in sequence order, partition by partition.
	slices.SortFunc(rows, func(x, y row) int { return cmp.Compare(x.seq, y.seq) })
	err := a.writeArchive(ctx, func(t tx) (func(), error) {
		res = store.AppendResult{}
		var gen int64
		if err := t.queryRow(ctx, qArchOwnerGen).Scan(&gen); err != nil {
			return nil, err
		}
		arc := a.s.arc
		if gen != arc.ownerGen || len(arc.owners) > maxCachedOwners {
			clear(arc.owners)
			clear(arc.cleared)
			arc.ownerGen = gen
		}
		owners := map[string]int64{} // looked up in this transaction
		counts := map[ownerDay]int64{}
		created := map[int64]struct{}{}
		var (
			stmt    *sql.Stmt
			stmtDay int64 = -1
			high    int64
		)
		defer func() {
			if stmt != nil {
				stmt.Close()
			}
		}()
		for _, r := range rows {
			oid, ok := arc.owners[r.msg.Owner]
			if !ok {
				oid, ok = owners[r.msg.Owner]
			}
			if !ok {
				var err error
				if oid, err = ownerID(ctx, t, r.msg.Owner, true); err != nil {
					return nil, fmt.Errorf("looking up owner %q: %w", r.msg.Owner, err)
				}
				owners[r.msg.Owner] = oid
			}
			if oid == 0 {
				res.NoAccount++
				continue
			}
			day := dayOf(r.seq)
			if day != stmtDay {
				if _, ok := a.s.arc.days[day]; !ok {
					if _, ok := created[day]; !ok {
						if err := createPartition(ctx, t, day); err != nil {
							return nil, err
						}
						created[day] = struct{}{}
					}
				}
				if stmt != nil {
					stmt.Close()
				}
				var err error
				stmt, err = t.tx.PrepareContext(ctx, `INSERT INTO `+partTable(day)+
					` (id, owner, with_bare, with_res, stanza) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
				if err != nil {
					return nil, err
				}
				stmtDay = day
			}
			x, err := stmt.ExecContext(ctx, r.seq, oid, r.bare, r.res, nonNil(r.msg.Stanza))
			if err != nil {
				return nil, err
			}
			if n, _ := x.RowsAffected(); n == 1 {
				counts[ownerDay{oid, day}]++
				res.Stored++
				high = max(high, r.seq)
			}
		}
		for k, n := range counts {
			if _, err := t.exec(ctx, qArchCountAdd, k.owner, k.day, n); err != nil {
				return nil, err
			}
		}
		// Counts of dropped days: cleared here, once per owner and
		// oldest day, where it costs little (the owner's counts are
		// contiguous and at hand).
		oldest := int64(math.MaxInt64)
		for d := range arc.days {
			oldest = min(oldest, d)
		}
		cleared := map[int64]int64{}
		for k := range counts {
			if arc.cleared[k.owner] >= oldest || cleared[k.owner] >= oldest || oldest == math.MaxInt64 {
				continue
			}
			if _, err := t.exec(ctx, qArchCountClear, k.owner, oldest); err != nil {
				return nil, err
			}
			cleared[k.owner] = oldest
		}
		if high > 0 {
			if _, err := t.exec(ctx, qArchHighSeq, high); err != nil {
				return nil, err
			}
		}
		if quota > 0 {
			touched := map[int64]bool{}
			for k := range counts {
				touched[k.owner] = true
			}
			for oid := range touched {
				if oid == 0 {
					continue
				}
				var total int64
				if err := t.queryRow(ctx, qArchTotal, oid).Scan(&total); err != nil {
					return nil, err
				}
				if total > int64(quota) {
					n, err := deleteOwnerRows(ctx, t, oid, math.MaxInt64, int(total-int64(quota)))
					if err != nil {
						return nil, fmt.Errorf("trimming to quota: %w", err)
					}
					res.Trimmed += n
				}
			}
		}
		return func() {
			for d := range created {
				arc.days[d] = struct{}{}
			}
			for j, id := range owners {
				if id != 0 {
					arc.owners[j] = id
				}
			}
			for o, d := range cleared {
				arc.cleared[o] = d
			}
		}, nil
	})
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("sqlite: archiving %d messages: %w", len(msgs), err)
	}
	return res, nil
}

// ownerDays returns the days an owner has messages in, with their counts.
func ownerDays(ctx context.Context, q interface {
	query(context.Context, string, ...any) (*sql.Rows, error)
}, oid int64) ([]int64, map[int64]int64, error) {
	rows, err := q.query(ctx, qArchOwnerDays, oid)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var days []int64
	counts := map[int64]int64{}
	for rows.Next() {
		var d, n int64
		if err := rows.Scan(&d, &n); err != nil {
			return nil, nil, err
		}
		days = append(days, d)
		counts[d] = n
	}
	return days, counts, rows.Err()
}

// deleteOwnerRows deletes up to limit of an owner's oldest messages with
// a sequence below before, keeping archive_counts right, and returns how
// many it deleted.
func deleteOwnerRows(ctx context.Context, t tx, oid, before int64, limit int) (int, error) {
	days, _, err := ownerDays(ctx, t, oid)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, d := range days {
		if deleted >= limit || firstSeqOfDay(d) >= before {
			break
		}
		p := partTable(d)
		x, err := t.exec(ctx, `DELETE FROM `+p+` WHERE id IN (SELECT id FROM `+p+` INDEXED BY `+p+
			`_owner WHERE owner = ? AND id < ? ORDER BY id LIMIT ?)`, oid, before, limit-deleted)
		if err != nil {
			return deleted, err
		}
		n, err := x.RowsAffected()
		if err != nil {
			return deleted, err
		}
		if n > 0 {
			if err := subCount(ctx, t, oid, d, n); err != nil {
				return deleted, err
			}
		}
		deleted += int(n)
	}
	return deleted, nil
}

func subCount(ctx context.Context, t tx, oid, day, n int64) error {
	var left int64
	err := t.queryRow(ctx, qArchCountSub, n, oid, day).Scan(&left)
	if errors.Is(err, sql.ErrNoRows) || err == nil && left > 0 {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, qArchCountClean, oid, day)
	return err
}

// seqRange is an inclusive range of sequence numbers.
type seqRange struct{ lo, hi int64 }

func (r seqRange) empty() bool { return r.lo > r.hi }

func (r seqRange) coversDay(d int64) bool {
	return r.lo <= firstSeqOfDay(d) && r.hi >= firstSeqOfDay(d+1)-1
}

func (r seqRange) touchesDay(d int64) bool {
	return r.lo < firstSeqOfDay(d+1) && r.hi >= firstSeqOfDay(d)
}

// ceilMilli rounds t up to the millisecond.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// querier runs one query against an archive. It reads without a
// transaction: the one write that could interfere, dropping a day table,
// only removes messages that expired, and a dropped table reads as empty.
type querier struct {
	a         archive
	c         *stmtCache
	oid       int64
	days      []int64
	counts    map[int64]int64
	withBare  string
	withRes   string
	withGiven bool
}

func (q *querier) where() (string, []any) {
	switch {
	case !q.withGiven:
		return "owner = ?", []any{q.oid}
	case q.withRes != "":
		return "owner = ? AND with_bare = ? AND with_res = ?", []any{q.oid, q.withBare, q.withRes}
	default:
		return "owner = ? AND with_bare = ?", []any{q.oid, q.withBare}
	}
}

func (q *querier) index(day int64) string {
	if q.withGiven {
		return partTable(day) + "_with"
	}
	return partTable(day) + "_owner"
}

// exists reports whether seq is a message of the owner.
func (q *querier) exists(ctx context.Context, seq int64) (bool, error) {
	d := dayOf(seq)
	if _, ok := q.counts[d]; !ok {
		return false, nil
	}
	var one int
	return q.c.queryRow(ctx, d, `SELECT 1 FROM `+partTable(d)+` WHERE id = ? AND owner = ?`, []any{seq, q.oid}, &one)
}

// id decodes an ID given by the client and checks it is in the archive.
func (q *querier) id(ctx context.Context, id string) (int64, error) {
	seq, err := q.a.s.arc.codec.Decode(id)
	if err != nil {
		return 0, fmt.Errorf("archive id %q: %w", id, store.ErrNotFound)
	}
	ok, err := q.exists(ctx, seq)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("archive id %q: %w", id, store.ErrNotFound)
	}
	return seq, nil
}

// count returns the number of matching messages in r.
func (q *querier) count(ctx context.Context, r seqRange) (int, error) {
	if r.empty() {
		return 0, nil
	}
	where, args := q.where()
	total := 0
	for _, d := range q.days {
		if !r.touchesDay(d) {
			continue
		}
		if !q.withGiven && r.coversDay(d) {
			total += int(q.counts[d])
			continue
		}
		var n int
		_, err := q.c.queryRow(ctx, d, `SELECT COUNT(*) FROM `+partTable(d)+` INDEXED BY `+q.index(d)+
			` WHERE `+where+` AND id BETWEEN ? AND ?`, append(args, r.lo, r.hi), &n)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// fetch returns up to limit matching messages in r, from the start (or
// the end when backward) of r, in the order fetched.
func (q *querier) fetch(ctx context.Context, r seqRange, limit int, backward bool) ([]store.ArchiveMessage, error) {
	if r.empty() || limit <= 0 {
		return nil, nil
	}
	where, args := q.where()
	order := "ASC"
	days := q.days
	if backward {
		order = "DESC"
		days = slices.Clone(days)
		slices.Reverse(days)
	}
	var out []store.ArchiveMessage
	for _, d := range days {
		if len(out) >= limit {
			break
		}
		if !r.touchesDay(d) {
			continue
		}
		rows, err := q.c.query(ctx, d, `SELECT id, with_bare, with_res, stanza FROM `+partTable(d)+` INDEXED BY `+q.index(d)+
			` WHERE `+where+` AND id BETWEEN ? AND ? ORDER BY id `+order+` LIMIT ?`, append(args, r.lo, r.hi, limit-len(out))...)
		if err != nil {
			return nil, err
		}
		if rows == nil {
			continue // dropped meanwhile
		}
		for rows.Next() {
			var (
				seq       int64
				bare, res string
				m         store.ArchiveMessage
			)
			if err := rows.Scan(&seq, &bare, &res, &m.Stanza); err != nil {
				rows.Close()
				return nil, err
			}
			m.ID = q.a.s.arc.codec.Encode(seq)
			m.With = bare
			if res != "" {
				m.With += "/" + res
			}
			m.Time = store.ArchiveSeqTime(seq)
			out = append(out, m)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fetchIDs returns the matching messages among seqs, oldest first.
func (q *querier) fetchIDs(ctx context.Context, seqs []int64, r seqRange) ([]store.ArchiveMessage, []int64, error) {
	var out []store.ArchiveMessage
	var got []int64
	for _, s := range seqs {
		if s < r.lo || s > r.hi {
			continue
		}
		ms, err := q.fetch(ctx, seqRange{s, s}, 1, false)
		if err != nil {
			return nil, nil, err
		}
		if len(ms) == 1 {
			out = append(out, ms[0])
			got = append(got, s)
		}
	}
	return out, got, nil
}

// maxIDs bounds the ids filter.
const maxIDs = 1000

func (a archive) Query(ctx context.Context, owner string, qr store.ArchiveQuery) (store.ArchivePage, error) {
	var page store.ArchivePage
	if len(qr.IDs) > maxIDs {
		return page, fmt.Errorf("sqlite: querying the archive of %q: %d ids asked, at most %d", owner, len(qr.IDs), maxIDs)
	}
	cache := a.s.arc.readCache(a.s.r.db)
	cache.acquire()
	defer cache.use.RUnlock()
	err := func() error {
		q := &querier{a: a, c: cache}
		err := a.s.r.queryRow(ctx, qArchOwnerID, owner).Scan(&q.oid)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if q.oid != 0 {
			if q.days, q.counts, err = ownerDays(ctx, a.s.r, q.oid); err != nil {
				return err
			}
		} else {
			q.counts = map[int64]int64{}
		}
		if qr.With != "" {
			q.withGiven = true
			q.withBare, q.withRes = splitJID(qr.With)
		}
		// The filters' range.
		f := seqRange{lo: 1, hi: math.MaxInt64}
		if !qr.Start.IsZero() {
			f.lo = max(f.lo, store.ArchiveSeqAtMilli(ceilMilli(qr.Start)))
		}
		if !qr.End.IsZero() {
			if ms := qr.End.UnixMilli(); ms < 0 {
				f.hi = 0
			} else if e := store.ArchiveSeqAtMilli(ms + 1); e < math.MaxInt64&^(1<<21-1) {
				f.hi = min(f.hi, e-1)
			}
		}
		if qr.AfterID != "" {
			s, err := q.id(ctx, qr.AfterID)
			if err != nil {
				return err
			}
			f.lo = max(f.lo, s+1)
		}
		if qr.BeforeID != "" {
			s, err := q.id(ctx, qr.BeforeID)
			if err != nil {
				return err
			}
			f.hi = min(f.hi, s-1)
		}
		// The page's range.
		p := f
		if qr.After != "" {
			s, err := q.id(ctx, qr.After)
			if err != nil {
				return err
			}
			p.lo = max(p.lo, s+1)
		}
		if qr.Before != "" {
			s, err := q.id(ctx, qr.Before)
			if err != nil {
				return err
			}
			p.hi = min(p.hi, s-1)
		}
		backward := qr.Backward()
		if qr.IDs != nil {
			seqs := make([]int64, 0, len(qr.IDs))
			for _, id := range qr.IDs {
				s, err := q.id(ctx, id)
				if err != nil {
					return err
				}
				seqs = append(seqs, s)
			}
			slices.Sort(seqs)
			seqs = slices.Compact(seqs)
			all, got, err := q.fetchIDs(ctx, seqs, f)
			if err != nil {
				return err
			}
			page.Count = len(all)
			lo, _ := slices.BinarySearch(got, p.lo)
			hi, found := slices.BinarySearch(got, p.hi)
			if found {
				hi++
			}
			sel := all[lo:hi]
			if qr.Max < len(sel) {
				if backward {
					page.Index = lo + len(sel) - qr.Max
					sel = sel[len(sel)-qr.Max:]
				} else {
					page.Index = lo
					sel = sel[:qr.Max]
				}
			} else {
				page.Index = lo
				page.Complete = true
			}
			page.Messages = sel
			if qr.Max == 0 {
				page.Messages = nil
				page.Complete = page.Count == 0
			}
			return nil
		}
		if page.Count, err = q.count(ctx, f); err != nil {
			return err
		}
		if qr.Max == 0 {
			page.Complete = page.Count == 0
			return nil
		}
		ms, err := q.fetch(ctx, p, qr.Max+1, backward)
		if err != nil {
			return err
		}
		page.Complete = len(ms) <= qr.Max
		if !page.Complete {
			ms = ms[:qr.Max]
		}
		if backward {
			slices.Reverse(ms)
		}
		page.Messages = ms
		if len(ms) > 0 {
			first, err := a.s.arc.codec.Decode(ms[0].ID)
			if err != nil {
				return err
			}
			if page.Index, err = q.count(ctx, seqRange{f.lo, first - 1}); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		return store.ArchivePage{}, fmt.Errorf("sqlite: querying the archive of %q: %w", owner, err)
	}
	for i := range page.Messages {
		page.Messages[i].Owner = owner
	}
	return page, nil
}

const (
	qArchPrefsGet = `SELECT policy, always, never FROM archive_prefs WHERE owner = ?`
	qArchPrefsPut = `INSERT INTO archive_prefs (owner, policy, always, never) VALUES (?, ?, ?, ?)
ON CONFLICT (owner) DO UPDATE SET policy = excluded.policy, always = excluded.always, never = excluded.never`
)

func (a archive) Prefs(ctx context.Context, owner string) (store.ArchivePrefs, error) {
	var (
		p             store.ArchivePrefs
		always, never string
	)
	err := a.s.r.queryRow(ctx, qArchPrefsGet, owner).Scan(&p.Default, &always, &never)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ArchivePrefs{}, nil
	}
	if err == nil {
		err = errors.Join(json.Unmarshal([]byte(always), &p.Always), json.Unmarshal([]byte(never), &p.Never))
	}
	if err != nil {
		return store.ArchivePrefs{}, fmt.Errorf("sqlite: reading the archive preferences of %q: %w", owner, err)
	}
	return p, nil
}

func (a archive) SetPrefs(ctx context.Context, owner string, p store.ArchivePrefs) error {
	switch p.Default {
	case "", store.PolicyAlways, store.PolicyRoster, store.PolicyNever:
	default:
		return fmt.Errorf("sqlite: setting the archive preferences of %q: unknown default policy %q", owner, p.Default)
	}
	always, err := json.Marshal(nonNilStrings(p.Always))
	if err != nil {
		return err
	}
	never, err := json.Marshal(nonNilStrings(p.Never))
	if err != nil {
		return err
	}
	if _, err := a.s.w.exec(ctx, qArchPrefsPut, owner, p.Default, string(always), string(never)); err != nil {
		return fmt.Errorf("sqlite: setting the archive preferences of %q: %w", owner, noAccount(err, owner))
	}
	return nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// defaultPurgeLimit is used when ArchivePurge.Limit is not positive.
const defaultPurgeLimit = 1000

func (a archive) Purge(ctx context.Context, p store.ArchivePurge) (deleted int, more bool, err error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultPurgeLimit
	}
	before := int64(math.MaxInt64)
	if !p.Before.IsZero() {
		before = store.ArchiveSeqAt(p.Before)
	}
	err = a.writeArchive(ctx, func(t tx) (func(), error) {
		var apply func()
		var err error
		switch {
		case p.Owner != "":
			deleted, more, err = a.purgeOwner(ctx, t, p.Owner, before, limit)
		case p.Domain != "":
			deleted, more, err = a.purgeDomain(ctx, t, p.Domain, before, limit)
		default:
			deleted, more, apply, err = a.purgeAll(ctx, t, before, limit)
		}
		return apply, err
	})
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: purging the archive: %w", err)
	}
	return deleted, more, nil
}

func (a archive) purgeOwner(ctx context.Context, t tx, owner string, before int64, limit int) (int, bool, error) {
	oid, err := ownerID(ctx, t, owner, false)
	if err != nil || oid == 0 {
		return 0, false, err
	}
	n, err := deleteOwnerRows(ctx, t, oid, before, limit)
	return n, n == limit, err
}

func (a archive) ReapDeleted(ctx context.Context, limit int) (deleted int, more bool, err error) {
	if limit <= 0 {
		limit = defaultPurgeLimit
	}
	err = a.writeArchive(ctx, func(t tx) (func(), error) {
		var err error
		deleted, more, err = a.reapOrphans(ctx, t, limit)
		return nil, err
	})
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: removing archives of deleted accounts: %w", err)
	}
	return deleted, more, nil
}

// reapOrphans deletes rows of deleted accounts, one account per call.
func (a archive) reapOrphans(ctx context.Context, t tx, limit int) (int, bool, error) {
	var oid int64
	err := t.queryRow(ctx, `SELECT owner FROM archive_orphans LIMIT 1`).Scan(&oid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	deleted := 0
	for _, d := range a.s.arc.sortedDays() {
		p := partTable(d)
		x, err := t.exec(ctx, `DELETE FROM `+p+` WHERE id IN (SELECT id FROM `+p+` INDEXED BY `+p+
			`_owner WHERE owner = ? LIMIT ?)`, oid, limit-deleted)
		if err != nil {
			return deleted, false, err
		}
		n, err := x.RowsAffected()
		if err != nil {
			return deleted, false, err
		}
		deleted += int(n)
		if deleted >= limit {
			return deleted, true, nil
		}
	}
	if _, err := t.exec(ctx, `DELETE FROM archive_orphans WHERE owner = ?`, oid); err != nil {
		return deleted, false, err
	}
	var left int
	if err := t.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM archive_orphans)`).Scan(&left); err != nil {
		return deleted, false, err
	}
	return deleted, left == 1, nil
}

// deleteReturning runs a DELETE ... RETURNING owner on one day table and
// takes the deleted rows off archive_counts.
func deleteReturning(ctx context.Context, t tx, day int64, q string, args ...any) (int, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	per := map[int64]int64{}
	n := 0
	for rows.Next() {
		var oid int64
		if err := rows.Scan(&oid); err != nil {
			rows.Close()
			return 0, err
		}
		per[oid]++
		n++
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for oid, k := range per {
		if err := subCount(ctx, t, oid, day, k); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (a archive) purgeDomain(ctx context.Context, t tx, domain string, before int64, limit int) (int, bool, error) {
	deleted := 0
	for _, d := range a.s.arc.sortedDays() {
		if firstSeqOfDay(d) >= before {
			break
		}
		p := partTable(d)
		n, err := deleteReturning(ctx, t, d, `DELETE FROM `+p+` WHERE id IN (SELECT id FROM `+p+` INDEXED BY `+p+`_owner
WHERE owner IN (SELECT c.owner FROM archive_counts c JOIN archive_owners o ON o.id = c.owner WHERE c.day = ? AND o.domain = ?)
AND id < ? LIMIT ?) RETURNING owner`, d, domain, before, limit-deleted)
		if err != nil {
			return deleted, false, err
		}
		deleted += n
		if deleted >= limit {
			return deleted, true, nil
		}
	}
	return deleted, false, nil
}

func (a archive) purgeAll(ctx context.Context, t tx, before int64, limit int) (int, bool, func(), error) {
	days := a.s.arc.sortedDays()
	if len(days) == 0 || firstSeqOfDay(days[0]) >= before {
		// Nothing expired. Counts of days dropped earlier go a batch at
		// a time, when there is nothing else to do: their rows are
		// spread all over archive_counts (it is ordered by owner), and
		// reads ignore them; Append also clears them for the owners it
		// writes for.
		oldest := int64(math.MaxInt64)
		if len(days) > 0 {
			oldest = days[0]
		}
		_, err := t.exec(ctx, `DELETE FROM archive_counts WHERE (owner, day) IN
(SELECT owner, day FROM archive_counts INDEXED BY archive_counts_day WHERE day < ? LIMIT ?)`, oldest, limit)
		return 0, false, nil, err
	}
	d := days[0]
	if firstSeqOfDay(d+1) <= before {
		// The whole day expired: drop its table (its counts go later).
		var n int64
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM `+partTable(d)).Scan(&n); err != nil {
			return 0, false, nil, err
		}
		_, err := t.exec(ctx, `DROP TABLE IF EXISTS `+partTable(d)+`;
DELETE FROM archive_partitions WHERE day = `+fmt.Sprint(d)+`;`)
		if err != nil {
			return 0, false, nil, fmt.Errorf("dropping %s: %w", partTable(d), err)
		}
		return int(n), true, func() {
			delete(a.s.arc.days, d)
			a.s.arc.readCache(a.s.r.db).forgetDay(d)
		}, nil
	}
	// The cut-off falls inside the oldest day: delete a batch of it.
	p := partTable(d)
	n, err := deleteReturning(ctx, t, d, `DELETE FROM `+p+` WHERE id IN (SELECT id FROM `+p+
		` WHERE id < ? ORDER BY id LIMIT ?) RETURNING owner`, before, limit)
	if err != nil {
		return 0, false, nil, err
	}
	return n, n == limit, nil, nil
}

func (a archive) DeleteOwner(ctx context.Context, owner string) (int, error) {
	total := 0
	for {
		n, more, err := a.Purge(ctx, store.ArchivePurge{Owner: owner, Limit: defaultPurgeLimit})
		total += n
		if err != nil {
			return total, err
		}
		if !more {
			return total, nil
		}
	}
}
