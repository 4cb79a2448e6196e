// Package reports keeps the administrators' queue of abuse reports:
// spam and abuse reports users attach to a block (XEP-0377 version
// 0.4.1, handed over by the blocking feature), reports the firewall files,
// and reports from other features. Each report is stored (reporter,
// offender, reason, the reported messages' stanza-ids, the user's text,
// the evidence), the admins ([server] admins) are told by a chat message,
// and the operator works through the queue with `stoa reports list`,
// `show` and `resolve`.
//
// A report about a user of another server may be forwarded to that
// server's abuse address (XEP-0157 abuse-addresses, found by service
// discovery over federation), only when the reporter allowed it
// (XEP-0377 <report-origin/>) and forward_to_origin is on. The forwarded
// report names the offender, the reason and the text, never the reporter.
package reports

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	nsReporting  = "urn:xmpp:reporting:1"
	nsJID        = "urn:xmpp:jid:0"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsData       = "jabber:x:data"
	serverInfoNS = "http://jabber.org/network/serverinfo"
)

// Feature is the reports feature.
var Feature = server.Feature{
	Name: "reports",
	Doc:  "The admins' queue of abuse reports (XEP-0377 reports sent with a block, firewall reports): stored, announced to the admins, reviewed with stoa reports, optionally forwarded to the offender's server.",
	XEPs: []server.XEP{
		{N: 377, Name: "Spam Reporting", Version: "0.4.1", Status: server.Complete},
		{N: 157, Name: "Contact Addresses for XMPP Services (abuse address of the offender's server, for forwarding)", Version: "1.1.1", Status: server.Partial,
			Note: "forwarding needs federation"},
	},
	Defaults: Config{
		NotifyAdmins:    true,
		PerReporterHour: 20,
		ForwardToOrigin: true,
		ForwardTimeout:  config.Duration(time.Minute),
	},
	Setup: setup,
}

// Config is the [reports] table.
type Config struct {
	NotifyAdmins    bool            `toml:"notify_admins" help:"Send each new report to the admins ([server] admins) as a chat message (at most 30 a minute; the queue keeps them all)."`
	PerReporterHour int             `toml:"per_reporter_hour" min:"0" help:"Reports one account may file per hour; more are not kept (the block still happens). 0: no limit."`
	ForwardToOrigin bool            `toml:"forward_to_origin" help:"Forward a report about a user of another server to that server's abuse address (XEP-0157), when the reporter allowed it (XEP-0377 <report-origin/>). The reporter's address is not included."`
	ForwardTimeout  config.Duration `toml:"forward_timeout" min:"1s" help:"How long to wait for the other server's service discovery answer when forwarding."`
}

type feature struct {
	srv *server.Server
	st  store.Store
	log *slog.Logger
	cfg Config
	m   *metrics
	now func() time.Time

	perReporter *policy.Keyed  // nil: no limit
	notifyRate  *policy.Bucket // chat messages to the admins

	mu      sync.Mutex
	forward chan forwardJob // nil until started
}

type forwardJob struct {
	id int64
	r  *server.AbuseReport
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("reports: config is %T, want reports.Config", cfg)
	}
	m, err := newMetrics(s.Metrics())
	if err != nil {
		return err
	}
	f := &feature{srv: s.Server(), st: s.Store(), log: s.Logger(), cfg: c, m: m, now: time.Now}
	if c.PerReporterHour > 0 {
		f.perReporter = policy.NewKeyed(float64(c.PerReporterHour)/3600, float64(c.PerReporterHour), 100000, f.now)
	}
	f.notifyRate = policy.NewBucket(0.5, 30, f.now)
	s.Disco().ServerFeature(nsReporting)
	s.Provide(f)
	s.OnStart(f.start)
	f.adminCommands(s)
	return nil
}

// start runs the forwarding worker until ctx ends.
func (f *feature) start(ctx context.Context) func() {
	ch := make(chan forwardJob, 64)
	f.mu.Lock()
	f.forward = ch
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case j := <-ch:
				f.forwardReport(ctx, j)
			}
		}
	}()
	return func() { <-done }
}

