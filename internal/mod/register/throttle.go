package register

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"stoa.im/stoa/internal/store"
)

// The registration throttle. Two families of sliding windows:
//
//   - accounts created, per address, per network (IPv4 /24, IPv6 /48 and
//     /64) and in total. A sign-up reserves a slot in each of its windows
//     after every other policy agreed (so a refused attempt never uses the
//     budget) and the slot becomes a sign-up time once the account exists.
//     These windows are rebuilt from the registration log at start.
//   - refused attempts, per address and per network, counted when a
//     sign-up is refused for its content (name, CAPTCHA, invitation); too
//     many and the source's attempts are refused outright for a while.
//     These windows are saved in the store every few seconds and at stop.
//
// A window is the times of its last max events; it is full when it holds
// max times newer than now − period.

// scope names one window kind; it is the prefix of the window keys and
// part of the refusal reason.
type scope string

const (
	scopeIP     scope = "ip"
	scopeV424   scope = "ipv4_24"
	scopeV648   scope = "ipv6_48"
	scopeV664   scope = "ipv6_64"
	scopeGlobal scope = "global"
)

// maxThrottleKeys bounds each family's table; when full, expired windows
// are swept and then arbitrary ones dropped.
const maxThrottleKeys = 200000

type window struct {
	times []time.Time // oldest first, at most max entries
}

// count returns the events newer than since.
func (w *window) count(since time.Time) int {
	if w == nil {
		return 0
	}
	i, _ := slices.BinarySearchFunc(w.times, since, func(t, s time.Time) int { return t.Compare(s) })
	// times[i:] are >= since; an event exactly at since is outside the window.
	for i < len(w.times) && !w.times[i].After(since) {
		i++
	}
	return len(w.times) - i
}

func (w *window) add(t time.Time, keep int) {
	i, _ := slices.BinarySearchFunc(w.times, t, func(a, b time.Time) int { return a.Compare(b) })
	w.times = slices.Insert(w.times, i, t)
	if keep > 0 && len(w.times) > keep {
		w.times = slices.Delete(w.times, 0, len(w.times)-keep)
	}
}

// newest returns the newest time (zero for none).
func (w *window) newest() time.Time {
	if w == nil || len(w.times) == 0 {
		return time.Time{}
	}
	return w.times[len(w.times)-1]
}

type limitSpec struct {
	scope scope
	max   int
	per   time.Duration
}

// throttle holds both families. It is safe for concurrent use.
type throttle struct {
	now     func() time.Time
	success map[scope]limitSpec
	refused map[scope]limitSpec // ip and the network scopes
	exempt  []netip.Prefix

	mu       sync.Mutex
	accounts map[string]*window
	pending  map[string]int // reservations not yet committed or released
	failures map[string]*window
	dirty    map[string]bool // failure windows not yet saved
}

func newThrottle(c ThrottleConfig, now func() time.Time) (*throttle, error) {
	exempt, err := parseNets(c.Exempt)
	if err != nil {
		return nil, err
	}
	spec := func(s scope, l Limit) limitSpec { return limitSpec{scope: s, max: l.Max, per: time.Duration(l.Period)} }
	t := &throttle{
		now: now,
		success: map[scope]limitSpec{
			scopeIP: spec(scopeIP, c.IP), scopeV424: spec(scopeV424, c.IPv424),
			scopeV648: spec(scopeV648, c.IPv648), scopeV664: spec(scopeV664, c.IPv664),
			scopeGlobal: spec(scopeGlobal, c.Global),
		},
		refused: map[scope]limitSpec{
			scopeIP: spec(scopeIP, c.RefusedIP), scopeV424: spec(scopeV424, c.RefusedNet),
			scopeV648: spec(scopeV648, c.RefusedNet), scopeV664: spec(scopeV664, c.RefusedNet),
		},
		exempt:   exempt,
		accounts: make(map[string]*window),
		pending:  make(map[string]int),
		failures: make(map[string]*window),
		dirty:    make(map[string]bool),
	}
	return t, nil
}

// throttleKey is one window a source counts in.
type throttleKey struct {
	scope scope
	key   string
}

