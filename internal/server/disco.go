package server

import (
	"slices"
	"sync"

	"stoa.im/stoa/internal/xmpp/xml"
)

// Identity is a XEP-0030 identity.
type Identity struct {
	Category, Type, Name string
}

// Disco collects what features advertise through service discovery
// (XEP-0030) and extended information forms (XEP-0128).
type Disco struct {
	mu              sync.RWMutex
	serverFeatures  []string
	accountFeatures []string
	serverIDs       []Identity
	accountIDs      []Identity
	serverForms     []func(host string) *xml.Element
	items           []func(host string) []DiscoItem
	nodes           []DiscoNode
}

// DiscoItem is one item of a disco#items answer.
type DiscoItem struct {
	JID, Node, Name string
}

// ServerFeature advertises ns on the server's domain JID.
func (d *Disco) ServerFeature(ns ...string) {
	d.mu.Lock()
	d.serverFeatures = append(d.serverFeatures, ns...)
	d.mu.Unlock()
}

// AccountFeature advertises ns on every account's bare JID.
func (d *Disco) AccountFeature(ns ...string) {
	d.mu.Lock()
	d.accountFeatures = append(d.accountFeatures, ns...)
	d.mu.Unlock()
}

// ServerIdentity adds an identity of the server's domain JID.
func (d *Disco) ServerIdentity(id Identity) {
	d.mu.Lock()
	d.serverIDs = append(d.serverIDs, id)
	d.mu.Unlock()
}

// AccountIdentity adds an identity of every account's bare JID.
func (d *Disco) AccountIdentity(id Identity) {
	d.mu.Lock()
	d.accountIDs = append(d.accountIDs, id)
	d.mu.Unlock()
}

// ServerForm adds an extended information form (XEP-0128) to the server's
// disco#info; f returns a jabber:x:data form or nil.
func (d *Disco) ServerForm(f func(host string) *xml.Element) {
	d.mu.Lock()
	d.serverForms = append(d.serverForms, f)
	d.mu.Unlock()
}

// ServerItems adds a source of items for the server's disco#items.
func (d *Disco) ServerItems(f func(host string) []DiscoItem) {
	d.mu.Lock()
	d.items = append(d.items, f)
	d.mu.Unlock()
}

// DiscoInfo is a snapshot of what an entity advertises.
type DiscoInfo struct {
	Identities []Identity
	Features   []string
	Forms      []*xml.Element
}

// ServerInfo returns the server's disco#info for host, features sorted and unique.
func (d *Disco) ServerInfo(host string) DiscoInfo {
	d.mu.RLock()
	defer d.mu.RUnlock()
	info := DiscoInfo{Identities: slices.Clone(d.serverIDs), Features: sortedUnique(d.serverFeatures)}
	for _, f := range d.serverForms {
		if form := f(host); form != nil {
			info.Forms = append(info.Forms, form)
		}
	}
	return info
}

// AccountInfo returns the disco#info of an account's bare JID.
func (d *Disco) AccountInfo() DiscoInfo {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return DiscoInfo{Identities: slices.Clone(d.accountIDs), Features: sortedUnique(d.accountFeatures)}
}

// ServerItemList returns the server's disco#items for host.
func (d *Disco) ServerItemList(host string) []DiscoItem {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []DiscoItem
	for _, f := range d.items {
		out = append(out, f(host)...)
	}
	return out
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
