package server_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"stoa.im/stoa/internal/mod"
	"stoa.im/stoa/internal/mod/mam"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// benchConn is a client connection that only counts what it is given
// (serializing is BenchmarkEncode's business in internal/xmpp/xml).
type benchConn struct{ n int }

func (c *benchConn) Send(*xml.Element) error    { c.n++; return nil }
func (c *benchConn) Close(*stanza.StreamError)  {}
func (c *benchConn) RemoteAddr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:40000") }
func (c *benchConn) received() int              { return c.n }

// routeBench binds two available sessions on srv and returns a function
// that routes one chat message from the first to the second's bare JID
// the way the c2s read loop does (stamp from, parse to, Inbound).
func routeBench(b *testing.B, srv *server.Server) (send func(), got func() int) {
	ctx := context.Background()
	alice, bob := jid.MustParse("alice@localhost/phone"), jid.MustParse("bob@localhost/laptop")
	ca, cb := &benchConn{}, &benchConn{}
	sa, err := srv.Bind(ctx, alice, "sa", ca)
	if err != nil {
		b.Fatal(err)
	}
	sb, err := srv.Bind(ctx, bob, "sb", cb)
	if err != nil {
		b.Fatal(err)
	}
	sa.SetPresence(xml.New(xml.NSClient, "presence"), 0)
	sb.SetPresence(xml.New(xml.NSClient, "presence"), 0)
	msg := xml.New(xml.NSClient, "message").SetAttr("type", "chat").SetAttr("to", "bob@localhost").SetAttr("id", "m1")
	msg.AppendText(xml.NSClient, "body", "Hello, how are you? This is a message of ordinary length.")
	send = func() {
		st := &server.Stanza{El: msg, Kind: server.KindMessage, Type: "chat", ID: "m1", Origin: sa}
		st.SetFrom(sa.JID())
		to, err := jid.Parse(msg.Attr("to"))
		if err != nil {
			b.Fatal(err)
		}
		st.SetTo(to)
		srv.Inbound(ctx, st)
	}
	return send, cb.received
}

// BenchmarkRouteMessage routes a chat message between two local sessions
// through the bare pipeline (no feature hooks): JID parsing, the session
// table, RFC 6121 target selection, metrics.
func BenchmarkRouteMessage(b *testing.B) {
	srv, err := server.New(server.Options{Hosts: []string{"localhost"}, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	send, got := routeBench(b, srv)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		send()
	}
	b.StopTimer()
	if got() != b.N {
		b.Fatalf("delivered %d of %d", got(), b.N)
	}
}

// BenchmarkRouteMessageAllFeatures is the same with every feature of
// internal/mod/all.go registered (their hooks on every stage), on SQLite,
// with archiving off (default_policy = never) as in bench/stoa.toml.
func BenchmarkRouteMessageAllFeatures(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "stoa.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	mamCfg := mam.Feature.Defaults.(mam.Config)
	mamCfg.DefaultPolicy = "never"
	srv, err := server.New(server.Options{
		Hosts: []string{"localhost"}, Store: st, Features: mod.All(), Version: "bench",
		Config: func(name string) any {
			if name == "mam" {
				return mamCfg
			}
			return nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	srvCtx, cancel := context.WithCancel(ctx)
	srv.Start(srvCtx)
	defer func() { srv.Stop(); cancel() }()
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if err := srv.CreateUser(ctx, jid.MustParse(u), "password", "bench"); err != nil {
			b.Fatal(err)
		}
	}
	send, got := routeBench(b, srv)
	send() // first use: lazy per-account state
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		send()
	}
	b.StopTimer()
	if got() != b.N+1 {
		b.Fatalf("delivered %d of %d", got(), b.N+1)
	}
}
