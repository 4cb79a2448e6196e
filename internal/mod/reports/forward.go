package reports

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// metrics are the feature's Prometheus metrics (stoa_reports_…).
type metrics struct {
	filed     *prometheus.CounterVec // reason, source
	dropped   *prometheus.CounterVec // reason
	forwarded *prometheus.CounterVec // result
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		filed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "reports", Name: "filed_total",
			Help: "Abuse reports put into the queue, by reason (spam, abuse, other) and source (xep-0377, firewall, admin, other).",
		}, []string{"reason", "source"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "reports", Name: "dropped_total",
			Help: "Reports not kept (per_reporter_hour) and admin notices not sent (notify_rate), by reason.",
		}, []string{"reason"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "reports", Name: "forwarded_total",
			Help: "Reports forwarded to the offender's server, by result (sent, no_address, unreachable, queue_full, not_running).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.filed, m.dropped, m.forwarded} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("reports: registering metrics: %w", err)
		}
	}
	return m, nil
}

// forwardReport sends one report to the abuse address the offender's
// server publishes (XEP-0157), if it publishes an xmpp: one.
func (f *feature) forwardReport(ctx context.Context, j forwardJob) {
	domain := j.r.Offender.Domain()
	host := f.srv.Hosts()[0]
	if f.srv.Host(j.r.Reporter.Domain()) != nil {
		host = j.r.Reporter.Domain()
	}
	qctx, cancel := context.WithTimeout(ctx, time.Duration(f.cfg.ForwardTimeout))
	defer cancel()
	iq := xml.New(xml.NSClient, "iq").SetAttr("type", "get").SetAttr("id", f.srv.NewID()).
		SetAttr("from", host).SetAttr("to", domain).Append(xml.New(nsDiscoInfo, "query"))
	res, err := f.srv.SendIQ(qctx, iq)
	if err == nil && stanza.IsError(res) {
		err = errors.New("error answer")
		if se := stanza.ParseError(res); se != nil {
			err = se
		}
	}
	if err != nil {
		f.m.forwarded.WithLabelValues("unreachable").Inc()
		f.log.Info("report not forwarded: the offender's server did not answer service discovery", "id", j.id, "domain", domain, "err", err)
		return
	}
	to, ok := abuseAddress(res)
	if !ok {
		f.m.forwarded.WithLabelValues("no_address").Inc()
		f.log.Info("report not forwarded: the offender's server publishes no xmpp: abuse address", "id", j.id, "domain", domain)
		return
	}
	rep, err := f.st.Reports().Get(ctx, j.id)
	if err != nil {
		f.log.Warn("report not forwarded: reading it failed", "id", j.id, "err", err)
		return
	}
	body := fmt.Sprintf("Abuse report from %s about %s (%s).", host, rep.Offender, rep.Reason)
	if rep.Text != "" {
		body += "\nThe reporter wrote: " + rep.Text
	}
	msg := xml.New(xml.NSClient, "message").SetAttr("type", "normal").SetAttr("id", f.srv.NewID()).
		SetAttr("from", host).SetAttr("to", to.String()).AppendText(xml.NSClient, "body", body)
	msg.Append(reportElement(rep))
	if err := f.srv.RouteElement(ctx, msg); err != nil {
		f.m.forwarded.WithLabelValues("unreachable").Inc()
		f.log.Warn("forwarding a report failed", "id", j.id, "to", to.String(), "err", err)
		return
	}
	f.m.forwarded.WithLabelValues("sent").Inc()
	f.log.Info("report forwarded", "id", j.id, "to", to.String())
	if err := f.st.Reports().SetForwarded(ctx, j.id, to.String()); err != nil && !errors.Is(err, store.ErrNotFound) {
		f.log.Warn("recording a forwarded report failed", "id", j.id, "err", err)
	}
}

// abuseAddress finds the first xmpp: address in the abuse-addresses field
// of a disco#info answer's serverinfo form (XEP-0157, XEP-0128).
func abuseAddress(res *xml.Element) (jid.JID, bool) {
	q := res.Child(nsDiscoInfo, "query")
	if q == nil {
		return jid.JID{}, false
	}
	for _, x := range q.Elements() {
		if x.Space != nsData || x.Local != "x" || formType(x) != serverInfoNS {
			continue
		}
		for _, fld := range x.Elements() {
			if fld.Local != "field" || fld.Attr("var") != "abuse-addresses" {
				continue
			}
			for _, v := range fld.Elements() {
				if v.Local != "value" {
					continue
				}
				addr, ok := strings.CutPrefix(strings.TrimSpace(v.AllText()), "xmpp:")
				if !ok {
					continue
				}
				addr, _, _ = strings.Cut(addr, "?")
				if j, err := jid.Parse(addr); err == nil {
					return j, true
				}
			}
		}
	}
	return jid.JID{}, false
}

func formType(x *xml.Element) string {
	for _, fld := range x.Elements() {
		if fld.Local == "field" && fld.Attr("var") == "FORM_TYPE" {
			return strings.TrimSpace(fld.ChildText(nsData, "value"))
		}
	}
	return ""
}
