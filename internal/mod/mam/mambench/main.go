// Command mambench measures the message archive on the SQLite store: it
// generates an archive of -rows messages (default 10 million), then
// reports the ingest rate, query latency for a page of 50 by time and by
// id, the purge rate, and the delivery latency of live chat with and
// without a large purge running. Results go to standard output; see
// docs/benchmarks.md ("Message archive") for figures and the command.
//
//	go run ./internal/mod/mam/mambench -rows 10000000
//
// It is a measuring tool, not a test: nothing here asserts a time.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/mam"
	"stoa.im/stoa/internal/mod/offline"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

const domain = "bench.example"

type options struct {
	rows, users, days, queries, batch, purgeBatch int
	rate                                          int
	window                                        time.Duration
	dir                                           string
	keep, pace                                    bool
}

func main() {
	var o options
	flag.IntVar(&o.rows, "rows", 10_000_000, "messages to generate")
	flag.IntVar(&o.users, "users", 10_000, "accounts")
	flag.IntVar(&o.days, "days", 100, "days the generated messages span (ending now)")
	flag.IntVar(&o.queries, "queries", 2000, "queries per kind")
	flag.IntVar(&o.batch, "batch", 1000, "messages per Append (the writer's batch size)")
	flag.IntVar(&o.purgeBatch, "purge-batch", 1000, "rows per purge transaction (mam.purge_batch)")
	flag.IntVar(&o.rate, "rate", 2000, "live chat messages per second during the delivery-latency phases")
	flag.DurationVar(&o.window, "window", 20*time.Second, "length of each delivery-latency phase")
	flag.StringVar(&o.dir, "dir", "", "directory for the database (default: a new temporary one)")
	flag.BoolVar(&o.keep, "keep", false, "keep the database")
	flag.BoolVar(&o.pace, "pace", true, "pause between purge transactions as long as each took, as the server does")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mambench:", err)
		os.Exit(1)
	}
}

func user(i int) string { return "u" + strconv.Itoa(i) + "@" + domain }

func stanzaFor(from, to string, i int) []byte {
	return []byte(`<message xmlns='jabber:client' from='` + from + `/phone' to='` + to + `' type='chat' id='b` + strconv.Itoa(i) +
		`'><body>Hello, this is message ` + strconv.Itoa(i) + ` of typical length for a chat.</body><origin-id xmlns='urn:xmpp:sid:0' id='` +
		strconv.Itoa(i) + `'/></message>`)
}

