package mam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// pageBytes is about the most stanza bytes one page sends, so a page fits
// the client's write queue (c2s.max_queue, 1 MiB by default) with room
// for live traffic.
const pageBytes = 256 << 10

// syncWait bounds how long a query waits for queued messages to be
// written, so that a client sees what it just sent.
const syncWait = 2 * time.Second

// request is a parsed archive query.
type request struct {
	q       store.ArchiveQuery
	queryID string
	flip    bool
}

// parseTime reads a XEP-0082 DateTime.
func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, stanza.Errorf(stanza.BadRequest, "The %s field %q is not a date and time like 2010-06-07T00:00:00Z.", field, s)
	}
	return t, nil
}

func (f *feature) parseRequest(el *xml.Element) (*request, error) {
	r := &request{queryID: el.Attr("queryid"), q: store.ArchiveQuery{Max: f.cfg.PageSize}}
	if el.Attr("node") != "" {
		return nil, stanza.NewError(stanza.FeatureNotImplemented, "This archive has no nodes (pubsub archives are not supported).")
	}
	fm, err := form.Find(el)
	if err != nil {
		return nil, stanza.Errorf(stanza.BadRequest, "The query form is malformed: %v.", err)
	}
	if fm != nil {
		for _, fl := range fm.Fields {
			v := strings.TrimSpace(fl.Value())
			switch fl.Var {
			case "FORM_TYPE":
				if v != NS {
					return nil, stanza.Errorf(stanza.BadRequest, "The query form's FORM_TYPE must be %s.", NS)
				}
			case "with":
				if v == "" {
					continue
				}
				j, err := jid.Parse(v)
				if err != nil {
					return nil, stanza.Errorf(stanza.JIDMalformed, "The with field %q is not a valid address.", v)
				}
				r.q.With = j.String()
			case "start", "end":
				if v == "" {
					continue
				}
				t, err := parseTime(fl.Var, v)
				if err != nil {
					return nil, err
				}
				if fl.Var == "start" {
					r.q.Start = t
				} else {
					r.q.End = t
				}
			case "after-id":
				r.q.AfterID = v
			case "before-id":
				r.q.BeforeID = v
			case "ids":
				if len(fl.Values) > f.cfg.MaxPage {
					return nil, stanza.Errorf(stanza.PolicyViolation, "At most %d ids can be fetched at once.", f.cfg.MaxPage)
				}
				for _, id := range fl.Values {
					if id = strings.TrimSpace(id); id != "" {
						r.q.IDs = append(r.q.IDs, id)
					}
				}
			case "include-groupchat":
				// Groupchat messages are never in user archives here, so
				// there is nothing to include or leave out.
				if _, err := fm.Bool(fl.Var); err != nil {
					return nil, stanza.Errorf(stanza.BadRequest, "include-groupchat must be true or false.")
				}
			default:
				if v == "" && len(fl.Values) <= 1 {
					continue // an empty field asks for nothing
				}
				return nil, stanza.Errorf(stanza.FeatureNotImplemented, "The query field %q is not supported.", fl.Var)
			}
		}
	}
	if set := el.Child(nsRSM, "set"); set != nil {
		if set.Child(nsRSM, "index") != nil {
			return nil, stanza.NewError(stanza.FeatureNotImplemented, "Paging by index is not supported; use <after/> or <before/>.")
		}
		if m := set.Child(nsRSM, "max"); m != nil {
			n, err := strconv.Atoi(strings.TrimSpace(m.AllText()))
			if err != nil || n < 0 {
				return nil, stanza.Errorf(stanza.BadRequest, "<max/> must be a number of messages, not %q.", m.AllText())
			}
			r.q.Max = n
		}
		if a := set.Child(nsRSM, "after"); a != nil {
			r.q.After = strings.TrimSpace(a.AllText())
		}
		if b := set.Child(nsRSM, "before"); b != nil {
			if r.q.Before = strings.TrimSpace(b.AllText()); r.q.Before == "" {
				r.q.Last = true
			}
		}
		if r.q.After != "" && (r.q.Before != "" || r.q.Last) {
			return nil, stanza.NewError(stanza.BadRequest, "<after/> and <before/> cannot be combined; use the after-id and before-id fields for a range.")
		}
	}
	r.q.Max = min(r.q.Max, f.cfg.MaxPage)
	r.flip = el.Child(NS, "flip-page") != nil
	return r, nil
}

