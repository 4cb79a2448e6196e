package web

import (
	"net/http"
	"net/netip"
	"strings"
)

// proxies resolves the client address of a request: X-Forwarded-For is
// believed only when the request comes from a configured proxy, and then
// only as far as the chain of configured proxies goes (the rightmost
// address that is not a trusted proxy is the client).
type proxies struct {
	nets []netip.Prefix
}

func (p proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// remoteAddr is the address of the peer of the TCP connection.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// clientIP returns the client's address.
func (p proxies) clientIP(r *http.Request) netip.Addr {
	peer := remoteAddr(r)
	if !peer.IsValid() || !p.trusted(peer) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := parseHop(hops[i])
		if err != nil {
			break // a garbled entry: trust nothing to its left
		}
		client = a
		if !p.trusted(a) {
			break
		}
	}
	return client
}

// parseHop parses one X-Forwarded-For entry: an address, possibly with a
// port or in brackets.
func parseHop(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// secure reports whether the client reached us over HTTPS: directly, or
// through a trusted proxy that says so.
func (p proxies) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if peer := remoteAddr(r); peer.IsValid() && p.trusted(peer) {
		return strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
	}
	return false
}
