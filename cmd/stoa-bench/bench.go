package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stoa.im/stoa/internal/xmpp/xml"
)

// Result is the JSON document of one run.
type Result struct {
	Tool     string    `json:"tool"`
	Started  time.Time `json:"started"`
	Machine  Machine   `json:"machine"`
	Settings Config    `json:"settings"`
	FileLim  uint64    `json:"bench_open_files_limit"`

	Accounts   *AccountsResult   `json:"accounts,omitempty"`
	Warmup     *LoginResult      `json:"warmup,omitempty"`
	Rosters    *RostersResult    `json:"rosters,omitempty"`
	Login      *LoginResult      `json:"login,omitempty"`
	Idle       *IdleResult       `json:"idle,omitempty"`
	Chat       *ChatResult       `json:"chat,omitempty"`
	Presence   *PresenceResult   `json:"presence,omitempty"`
	Saturation *SaturationResult `json:"saturation,omitempty"`
	Capacity   *CapacityResult   `json:"capacity,omitempty"`

	// Sessions the server closed during the run (not by the tool).
	Disconnects int64  `json:"unexpected_disconnects"`
	FirstClose  string `json:"first_unexpected_close,omitempty"`
}

// LoginResult is a login storm.
type LoginResult struct {
	Users        int     `json:"users"`
	Concurrency  int     `json:"concurrency"`
	Rate         float64 `json:"rate_asked"`
	OK           int     `json:"ok"`
	Failed       int     `json:"failed"`
	FirstError   string  `json:"first_error,omitempty"`
	PerSecond    float64 `json:"logins_per_second"`
	Latency      Summary `json:"latency"`
	ClientKDF    int     `json:"client_pbkdf2_runs"`
	Usage        Usage   `json:"usage"`
	ServerCPUms  float64 `json:"server_cpu_ms_per_login"`
	ServerRSSEnd int64   `json:"server_rss_after_bytes"`
}

// IdleResult is the server's memory with every session idle.
type IdleResult struct {
	Sessions           int     `json:"sessions"`
	RSSBefore          int64   `json:"rss_before_bytes"`
	RSSAfterLogin      int64   `json:"rss_after_login_bytes"`
	RSSSettled         int64   `json:"rss_settled_bytes"`
	SettleSeconds      float64 `json:"settle_seconds"`
	PerSessionLogin    float64 `json:"bytes_per_session_after_login"`
	PerSessionSettled  float64 `json:"bytes_per_session_settled"`
	ServerCoresWhileIn float64 `json:"server_cores_while_idle"`
}

// ChatResult is one chat phase at a fixed offered rate.
type ChatResult struct {
	Label       string  `json:"label"`
	Senders     int     `json:"senders"`
	PerUserRate float64 `json:"rate_per_user"`
	Offered     float64 `json:"offered_per_second"`
	SentRate    float64 `json:"sent_per_second"`
	Delivered   float64 `json:"delivered_per_second"`
	Sent        uint64  `json:"sent"`
	Received    uint64  `json:"received"`
	Bounced     uint64  `json:"bounced"`
	Lost        int64   `json:"lost"`
	Latency     Summary `json:"latency"`
	Usage       Usage   `json:"usage"`
	CPUPerMsgUs float64 `json:"server_cpu_us_per_message"`
	Held        bool    `json:"held"` // the server kept up (saturation steps)
	// Growth is the median latency of the messages sent in the last fifth
	// of the run minus that of the first fifth: a backlog that builds up
	// during the run shows as growth.
	Growth float64 `json:"latency_growth_ms"`
}

// SaturationResult is the search for the highest rate the server keeps up
// with, then a run at half of it.
type SaturationResult struct {
	Steps      []ChatResult `json:"steps"`
	Saturation float64      `json:"saturation_per_second"`
	Half       *ChatResult  `json:"half"`
}

