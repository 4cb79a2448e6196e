package s2s

import (
	"context"
	"fmt"
	"sync"
	"time"

	"stoa.im/stoa/internal/xmpp/xml"
)

// notifier tells the administrators, at most once per remote domain and
// interval, that a connection failed for encryption or trust reasons
// (what Prosody's mod_watchuntrusted does).
type notifier struct {
	svc *Service
	now func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
}

// trustFailure describes a failed secure connection for the notice.
type trustFailure struct {
	local, remote string
	incoming      bool
	problem       string // what went wrong, in words
	fingerprint   string // SHA-256 of the peer's certificate, if any
	advice        string
}

func (n *notifier) notify(ctx context.Context, f trustFailure) {
	cfg := n.svc.cfg.Notify
	if !cfg.Enabled || matchDomain(cfg.IgnoreDomains, f.remote) {
		return
	}
	now := n.now()
	n.mu.Lock()
	if t, ok := n.last[f.remote]; ok && now.Sub(t) < time.Duration(cfg.Interval) {
		n.mu.Unlock()
		return
	}
	for d, t := range n.last {
		if now.Sub(t) >= time.Duration(cfg.Interval) {
			delete(n.last, d)
		}
	}
	n.last[f.remote] = now
	n.mu.Unlock()

	from, to := f.local, f.remote
	if f.incoming {
		from, to = f.remote, f.local
	}
	text := fmt.Sprintf("Establishing a secure connection from %s to %s failed: %s.", from, to, f.problem)
	if f.fingerprint != "" {
		text += " Certificate SHA-256: " + f.fingerprint + "."
	}
	if f.advice != "" {
		text += " " + f.advice
	}
	text += fmt.Sprintf(" (You get this message at most once every %s per domain.)", time.Duration(cfg.Interval))
	srv := n.svc.srv
	n.svc.log.Warn("s2s: secure connection failed; notifying the administrators", "local", f.local, "remote", f.remote,
		"incoming", f.incoming, "problem", f.problem, "fingerprint", f.fingerprint)
	host := f.local
	if srv.Host(host) == nil {
		host = srv.Hosts()[0]
	}
	for _, admin := range srv.Admins() {
		msg := xml.New(xml.NSClient, "message").SetAttr("type", "chat").SetAttr("from", host).
			SetAttr("to", admin).SetAttr("id", srv.NewID())
		msg.AppendText(xml.NSClient, "body", text)
		if err := srv.RouteElement(ctx, msg); err != nil {
			n.svc.log.Warn("s2s: could not notify an administrator", "admin", admin, "err", err)
		}
	}
}
