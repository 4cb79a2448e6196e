// Package push implements Push Notifications (XEP-0357 version 0.4.1)
// for the user's server side: a client registers an XMPP push service
// (its "app server", with a node and optional publish options); when a
// message arrives for the account while none of its clients can show it
// (every session is gone, detached waiting for resumption, or inactive),
// the server publishes a notification to each registered service, which
// wakes the app through the phone's vendor push service.
//
// Notifications carry the urn:xmpp:push:summary form: message-count (the
// messages since the last notification), last-message-sender, and
// last-message-body only when the operator allows it (the text passes
// through the app developer's and the phone vendor's servers). They are
// rate-limited per account: at most one per min_interval; messages in
// between are counted in the next one, which is always sent.
//
// A push service that answers with an error of type cancel, auth or
// modify (other than a failure to reach it) gets its registration
// disabled at once; temporary errors and timeouts disable it after
// max_errors in a row (XEP-0357 §7.1). Registrations are kept in the
// store (migration 0005) and survive restarts; sessions whose client
// enabled push stay resumable longer (c2s push_resume_timeout).
package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	NS             = "urn:xmpp:push:0"
	nsSummary      = "urn:xmpp:push:summary"
	nsPubsub       = "http://jabber.org/protocol/pubsub"
	nsData         = "jabber:x:data"
	nsPublishOpts  = "http://jabber.org/protocol/pubsub#publish-options"
	nsCarbons      = "urn:xmpp:carbons:2"
	nsOMEMO        = "eu.siacs.conversations.axolotl"
	nsOMEMO2       = "urn:xmpp:omemo:2"
	nsOpenPGP      = "urn:xmpp:openpgp:0"
	nsJingleMsg    = "urn:xmpp:jingle-message:0"
	queueSize      = 1024
	sweepInterval  = time.Minute
	streamHeaderNS = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)

// Feature is the push notifications feature.
var Feature = server.Feature{
	Name: "push",
	Doc:  "Push notifications: wakes a phone app through its push service when a message arrives while the app is away.",
	XEPs: []server.XEP{
		{N: 357, Name: "Push Notifications", Version: "0.4.1", Status: server.Complete},
	},
	Defaults: Config{
		IncludeSender:    true,
		MaxRegistrations: 5,
		MinInterval:      config.Duration(10 * time.Second),
		MaxErrors:        5,
		Timeout:          config.Duration(30 * time.Second),
		Workers:          4,
	},
	Setup: setup,
}

// Config is the [push] table.
type Config struct {
	IncludeBody      bool            `toml:"include_body" help:"Put the message text in notifications (last-message-body). It then passes through the app developer's push service and Apple's or Google's servers; encrypted messages never show their text."`
	IncludeSender    bool            `toml:"include_sender" help:"Put the sender's address in notifications (last-message-sender)."`
	MaxRegistrations int             `toml:"max_registrations" min:"1" help:"Push registrations kept per account (one per app and device); registering more removes the oldest."`
	MinInterval      config.Duration `toml:"min_interval" min:"0s" help:"At most one notification per account in this interval; messages arriving meanwhile are counted in the next notification, sent when the interval ends."`
	MaxErrors        int             `toml:"max_errors" min:"1" help:"Temporary publish errors and timeouts in a row after which a registration is disabled. Errors of type cancel, auth or modify disable it at once."`
	Timeout          config.Duration `toml:"timeout" min:"1s" help:"How long to wait for a push service to answer a notification; no answer counts as a temporary error."`
	Workers          int             `toml:"workers" min:"1" help:"Notifications sent at the same time; more wait in a bounded queue (a full queue drops the notification, counted as push_queue_full)."`
}

type feature struct {
	srv *server.Server
	st  store.Store
	log *slog.Logger
	cfg Config
	now func() time.Time

	jobs chan job

	mu      sync.Mutex
	pending map[string]*pending // by account
	owners  map[string]bool     // accounts with registrations
	stopped bool

	metrics *metrics
}

