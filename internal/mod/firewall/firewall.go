// Package firewall filters stanzas with rules an administrator writes in
// files: a small declarative language (docs/firewall.md) compiled at load
// into closures, checked with errors that name the file and line, and
// reloaded on SIGHUP or when a file changes. A file with errors never
// replaces rules that work.
//
// Rules run on three chains: local (stanzas from this server's clients,
// before routing), remote (stanzas from other servers, before routing;
// the s2s layer passes them to server.InboundRemote, which runs the
// FromRemote stage this package hooks) and deliver (stanzas to local
// accounts and hosts, whatever their origin). Conditions look at the
// sender and recipient (addresses, domains, named lists), the stanza
// (kind, type, payload, body), the sender's account (age, state), the
// recipient's roster, the connection's IP address and rates. Actions
// pass, drop or bounce the stanza, log it, restrict or suspend the
// sender, file a report and notify the administrators.
//
// Every rule that matches is counted in stoa_firewall_decisions_total
// {chain, rule, action} and logged as one line (policy=firewall, rule,
// at=file:line, actions, from, to, ...); drops and bounces are also
// counted in stoa_policy_denied_total{policy="firewall"}.
package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Feature is the firewall feature.
var Feature = server.Feature{
	Name: "firewall",
	Doc:  "Filters stanzas with rules written in files (by address, domain, list, content, account age and state, roster, IP, rate): pass, drop, bounce, log, restrict or suspend the sender, report, notify admins.",
	XEPs: []server.XEP{
		{Name: "stoa firewall rules (docs/firewall.md)", Status: server.Complete},
	},
	Defaults: Config{PollInterval: config.Duration(5 * time.Second), RateKeys: 10000},
	Setup:    func(s *server.Setup, cfg any) error { return setupWith(s, cfg, options{}) },
}

// Config is the [firewall] table.
type Config struct {
	Files        []string        `toml:"files" help:"Rule files, in the order their rules run; shell patterns such as \"/etc/stoa/firewall/*.rules\" are expanded (sorted). Relative paths are relative to the directory stoa runs in: prefer absolute paths. Empty: no firewall."`
	PollInterval config.Duration `toml:"poll_interval" min:"0" help:"How often the rule files and the list files they read are checked for changes, and reloaded when one changed. 0: reload only on SIGHUP."`
	RateKeys     int             `toml:"rate_keys" min:"1" help:"Most keys (senders, domains, addresses) each rate condition remembers; the least recently seen is forgotten first."`
}

// Sanctions changes the state of local accounts: the account state
// feature provides it. Restrict limits what the account may do; Suspend
// stops it from logging in and ends its sessions.
type Sanctions interface {
	Restrict(ctx context.Context, account jid.JID, reason, by string) error
	Suspend(ctx context.Context, account jid.JID, reason, by string) error
	State(ctx context.Context, account jid.JID) (string, error)
}

// Reports files reports into the administrators' queue: the reports
// feature provides it (the method of server.AbuseReport's doc).
type Reports interface {
	FileReport(ctx context.Context, r *server.AbuseReport) (id int64, err error)
}

// Deps are the services actions use; a nil member makes its actions log
// that they cannot act.
type Deps struct {
	Sanctions Sanctions
	Reports   Reports
}

type feature struct {
	srv  *server.Server
	st   store.Store
	log  *slog.Logger
	cfg  Config
	now  func() time.Time
	m    *metrics
	deps func() Deps

	rules atomic.Pointer[ruleset]

	reloadMu  sync.Mutex
	seen      []stamp  // files read by the last load attempt
	seenRules []string // rule files the last attempt expanded the patterns to

	notifyLimit *policy.Keyed
}

// options replace the feature's collaborators in tests.
type options struct {
	deps func() Deps      // nil: find the services on the server (lookupDeps)
	now  func() time.Time // nil: time.Now
	// created, when set, receives the feature (tests).
	created func(*feature)
}