// query answers an archive query (XEP-0313 §4): the page's messages, then
// the IQ result with <fin/>.
func (f *feature) query(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := ownArchive(st); err != nil {
		return nil, err
	}
	r, err := f.parseRequest(st.Payload())
	if err != nil {
		return nil, err
	}
	start := time.Now()
	owner := st.To.Bare()
	sctx, cancel := context.WithTimeout(ctx, syncWait)
	if err := f.w.sync(sctx); err != nil {
		f.log.Warn("archive query runs before queued messages were written", "jid", owner.String(), "err", err)
	}
	cancel()
	page, err := f.arc.Query(ctx, owner.String(), r.q)
	if errors.Is(err, store.ErrNotFound) {
		return nil, stanza.NewError(stanza.ItemNotFound, "A message id in the query is not in the archive (it may have expired); query by time instead.")
	}
	if err != nil {
		return nil, err
	}
	f.metrics.queries.Inc()

	// Keep the page within pageBytes, from the side paging starts at.
	msgs := page.Messages
	size := 0
	backward := r.q.Backward()
	for i := range msgs {
		k := i
		if backward {
			k = len(msgs) - 1 - i
		}
		size += len(msgs[k].Stanza)
		if size > pageBytes && i > 0 {
			if backward {
				page.Index += k + 1
				msgs = msgs[k+1:]
			} else {
				msgs = msgs[:k]
			}
			page.Complete = false
			break
		}
	}
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
		if r.flip {
			order[i] = len(msgs) - 1 - i
		}
	}
	for _, i := range order {
		m := msgs[i]
		inner, err := parse(m.Stanza)
		if err != nil {
			f.log.Warn("unreadable archived message skipped", "jid", owner.String(), "id", m.ID, "err", err)
			continue
		}
		res := xml.New(NS, "result").SetAttr("id", m.ID)
		if r.queryID != "" {
			res.SetAttr("queryid", r.queryID)
		}
		fwd := xml.New(nsForward, "forwarded").Append(
			xml.New(nsDelay, "delay").SetAttr("stamp", m.Time.UTC().Format("2006-01-02T15:04:05.000Z")),
			inner,
		)
		res.Append(fwd)
		out := xml.New(xml.NSClient, "message").
			SetAttr("from", owner.String()).SetAttr("to", st.From.String()).SetAttr("id", f.srv.NewID()).
			Append(res)
		if st.Origin != nil {
			st.Origin.Deliver(ctx, &server.Stanza{El: out, Kind: server.KindMessage, From: owner, To: st.From, ID: out.Attr("id")})
		} else if err := f.srv.RouteElement(ctx, out); err != nil {
			return nil, err
		}
	}
	f.metrics.querySeconds.Observe(time.Since(start).Seconds())

	fin := xml.New(NS, "fin")
	if page.Complete {
		fin.SetAttr("complete", "true")
	}
	set := xml.New(nsRSM, "set")
	if len(msgs) > 0 {
		first := xml.New(nsRSM, "first").SetAttr("index", strconv.Itoa(page.Index))
		first.Text = msgs[0].ID
		set.Append(first)
		set.AppendText(nsRSM, "last", msgs[len(msgs)-1].ID)
	}
	set.AppendText(nsRSM, "count", strconv.Itoa(page.Count))
	return fin.Append(set), nil
}

// queryForm answers a request for the query fields (XEP-0313 §4.1.5).
func (f *feature) queryForm(_ context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := ownArchive(st); err != nil {
		return nil, err
	}
	fm := form.New(form.TypeForm, "").Hidden("FORM_TYPE", NS).Add(
		form.Field{Var: "with", Type: form.JIDSingle},
		form.Field{Var: "start", Type: form.TextSingle},
		form.Field{Var: "end", Type: form.TextSingle},
		form.Field{Var: "before-id", Type: form.TextSingle},
		form.Field{Var: "after-id", Type: form.TextSingle},
		form.Field{Var: "ids", Type: form.ListMulti},
		form.Field{Var: "include-groupchat", Type: form.Boolean},
	)
	x := fm.Element()
	// XEP-0313 §4.1.5: the ids list is open (XEP-0122).
	for _, c := range x.Elements() {
		if c.Local == "field" && c.Attr("var") == "ids" {
			c.Append(xml.New("http://jabber.org/protocol/xdata-validate", "validate").SetAttr("datatype", "xs:string").
				Append(xml.New("http://jabber.org/protocol/xdata-validate", "open")))
		}
	}
	return xml.New(NS, "query").Append(x), nil
}

// metadata answers an archive metadata request (XEP-0313 §5).
func (f *feature) metadata(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := ownArchive(st); err != nil {
		return nil, err
	}
	owner := st.To.Bare().String()
	sctx, cancel := context.WithTimeout(ctx, syncWait)
	_ = f.w.sync(sctx)
	cancel()
	el := xml.New(NS, "metadata")
	for _, end := range []struct {
		name string
		last bool
	}{{"start", false}, {"end", true}} {
		p, err := f.arc.Query(ctx, owner, store.ArchiveQuery{Max: 1, Last: end.last})
		if err != nil {
			return nil, err
		}
		if len(p.Messages) == 0 {
			return el, nil
		}
		m := p.Messages[0]
		el.Append(xml.New(NS, end.name).SetAttr("id", m.ID).SetAttr("timestamp", m.Time.UTC().Format("2006-01-02T15:04:05.000Z")))
	}
	return el, nil
}

// streamHeader wraps a stored stanza so the stream decoder can read it.
const streamHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

// parse reads one stored stanza.
func parse(b []byte) (*xml.Element, error) {
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(streamHeader), bytes.NewReader(b)), xml.DefaultLimits())
	if _, err := d.Header(); err != nil {
		return nil, fmt.Errorf("mam: reading an archived message: %w", err)
	}
	el, err := d.Next()
	if err != nil {
		return nil, fmt.Errorf("mam: reading an archived message: %w", err)
	}
	return el, nil
}