// pending is one account's rate-limit state.
type pending struct {
	count  int
	sender string
	body   string
	last   time.Time // when the last notification was sent
	timer  *time.Timer
}

// job is one notification to publish to an account's registrations.
type job struct {
	owner  string
	host   string
	count  int
	sender string
	body   string
}

type metrics struct {
	triggered     prometheus.Counter
	notifications *prometheus.CounterVec
	disabled      prometheus.Counter
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("push: config is %T, want push.Config", cfg)
	}
	if c.MaxRegistrations < 1 || c.MaxErrors < 1 || c.Workers < 1 || c.Timeout <= 0 {
		return fmt.Errorf("push: max_registrations, max_errors, workers and timeout must be positive")
	}
	m := &metrics{
		triggered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "push", Name: "triggered_total",
			Help: "Messages for an account with push registrations that none of its sessions can show; several may share one notification.",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "push", Name: "notifications_total",
			Help: "Notifications published to push services, by result (ok, error, timeout).",
		}, []string{"result"}),
		disabled: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "push", Name: "registrations_disabled_total",
			Help: "Registrations disabled because their push service answered with errors.",
		}),
	}
	for _, col := range []prometheus.Collector{m.triggered, m.notifications, m.disabled} {
		if err := s.Metrics().Register(col); err != nil {
			return fmt.Errorf("push: registering metrics: %w", err)
		}
	}
	f := &feature{
		srv: s.Server(), st: s.Store(), log: s.Logger(), cfg: c, now: time.Now,
		jobs: make(chan job, queueSize), pending: make(map[string]*pending), owners: make(map[string]bool), metrics: m,
	}
	s.Disco().AccountFeature(NS)
	s.HandleIQ(server.ToAccount, "set", NS, "enable", f.enable)
	s.HandleIQ(server.ToAccount, "set", NS, "disable", f.disable)
	s.Hook(server.DeliverLocal, server.PrioObserve-20, f.deliver)
	server.On(s, server.SessionDetached, server.PrioObserve, f.detached)
	server.On(s, server.UserDeleted, server.PrioObserve, func(_ context.Context, ev server.AccountEvent) error {
		f.mu.Lock()
		delete(f.owners, ev.JID)
		f.mu.Unlock()
		return nil
	})
	s.OnStart(f.start)
	return nil
}

// loadOwners reads which accounts have registrations, so that a message
// for anyone else costs no store query.
func (f *feature) loadOwners(ctx context.Context) {
	owners, err := f.st.Push().Owners(ctx)
	if err != nil {
		f.log.Error("reading push registrations failed; notifications go only to apps registered from now on", "err", err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range owners {
		f.owners[o] = true
	}
}

// refreshOwner updates whether owner still has registrations.
func (f *feature) refreshOwner(ctx context.Context, owner string) {
	l, err := f.st.Push().List(ctx, owner)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(l) == 0 {
		delete(f.owners, owner)
	} else {
		f.owners[owner] = true
	}
}

// start runs the workers and the sweeper until ctx ends.
func (f *feature) start(ctx context.Context) (wait func()) {
	f.loadOwners(ctx)
	var wg sync.WaitGroup
	for range f.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-f.jobs:
					f.publish(ctx, j)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				f.stop()
				return
			case <-t.C:
				f.sweep()
			}
		}
	}()
	return wg.Wait
}

// stop cancels the pending rate-limit timers.
func (f *feature) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	for _, p := range f.pending {
		if p.timer != nil {
			p.timer.Stop()
		}
	}
	f.pending = make(map[string]*pending)
}

// sweep forgets accounts whose interval is over and that wait for nothing.
func (f *feature) sweep() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	for k, p := range f.pending {
		if p.timer == nil && now.Sub(p.last) >= time.Duration(f.cfg.MinInterval) {
			delete(f.pending, k)
		}
	}
}