// setupWith sets the feature up.
func setupWith(s *server.Setup, cfg any, o options) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("firewall: config is %T, want firewall.Config", cfg)
	}
	if c.RateKeys < 1 {
		c.RateKeys = 1
	}
	m, err := newMetrics(s.Metrics())
	if err != nil {
		return err
	}
	f := &feature{
		srv: s.Server(), st: s.Store(), log: s.Logger(), cfg: c, now: o.now, m: m, deps: o.deps,
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.deps == nil {
		f.deps = lookupDeps(s)
	}
	f.notifyLimit = policy.NewKeyed(1.0/60, 5, 1000, f.now)
	if err := f.load("start"); err != nil {
		return err
	}
	if o.created != nil {
		o.created(f)
	}
	s.Hook(server.Inbound, server.PrioPolicy, func(ctx context.Context, st *server.Stanza) server.Result {
		var ip netip.Addr
		if st.Origin != nil {
			ip = st.Origin.RemoteAddr().Addr()
		}
		return f.run(ctx, chainLocal, st, ip)
	})
	s.Hook(server.FromRemote, server.PrioPolicy, func(ctx context.Context, st *server.Stanza) server.Result {
		return f.run(ctx, chainRemote, st, server.PeerAddr(ctx).Addr())
	})
	s.Hook(server.DeliverLocal, server.PrioPolicy, func(ctx context.Context, st *server.Stanza) server.Result {
		ip := server.PeerAddr(ctx).Addr()
		if st.Origin != nil {
			ip = st.Origin.RemoteAddr().Addr()
		}
		return f.run(ctx, chainDeliver, st, ip)
	})
	s.OnReload(func(context.Context) { _ = f.load("reload") })
	s.OnStart(f.poll)
	s.AdminCommand(server.AdminCommand{
		Name: "firewall.reload",
		Help: "Reads the firewall rule files again; on errors the running rules stay and the errors are shown.",
		Run: func(context.Context, map[string]string) (server.AdminResult, error) {
			if err := f.load("admin socket"); err != nil {
				return server.AdminResult{}, err
			}
			rs := f.rules.Load()
			return server.AdminResult{Message: fmt.Sprintf("firewall: %d rules in service from %d file(s)", rs.rules, rs.nfiles)}, nil
		},
	})
	return nil
}

// load compiles the configured files and, if they have no error, puts
// them in service. It is called at start (where an error stops the
// server), on SIGHUP, from the admin socket and when a file changed.
func (f *feature) load(trigger string) error {
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	old := f.rules.Load()
	rs, stamps, err := compileFilesStamps(f.cfg.Files, f.cfg.RateKeys, f.now, old)
	f.seenRules, _ = expand(f.cfg.Files)
	// Remember what was read, so that polling reloads when one of these
	// files changes, and does not report the same errors again before.
	f.seen = stamps
	if err != nil {
		f.m.reloads.WithLabelValues("error").Inc()
		if old == nil {
			return fmt.Errorf("firewall: %w", err)
		}
		f.log.Error("firewall: the rule files have errors; the running rules stay in place until they are fixed",
			"trigger", trigger, "err", err.Error())
		return err
	}
	f.attachCounters(rs)
	f.rules.Store(rs)
	f.m.reloads.WithLabelValues("ok").Inc()
	f.m.rules.Set(float64(rs.rules))
	if old != nil || rs.rules > 0 {
		f.log.Info("firewall rules loaded", "trigger", trigger, "rules", rs.rules, "files", rs.nfiles,
			"local", len(rs.chains[chainLocal]), "remote", len(rs.chains[chainRemote]), "deliver", len(rs.chains[chainDeliver]))
	}
	return nil
}

// changed reports whether a rule or list file changed since the last
// load attempt, or the patterns now name other files.
func (f *feature) changed() bool {
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	files, err := expand(f.cfg.Files)
	if err != nil || !slices.Equal(files, f.seenRules) {
		return true
	}
	for _, s := range f.seen {
		if !statFile(s.path).same(s) {
			return true
		}
	}
	return false
}