// PresenceResult is presence fan-out to rosters.
type PresenceResult struct {
	Contacts     int     `json:"contacts"`
	MutualOK     int     `json:"users_with_all_contacts"`
	PerUserRate  float64 `json:"changes_per_second_per_user"`
	Changes      uint64  `json:"changes_sent"`
	Expected     uint64  `json:"broadcasts_expected"`
	Received     uint64  `json:"broadcasts_received"`
	Lost         int64   `json:"broadcasts_lost"`
	Rate         float64 `json:"broadcasts_per_second"`
	Latency      Summary `json:"latency"`
	Usage        Usage   `json:"usage"`
	CPUPerBcstUs float64 `json:"server_cpu_us_per_broadcast"`
}

// RostersResult is the preparation of mutual contacts.
type RostersResult struct {
	Pairs    int     `json:"pairs_requested"`
	Complete int     `json:"users_complete"`
	Seconds  float64 `json:"seconds"`
}

// AccountsResult is account creation.
type AccountsResult struct {
	Method   string  `json:"method"`
	Created  int     `json:"created"`
	Existing int     `json:"existing"`
	Failed   int     `json:"failed"`
	Error    string  `json:"first_error,omitempty"`
	Seconds  float64 `json:"seconds"`
}

// CapacityResult is the most sessions the server held.
type CapacityResult struct {
	Target    int          `json:"target"`
	Sessions  int          `json:"sessions"`
	StoppedBy string       `json:"stopped_by"`
	Points    []CapacityPt `json:"points"`
}

// CapacityPt is the server's RSS at one session count.
type CapacityPt struct {
	Sessions   int     `json:"sessions"`
	RSS        int64   `json:"rss_bytes"`
	PerSession float64 `json:"bytes_per_session"`
	LoginsPerS float64 `json:"logins_per_second"`
}

// bench is one run against one server.
type bench struct {
	cfg Config
	d   *dialer
	log io.Writer
	res *Result

	mu      sync.Mutex
	clients []*client // by index (0 = account First); nil when offline

	chatEpoch  atomic.Int64
	chatDur    atomic.Int64 // of the current chat run, ns
	chatEarly  latencies    // of messages sent in its first fifth
	chatLate   latencies    // of messages sent in its last fifth
	chatLat    latencies
	chatRecv   atomic.Uint64
	chatBounce atomic.Uint64
	presEpoch  atomic.Int64
	presLat    latencies
	presRecv   atomic.Uint64

	disconnects atomic.Int64
	firstClose  atomic.Value // string
	rssBefore   int64
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s %s: %s\n", time.Now().Format("15:04:05"), b.cfg.Server, fmt.Sprintf(format, args...))
}

func (b *bench) userName(i int) string { return b.cfg.UserPrefix + strconv.Itoa(b.cfg.First+i) }
func (b *bench) password(i int) string { return b.cfg.PassPrefix + strconv.Itoa(b.cfg.First+i) }
func (b *bench) bareJID(i int) string  { return b.userName(i) + "@" + b.cfg.Domain }

func (b *bench) newClient(i int) *client {
	return &client{d: b.d, idx: i, user: b.userName(i), pass: b.password(i), done: make(chan struct{})}
}

