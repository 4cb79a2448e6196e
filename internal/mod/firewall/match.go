package firewall

import (
	"net/netip"
	"strings"
)

// patterns matches addresses (JIDs or domains) against glob patterns,
// where * stands for any run of characters (including none). Exact
// entries go in a map, so a list of thousands of domains costs one lookup.
type patterns struct {
	exact map[string]struct{}
	globs [][]string // each pattern split at its stars
	full  bool       // some pattern names a resource: match full JIDs too
}

func newPatterns() *patterns { return &patterns{exact: make(map[string]struct{})} }

// add adds one pattern. The part before any '/' is lowercased (localparts
// and domains are case-insensitive once prepared); resources are kept.
func (ps *patterns) add(p string) {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		p = strings.ToLower(p[:i]) + p[i:]
		ps.full = true
	} else {
		p = strings.ToLower(p)
	}
	if !strings.Contains(p, "*") {
		ps.exact[p] = struct{}{}
		return
	}
	ps.globs = append(ps.globs, strings.Split(p, "*"))
}

// match reports whether s matches a pattern.
func (ps *patterns) match(s string) bool {
	if _, ok := ps.exact[s]; ok {
		return true
	}
	for _, g := range ps.globs {
		if globMatch(g, s) {
			return true
		}
	}
	return false
}

// globMatch matches s against a pattern split at its stars.
func globMatch(parts []string, s string) bool {
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := len(parts) - 1
	for i := 1; i < last; i++ {
		j := strings.Index(s, parts[i])
		if j < 0 {
			return false
		}
		s = s[j+len(parts[i]):]
	}
	return strings.HasSuffix(s, parts[last])
}

// nets matches IP addresses against addresses and CIDR prefixes.
type nets struct {
	addrs    map[netip.Addr]struct{}
	prefixes []netip.Prefix
}

func newNets() *nets { return &nets{addrs: make(map[netip.Addr]struct{})} }

// add parses an address or a prefix; it reports whether s was one.
func (n *nets) add(s string) bool {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return false
		}
		p = p.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.IsSingleIP() {
			n.addrs[p.Addr()] = struct{}{}
		} else {
			n.prefixes = append(n.prefixes, p)
		}
		return true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	n.addrs[a.Unmap().WithZone("")] = struct{}{}
	return true
}

func (n *nets) match(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	if _, ok := n.addrs[a]; ok {
		return true
	}
	for _, p := range n.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