// enable registers a push service for the account (XEP-0357 §5).
func (f *feature) enable(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	owner, err := own(st)
	if err != nil {
		return nil, err
	}
	p := st.Payload()
	service, err := jid.Parse(p.Attr("jid"))
	if err != nil || p.Attr("jid") == "" {
		return nil, stanza.NewError(stanza.BadRequest, "The 'jid' attribute must be the address of your push service.")
	}
	if service.Bare() == owner.Bare() {
		return nil, stanza.NewError(stanza.NotAcceptable, "Your own account cannot be your push service.")
	}
	reg := store.PushRegistration{Service: service.String(), Node: p.Attr("node"), Created: f.now()}
	for _, x := range p.Elements() {
		if x.Space == nsData && x.Local == "x" && formType(x) == nsPublishOpts {
			reg.Options = x.AppendTo(nil, xml.NSClient)
		}
	}
	if err := f.st.Push().Put(ctx, owner.String(), reg, f.cfg.MaxRegistrations); err != nil {
		return nil, fmt.Errorf("push: enabling for %s: %w", owner, err)
	}
	f.mu.Lock()
	f.owners[owner.String()] = true
	f.mu.Unlock()
	st.Origin.SetPushEnabled(true)
	f.log.Info("push notifications enabled", "jid", st.From.String(), "service", reg.Service, "node", reg.Node)
	return nil, nil
}

// disable removes one registration, or all of a service (XEP-0357 §6).
func (f *feature) disable(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	owner, err := own(st)
	if err != nil {
		return nil, err
	}
	p := st.Payload()
	service, err := jid.Parse(p.Attr("jid"))
	if err != nil || p.Attr("jid") == "" {
		return nil, stanza.NewError(stanza.BadRequest, "The 'jid' attribute must be the address of the push service to disable.")
	}
	n, err := f.st.Push().Remove(ctx, owner.String(), service.String(), p.Attr("node"))
	if err != nil {
		return nil, fmt.Errorf("push: disabling for %s: %w", owner, err)
	}
	f.refreshOwner(ctx, owner.String())
	st.Origin.SetPushEnabled(false)
	f.log.Info("push notifications disabled", "jid", st.From.String(), "service", service.String(), "node", p.Attr("node"), "removed", n)
	return nil, nil
}

// own checks that the request comes from one of the account's own
// sessions and is addressed to the account.
func own(st *server.Stanza) (jid.JID, error) {
	if st.Origin == nil || st.To.Bare() != st.From.Bare() {
		return jid.JID{}, stanza.NewError(stanza.Forbidden, "Only the account's own clients can change its push notifications.")
	}
	return st.From.Bare(), nil
}

func formType(x *xml.Element) string {
	for _, fld := range x.Elements() {
		if fld.Local == "field" && fld.Attr("var") == "FORM_TYPE" {
			return fld.ChildText(nsData, "value")
		}
	}
	return ""
}

// deliver notices a message that none of the account's clients can show.
func (f *feature) deliver(_ context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindMessage || st.To.Local() == "" || !worthPush(st.El, st.Type) {
		return server.Next
	}
	for _, s := range f.srv.Sessions(st.To) {
		if s.Reachable() {
			return server.Next
		}
	}
	f.notify(st.To.Bare(), 1, st.From.String(), body(st.El))
	return server.Next
}

// detached notices messages a client never acknowledged when its
// connection dropped (XEP-0198): they wait for it, so wake it up.
func (f *feature) detached(_ context.Context, ev server.DetachedEvent) error {
	n, sender, text := 0, "", ""
	for _, el := range ev.Unacked {
		if el.Local != "message" || !worthPush(el, el.Attr("type")) {
			continue
		}
		n++
		sender, text = el.Attr("from"), body(el)
	}
	if n == 0 {
		return nil
	}
	bare := ev.Session.JID().Bare()
	for _, s := range f.srv.Sessions(bare) {
		if s.Reachable() {
			return nil
		}
	}
	f.notify(bare, n, sender, text)
	return nil
}

