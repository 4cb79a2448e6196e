package server

import (
	"context"

	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// DiscoNode answers service discovery queries for nodes of a host's
// domain JID (XEP-0030 §3.2 and §4.2): the ad-hoc command list and each
// command, for instance. Info and Items return a *stanza.Error (forbidden,
// item-not-found) to refuse; either may be nil (item-not-found).
type DiscoNode struct {
	// Match reports whether this source answers for node.
	Match func(node string) bool
	Info  func(ctx context.Context, from jid.JID, host, node string) (DiscoInfo, error)
	Items func(ctx context.Context, from jid.JID, host, node string) ([]DiscoItem, error)
}

// ServerNode adds a source of node answers for the server's domain JID.
// The first source whose Match accepts a node answers for it.
func (d *Disco) ServerNode(n DiscoNode) {
	d.mu.Lock()
	d.nodes = append(d.nodes, n)
	d.mu.Unlock()
}

func (d *Disco) node(node string) (DiscoNode, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, n := range d.nodes {
		if n.Match(node) {
			return n, true
		}
	}
	return DiscoNode{}, false
}

// NodeInfo answers disco#info for a node of host, as asked by from.
func (d *Disco) NodeInfo(ctx context.Context, from jid.JID, host, node string) (DiscoInfo, error) {
	n, ok := d.node(node)
	if !ok || n.Info == nil {
		return DiscoInfo{}, stanza.NewError(stanza.ItemNotFound, "")
	}
	return n.Info(ctx, from, host, node)
}

// NodeItems answers disco#items for a node of host, as asked by from.
func (d *Disco) NodeItems(ctx context.Context, from jid.JID, host, node string) ([]DiscoItem, error) {
	n, ok := d.node(node)
	if !ok || n.Items == nil {
		return nil, stanza.NewError(stanza.ItemNotFound, "")
	}
	return n.Items(ctx, from, host, node)
}
