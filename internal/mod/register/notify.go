package register

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

// maxDigest bounds the entries one digest lists (the count stays exact).
const maxDigest = 200

// notifier tells the watchers (the admins by default) about new
// accounts: one chat message per account, or a digest per interval.
type notifier struct {
	f        *feature
	mode     string
	watchers []string

	mu     sync.Mutex
	queued []string // digest lines
	count  int
}

func newNotifier(f *feature, c NotifyConfig) *notifier {
	return &notifier{f: f, mode: c.Mode, watchers: c.Watchers}
}

// to returns the bare JIDs to notify.
func (n *notifier) to() []string {
	if len(n.watchers) > 0 {
		return n.watchers
	}
	return n.f.srv.Admins()
}

func methodText(m string) string {
	switch m {
	case "inband":
		return "in-band (XMPP client)"
	case "web":
		return "on the web"
	}
	return "via " + m
}

// describe is one line about a new account.
func describe(e store.RegistrationLogEntry, approval bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s registered %s", e.JID, methodText(e.Method))
	if e.IP != "" {
		fmt.Fprintf(&b, " from %s", e.IP)
	}
	if e.Invite != "" {
		fmt.Fprintf(&b, " with invitation %s", shortToken(e.Invite))
	} else {
		b.WriteString(", no invitation")
	}
	fmt.Fprintf(&b, " at %s", e.At.UTC().Format("2006-01-02 15:04:05 UTC"))
	if approval {
		b.WriteString("; waiting for approval (ad-hoc command \"Approve a new account\", or: stoa register approve " + e.JID + ")")
	}
	return b.String()
}

// registered notifies about one new account.
func (n *notifier) registered(ctx context.Context, e store.RegistrationLogEntry, approval bool) {
	switch n.mode {
	case NotifyEach:
		n.send(ctx, e.Domain, "New account: "+describe(e, approval)+".")
	case NotifyDigest:
		n.mu.Lock()
		n.count++
		if len(n.queued) < maxDigest {
			n.queued = append(n.queued, "• "+describe(e, approval))
		}
		n.mu.Unlock()
	}
}

// sendDigest sends the accounts queued since the last digest, if any.
func (n *notifier) sendDigest(ctx context.Context) {
	n.mu.Lock()
	lines, count := n.queued, n.count
	n.queued, n.count = nil, 0
	n.mu.Unlock()
	if count == 0 {
		return
	}
	head := fmt.Sprintf("%d new accounts since the last summary:", count)
	if count == 1 {
		head = "1 new account since the last summary:"
	}
	if count > len(lines) {
		lines = append(lines, fmt.Sprintf("… and %d more: see 'stoa register log'.", count-len(lines)))
	}
	n.send(ctx, n.f.srv.Hosts()[0], head+"\n"+strings.Join(lines, "\n"))
}

// send sends a chat message from host to every watcher.
func (n *notifier) send(ctx context.Context, host, body string) {
	for _, w := range n.to() {
		to, err := jid.Parse(w)
		if err != nil {
			continue
		}
		msg := xml.New(xml.NSClient, "message").SetAttr("from", host).SetAttr("to", to.String()).
			SetAttr("type", "chat").SetAttr("id", n.f.srv.NewID())
		msg.AppendText(xml.NSClient, "body", body)
		if err := n.f.srv.RouteElement(ctx, msg); err != nil {
			n.f.log.Warn("notifying a watcher of a new account failed", "watcher", w, "err", err)
		}
	}
}