// keys returns the windows of ip: its address and networks (unless the
// address is exempt), and the global window when global is set. An
// invalid address (unknown source) counts as one shared source.
func (t *throttle) keys(ip netip.Addr, global bool) []throttleKey {
	var out []throttleKey
	if global {
		out = append(out, throttleKey{scopeGlobal, "global"})
	}
	if !ip.IsValid() {
		return append(out, throttleKey{scopeIP, "ip/unknown"})
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range t.exempt {
		if p.Contains(ip) {
			return out
		}
	}
	out = append(out, throttleKey{scopeIP, "ip/" + ip.String()})
	if ip.Is4() {
		return append(out, throttleKey{scopeV424, "ipv4_24/" + netip.PrefixFrom(ip, 24).Masked().String()})
	}
	return append(out,
		throttleKey{scopeV648, "ipv6_48/" + netip.PrefixFrom(ip, 48).Masked().String()},
		throttleKey{scopeV664, "ipv6_64/" + netip.PrefixFrom(ip, 64).Masked().String()})
}

// blocked describes a full window: which one, and when it frees a slot.
type blocked struct {
	scope   scope
	refused bool // the refused-attempts family
	retry   time.Time
}

// checkAccounts reports the first full account window of ip (pending
// reservations count as sign-ups), or nil. t.mu must be held.
func (t *throttle) checkAccountsLocked(ip netip.Addr, now time.Time) *blocked {
	for _, k := range t.keys(ip, true) {
		l := t.success[k.scope]
		if l.max <= 0 {
			continue
		}
		w := t.accounts[k.key]
		n := w.count(now.Add(-l.per)) + t.pending[k.key]
		if n < l.max {
			continue
		}
		b := &blocked{scope: k.scope, retry: now.Add(l.per)}
		if w != nil && len(w.times) >= l.max-t.pending[k.key] && l.max-t.pending[k.key] > 0 {
			// The slot frees when the oldest of the counted sign-ups leaves
			// the window.
			b.retry = w.times[len(w.times)-(l.max-t.pending[k.key])].Add(l.per)
		}
		return b
	}
	return nil
}

// checkRefused reports the first full refused-attempts window of ip.
// t.mu must be held.
func (t *throttle) checkRefusedLocked(ip netip.Addr, now time.Time) *blocked {
	for _, k := range t.keys(ip, false) {
		l := t.refused[k.scope]
		if l.max <= 0 {
			continue
		}
		w := t.failures[k.key]
		if w.count(now.Add(-l.per)) < l.max {
			continue
		}
		return &blocked{scope: k.scope, refused: true, retry: w.times[len(w.times)-l.max].Add(l.per)}
	}
	return nil
}

// Check reports whether a sign-up from ip would be refused now (without
// reserving anything): full account windows first, then refused attempts.
func (t *throttle) Check(ip netip.Addr) *blocked {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.checkAccountsLocked(ip, now); b != nil {
		return b
	}
	return t.checkRefusedLocked(ip, now)
}

// reservation is a slot held in each account window of one sign-up.
type reservation struct{ keys []string }

// Reserve takes a slot in every account window of ip, or reports the
// full one. Windows of exempt addresses are skipped, but the global one
// still applies.
func (t *throttle) Reserve(ip netip.Addr) (*reservation, *blocked) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.checkAccountsLocked(ip, now); b != nil {
		return nil, b
	}
	r := &reservation{}
	for _, k := range t.keys(ip, true) {
		t.pending[k.key]++
		r.keys = append(r.keys, k.key)
	}
	return r, nil
}

// Commit turns a reservation into a sign-up at time at.
func (t *throttle) Commit(r *reservation, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unpendLocked(r)
	for _, k := range r.keys {
		t.addAccountLocked(k, at)
	}
}

// Release gives a reservation back (the sign-up failed).
func (t *throttle) Release(r *reservation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unpendLocked(r)
}

func (t *throttle) unpendLocked(r *reservation) {
	for _, k := range r.keys {
		if t.pending[k]--; t.pending[k] <= 0 {
			delete(t.pending, k)
		}
	}
}

// Count records a sign-up that took no reservation (invited sign-ups,
// which the throttles do not stop but which still count).
func (t *throttle) Count(ip netip.Addr, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.keys(ip, true) {
		t.addAccountLocked(k.key, at)
	}
}

func (t *throttle) scopeOf(key string) scope {
	for i := range len(key) {
		if key[i] == '/' {
			return scope(key[:i])
		}
	}
	return scope(key)
}

func (t *throttle) addAccountLocked(key string, at time.Time) {
	l := t.success[t.scopeOf(key)]
	if l.max <= 0 {
		return
	}
	w := t.accounts[key]
	if w == nil {
		if len(t.accounts) >= maxThrottleKeys {
			t.sweepLocked(t.accounts, t.success, t.now(), false)
		}
		w = &window{}
		t.accounts[key] = w
	}
	w.add(at, l.max)
}