func runBench(ctx context.Context, cfg Config, log io.Writer) (*Result, error) {
	tlsCfg, err := newTLSConfig(cfg.Domain, cfg.CA)
	if err != nil {
		return nil, err
	}
	d := &dialer{addr: cfg.Addr, domain: cfg.Domain, direct: cfg.TLS == "direct", mech: cfg.Mech,
		resource: cfg.Resource, tls: tlsCfg, keys: newKeyCache(), timeout: time.Duration(cfg.Timeout)}
	for _, s := range cfg.Sources {
		d.sources = append(d.sources, netip.MustParseAddr(s))
	}
	if cfg.Keys != "" {
		if err := d.keys.load(cfg.Keys); err != nil {
			return nil, err
		}
	}
	b := &bench{cfg: cfg, d: d, log: log, clients: make([]*client, cfg.Users)}
	b.res = &Result{Tool: "stoa-bench", Started: time.Now().UTC(), Machine: machine(), Settings: cfg, FileLim: raiseFileLimit()}
	defer func() {
		b.closeAll()
		b.res.Disconnects = b.disconnects.Load()
		if s, ok := b.firstClose.Load().(string); ok {
			b.res.FirstClose = s
		}
		if cfg.Keys != "" && d.keys.len() > 0 {
			_ = d.keys.save(cfg.Keys)
		}
	}()
	if s, err := sampleProc(cfg.PID); err == nil {
		b.rssBefore = s.rss
	} else {
		return b.res, err
	}
	for _, sc := range cfg.Scenarios {
		if ctx.Err() != nil {
			return b.res, ctx.Err()
		}
		var err error
		switch sc {
		case "accounts":
			b.res.Accounts, err = b.createAccounts(ctx)
		case "warmup":
			b.res.Warmup, err = b.warmup(ctx)
		case "rosters":
			b.res.Rosters, err = b.setupRosters(ctx)
		case "login":
			b.res.Login, err = b.loginStorm(ctx)
		case "idle":
			b.res.Idle, err = b.idle(ctx)
		case "chat":
			b.res.Chat, err = b.chatFixed(ctx)
		case "presence":
			b.res.Presence, err = b.presence(ctx)
		case "saturation":
			b.res.Saturation, err = b.saturation(ctx)
		case "capacity":
			b.res.Capacity, err = b.capacity(ctx)
		}
		if err != nil {
			return b.res, fmt.Errorf("%s: %w", sc, err)
		}
	}
	return b.res, nil
}

// element implements handler.
func (b *bench) element(c *client, el *xml.Element) {
	switch el.Local {
	case "message":
		body := el.ChildText(xml.NSClient, "body")
		if !strings.HasPrefix(body, "sb ") {
			return
		}
		if el.Attr("type") == "error" {
			b.chatBounce.Add(1)
			return
		}
		_, stamp, ok := parseStamp(body, true)
		if !ok || stamp < b.chatEpoch.Load() {
			return
		}
		lat := time.Duration(time.Now().UnixNano() - stamp)
		b.chatLat.add(lat)
		switch off, dur := stamp-b.chatEpoch.Load(), b.chatDur.Load(); {
		case off < dur/5:
			b.chatEarly.add(lat)
		case off >= dur-dur/5:
			b.chatLate.add(lat)
		}
		b.chatRecv.Add(1)
	case "presence":
		typ := el.Attr("type")
		switch typ {
		case "":
			st := el.ChildText(xml.NSClient, "status")
			if !strings.HasPrefix(st, "sbp ") {
				return
			}
			if f := el.Attr("from"); strings.HasPrefix(f, c.user+"@") {
				return // the server's copy of our own broadcast
			}
			_, stamp, ok := parseStamp(st, false)
			if !ok || stamp < b.presEpoch.Load() {
				return
			}
			b.presLat.add(time.Duration(time.Now().UnixNano() - stamp))
			b.presRecv.Add(1)
		case "subscribe":
			from := el.Attr("from")
			if i := strings.IndexByte(from, '/'); i >= 0 {
				from = from[:i]
			}
			_ = c.write([]byte("<presence type='subscribed' to='" + xmlEscape(from) + "'/>"))
			c.mu.Lock()
			s := c.roster[from]
			ask := s != "to" && s != "both" && !c.asked[from]
			if ask {
				if c.asked == nil {
					c.asked = map[string]bool{}
				}
				c.asked[from] = true
			}
			c.mu.Unlock()
			if ask {
				_ = c.write([]byte("<presence type='subscribe' to='" + xmlEscape(from) + "'/>"))
			}
		}
	}
}

// closed implements handler.
func (b *bench) closed(c *client, err error) {
	b.mu.Lock()
	if c.idx < len(b.clients) && b.clients[c.idx] == c {
		b.clients[c.idx] = nil
	}
	b.mu.Unlock()
	if !c.closing.Load() {
		b.disconnects.Add(1)
		b.firstClose.CompareAndSwap(nil, fmt.Sprintf("%s: %v", c.user, err))
	}
}

