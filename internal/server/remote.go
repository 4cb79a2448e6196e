package server

import (
	"context"
	"net/netip"
)

type peerKey struct{}

// InboundRemote takes a stanza received from another server (from already
// verified against the stream's authenticated domain), runs the
// FromRemote hooks and routes it. peer is the remote server's address,
// which hooks read with PeerAddr (zero when unknown). The s2s layer calls
// it for every stanza it accepts.
func (srv *Server) InboundRemote(ctx context.Context, st *Stanza, peer netip.AddrPort) {
	if peer.IsValid() {
		ctx = context.WithValue(ctx, peerKey{}, peer)
	}
	if !srv.runStage(ctx, FromRemote, st) {
		return
	}
	srv.Route(ctx, st)
}

// PeerAddr returns the address of the server a stanza arrived from, in
// hooks that run for a stanza passed to InboundRemote (FromRemote and
// the stages it leads to), or the zero value.
func PeerAddr(ctx context.Context) netip.AddrPort {
	a, _ := ctx.Value(peerKey{}).(netip.AddrPort)
	return a
}
