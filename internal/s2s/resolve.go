package s2s

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Resolver looks up the DNS records federation needs. *net.Resolver
// satisfies it; tests use MapResolver so that no real DNS is touched.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// MapResolver answers from maps: SRV records keyed by the full record
// name ("_xmpp-server._tcp.example.org"), addresses by host name. Names
// it does not know are "not found". IP literals resolve to themselves.
type MapResolver struct {
	SRV   map[string][]*net.SRV
	Hosts map[string][]netip.Addr
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// LookupSRV implements Resolver.
func (m MapResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	recs, ok := m.SRV[key]
	if !ok {
		return "", nil, notFound(key)
	}
	return key, recs, nil
}

// LookupNetIP implements Resolver.
func (m MapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, ok := m.Hosts[strings.TrimSuffix(host, ".")]
	if !ok {
		return nil, notFound(host)
	}
	return addrs, nil
}

// route is a static route from [s2s] routes.
type route struct {
	host   string
	port   uint16
	direct bool // direct TLS
}

// parseRoute reads "host:port" or "tls://host:port".
func parseRoute(s string) (route, error) {
	var r route
	rest := s
	if t, ok := strings.CutPrefix(s, "tls://"); ok {
		r.direct, rest = true, t
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return r, fmt.Errorf("%q is not \"host:port\" or \"tls://host:port\"", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return r, fmt.Errorf("%q: bad port", s)
	}
	r.host, r.port = host, uint16(p)
	return r, nil
}

// routeResolver answers SRV queries for statically routed domains and
// passes everything else to next.
type routeResolver struct {
	routes map[string]route
	next   Resolver
}

func (r routeResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	if rt, ok := r.routes[strings.TrimSuffix(name, ".")]; ok {
		key := "_" + service + "._" + proto + "." + name
		if (service == "xmpps-server") == rt.direct && proto == "tcp" {
			return key, []*net.SRV{{Target: rt.host, Port: rt.port, Priority: 0, Weight: 0}}, nil
		}
		return "", nil, notFound(key)
	}
	return r.next.LookupSRV(ctx, service, proto, name)
}

func (r routeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return r.next.LookupNetIP(ctx, network, host)
}

// target is one place to connect to.
type target struct {
	host   string
	port   uint16
	direct bool // direct TLS (_xmpps-server)
}

func (t target) String() string {
	s := net.JoinHostPort(t.host, strconv.Itoa(int(t.port)))
	if t.direct {
		return "tls://" + s
	}
	return s
}

// errNoService says the domain announces that it has no XMPP server
// service (an SRV record whose target is ".").
var errNoService = errors.New("the domain announces that it offers no server-to-server service (SRV target \".\")")

// lookupTargets returns where to connect for domain, in order (RFC 6120
// §3.2, XEP-0368): the _xmpp-server and _xmpps-server SRV records mixed by
// priority and weight (RFC 2782), or domain:5269 when there are none.
func lookupTargets(ctx context.Context, res Resolver, domain string) ([]target, error) {
	type answer struct {
		recs []*net.SRV
		err  error
	}
	var plain, direct answer
	_, plain.recs, plain.err = res.LookupSRV(ctx, "xmpp-server", "tcp", domain)
	_, direct.recs, direct.err = res.LookupSRV(ctx, "xmpps-server", "tcp", domain)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	dot := func(a answer) bool { return len(a.recs) == 1 && (a.recs[0].Target == "." || a.recs[0].Target == "") }
	type rec struct {
		srv    *net.SRV
		direct bool
	}
	var recs []rec
	if !dot(plain) {
		for _, r := range plain.recs {
			recs = append(recs, rec{r, false})
		}
	}
	if !dot(direct) {
		for _, r := range direct.recs {
			recs = append(recs, rec{r, true})
		}
	}
	if len(recs) == 0 {
		if dot(plain) {
			return nil, errNoService
		}
		if dot(direct) {
			// Direct TLS explicitly not offered and no other record: the
			// SRV protocol is in use, so no A/AAAA fallback (XEP-0368 §3).
			return nil, errNoService
		}
		// No SRV records (or the lookups failed): RFC 6120 §3.2.2
		// fallback to the domain itself on the default port.
		return []target{{host: domain, port: 5269}}, nil
	}
	// RFC 2782 ordering: by priority, then weighted random within a
	// priority.
	slices.SortStableFunc(recs, func(a, b rec) int { return int(a.srv.Priority) - int(b.srv.Priority) })
	var out []target
	for i := 0; i < len(recs); {
		j := i
		for j < len(recs) && recs[j].srv.Priority == recs[i].srv.Priority {
			j++
		}
		group := slices.Clone(recs[i:j])
		for len(group) > 0 {
			total := 0
			for _, r := range group {
				total += int(r.srv.Weight)
			}
			pick := 0
			if total > 0 {
				n := rand.IntN(total + 1)
				for k, r := range group {
					n -= int(r.srv.Weight)
					if n <= 0 {
						pick = k
						break
					}
				}
			}
			r := group[pick]
			out = append(out, target{host: strings.TrimSuffix(r.srv.Target, "."), port: r.srv.Port, direct: r.direct})
			group = slices.Delete(group, pick, pick+1)
		}
		i = j
	}
	return out, nil
}