func (b *bench) online() []*client {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*client, 0, len(b.clients))
	for _, c := range b.clients {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (b *bench) closeAll() {
	b.mu.Lock()
	cs := append([]*client(nil), b.clients...)
	for i := range b.clients {
		b.clients[i] = nil
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range cs {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.close()
			select {
			case <-c.done:
			case <-time.After(5 * time.Second):
			}
		}()
	}
	wg.Wait()
}

// loginMany logs in the accounts idxs with the configured concurrency
// and rate and keeps the sessions (keep) or closes them at once.
func (b *bench) loginMany(ctx context.Context, idxs []int, keep bool, presence bool) *LoginResult {
	cfg := b.cfg
	res := &LoginResult{Users: len(idxs), Concurrency: cfg.LoginConcurrency, Rate: cfg.LoginRate}
	var lat latencies
	var ok, failed, kdf atomic.Int64
	var firstErr atomic.Value
	work := make(chan int)
	m := startMeter(cfg.PID)
	var wg sync.WaitGroup
	for range cfg.LoginConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c := b.newClient(i)
				pres := ""
				if presence {
					pres = "<presence/>"
				}
				r, err := b.d.login(ctx, c, cfg.Roster, pres)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", c.user, err))
					continue
				}
				ok.Add(1)
				lat.add(r.total)
				if r.derived {
					kdf.Add(1)
				}
				if !keep {
					c.closing.Store(true)
					_ = c.write([]byte("</stream:stream>"))
					_ = c.conn.Close()
					continue
				}
				b.mu.Lock()
				b.clients[i] = c
				b.mu.Unlock()
				go c.run(b)
			}
		}()
	}
	start := time.Now()
feed:
	for n, i := range idxs {
		if cfg.LoginRate > 0 {
			due := start.Add(time.Duration(float64(n) / cfg.LoginRate * float64(time.Second)))
			if w := time.Until(due); w > 0 {
				select {
				case <-time.After(w):
				case <-ctx.Done():
					break feed
				}
			}
		}
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	res.Usage = m.stop()
	res.OK, res.Failed, res.ClientKDF = int(ok.Load()), int(failed.Load()), int(kdf.Load())
	if s, ok := firstErr.Load().(string); ok {
		res.FirstError = s
	}
	res.Latency = lat.summary()
	if res.Usage.Seconds > 0 {
		res.PerSecond = float64(res.OK) / res.Usage.Seconds
	}
	if res.OK > 0 {
		res.ServerCPUms = res.Usage.ServerCPU * 1000 / float64(res.OK)
	}
	res.ServerRSSEnd = res.Usage.ServerRSSEnd
	return res
}

func (b *bench) offline() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int
	for i, c := range b.clients {
		if c == nil {
			out = append(out, i)
		}
	}
	return out
}

// warmup logs every account in and out once, so that the SCRAM keys are
// cached (the client's PBKDF2 is not measured later) and the accounts are
// known to work.
func (b *bench) warmup(ctx context.Context) (*LoginResult, error) {
	all := make([]int, b.cfg.Users)
	for i := range all {
		all[i] = i
	}
	b.logf("warm-up: %d logins (client-side SCRAM keys are cached)", len(all))
	r := b.loginMany(ctx, all, false, false)
	b.logf("warm-up: %d ok, %d failed %s", r.OK, r.Failed, r.FirstError)
	if r.Failed > 0 {
		return r, fmt.Errorf("%d of %d logins failed, first: %s", r.Failed, r.Users, r.FirstError)
	}
	return r, nil
}

