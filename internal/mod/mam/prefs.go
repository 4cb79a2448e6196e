package mam

import (
	"context"
	"log/slog"

	"stoa.im/stoa/internal/readcache"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// prefsCache keeps accounts' archiving preferences in memory: they are
// read for every archived message and change rarely (setPrefs forgets
// them after writing). It holds at most max accounts.
type prefsCache struct {
	st store.Store
	c  *readcache.Cache[store.ArchivePrefs]
}

func newPrefsCache(st store.Store, max int) *prefsCache {
	return &prefsCache{st: st, c: readcache.New[store.ArchivePrefs](max)}
}

func (c *prefsCache) get(ctx context.Context, owner string, log *slog.Logger) store.ArchivePrefs {
	p, ok, t := c.c.Get(owner)
	if ok {
		return p
	}
	p, err := c.st.Archive().Prefs(ctx, owner)
	if err != nil {
		// The server's default applies until the store answers again.
		log.Warn("reading archiving preferences failed; using the server's default", "jid", owner, "err", err)
		return store.ArchivePrefs{}
	}
	c.c.Fill(owner, p, t)
	return p
}

// forget drops the owner's preferences after they were written (or the
// account deleted); reads in flight do not install what they read.
func (c *prefsCache) forget(owner string) { c.c.Forget(owner) }

// ownArchive checks that an IQ comes from the archive's owner
// (XEP-0313 §8.1: other entities get forbidden).
func ownArchive(st *server.Stanza) error {
	if st.From.Bare() != st.To.Bare() {
		return stanza.NewError(stanza.Forbidden, "Only the owner of an archive may read it or change its preferences.")
	}
	return nil
}

// prefsElement renders preferences (XEP-0441 §2.1).
func (f *feature) prefsElement(p store.ArchivePrefs) *xml.Element {
	def := p.Default
	if def == "" {
		def = f.cfg.DefaultPolicy
	}
	el := xml.New(NS, "prefs").SetAttr("default", def)
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		list := xml.New(NS, l.name)
		for _, j := range l.jids {
			list.AppendText(NS, "jid", j)
		}
		el.Append(list)
	}
	return el
}

func (f *feature) getPrefs(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := ownArchive(st); err != nil {
		return nil, err
	}
	p, err := f.arc.Prefs(ctx, st.To.Bare().String())
	if err != nil {
		return nil, err
	}
	return f.prefsElement(p), nil
}

// maxPrefsJIDs bounds the always and never lists together.
const maxPrefsJIDs = 1000

func (f *feature) setPrefs(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := ownArchive(st); err != nil {
		return nil, err
	}
	req := st.Payload()
	var p store.ArchivePrefs
	switch d := req.Attr("default"); d {
	case store.PolicyAlways, store.PolicyRoster, store.PolicyNever:
		p.Default = d
	case "":
		// Keep the server's default.
	default:
		return nil, stanza.Errorf(stanza.BadRequest, "default must be always, roster or never, not %q.", d)
	}
	n := 0
	for _, l := range []struct {
		name string
		dst  *[]string
	}{{"always", &p.Always}, {"never", &p.Never}} {
		list := req.Child(NS, l.name)
		if list == nil {
			continue
		}
		seen := map[string]bool{}
		for _, c := range list.Elements() {
			if c.Space != NS || c.Local != "jid" {
				continue
			}
			j, err := jid.Parse(c.AllText())
			if err != nil {
				return nil, stanza.Errorf(stanza.JIDMalformed, "%q in <%s/> is not a valid address.", c.AllText(), l.name)
			}
			if n++; n > maxPrefsJIDs {
				return nil, stanza.Errorf(stanza.PolicyViolation, "At most %d addresses can be listed.", maxPrefsJIDs)
			}
			if !seen[j.String()] {
				seen[j.String()] = true
				*l.dst = append(*l.dst, j.String())
			}
		}
	}
	owner := st.To.Bare().String()
	if err := f.arc.SetPrefs(ctx, owner, p); err != nil {
		return nil, err
	}
	f.prefs.forget(owner)
	f.log.Info("archiving preferences changed", "jid", owner, "default", p.Default, "always", len(p.Always), "never", len(p.Never))
	return f.prefsElement(p), nil
}
