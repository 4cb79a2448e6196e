package server

import "stoa.im/stoa/internal/policy"

// ConnKind is the kind of a connection, for bandwidth limits.
type ConnKind string

// Connection kinds.
const (
	ConnC2S    ConnKind = "c2s"     // a client connection
	ConnS2SIn  ConnKind = "s2s_in"  // a server connection another server opened to us
	ConnS2SOut ConnKind = "s2s_out" // a server connection we opened
)

// Bandwidth is what one connection may send and receive: its own rates
// (zero: no limit) and buckets shared with other connections (all of an
// account's connections), nil when none.
type Bandwidth struct {
	Read, Write             policy.ByteRate
	SharedRead, SharedWrite *policy.Bucket
}

// BandwidthPolicy decides the bandwidth of a connection of kind. Before
// authentication c.User is zero; connection layers ask again once it is
// known (for s2s, c.User is the peer's domain), so that exemptions and
// per-account buckets apply.
type BandwidthPolicy func(kind ConnKind, c *ConnInfo) Bandwidth

// SetBandwidth installs the bandwidth policy (the limits feature). Only
// one feature may install one.
func (s *Setup) SetBandwidth(p BandwidthPolicy) {
	if s.srv.bandwidth != nil {
		panic("server: a bandwidth policy is already installed (by " + s.srv.bandwidthBy + ")")
	}
	s.srv.bandwidth, s.srv.bandwidthBy = p, s.feature
}

// Bandwidth returns the limits of a connection; no limits when no policy
// is installed.
func (srv *Server) Bandwidth(kind ConnKind, c *ConnInfo) Bandwidth {
	if srv.bandwidth == nil {
		return Bandwidth{}
	}
	return srv.bandwidth(kind, c)
}

// ApplyBandwidth sets b on a shaped connection (both directions).
func ApplyBandwidth(sc *policy.ShapedConn, b Bandwidth) {
	sc.SetLimit(policy.Read, b.Read, b.SharedRead)
	sc.SetLimit(policy.Write, b.Write, b.SharedWrite)
}