// loginStorm logs in every account that is not online and keeps the sessions.
func (b *bench) loginStorm(ctx context.Context) (*LoginResult, error) {
	idxs := b.offline()
	b.logf("login storm: %d logins, %d at a time, rate %v/s (0 = unbounded)", len(idxs), b.cfg.LoginConcurrency, b.cfg.LoginRate)
	r := b.loginMany(ctx, idxs, true, true)
	b.logf("login storm: %d ok in %.1fs (%.0f/s), p50 %.1f ms, p99 %.1f ms, server %.2f ms CPU/login, bench %.0f%% of the machine",
		r.OK, r.Usage.Seconds, r.PerSecond, r.Latency.P50, r.Latency.P99, r.ServerCPUms, 100*r.Usage.BenchShare)
	if r.Failed > 0 {
		return r, fmt.Errorf("%d of %d logins failed, first: %s", r.Failed, r.Users, r.FirstError)
	}
	return r, nil
}

// idle waits with every session idle and reads the server's RSS.
func (b *bench) idle(ctx context.Context) (*IdleResult, error) {
	n := len(b.online())
	if n == 0 {
		return nil, errors.New("no session is online (run the login scenario first)")
	}
	res := &IdleResult{Sessions: n, RSSBefore: b.rssBefore}
	if s, err := sampleProc(b.cfg.PID); err == nil {
		res.RSSAfterLogin = s.rss
	}
	m := startMeter(b.cfg.PID)
	b.logf("idle: %d sessions, waiting %s", n, b.cfg.Settle)
	select {
	case <-time.After(time.Duration(b.cfg.Settle)):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	u := m.stop()
	res.SettleSeconds = u.Seconds
	res.RSSSettled = u.ServerRSSEnd
	res.ServerCoresWhileIn = u.ServerCores
	if res.RSSBefore > 0 {
		res.PerSessionLogin = float64(res.RSSAfterLogin-res.RSSBefore) / float64(n)
		res.PerSessionSettled = float64(res.RSSSettled-res.RSSBefore) / float64(n)
	}
	b.logf("idle: RSS %s before, %s after logins, %s settled: %.1f KB per session (%.1f KB right after the logins)",
		mib(res.RSSBefore), mib(res.RSSAfterLogin), mib(res.RSSSettled), res.PerSessionSettled/1000, res.PerSessionLogin/1000)
	return res, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// chatRun sends messages at total rate (messages/s) for dur from random
// online users to random online users, then waits for stragglers.
func (b *bench) chatRun(ctx context.Context, label string, rate float64, dur time.Duration) *ChatResult {
	cs := b.online()
	res := &ChatResult{Label: label, Senders: len(cs), Offered: rate}
	if len(cs) < 2 {
		return res
	}
	res.PerUserRate = rate / float64(len(cs))
	b.chatLat.reset()
	b.chatEarly.reset()
	b.chatLate.reset()
	b.chatDur.Store(int64(dur))
	b.chatRecv.Store(0)
	b.chatBounce.Store(0)
	pad := strings.Repeat("x", b.cfg.MsgSize)
	jids := make([]string, len(cs))
	for i, c := range cs {
		jids[i] = xmlEscape(c.bare())
	}
	start := time.Now()
	b.chatEpoch.Store(start.UnixNano())
	m := startMeter(b.cfg.PID)
	var sent atomic.Uint64
	workers := 4 * runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			per := rate / float64(workers)
			var n uint64
			for {
				el := time.Since(start)
				if el >= dur || ctx.Err() != nil {
					return
				}
				due := uint64(el.Seconds() * per)
				for ; n < due; n++ {
					from := rng.IntN(len(cs))
					to := rng.IntN(len(cs) - 1)
					if to >= from {
						to++
					}
					c := cs[from]
					seq := sent.Add(1)
					err := c.writeFunc(func(buf []byte) []byte {
						return appendMessage(buf, jids[to], c.idx, seq, time.Now().UnixNano(), pad)
					})
					if err != nil {
						sent.Add(^uint64(0))
					}
					if time.Since(start) >= dur {
						break
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(start)
	res.Sent = sent.Load()
	// Wait for messages in flight.
	deadline := time.Now().Add(time.Duration(b.cfg.Drain))
	for time.Now().Before(deadline) && b.chatRecv.Load()+b.chatBounce.Load() < res.Sent && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	res.Usage = m.stop()
	res.Received = b.chatRecv.Load()
	res.Bounced = b.chatBounce.Load()
	res.Lost = int64(res.Sent) - int64(res.Received)
	res.Latency = b.chatLat.summary()
	res.Growth = b.chatLate.summary().P50 - b.chatEarly.summary().P50
	res.SentRate = float64(res.Sent) / sendTime.Seconds()
	res.Delivered = float64(res.Received) / sendTime.Seconds()
	if res.Received > 0 {
		res.CPUPerMsgUs = res.Usage.ServerCPU * 1e6 / float64(res.Received)
	}
	return res
}

func (b *bench) logChat(r *ChatResult) {
	b.logf("chat %s: offered %.0f/s, sent %.0f/s, delivered %.0f/s, lost %d (bounced %d), latency p50 %.2f p90 %.2f p99 %.2f max %.1f ms (growth %+.1f ms), server %.1f µs CPU/msg (%.2f cores), bench %.2f cores",
		r.Label, r.Offered, r.SentRate, r.Delivered, r.Lost, r.Bounced, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.Growth,
		r.CPUPerMsgUs, r.Usage.ServerCores, r.Usage.BenchCores)
}

func (b *bench) chatFixed(ctx context.Context) (*ChatResult, error) {
	n := len(b.online())
	if n < 2 {
		return nil, errors.New("fewer than two sessions online (run the login scenario first)")
	}
	r := b.chatRun(ctx, "fixed", b.cfg.MsgRate*float64(n), time.Duration(b.cfg.ChatDuration))
	b.logChat(r)
	return r, nil
}

// held reports whether the server kept up with a step: everything was
// sent on time and delivered, and the median latency stayed low. A
// server that falls behind builds a backlog that grows for the whole
// step, which moves the median; the tail is left to the run at half the
// rate, since on a shared machine it also measures the scheduler.
// held reports whether the server kept up with a saturation step: at
// least 95 % of the messages were sent on time, none was lost, and no
// backlog built up: the median latency of the messages sent in the step's
// last fifth is at most 50 ms above that of its first fifth, and the
// median is under 250 ms. A server past its capacity queues the excess,
// so the latency of what was sent late in the step grows with the step's
// length; below its capacity it stays flat however long the step.
func held(r *ChatResult) bool {
	return r.Sent > 0 && r.SentRate >= 0.95*r.Offered && r.Lost <= 0 && r.Latency.P50 < 250 && r.Growth <= 50
}

// saturation raises the rate step by step until the server falls behind,
// narrows the limit between the last good and the first bad step, then
// runs at half of it.
func (b *bench) saturation(ctx context.Context) (*SaturationResult, error) {
	res := &SaturationResult{}
	step := time.Duration(b.cfg.SatStep)
	run := func(rate float64) *ChatResult {
		if missing := b.offline(); len(missing) > 0 {
			b.logf("saturation: logging %d dropped sessions in again", len(missing))
			b.loginMany(ctx, missing, true, true)
		}
		r := b.chatRun(ctx, fmt.Sprintf("%.0f/s", rate), rate, step)
		r.Held = held(r)
		b.logChat(r)
		res.Steps = append(res.Steps, *r)
		if !r.Held {
			// Let the backlog drain before the next step.
			time.Sleep(5 * time.Second)
		}
		return r
	}
	good, bad := 0.0, 0.0
	for rate := b.cfg.SatStart; rate <= b.cfg.SatMax && ctx.Err() == nil; rate *= b.cfg.SatFactor {
		r := run(rate)
		if !r.Held {
			bad = rate
			break
		}
		good = r.Delivered
	}
	for i := 0; i < 2 && bad > 0 && good > 0 && ctx.Err() == nil; i++ {
		mid := (good + bad) / 2
		if r := run(mid); r.Held {
			good = r.Delivered
		} else {
			bad = mid
		}
	}
	res.Saturation = good
	if good == 0 {
		return res, errors.New("the server did not keep up even with the first step; lower -sat-start")
	}
	b.logf("saturation: %.0f messages/s; now %s at half of it", good, b.cfg.SatHalfTime)
	if missing := b.offline(); len(missing) > 0 {
		b.loginMany(ctx, missing, true, true)
	}
	time.Sleep(2 * time.Second)
	h := b.chatRun(ctx, "half", good/2, time.Duration(b.cfg.SatHalfTime))
	h.Held = held(h)
	b.logChat(h)
	res.Half = h
	return res, nil
}

// ring returns the contacts of account i: its K nearest neighbours on a
// ring of all accounts.
func (b *bench) ring(i int) []int {
	n := b.cfg.Users
	var out []int
	for d := 1; d <= b.cfg.Contacts/2; d++ {
		out = append(out, (i+d)%n, (i-d+n)%n)
	}
	return out
}

// mutualOK counts online users whose roster has every ring contact with
// subscription both.
func (b *bench) mutualOK() int {
	ok := 0
	for _, c := range b.online() {
		all := true
		for _, j := range b.ring(c.idx) {
			if c.contactState(b.bareJID(j)) != "both" {
				all = false
				break
			}
		}
		if all {
			ok++
		}
	}
	return ok
}

// setupRosters makes every account a mutual contact of its ring
// neighbours through the protocol (subscribe / subscribed both ways), so
// it works on any server. Accounts already set up are left alone.
func (b *bench) setupRosters(ctx context.Context) (*RostersResult, error) {
	start := time.Now()
	if missing := b.offline(); len(missing) > 0 {
		r := b.loginMany(ctx, missing, true, true)
		if r.Failed > 0 {
			return nil, fmt.Errorf("%d logins failed, first: %s", r.Failed, r.FirstError)
		}
	}
	res := &RostersResult{}
	ask := func() int {
		n := 0
		for _, c := range b.online() {
			for _, j := range b.ring(c.idx) {
				if j < c.idx {
					continue // the lower index asks
				}
				bare := b.bareJID(j)
				if s := c.contactState(bare); s == "both" {
					continue
				}
				c.mu.Lock()
				if c.asked == nil {
					c.asked = map[string]bool{}
				}
				c.asked[bare] = true
				c.mu.Unlock()
				_ = c.write([]byte("<presence type='subscribe' to='" + xmlEscape(bare) + "'/>"))
				n++
			}
		}
		return n
	}
	res.Pairs = ask()
	b.logf("rosters: %d subscription requests for %d contacts each", res.Pairs, b.cfg.Contacts)
	deadline := time.Now().Add(3 * time.Minute)
	retried := false
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		res.Complete = b.mutualOK()
		if res.Complete == b.cfg.Users {
			break
		}
		if !retried && time.Since(start) > 60*time.Second {
			retried = true
			for _, c := range b.online() {
				c.mu.Lock()
				c.asked = nil
				c.mu.Unlock()
			}
			b.logf("rosters: %d of %d complete; asking again", res.Complete, b.cfg.Users)
			ask()
		}
	}
	res.Seconds = time.Since(start).Seconds()
	b.logf("rosters: %d of %d users have all %d contacts (%.1fs)", res.Complete, b.cfg.Users, b.cfg.Contacts, res.Seconds)
	// A preparation step: the sessions end, so that a login scenario
	// after it measures fresh logins.
	b.closeAll()
	if res.Complete < b.cfg.Users {
		return res, fmt.Errorf("only %d of %d rosters complete", res.Complete, b.cfg.Users)
	}
	return res, nil
}

// presence: every user changes presence at the set rate; each change
// goes to its K online contacts.
func (b *bench) presence(ctx context.Context) (*PresenceResult, error) {
	cs := b.online()
	if len(cs) < 2 {
		return nil, errors.New("fewer than two sessions online (run the login scenario first)")
	}
	res := &PresenceResult{Contacts: b.cfg.Contacts, PerUserRate: b.cfg.PresenceRate, MutualOK: b.mutualOK()}
	online := make([]bool, b.cfg.Users)
	for _, c := range cs {
		online[c.idx] = true
	}
	fanout := make([]int, len(cs))
	for k, c := range cs {
		for _, j := range b.ring(c.idx) {
			if online[j] && c.contactState(b.bareJID(j)) == "both" {
				fanout[k]++
			}
		}
	}
	b.presLat.reset()
	b.presRecv.Store(0)
	start := time.Now()
	b.presEpoch.Store(start.UnixNano())
	m := startMeter(b.cfg.PID)
	dur := time.Duration(b.cfg.PresenceDuration)
	rate := b.cfg.PresenceRate * float64(len(cs))
	var changes, expected atomic.Uint64
	workers := 2 * runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+7, uint64(start.UnixNano())))
			per := rate / float64(workers)
			var n uint64
			shows := [...]string{"away", "chat", "dnd", "xa"}
			for {
				el := time.Since(start)
				if el >= dur || ctx.Err() != nil {
					return
				}
				for due := uint64(el.Seconds() * per); n < due; n++ {
					k := rng.IntN(len(cs))
					c := cs[k]
					err := c.writeFunc(func(buf []byte) []byte {
						return appendPresence(buf, c.idx, shows[n%4], time.Now().UnixNano())
					})
					if err == nil {
						changes.Add(1)
						expected.Add(uint64(fanout[k]))
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(start)
	res.Changes, res.Expected = changes.Load(), expected.Load()
	deadline := time.Now().Add(time.Duration(b.cfg.Drain))
	for time.Now().Before(deadline) && b.presRecv.Load() < res.Expected && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	res.Usage = m.stop()
	res.Received = b.presRecv.Load()
	res.Lost = int64(res.Expected) - int64(res.Received)
	res.Latency = b.presLat.summary()
	res.Rate = float64(res.Received) / sendTime.Seconds()
	if res.Received > 0 {
		res.CPUPerBcstUs = res.Usage.ServerCPU * 1e6 / float64(res.Received)
	}
	b.logf("presence: %d changes, %d of %d broadcasts received (%.0f/s), latency p50 %.2f p99 %.2f max %.1f ms, server %.1f µs CPU/broadcast",
		res.Changes, res.Received, res.Expected, res.Rate, res.Latency.P50, res.Latency.P99, res.Latency.Max, res.CPUPerBcstUs)
	return res, nil
}

// capacity adds sessions batch by batch until the target, a failure, or
// the server's RSS limit.
func (b *bench) capacity(ctx context.Context) (*CapacityResult, error) {
	res := &CapacityResult{Target: b.cfg.Users, StoppedBy: "target reached"}
	idxs := b.offline()
	for len(idxs) > 0 && ctx.Err() == nil {
		n := min(b.cfg.CapacityBatch, len(idxs))
		r := b.loginMany(ctx, idxs[:n], true, true)
		idxs = idxs[n:]
		online := len(b.online())
		s, _ := sampleProc(b.cfg.PID)
		pt := CapacityPt{Sessions: online, RSS: s.rss, LoginsPerS: r.PerSecond}
		if online > 0 && b.rssBefore > 0 {
			pt.PerSession = float64(s.rss-b.rssBefore) / float64(online)
		}
		res.Points = append(res.Points, pt)
		res.Sessions = online
		b.logf("capacity: %d sessions, server RSS %s (%.1f KB/session), %.0f logins/s, %d failed %s",
			online, mib(s.rss), pt.PerSession/1000, r.PerSecond, r.Failed, r.FirstError)
		if r.Failed > 0 {
			res.StoppedBy = "login failures: " + r.FirstError
			break
		}
		if b.cfg.CapacityMaxRSS > 0 && s.rss > b.cfg.CapacityMaxRSS {
			res.StoppedBy = fmt.Sprintf("server RSS above %s", mib(b.cfg.CapacityMaxRSS))
			break
		}
	}
	if ctx.Err() != nil {
		res.StoppedBy = "interrupted"
	}
	return res, nil
}