// Refused records a refused attempt from ip.
func (t *throttle) Refused(ip netip.Addr) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.keys(ip, false) {
		l := t.refused[k.scope]
		if l.max <= 0 {
			continue
		}
		w := t.failures[k.key]
		if w == nil {
			if len(t.failures) >= maxThrottleKeys {
				t.sweepLocked(t.failures, t.refused, now, true)
			}
			w = &window{}
			t.failures[k.key] = w
		}
		w.add(now, l.max)
		t.dirty[k.key] = true
	}
}

// sweepLocked drops windows with nothing left inside their period, and
// arbitrary ones if the table is still full. Dropped refused-attempt
// windows (persist) are removed from the store at the next save.
func (t *throttle) sweepLocked(m map[string]*window, limits map[scope]limitSpec, now time.Time, persist bool) {
	for k, w := range m {
		l := limits[t.scopeOf(k)]
		if !w.newest().After(now.Add(-l.per)) {
			delete(m, k)
			if persist {
				t.dirty[k] = true
			}
		}
	}
	// Still full: drop arbitrary windows down to 90%, so that the next
	// sweeps are not on every insert.
	if len(m) < maxThrottleKeys {
		return
	}
	for k := range m {
		if len(m) < maxThrottleKeys*9/10 {
			break
		}
		delete(m, k)
		if persist {
			t.dirty[k] = true
		}
	}
}

// Sweep drops expired windows (called periodically).
func (t *throttle) Sweep() {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(t.accounts, t.success, now, false)
	t.sweepLocked(t.failures, t.refused, now, true)
}

// maxPeriod is the longest account window period.
func (t *throttle) maxAccountPeriod() time.Duration {
	var d time.Duration
	for _, l := range t.success {
		if l.max > 0 {
			d = max(d, l.per)
		}
	}
	return d
}

func (t *throttle) maxRefusedPeriod() time.Duration {
	var d time.Duration
	for _, l := range t.refused {
		if l.max > 0 {
			d = max(d, l.per)
		}
	}
	return d
}

// Load rebuilds the account windows from the registration log and the
// refused-attempt windows from the stored throttle state.
func (t *throttle) Load(ctx context.Context, st store.Registration) error {
	now := t.now()
	if d := t.maxAccountPeriod(); d > 0 {
		entries, err := st.Log(ctx, store.RegistrationLogQuery{Since: now.Add(-d)})
		if err != nil {
			return fmt.Errorf("loading recent sign-ups: %w", err)
		}
		for _, e := range entries {
			if e.IP == "" {
				continue // created without a client address (command line)
			}
			ip, err := netip.ParseAddr(e.IP)
			if err != nil {
				continue
			}
			t.Count(ip, e.At)
		}
	}
	entries, err := st.Throttle(ctx)
	if err != nil {
		return fmt.Errorf("loading throttle state: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range entries {
		l, ok := t.refused[t.scopeOf(e.Key)]
		if !ok || l.max <= 0 {
			t.dirty[e.Key] = true // no longer configured: removed at the next save
			continue
		}
		w := &window{}
		for _, tm := range e.Times {
			if tm.After(now.Add(-l.per)) {
				w.add(tm, l.max)
			}
		}
		if len(w.times) > 0 {
			t.failures[e.Key] = w
		} else {
			t.dirty[e.Key] = true
		}
	}
	return nil
}

// Save writes the refused-attempt windows changed since the last save.
func (t *throttle) Save(ctx context.Context, st store.Registration) error {
	t.mu.Lock()
	entries := make([]store.ThrottleEntry, 0, len(t.dirty))
	for k := range t.dirty {
		e := store.ThrottleEntry{Key: k}
		if w := t.failures[k]; w != nil {
			e.Times = slices.Clone(w.times)
		}
		entries = append(entries, e)
	}
	clear(t.dirty)
	t.mu.Unlock()
	if len(entries) == 0 {
		return nil
	}
	slices.SortFunc(entries, func(a, b store.ThrottleEntry) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	if err := st.PutThrottle(ctx, entries); err != nil {
		// Mark them dirty again so the next save retries.
		t.mu.Lock()
		for _, e := range entries {
			t.dirty[e.Key] = true
		}
		t.mu.Unlock()
		return err
	}
	return nil
}
