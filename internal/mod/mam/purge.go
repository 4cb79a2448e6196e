package mam

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
)

// purgeLoop removes expired messages and the archives of deleted
// accounts every purge_interval (and at once after an account was
// deleted), until ctx ends.
func (f *feature) purgeLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(f.cfg.PurgeInterval))
	defer t.Stop()
	for {
		f.purgeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
	}
}

// expiredBefore returns the cut-off of a retention: the start of the UTC
// day of now-d. Expiry works by whole days: a day's messages go together,
// when the last of them is older than the retention (so at most one day
// late), because dropping a day's table costs about as much as deleting a
// few thousand rows, while deleting the day's rows one by one as they
// expire would cost as much as writing them did.
func expiredBefore(now time.Time, d time.Duration) time.Time {
	return now.Add(-d).UTC().Truncate(24 * time.Hour)
}

// purgeOnce runs one purge: archives of deleted accounts, then expired
// messages. When every host expires messages, the days older than the
// longest retention go first (dropped as tables), then each host with a
// shorter retention is purged on its own (row by row, in batches: its
// days also hold other hosts' messages).
func (f *feature) purgeOnce(ctx context.Context) {
	f.purge(ctx, "deleted_account", func() (int, bool, error) { return f.arc.ReapDeleted(ctx, f.cfg.PurgeBatch) })
	now := f.now()
	hosts := make([]string, 0, len(f.expire))
	all := len(f.expire) > 0
	var global time.Time
	for h, d := range f.expire {
		hosts = append(hosts, h)
		if d <= 0 {
			all = false
			continue
		}
		if cut := expiredBefore(now, d); global.IsZero() || cut.Before(global) {
			global = cut
		}
	}
	slices.Sort(hosts)
	if all {
		f.purge(ctx, "expired", func() (int, bool, error) {
			return f.arc.Purge(ctx, store.ArchivePurge{Before: global, Limit: f.cfg.PurgeBatch})
		})
	}
	for _, h := range hosts {
		d := f.expire[h]
		if d <= 0 {
			continue
		}
		cut := expiredBefore(now, d)
		if all && !cut.After(global) {
			continue // done by the purge of every host
		}
		f.purge(ctx, "expired", func() (int, bool, error) {
			return f.arc.Purge(ctx, store.ArchivePurge{Domain: h, Before: cut, Limit: f.cfg.PurgeBatch})
		})
	}
}

// purge calls step until it reports nothing more, ctx ends or it fails,
// and returns how many messages it removed. Each step is one short
// transaction; between them the archive writer and other writers get the
// database, and the loop pauses as long as the step took, so that a purge
// never takes more than half of one CPU from live traffic. (It costs a
// third of the flat-out expiry rate, which stays above a million rows a
// second; see docs/benchmarks.md.)
func (f *feature) purge(ctx context.Context, kind string, step func() (int, bool, error)) (int, error) {
	start := time.Now()
	total, batches := 0, 0
	var err error
	for ctx.Err() == nil {
		t := time.Now()
		var n int
		var more bool
		n, more, err = step()
		f.metrics.purgeSeconds.Observe(time.Since(t).Seconds())
		if err != nil {
			if ctx.Err() == nil {
				f.log.Error("archive purge failed; retrying at the next run", "kind", kind, "removed", total, "err", err)
			}
			break
		}
		batches++
		total += n
		f.metrics.purged.WithLabelValues(kind).Add(float64(n))
		if !more {
			break
		}
		pause(ctx, time.Since(t))
	}
	if total > 0 {
		f.log.Info("archive purge", "kind", kind, "removed", total, "batches", batches, "took", time.Since(start).Round(time.Millisecond).String())
	}
	if err == nil {
		err = ctx.Err()
	}
	return total, err
}

// adminPurge is the mam.purge admin command (stoa mam purge): it removes
// archived messages older than a date or a duration, of every account or
// of one; with a user and no date, the user's whole archive.
func (f *feature) adminPurge(ctx context.Context, args map[string]string) (server.AdminResult, error) {
	var before time.Time
	switch b, o := args["before"], args["older_than"]; {
	case b != "" && o != "":
		return server.AdminResult{}, errors.New("give either --before or --older-than, not both")
	case b != "":
		t, err := time.Parse(time.RFC3339, b)
		if err != nil {
			if t, err = time.Parse("2006-01-02", b); err != nil {
				return server.AdminResult{}, fmt.Errorf("--before %q is not a date (2024-01-31) or a time (2024-01-31T12:00:00Z)", b)
			}
		}
		before = t
	case o != "":
		d, err := config.ParseDuration(o)
		if err != nil || d <= 0 {
			return server.AdminResult{}, fmt.Errorf("--older-than %q is not a positive duration (e.g. 30d or 12h)", o)
		}
		before = f.now().Add(-time.Duration(d))
	case args["user"] == "":
		return server.AdminResult{}, errors.New("say what to purge: --before DATE or --older-than DURATION (of every account), or --user JID (one account's whole archive, or with a date its older messages)")
	}
	what := "archived messages"
	if !before.IsZero() {
		what += " older than " + before.UTC().Format(time.RFC3339)
	}
	p := store.ArchivePurge{Before: before, Limit: f.cfg.PurgeBatch}
	if u := args["user"]; u != "" {
		j, err := f.srv.AccountJID(u)
		if err != nil {
			return server.AdminResult{}, err
		}
		p.Owner = j.String()
		what += " of " + p.Owner
		// Messages still queued for the account are purged too.
		sctx, cancel := context.WithTimeout(ctx, syncWait)
		_ = f.w.sync(sctx)
		cancel()
	}
	n, err := f.purge(ctx, "admin", func() (int, bool, error) { return f.arc.Purge(ctx, p) })
	if err != nil {
		return server.AdminResult{}, fmt.Errorf("purging %s: removed %d before failing: %w", what, n, err)
	}
	f.log.Info("archive purged by an administrator", "removed", n, "before", before, "owner", p.Owner)
	return server.AdminResult{Message: fmt.Sprintf("removed %d %s", n, what)}, nil
}

// pause waits for d (at most a second) or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(min(d, time.Second))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