// worthPush reports whether a message is one a person wants to be woken
// for: a chat or normal message with a body, an encrypted payload or a
// call proposal; not carbon copies, groupchat, headlines or errors.
func worthPush(el *xml.Element, typ string) bool {
	switch typ {
	case "", "normal", "chat":
	default:
		return false
	}
	for _, c := range el.Elements() {
		switch {
		case c.Space == nsCarbons:
			return false
		case c.Space == xml.NSClient && c.Local == "body",
			c.Space == nsOMEMO && c.Local == "encrypted",
			c.Space == nsOMEMO2 && c.Local == "encrypted",
			c.Space == nsOpenPGP && c.Local == "openpgp",
			c.Space == nsJingleMsg && c.Local == "propose":
			return true
		}
	}
	return false
}

func body(el *xml.Element) string {
	for _, c := range el.Elements() {
		switch {
		case c.Space == nsOMEMO, c.Space == nsOMEMO2, c.Space == nsOpenPGP:
			return "" // the body is only a fallback text for encrypted messages
		}
	}
	return el.ChildText(xml.NSClient, "body")
}

// notify counts n messages for an account and sends a notification now,
// or when the account's interval ends.
func (f *feature) notify(owner jid.JID, n int, sender, text string) {
	key := owner.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || !f.owners[key] {
		return
	}
	if f.metrics != nil {
		f.metrics.triggered.Add(float64(n))
	}
	p := f.pending[key]
	if p == nil {
		p = &pending{}
		f.pending[key] = p
	}
	p.count += n
	p.sender, p.body = sender, text
	if p.timer != nil {
		return // a notification is already scheduled; it will count these
	}
	wait := p.last.Add(time.Duration(f.cfg.MinInterval)).Sub(f.now())
	if p.last.IsZero() || wait <= 0 {
		f.sendLocked(owner, p)
		return
	}
	p.timer = time.AfterFunc(wait, func() { f.due(owner, p) })
}

// due sends the notification an account's interval held back.
func (f *feature) due(owner jid.JID, p *pending) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || f.pending[owner.String()] != p {
		return
	}
	p.timer = nil
	f.sendLocked(owner, p)
}

// sendLocked queues the account's notification and starts a new interval.
func (f *feature) sendLocked(owner jid.JID, p *pending) {
	j := job{owner: owner.String(), host: owner.Domain(), count: p.count, sender: p.sender, body: p.body}
	p.count, p.sender, p.body = 0, "", ""
	p.last = f.now()
	select {
	case f.jobs <- j:
	default:
		f.srv.CountDenied("push_queue_full")
		f.log.Warn("push notification dropped: the queue is full (push services answer too slowly?)", "jid", j.owner, "reason", "push_queue_full")
	}
}

// publish sends one notification to each of the account's registrations.
func (f *feature) publish(ctx context.Context, j job) {
	regs, err := f.st.Push().List(ctx, j.owner)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Error("reading push registrations failed", "jid", j.owner, "err", err)
		}
		return
	}
	for _, r := range regs {
		f.publishOne(ctx, j, r)
	}
}