func run(o options) error {
	ctx := context.Background()
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "mambench-")
		if err != nil {
			return err
		}
		dir = d
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	path := filepath.Join(dir, "stoa.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Printf("mambench: %d messages, %d accounts, %d days, GOMAXPROCS=%d, %s\n", o.rows, o.users, o.days, runtime.GOMAXPROCS(0), runtime.Version())

	// Accounts.
	for i := range o.users {
		if err := st.Accounts().Create(ctx, user(i), store.Credentials{}); err != nil {
			return err
		}
	}

	// 1. Ingest: chronological batches, as the writer does them.
	end := time.Now().Add(-time.Hour)
	start := end.Add(-time.Duration(o.days) * 24 * time.Hour)
	step := end.Sub(start) / time.Duration(o.rows)
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Now()
	lastReport := t0
	var tail time.Duration // time of the last 10 %
	batch := make([]store.ArchiveMessage, 0, o.batch)
	for i := 0; i < o.rows; {
		batch = batch[:0]
		for ; len(batch) < o.batch && i < o.rows; i++ {
			owner, peer := user(rng.IntN(o.users)), user(rng.IntN(o.users))
			id, _ := st.Archive().NewID(start.Add(time.Duration(i) * step))
			batch = append(batch, store.ArchiveMessage{ID: id, Owner: owner, With: peer + "/phone", Stanza: stanzaFor(peer, owner, i)})
		}
		bt := time.Now()
		if _, err := st.Archive().Append(ctx, batch, 0); err != nil {
			return err
		}
		if i > o.rows*9/10 {
			tail += time.Since(bt)
		}
		if time.Since(lastReport) > 30*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(os.Stderr, "  generated %d (%.0f/s)\n", i, float64(i)/time.Since(t0).Seconds())
		}
	}
	took := time.Since(t0)
	fi, _ := os.Stat(path)
	size := int64(0)
	if fi != nil {
		size = fi.Size()
	}
	fmt.Printf("ingest (Append, %d per transaction): %d rows in %s = %.0f rows/s; last 10%%: %.0f rows/s; database %d MiB\n",
		o.batch, o.rows, took.Round(time.Millisecond), float64(o.rows)/took.Seconds(), float64(o.rows/10)/tail.Seconds(), size>>20)

	// 2. Queries.
	if err := queries(ctx, st, o, start, end, rng); err != nil {
		return err
	}

	// 3. Live delivery, then ingest through the feature, without purge.
	srv, stop, err := newServer(ctx, st)
	if err != nil {
		return err
	}
	defer stop()
	base, err := deliver(ctx, srv, o, o.rate, o.window, nil)
	if err != nil {
		return err
	}
	fmt.Printf("delivery, no purge (%d msg/s, %s): %s\n", o.rate, o.window, base)
	fmt.Printf("  archive writer: %s\n", writerStats(srv))

	// 4. Expire the oldest quarter by whole days (their tables are
	// dropped), flat out, while live chat runs; then the next quarter
	// paced as the server's purge loop does it.
	span := end.Sub(start)
	cut := start.Add(span / 4).UTC().Truncate(24 * time.Hour)
	during, err := deliver(ctx, srv, o, o.rate, 0, func(ctx context.Context) (string, error) {
		return purge(ctx, st, store.ArchivePurge{Before: cut, Limit: o.purgeBatch}, false)
	})
	if err != nil {
		return err
	}
	fmt.Printf("delivery during the expiry purge, flat out: %s\n", during)
	fmt.Printf("  archive writer: %s\n", writerStats(srv))
	cut = start.Add(span / 2).UTC().Truncate(24 * time.Hour)
	during, err = deliver(ctx, srv, o, o.rate, 0, func(ctx context.Context) (string, error) {
		return purge(ctx, st, store.ArchivePurge{Before: cut, Limit: o.purgeBatch}, o.pace)
	})
	if err != nil {
		return err
	}
	fmt.Printf("delivery during the expiry purge, paced (-pace=%v): %s\n", o.pace, during)
	fmt.Printf("  archive writer: %s\n", writerStats(srv))

	// 5. Row-by-row purge (a host with a shorter retention, or an admin
	// purge of one domain: no whole day can be dropped) while live chat
	// runs: the next quarter of the span.
	cut2 := start.Add(end.Sub(start)*3/4 + 5*time.Hour)
	during2, err := deliver(ctx, srv, o, o.rate, o.window, func(ctx context.Context) (string, error) {
		return purge(ctx, st, store.ArchivePurge{Domain: domain, Before: cut2, Limit: o.purgeBatch}, o.pace)
	})
	if err != nil {
		return err
	}
	fmt.Printf("delivery during a row-by-row purge: %s\n", during2)
	fmt.Printf("  archive writer: %s\n", writerStats(srv))

	// 6. Ingest through the whole path: as many messages as the server
	// takes from 4 senders for 5 s, each archived twice.
	sat, err := deliver(ctx, srv, o, 0, 5*time.Second, nil)
	if err != nil {
		return err
	}
	fmt.Printf("saturation through the server (each message archived for sender and recipient): %s\n", sat)
	t1 := time.Now()
	for metric(srv, "stoa_mam_write_queue") > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("  archive writer: %s; queue drained %s after the senders stopped\n", writerStats(srv), time.Since(t1).Round(time.Millisecond))
	return nil
}