// poll reloads the rules when a file changes.
func (f *feature) poll(ctx context.Context) func() {
	if f.cfg.PollInterval <= 0 || len(f.cfg.Files) == 0 {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Duration(f.cfg.PollInterval))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if f.changed() {
					_ = f.load("file change")
				}
			}
		}
	}()
	return func() { <-done }
}

// attachCounters resolves each rule's metric counters once per load, so
// a match costs an atomic add.
func (f *feature) attachCounters(rs *ruleset) {
	for ch := range numChains {
		for _, r := range rs.chains[ch] {
			if r.counters[ch] != nil {
				continue
			}
			cs := make([]prometheus.Counter, len(r.actions))
			for i, a := range r.actions {
				cs[i] = f.m.decisions.WithLabelValues(chainNames[ch], r.name, a.kind.String())
			}
			r.counters[ch] = cs
		}
	}
}

// run evaluates a chain for a stanza.
func (f *feature) run(ctx context.Context, c chain, st *server.Stanza, ip netip.Addr) server.Result {
	rs := f.rules.Load()
	rules := rs.chains[c]
	if len(rules) == 0 {
		return server.Next
	}
	// Stanzas the server itself sends (from a hosted domain: replies,
	// notifications to admins) are not filtered: the server trusts itself,
	// and a rule cannot make a notification loop.
	if st.From.Local() == "" && st.From.Resource() == "" && f.srv.Host(st.From.Domain()) != nil {
		return server.Next
	}
	e := evalPool.Get().(*eval)
	*e = eval{ctx: ctx, f: f, st: st, chain: c, ip: ip}
	defer func() { *e = eval{}; evalPool.Put(e) }()
	for _, r := range rules {
		if !r.match(e) {
			continue
		}
		if res, stop := f.apply(e, r); stop {
			return res
		}
	}
	return server.Next
}