func (f *feature) publishOne(ctx context.Context, j job, r store.PushRegistration) {
	iq := xml.New(xml.NSClient, "iq").SetAttr("type", "set").SetAttr("id", f.srv.NewID()).
		SetAttr("from", j.host).SetAttr("to", r.Service)
	form := xml.New(nsData, "x").SetAttr("type", "submit")
	field := func(name, value string) {
		form.Append(xml.New(nsData, "field").SetAttr("var", name).AppendText(nsData, "value", value))
	}
	field("FORM_TYPE", nsSummary)
	field("message-count", strconv.Itoa(j.count))
	if f.cfg.IncludeSender && j.sender != "" {
		field("last-message-sender", j.sender)
	}
	if f.cfg.IncludeBody && j.body != "" {
		field("last-message-body", j.body)
	}
	pub := xml.New(nsPubsub, "publish").SetAttr("node", r.Node).
		Append(xml.New(nsPubsub, "item").Append(xml.New(NS, "notification").Append(form)))
	ps := xml.New(nsPubsub, "pubsub").Append(pub)
	if r.Options != nil {
		if opts, err := parse(r.Options); err == nil {
			ps.Append(xml.New(nsPubsub, "publish-options").Append(opts))
		}
	}
	iq.Append(ps)

	cctx, cancel := context.WithTimeout(ctx, time.Duration(f.cfg.Timeout))
	defer cancel()
	res, err := f.srv.SendIQ(cctx, iq)
	switch {
	case err != nil && ctx.Err() != nil:
		return // shutting down
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		f.failed(ctx, j, r, false, "timeout")
		f.metrics.notifications.WithLabelValues("timeout").Inc()
	case err != nil:
		f.log.Error("sending a push notification failed", "jid", j.owner, "service", r.Service, "err", err)
	case res.Attr("type") == "result":
		f.log.Debug("push notification sent", "jid", j.owner, "service", r.Service, "node", r.Node, "count", j.count)
		if r.Errors > 0 {
			if err := f.st.Push().SetErrors(ctx, j.owner, r.Service, r.Node, 0); err != nil {
				f.log.Warn("resetting the push error count failed", "jid", j.owner, "err", err)
			}
		}
		f.metrics.notifications.WithLabelValues("ok").Inc()
	default:
		e := stanza.ParseError(res)
		cond, typ := "undefined-condition", stanza.ErrorType("cancel")
		if e != nil {
			cond, typ = string(e.Condition), e.Type
		}
		f.failed(ctx, j, r, permanent(stanza.Condition(cond), typ), cond)
		f.metrics.notifications.WithLabelValues("error").Inc()
	}
}

// permanent reports whether a publish error means the registration is
// dead (XEP-0357 §7.1), rather than the service being out of reach.
func permanent(c stanza.Condition, t stanza.ErrorType) bool {
	switch c {
	case stanza.RemoteServerNotFound, stanza.RemoteServerTimeout, stanza.InternalServerError,
		stanza.ResourceConstraint:
		return false
	}
	return t == "cancel" || t == "auth" || t == "modify"
}

// failed counts an error of one registration and disables it when it is
// permanent or too many came in a row.
func (f *feature) failed(ctx context.Context, j job, r store.PushRegistration, permanent bool, cond string) {
	errs := r.Errors + 1
	if !permanent && errs < f.cfg.MaxErrors {
		if err := f.st.Push().SetErrors(ctx, j.owner, r.Service, r.Node, errs); err != nil {
			f.log.Warn("recording a push error failed", "jid", j.owner, "err", err)
		}
		f.log.Info("push service answered with an error", "jid", j.owner, "service", r.Service, "node", r.Node, "condition", cond, "errors_in_a_row", errs)
		return
	}
	if _, err := f.st.Push().Remove(ctx, j.owner, r.Service, r.Node); err != nil {
		f.log.Warn("disabling a push registration failed", "jid", j.owner, "err", err)
		return
	}
	f.refreshOwner(ctx, j.owner)
	f.metrics.disabled.Inc()
	f.srv.CountDenied("push_service_error")
	f.log.Info("push registration disabled: the push service refuses notifications; the app registers again at its next login",
		"jid", j.owner, "service", r.Service, "node", r.Node, "condition", cond, "errors_in_a_row", errs, "reason", "push_service_error")
}

// parse reads one stored element.
func parse(b []byte) (*xml.Element, error) {
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(streamHeaderNS), bytes.NewReader(b)), xml.DefaultLimits())
	if _, err := d.Header(); err != nil {
		return nil, fmt.Errorf("push: reading stored publish options: %w", err)
	}
	el, err := d.Next()
	if err != nil {
		return nil, fmt.Errorf("push: reading stored publish options: %w", err)
	}
	return el, nil
}