// metric sums a metric of the server's registry.
func metric(srv *server.Server, name string) float64 {
	mfs, err := srv.Registry().Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

// writerStats describes the archive writer so far (cumulative).
func writerStats(srv *server.Server) string {
	return fmt.Sprintf("%.0f rows written in %.0f transactions, %.0f sender waits, %.0f refused (cumulative)",
		metric(srv, "stoa_mam_written_total"), metric(srv, "stoa_mam_write_batch_seconds"),
		metric(srv, "stoa_mam_write_queue_waits_total"), metric(srv, "stoa_policy_denied_total"))
}

// percentiles formats p50, p99 and max of durations.
func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", q(.50).Round(time.Microsecond), q(.99).Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond), len(d))
}

func queries(ctx context.Context, st store.Store, o options, start, end time.Time, rng *rand.Rand) error {
	span := end.Sub(start)
	var byTime, byID, last, count []time.Duration
	for range o.queries {
		owner := user(rng.IntN(o.users))
		t := start.Add(time.Duration(rng.Int64N(int64(span * 9 / 10))))
		q0 := time.Now()
		p, err := st.Archive().Query(ctx, owner, store.ArchiveQuery{Start: t, Max: 50})
		if err != nil {
			return err
		}
		byTime = append(byTime, time.Since(q0))
		if len(p.Messages) == 0 {
			continue
		}
		id := p.Messages[rng.IntN(len(p.Messages))].ID
		q0 = time.Now()
		if _, err := st.Archive().Query(ctx, owner, store.ArchiveQuery{After: id, Max: 50}); err != nil {
			return err
		}
		byID = append(byID, time.Since(q0))
		q0 = time.Now()
		if _, err := st.Archive().Query(ctx, owner, store.ArchiveQuery{Last: true, Max: 50}); err != nil {
			return err
		}
		last = append(last, time.Since(q0))
		q0 = time.Now()
		if _, err := st.Archive().Query(ctx, owner, store.ArchiveQuery{With: user(rng.IntN(o.users)), Max: 50}); err != nil {
			return err
		}
		count = append(count, time.Since(q0))
	}
	fmt.Printf("query, page of 50 by time (start=T): %s\n", percentiles(byTime))
	fmt.Printf("query, page of 50 by id (RSM after=ID): %s\n", percentiles(byID))
	fmt.Printf("query, last page of 50 (RSM before): %s\n", percentiles(last))
	fmt.Printf("query, page of 50 with one contact (with=JID): %s\n", percentiles(count))
	return nil
}

// purge runs a purge to the end, like the feature's loop (which pauses as
// long as each transaction took), and describes it.
func purge(ctx context.Context, st store.Store, p store.ArchivePurge, pace bool) (string, error) {
	t0 := time.Now()
	total, batches := 0, 0
	var worst time.Duration
	for ctx.Err() == nil {
		bt := time.Now()
		n, more, err := st.Archive().Purge(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return "", err
		}
		took := time.Since(bt)
		worst = max(worst, took)
		total += n
		batches++
		if !more {
			break
		}
		if pace {
			select {
			case <-time.After(min(took, time.Second)):
			case <-ctx.Done():
			}
		}
	}
	el := time.Since(t0)
	done := "done"
	if ctx.Err() != nil {
		done = "stopped at the end of the window"
	}
	return fmt.Sprintf("purged %d rows in %s = %.0f rows/s, %d transactions, longest %s (%s)",
		total, el.Round(time.Millisecond), float64(total)/el.Seconds(), batches, worst.Round(time.Microsecond), done), nil
}

// conn is a client connection that records delivery latency.
type conn struct {
	t0  time.Time
	mu  *sync.Mutex
	lat *[]time.Duration
}

func (c *conn) Send(el *xml.Element) error {
	if el.Local != "message" {
		return nil
	}
	sent, err := strconv.ParseInt(el.Attr("id"), 10, 64)
	if err != nil {
		return nil
	}
	d := time.Since(c.t0) - time.Duration(sent)
	c.mu.Lock()
	*c.lat = append(*c.lat, d)
	c.mu.Unlock()
	return nil
}
func (c *conn) Close(*stanza.StreamError)  {}
func (c *conn) RemoteAddr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:1") }