// apply runs a matched rule's actions. It reports whether the chain stops
// and with which result.
func (f *feature) apply(e *eval, r *rule) (server.Result, bool) {
	st := e.st
	res, stop := server.Next, false
	var logText string
	var problems []string
	for i, a := range r.actions {
		if cs := r.counters[e.chain]; cs != nil {
			cs[i].Inc()
		}
		switch a.kind {
		case actPass:
			stop = true
		case actDrop:
			res, stop = server.Done, true
			f.srv.CountDenied("firewall")
		case actBounce:
			res, stop = server.Done, true
			f.srv.CountDenied("firewall")
			f.srv.Bounce(e.ctx, st, a.err)
		case actLog:
			logText = a.text
		case actRestrict, actSuspend:
			if err := f.sanction(e, r, a); err != nil {
				problems = append(problems, err.Error())
			}
		case actReport:
			if err := f.report(e, r, a); err != nil {
				problems = append(problems, err.Error())
			}
		case actNotify:
			if err := f.notify(e, r, a); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	level := slog.LevelInfo
	if r.quiet && logText == "" {
		level = slog.LevelDebug
	}
	if len(problems) > 0 {
		level = slog.LevelWarn
	}
	if f.log.Enabled(e.ctx, level) {
		attrs := []slog.Attr{
			slog.String("policy", "firewall"), slog.String("rule", r.name), slog.String("at", r.pos.String()),
			slog.String("chain", e.chain.String()), slog.String("actions", r.summary),
			slog.String("kind", st.Kind.String()), slog.String("type", e.stanzaType()),
			slog.String("from", st.From.String()), slog.String("to", st.To.String()),
		}
		if e.ip.IsValid() {
			attrs = append(attrs, slog.String("ip", e.ip.String()))
		}
		if logText != "" {
			attrs = append(attrs, slog.String("text", logText))
		}
		if len(problems) > 0 {
			attrs = append(attrs, slog.String("problems", strings.Join(problems, "; ")))
		}
		f.log.LogAttrs(e.ctx, level, "firewall rule matched", attrs...)
	}
	return res, stop
}

// errNoService is returned by an action whose service is not enabled.
var errNoService = errors.New("not available")

// localSender returns the sender's bare JID if it is a local account.
func (f *feature) localSender(e *eval) (jid.JID, bool) {
	from := e.st.From
	if from.Local() == "" || f.srv.Host(from.Domain()) == nil {
		return jid.JID{}, false
	}
	return from.Bare(), true
}

func (f *feature) sanction(e *eval, r *rule, a action) error {
	who, ok := f.localSender(e)
	if !ok {
		return fmt.Errorf("%s: the sender %s is not a local account", a.kind, e.st.From.Bare())
	}
	svc := f.deps().Sanctions
	if svc == nil {
		return fmt.Errorf("%s %s: %w (enable the account state feature)", a.kind, who, errNoService)
	}
	reason := a.text
	if reason == "" {
		reason = "Your account was " + map[actionKind]string{actRestrict: "restricted", actSuspend: "suspended"}[a.kind] +
			" by an automatic rule; contact the server's administrators."
	}
	by := "firewall:" + r.name
	var err error
	if a.kind == actSuspend {
		err = svc.Suspend(e.ctx, who, reason, by)
	} else {
		err = svc.Restrict(e.ctx, who, reason, by)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", a.kind, who, err)
	}
	return nil
}

func (f *feature) report(e *eval, r *rule, a action) error {
	svc := f.deps().Reports
	if svc == nil {
		return fmt.Errorf("report: %w (enable the reports feature)", errNoService)
	}
	text := a.text
	if text == "" {
		text = "Matched the firewall rule " + r.name + "."
	}
	reporter, err := jid.Parse(f.hostFor(e.st))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, err = svc.FileReport(e.ctx, &server.AbuseReport{
		Reporter: reporter, Offender: e.st.From.Bare(), Reason: a.cat, Text: text,
		Evidence: e.st.El.Copy(), Source: "firewall " + r.name + " (" + r.pos.String() + ")",
	})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// hostFor returns the hosted domain a stanza concerns: the recipient's,
// else the sender's, else the first host. The server's reports and
// notifications come from it.
func (f *feature) hostFor(st *server.Stanza) string {
	for _, j := range []jid.JID{st.To, st.From} {
		if !j.IsZero() && f.srv.Host(j.Domain()) != nil {
			return j.Domain()
		}
	}
	return f.srv.Hosts()[0]
}

// notify sends the administrators a message about the match, at most
// five in a burst and then one a minute per rule, so that a flood of
// matches cannot flood them.
func (f *feature) notify(e *eval, r *rule, a action) error {
	admins := f.srv.Admins()
	if len(admins) == 0 {
		return fmt.Errorf("notify-admins: no administrators are configured ([server] admins)")
	}
	if !f.notifyLimit.Allow(r.name, 1) {
		f.m.notifySuppressed.Inc()
		return nil
	}
	st := e.st
	host := f.hostFor(st)
	var b strings.Builder
	fmt.Fprintf(&b, "Firewall rule %s (%s) matched a %s (%s) on the %s chain from %s to %s", r.name, r.pos, st.Kind, e.stanzaType(), e.chain, st.From, st.To)
	if e.ip.IsValid() {
		fmt.Fprintf(&b, " (IP %s)", e.ip)
	}
	b.WriteString(". Actions: " + r.summary + ".")
	if a.text != "" {
		b.WriteString("\n" + a.text)
	}
	if body := e.body(); body != "" {
		if len(body) > 300 {
			body = body[:300] + "…"
		}
		b.WriteString("\nBody: " + body)
	}
	var errs []error
	for _, admin := range admins {
		msg := xml.New(xml.NSClient, "message").SetAttr("type", "chat").SetAttr("from", host).
			SetAttr("to", admin).SetAttr("id", f.srv.NewID())
		msg.AppendText(xml.NSClient, "body", b.String())
		if err := f.srv.RouteElement(e.ctx, msg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("notify-admins: %w", err)
	}
	return nil
}