// FileReport stores a report, tells the admins and, when allowed, queues
// its forwarding. It implements the reports service other features find
// with server.Find.
func (f *feature) FileReport(ctx context.Context, r *server.AbuseReport) (int64, error) {
	reporter := r.Reporter.Bare().String()
	if f.perReporter != nil && r.Reporter.Local() != "" && !f.perReporter.Allow(reporter, 1) {
		f.m.dropped.WithLabelValues("per_reporter_hour").Inc()
		f.srv.CountDenied("report_rate")
		f.log.Info("report not kept", "policy", "report_rate", "reporter", reporter, "offender", r.Offender.String())
		return 0, fmt.Errorf("reports: %s filed more than %d reports in the last hour", reporter, f.cfg.PerReporterHour)
	}
	rep := store.Report{
		Created: f.now().UTC(), Reporter: reporter, Offender: r.Offender.String(),
		Reason: r.Reason, Text: r.Text, StanzaIDs: r.StanzaIDs, Source: r.Source,
	}
	if rep.Reason == "" {
		rep.Reason = "other"
	}
	if r.Evidence != nil {
		rep.Evidence = []byte(r.Evidence.String())
	}
	id, err := f.st.Reports().Add(ctx, rep)
	if err != nil {
		return 0, fmt.Errorf("reports: %w", err)
	}
	f.m.filed.WithLabelValues(rep.Reason, sourceLabel(rep.Source)).Inc()
	f.log.Info("report filed", "id", id, "reporter", reporter, "offender", rep.Offender, "reason", rep.Reason,
		"source", rep.Source, "stanza_ids", len(rep.StanzaIDs))
	if f.cfg.NotifyAdmins {
		f.notify(ctx, id, rep)
	}
	if r.ForwardToOrigin && f.cfg.ForwardToOrigin && r.Offender.Domain() != "" && f.srv.Host(r.Offender.Domain()) == nil {
		f.mu.Lock()
		ch := f.forward
		f.mu.Unlock()
		if ch == nil {
			f.m.forwarded.WithLabelValues("not_running").Inc()
			f.log.Warn("report not forwarded: the server is not running", "id", id)
			return id, nil
		}
		select {
		case ch <- forwardJob{id: id, r: r}:
		default:
			f.m.forwarded.WithLabelValues("queue_full").Inc()
			f.log.Warn("report not forwarded: the forwarding queue is full", "id", id)
		}
	}
	return id, nil
}

// sourceLabel keeps the metric label set small.
func sourceLabel(s string) string {
	s, _, _ = strings.Cut(s, " ")
	switch s {
	case "xep-0377", "firewall", "admin":
		return s
	}
	return "other"
}

// summary is one line about a report.
func summary(id int64, r store.Report) string {
	s := fmt.Sprintf("#%d %s %s reports %s for %s", id, r.Created.UTC().Format("2006-01-02 15:04"), r.Reporter, r.Offender, r.Reason)
	if r.State == store.ReportResolved {
		s += " [resolved]"
	}
	if r.Text != "" {
		t := strings.Join(strings.Fields(r.Text), " ")
		if len(t) > 80 {
			t = t[:77] + "..."
		}
		s += ": " + strconv.Quote(t)
	}
	return s
}

// notify tells the admins about a new report by chat message.
func (f *feature) notify(ctx context.Context, id int64, r store.Report) {
	admins := f.srv.Admins()
	if len(admins) == 0 {
		return
	}
	if !f.notifyRate.Allow(1) {
		f.m.dropped.WithLabelValues("notify_rate").Inc()
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Abuse report #%d: %s reports %s for %s.", id, r.Reporter, r.Offender, r.Reason)
	if r.Text != "" {
		fmt.Fprintf(&b, "\nTheir words: %s", r.Text)
	}
	if n := len(r.StanzaIDs); n > 0 {
		fmt.Fprintf(&b, "\nReported messages: %d (archive ids", n)
		for _, s := range r.StanzaIDs {
			fmt.Fprintf(&b, " %s", s.ID)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, "\nReview it with: stoa reports show %d", id)
	for _, a := range admins {
		to, err := jid.Parse(a)
		if err != nil {
			continue
		}
		host := to.Domain()
		if f.srv.Host(host) == nil {
			host = f.srv.Hosts()[0]
		}
		msg := xml.New(xml.NSClient, "message").SetAttr("type", "chat").SetAttr("id", f.srv.NewID()).
			SetAttr("from", host).SetAttr("to", a).AppendText(xml.NSClient, "body", b.String())
		msg.Append(reportElement(r))
		if err := f.srv.RouteElement(ctx, msg); err != nil {
			f.log.Warn("telling an admin about a report failed", "admin", a, "err", err)
		}
	}
}

// reportElement is the XEP-0377 payload describing a report (as
// forwarded reports carry it), without the reporter.
func reportElement(r store.Report) *xml.Element {
	reason := "urn:xmpp:reporting:" + r.Reason
	if r.Reason != "spam" && r.Reason != "abuse" {
		reason = "urn:xmpp:reporting:abuse"
	}
	el := xml.New(nsReporting, "report").SetAttr("reason", reason)
	el.AppendText(nsJID, "jid", r.Offender)
	if r.Text != "" {
		el.AppendText(nsReporting, "text", r.Text)
	}
	return el
}