// newServer starts a server with the IM features and the archive
// (policy always, no background expiry: the phases purge themselves).
func newServer(ctx context.Context, st store.Store) (*server.Server, func(), error) {
	cfg := mam.Feature.Defaults.(mam.Config)
	cfg.DefaultPolicy = store.PolicyAlways
	cfg.ExpireAfter = config.Duration(0)
	cfg.Quota = 0
	srv, err := server.New(server.Options{
		Hosts: []string{domain}, Store: st, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Features: []server.Feature{roster.Feature, presence.Feature, offline.Feature, mam.Feature},
		Config: func(name string) any {
			if name == "mam" {
				return cfg
			}
			return nil
		},
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	srv.Start(ctx)
	return srv, func() { srv.Stop(); cancel() }, nil
}

// deliver runs live chat between 100 pairs of sessions at rate messages
// per second (0: as fast as 4 senders go) for window, or while
// background runs when window is 0, and reports the delivery latency
// (from the sender's stanza entering the server to the recipient's
// connection getting it) and what background reported.
func deliver(ctx context.Context, srv *server.Server, o options, rate int, window time.Duration, background func(context.Context) (string, error)) (string, error) {
	const pairs, senders = 100, 4
	t0 := time.Now()
	var mu sync.Mutex
	var lat []time.Duration
	var from []*server.Session
	var tos []jid.JID
	var bound []*server.Session
	for i := range pairs {
		a, b := jid.MustParse(user(i)+"/bench"), jid.MustParse(user(pairs+i)+"/bench")
		for _, j := range []jid.JID{a, b} {
			s, err := srv.Bind(ctx, j, server.NewSessionID(), &conn{t0: t0, mu: &mu, lat: &lat})
			if err != nil {
				return "", err
			}
			bound = append(bound, s)
		}
		from = append(from, bound[len(bound)-2])
		tos = append(tos, b)
	}
	defer func() {
		for _, s := range bound {
			srv.Unbind(ctx, s)
		}
	}()

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var bgResult string
	var bgErr error
	bgDone := make(chan struct{})
	if background != nil {
		go func() {
			defer close(bgDone)
			bgResult, bgErr = background(wctx)
			if window == 0 {
				stop()
			}
		}()
	} else {
		close(bgDone)
	}
	if window > 0 {
		go func() {
			select {
			case <-time.After(window):
			case <-wctx.Done():
			}
			stop()
		}()
	}
	var sentN atomic.Int64
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick *time.Ticker
			if rate > 0 {
				tick = time.NewTicker(time.Second * senders / time.Duration(rate))
				defer tick.Stop()
			}
			for i := g; ; i += senders {
				if tick != nil {
					select {
					case <-tick.C:
					case <-wctx.Done():
						return
					}
				} else if wctx.Err() != nil {
					return
				}
				k := i % pairs
				sent := time.Since(t0)
				el := xml.New(xml.NSClient, "message").SetAttr("type", "chat").SetAttr("id", strconv.FormatInt(int64(sent), 10))
				el.AppendText(xml.NSClient, "body", "live message "+strconv.Itoa(i)+" of typical length for a chat.")
				st := &server.Stanza{El: el, Kind: server.KindMessage, Type: "chat", ID: el.Attr("id"), Origin: from[k]}
				st.SetFrom(from[k].JID())
				st.SetTo(tos[k])
				srv.Inbound(ctx, st)
				sentN.Add(1)
			}
		}()
	}
	wg.Wait()
	<-bgDone
	el := time.Since(t0)
	if bgErr != nil {
		return "", bgErr
	}
	mu.Lock()
	defer mu.Unlock()
	out := fmt.Sprintf("%d messages in %s (%.0f/s), latency %s", sentN.Load(), el.Round(time.Millisecond), float64(sentN.Load())/el.Seconds(), percentiles(lat))
	if bgResult != "" {
		out += "; " + bgResult
	}
	return out, nil
}
