// Package disco answers service discovery queries (XEP-0030 version 2.5.0)
// for the server's domains and, on their behalf, for local accounts. What
// is advertised comes from the features: each registers its namespaces,
// identities and forms (XEP-0128 version 1.0.1) with Setup.Disco, and
// this package only renders them.
//
// Queries to an account's bare JID follow XEP-0030 §8 (Security
// Considerations): disco#info is answered only to the account itself and
// to contacts with a presence subscription to it ('from' or 'both'); any
// other requester gets service-unavailable, the same answer as for an
// account that does not exist, so it cannot be used to harvest accounts.
// disco#items on an account is always an empty list: accounts have no
// items yet (no PEP), and an empty list leaks nothing.
package disco

import (
	"context"
	"errors"
	"fmt"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	nsData  = "jabber:x:data"
)

// Feature is the service discovery feature.
var Feature = server.Feature{
	Name: "disco",
	Doc:  "Answers service discovery queries, so clients learn which features the server and accounts support.",
	XEPs: []server.XEP{
		{N: 30, Name: "Service Discovery", Version: "2.5.0", Status: server.Complete},
		{N: 128, Name: "Service Discovery Extensions", Version: "1.0.1", Status: server.Complete},
	},
	Setup: setup,
}

func setup(s *server.Setup, _ any) error {
	d := s.Disco()
	d.ServerIdentity(server.Identity{Category: "server", Type: "im", Name: "stoa"})
	d.ServerFeature(NSInfo, NSItems)
	// XEP-0030 §3.1: the primary identity of an account is account/registered.
	d.AccountIdentity(server.Identity{Category: "account", Type: "registered"})
	d.AccountFeature(NSInfo, NSItems)

	st := s.Store()
	s.HandleIQ(server.ToServer, "get", NSInfo, "query", func(ctx context.Context, iq *server.Stanza) (*xml.Element, error) {
		if node := iq.Payload().Attr("node"); node != "" {
			// Nodes (ad-hoc commands, ...) are answered by the features
			// that registered them with Disco.ServerNode.
			di, err := d.NodeInfo(ctx, iq.From, iq.To.Domain(), node)
			if err != nil {
				return nil, err
			}
			return info(di).SetAttr("node", node), nil
		}
		return info(d.ServerInfo(iq.To.Domain())), nil
	})
	s.HandleIQ(server.ToServer, "get", NSItems, "query", func(ctx context.Context, iq *server.Stanza) (*xml.Element, error) {
		items := d.ServerItemList(iq.To.Domain())
		node := iq.Payload().Attr("node")
		if node != "" {
			var err error
			if items, err = d.NodeItems(ctx, iq.From, iq.To.Domain(), node); err != nil {
				return nil, err
			}
		}
		q := xml.New(NSItems, "query").SetAttr("node", node)
		for _, it := range items {
			el := xml.New(NSItems, "item").SetAttr("jid", it.JID).SetAttr("node", it.Node).SetAttr("name", it.Name)
			q.Append(el)
		}
		return q, nil
	})
	s.HandleIQ(server.ToAccount, "get", NSInfo, "query", func(ctx context.Context, iq *server.Stanza) (*xml.Element, error) {
		ok, err := mayDiscover(ctx, st, iq)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, stanza.NewError(stanza.ServiceUnavailable, "")
		}
		if iq.Payload().Attr("node") != "" {
			return nil, stanza.NewError(stanza.ItemNotFound, "")
		}
		return info(d.AccountInfo()), nil
	})
	s.HandleIQ(server.ToAccount, "get", NSItems, "query", func(_ context.Context, iq *server.Stanza) (*xml.Element, error) {
		// XEP-0030 §8 rule 2: an empty result whoever asks.
		return xml.New(NSItems, "query").SetAttr("node", iq.Payload().Attr("node")), nil
	})
	return nil
}

// mayDiscover reports whether the sender of iq may see the disco#info of
// the account it is addressed to: the account exists, and the sender is
// the account or a contact it shares its presence with (XEP-0030 §8).
func mayDiscover(ctx context.Context, st store.Store, iq *server.Stanza) (bool, error) {
	owner, from := iq.To.Bare().String(), iq.From.Bare().String()
	if _, err := st.Accounts().Get(ctx, owner); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("disco: looking up %s: %w", owner, err)
	}
	if owner == from {
		return true, nil
	}
	it, err := st.Roster().Get(ctx, owner, from)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("disco: reading the roster of %s: %w", owner, err)
	}
	return it.Subscription == store.SubFrom || it.Subscription == store.SubBoth, nil
}

// info renders a disco#info answer. Forms with the same FORM_TYPE, added
// by different features, are merged into one: XEP-0115 §5.4 requires each
// FORM_TYPE to appear at most once, or the capabilities hash is invalid.
func info(di server.DiscoInfo) *xml.Element {
	q := xml.New(NSInfo, "query")
	for _, id := range di.Identities {
		q.Append(xml.New(NSInfo, "identity").
			SetAttr("category", id.Category).SetAttr("type", id.Type).SetAttr("name", id.Name))
	}
	for _, f := range di.Features {
		q.Append(xml.New(NSInfo, "feature").SetAttr("var", f))
	}
	for _, f := range mergeForms(di.Forms) {
		q.Append(f)
	}
	return q
}

// mergeForms merges forms sharing a FORM_TYPE into the first of them, in
// order; forms without a FORM_TYPE are kept as they are. The inputs are
// not modified.
func mergeForms(forms []*xml.Element) []*xml.Element {
	out := make([]*xml.Element, 0, len(forms))
	at := make(map[string]int)      // FORM_TYPE -> index in out
	copied := make(map[string]bool) // out[at[ft]] is our own copy
	for _, f := range forms {
		ft := formType(f)
		i, seen := at[ft]
		if ft == "" || !seen {
			if ft != "" {
				at[ft] = len(out)
			}
			out = append(out, f)
			continue
		}
		if !copied[ft] {
			out[i] = out[i].Copy()
			copied[ft] = true
		}
		for _, fld := range f.Elements() {
			if fld.Local == "field" && fld.Attr("var") == "FORM_TYPE" {
				continue
			}
			out[i].Append(fld.Copy())
		}
	}
	return out
}

// formType returns the value of a form's hidden FORM_TYPE field, or "".
func formType(form *xml.Element) string {
	for _, f := range form.Elements() {
		if f.Space == nsData && f.Local == "field" && f.Attr("var") == "FORM_TYPE" {
			return f.ChildText(nsData, "value")
		}
	}
	return ""
}
