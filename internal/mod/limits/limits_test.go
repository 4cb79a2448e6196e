package limits

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testConfig has no limits at all and no exempt networks (the fake
// sessions come from 127.0.0.1); tests turn on what they check.
func testConfig() Config {
	c := Defaults
	c.ExemptNetworks = nil
	c.Connections = ConnectionsConfig{}
	c.Bandwidth.C2S.Rate, c.Bandwidth.S2SIn.Rate = "0", "0"
	off := EventRate{Rate: "0", Burst: 1}
	c.Stanzas.Session = KindRates{Message: off, Presence: off, IQ: off}
	c.Stanzas.Account = c.Stanzas.Session
	c.Unsolicited = UnsolicitedConfig{}
	return c
}

func newEnv(t *testing.T, cfg Config, admins ...string) *servertest.Env {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return servertest.NewWithOptions(t, server.Options{
		Store: openStore(t), Admins: admins,
		Features: []server.Feature{roster.Feature, presence.Feature, Feature},
		Config: func(name string) any {
			if name == "limits" {
				return cfg
			}
			return nil
		},
	})
}

// counter reads stoa_limits_decisions_total{policy,reason,action}.
func counter(t *testing.T, env *servertest.Env, policyName, reason, action string) float64 {
	t.Helper()
	mfs, err := env.Srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "stoa_limits_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labels(m)["policy"] == policyName && labels(m)["reason"] == reason && labels(m)["action"] == action {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func isError(id string) func(*xml.Element) bool {
	return func(el *xml.Element) bool { return el.Attr("id") == id && el.Attr("type") == "error" }
}

func TestParseRates(t *testing.T) {
	t.Parallel()
	bytes := []struct {
		in   string
		want float64
		bad  bool
	}{
		{"3kb/s", 3000, false}, {"3KB/s", 3000, false}, {"30kb/s", 30000, false}, {"10KiB/s", 10240, false},
		{"1.5MB/s", 1.5e6, false}, {"512/s", 512, false}, {"0", 0, false}, {"", 0, false},
		{"3kb", 0, true}, {"fast/s", 0, true}, {"3kb/min", 0, true},
	}
	for _, tc := range bytes {
		r, err := ParseByteRate(tc.in)
		if (err != nil) != tc.bad || r.PerSecond != tc.want {
			t.Errorf("ParseByteRate(%q) = %v, %v; want %v (error %v)", tc.in, r.PerSecond, err, tc.want, tc.bad)
		}
	}
	events := []struct {
		in   string
		want float64
		bad  bool
	}{
		{"5/s", 5, false}, {"120/min", 2, false}, {"36/h", 0.01, false}, {"0", 0, false},
		{"5", 0, true}, {"5/week", 0, true}, {"-1/s", 0, true},
	}
	for _, tc := range events {
		r, err := ParseEventRate(tc.in)
		if (err != nil) != tc.bad || r != tc.want {
			t.Errorf("ParseEventRate(%q) = %v, %v; want %v (error %v)", tc.in, r, err, tc.want, tc.bad)
		}
	}
	c := Defaults
	c.Bandwidth.C2S.Rate = "fast"
	c.Stanzas.Session.IQ.Rate = "10 per second"
	c.ExemptNetworks = []string{"10.0.0.0/33"}
	err := c.Validate()
	for _, key := range []string{"bandwidth.c2s.rate", "stanzas.session.iq.rate", "exempt_networks[0]"} {
		if err == nil || !strings.Contains(err.Error(), key) && !strings.Contains(fmt.Sprintf("%#v", err), key) {
			t.Errorf("Validate: %v; want a problem with %s", err, key)
		}
	}
	if err := Defaults.Validate(); err != nil {
		t.Errorf("Defaults do not validate: %v", err)
	}
}

// TestStanzaRateRefuse: with action refuse, the stanza beyond the burst
// gets policy-violation with a text; the account limit holds all of its
// sessions together.
func TestStanzaRateRefuse(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Stanzas.Action = "refuse"
	cfg.Stanzas.Session.Message = EventRate{Rate: "1/h", Burst: 3}
	cfg.Stanzas.Account.Message = EventRate{Rate: "1/h", Burst: 5}
	env := newEnv(t, cfg)
	for _, u := range []string{"alice", "bob"} {
		env.AddUser(u+"@localhost", "pw")
	}
	bob := env.Bind("bob@localhost/r")
	bob.SendXML(`<presence/>`)
	a1 := env.Bind("alice@localhost/one")
	a2 := env.Bind("alice@localhost/two")
	for i := range 3 {
		a1.SendXML(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='m%d'><body>%d</body></message>`, i, i))
	}
	a1.SendXML(`<message to='bob@localhost' type='chat' id='m3'><body>3</body></message>`)
	e := a1.Expect(isError("m3"))
	if !strings.Contains(e.String(), "policy-violation") || !strings.Contains(e.String(), "too fast") {
		t.Errorf("4th message: %s", e)
	}
	// The other session has its own session budget, but the account's
	// (5) has 2 left.
	for i := range 2 {
		a2.SendXML(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='n%d'><body>x</body></message>`, i))
	}
	a2.SendXML(`<message to='bob@localhost' type='chat' id='n2'><body>x</body></message>`)
	a2.Expect(isError("n2"))
	a2.ExpectNothing(isError("n1"))
	got := 0
	for _, el := range bob.Received() {
		if el.Local == "message" {
			got++
		}
	}
	if got != 5 {
		t.Errorf("bob got %d messages, want 5", got)
	}
	if n := counter(t, env, "stanza_rate", "stanza_rate_session_message", "refused"); n != 1 {
		t.Errorf("session refusals counted %v, want 1", n)
	}
	if n := counter(t, env, "stanza_rate", "stanza_rate_account_message", "refused"); n != 1 {
		t.Errorf("account refusals counted %v, want 1", n)
	}
	// IQ results are never counted; presence has no limit here.
	a1.SendXML(`<presence/>`)
}

// TestStanzaRateDelay: with action delay every stanza arrives, the ones
// beyond the burst later (counted as delayed); a wait beyond max_delay is
// refused instead.
func TestStanzaRateDelay(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Stanzas.Session.Message = EventRate{Rate: "50/s", Burst: 2}
	cfg.Stanzas.Session.IQ = EventRate{Rate: "1/h", Burst: 1}
	env := newEnv(t, cfg)
	env.AddUser("alice@localhost", "pw")
	env.AddUser("bob@localhost", "pw")
	bob := env.Bind("bob@localhost/r")
	bob.SendXML(`<presence/>`)
	a := env.Bind("alice@localhost/r")
	for i := range 6 {
		a.SendXML(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='m%d'><body>%d</body></message>`, i, i))
	}
	for i := range 6 {
		bob.Expect(servertest.Name("message", "id", fmt.Sprintf("m%d", i)))
	}
	a.ExpectNothing(func(el *xml.Element) bool { return el.Attr("type") == "error" })
	if n := counter(t, env, "stanza_rate", "stanza_rate_session_message", "delayed"); n < 1 {
		t.Errorf("delays counted %v, want at least 1", n)
	}
	// One IQ an hour: the second would wait an hour, beyond max_delay.
	a.SendXML(`<iq type='get' id='q1'><query xmlns='jabber:iq:roster'/></iq>`)
	a.SendXML(`<iq type='get' id='q2'><query xmlns='jabber:iq:roster'/></iq>`)
	if e := a.Expect(isError("q2")); !strings.Contains(e.String(), "policy-violation") {
		t.Errorf("IQ beyond max_delay: %s", e)
	}
	a.ExpectNothing(isError("q1"))
}

// TestDelayEndsWithSession: a stanza waiting for its turn is dropped when
// the session ends meanwhile (a suspension does not let it through).
func TestDelayEndsWithSession(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Stanzas.Session.Message = EventRate{Rate: "1/h", Burst: 1}
	cfg.Stanzas.MaxDelay = config.Duration(2 * time.Hour) // a long wait is allowed
	env := newEnv(t, cfg)
	env.AddUser("alice@localhost", "pw")
	env.AddUser("bob@localhost", "pw")
	bob := env.Bind("bob@localhost/r")
	bob.SendXML(`<presence/>`)
	a := env.Bind("alice@localhost/r")
	a.SendXML(`<message to='bob@localhost' type='chat' id='m0'><body>0</body></message>`)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.SendXML(`<message to='bob@localhost' type='chat' id='m1'><body>1</body></message>`)
	}()
	// Wait until the second message is being held, then end the session.
	for counter(t, env, "stanza_rate", "stanza_rate_session_message", "delayed") < 1 {
		time.Sleep(time.Millisecond)
	}
	a.Disconnect()
	<-done
	bob.Expect(servertest.Name("message", "id", "m0"))
	bob.ExpectNothing(servertest.Name("message", "id", "m1"))
}

// TestUnsolicited: an account may start conversations with a few
// strangers per hour; more messages to the same stranger, messages to
// contacts and replies to strangers who wrote first are free. Restricted
// accounts get the stricter budget, at once for live sessions.
func TestUnsolicited(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Unsolicited = UnsolicitedConfig{Messages: 2, Subscriptions: 2, RestrictedMessages: 1, RestrictedSubscriptions: 1}
	env := newEnv(t, cfg)
	users := []string{"alice", "friend", "s1", "s2", "s3", "s4", "talker", "carol"}
	for _, u := range users {
		env.AddUser(u+"@localhost", "pw")
		env.Bind(u + "@localhost/r").SendXML(`<presence/>`)
	}
	if _, err := env.Srv.Store().Roster().Put(env.Ctx, "alice@localhost", store.RosterItem{JID: "friend@localhost", Subscription: store.SubBoth}); err != nil {
		t.Fatal(err)
	}
	a := env.Bind("alice@localhost/x")
	msg := func(to, id string) {
		a.SendXML(fmt.Sprintf(`<message to='%s@localhost' type='chat' id='%s'><body>hi</body></message>`, to, id))
	}
	msg("s1", "a1")
	msg("s1", "a2") // same stranger: free
	msg("s2", "a3")
	msg("friend", "a4") // contact: free
	env.Srv.RouteElement(env.Ctx, servertest.Parse(t, `<message from='talker@localhost/r' to='alice@localhost' type='chat'><body>hello?</body></message>`))
	msg("talker", "a5") // a reply: free
	msg("s3", "a6")     // the third stranger
	e := a.Expect(isError("a6"))
	if !strings.Contains(e.String(), "policy-violation") || !strings.Contains(e.String(), "not your contacts") {
		t.Errorf("third stranger: %s", e)
	}
	a.ExpectNothing(func(el *xml.Element) bool { return el.Attr("type") == "error" && el.Attr("id") != "a6" })
	// Subscription requests have their own budget.
	for i, to := range []string{"s3", "s4", "carol"} {
		a.SendXML(fmt.Sprintf(`<presence to='%s@localhost' type='subscribe' id='p%d'/>`, to, i))
	}
	if e := a.Expect(isError("p2")); !strings.Contains(e.String(), "contact requests") {
		t.Errorf("third subscription request: %s", e)
	}
	if n := counter(t, env, "unsolicited", "unsolicited_messages", "refused"); n != 1 {
		t.Errorf("refusals counted %v", n)
	}

	// carol is restricted: one stranger an hour.
	c := env.Bind("carol@localhost/x")
	if err := env.Srv.SetAccountState(env.Ctx, store.AccountState{JID: "carol@localhost", Status: store.StatusRestricted, Reason: "new", By: "test"}); err != nil {
		t.Fatal(err)
	}
	c.SendXML(`<message to='s1@localhost' type='chat' id='c1'><body>hi</body></message>`)
	c.SendXML(`<message to='s2@localhost' type='chat' id='c2'><body>hi</body></message>`)
	if e := c.Expect(isError("c2")); !strings.Contains(e.String(), "restricted") {
		t.Errorf("restricted account's second stranger: %s", e)
	}
	if n := counter(t, env, "unsolicited", "unsolicited_messages_restricted", "refused"); n != 1 {
		t.Errorf("restricted refusals counted %v", n)
	}
	// Lifting the restriction gives the normal budget (carol used 1 of 2).
	if err := env.Srv.SetAccountState(env.Ctx, store.AccountState{JID: "carol@localhost", Status: store.StatusActive, By: "test"}); err != nil {
		t.Fatal(err)
	}
	c.SendXML(`<message to='s2@localhost' type='chat' id='c3'><body>hi</body></message>`)
	c.ExpectNothing(isError("c3"))
}

// TestSessionsPerAccount: binding beyond the limit is refused; binding an
// existing resource again (it replaces the old one) is not.
func TestSessionsPerAccount(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Connections.SessionsPerAccount = 2
	env := newEnv(t, cfg)
	env.AddUser("alice@localhost", "pw")
	env.Bind("alice@localhost/one")
	env.Bind("alice@localhost/two")
	bind := func(full string) error {
		return server.Emit(env.Ctx, env.Srv, server.SessionBinding, server.BindEvent{JID: jid.MustParse(full), Conn: &server.ConnInfo{}})
	}
	err := bind("alice@localhost/three")
	if err == nil || !strings.Contains(err.Error(), "already has 2 sessions") {
		t.Fatalf("third resource: %v", err)
	}
	if err := bind("alice@localhost/two"); err != nil {
		t.Fatalf("rebinding an existing resource: %v", err)
	}
	if err := bind("bob@localhost/one"); err != nil {
		t.Fatalf("another account: %v", err)
	}
}

// TestConnectionLimits: per address, per network (/24, /64, /48), with
// exempt networks, and counts go down when connections close.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Connections = ConnectionsConfig{PerIP: 2, PerPrefix: 3, PerIPv6Site: 4}
	cfg.ExemptNetworks = []string{"198.51.100.0/24"}
	env := newEnv(t, cfg)
	open := func(addr string) (*server.ConnInfo, error) {
		c := &server.ConnInfo{Remote: netip.AddrPortFrom(netip.MustParseAddr(addr), 40000)}
		return c, server.Emit(env.Ctx, env.Srv, server.ConnectionAccepted, c)
	}
	closeConn := func(c *server.ConnInfo) { server.Notify(env.Ctx, env.Srv, server.ConnectionClosed, c) }
	mustOpen := func(addr string) *server.ConnInfo {
		t.Helper()
		c, err := open(addr)
		if err != nil {
			t.Fatalf("%s refused: %v", addr, err)
		}
		return c
	}
	refused := func(addr, reason string) {
		t.Helper()
		c, err := open(addr)
		var r *server.Refusal
		if err == nil || !asRefusal(err, &r) || r.Reason != reason {
			t.Fatalf("%s: err %v, want refusal %s", addr, err, reason)
		}
		closeConn(c) // c2s fires ConnectionClosed for refused connections too
	}
	a1 := mustOpen("203.0.113.1")
	mustOpen("203.0.113.1")
	refused("203.0.113.1", "connections_per_ip")
	mustOpen("203.0.113.2")
	refused("203.0.113.3", "connections_per_prefix")
	closeConn(a1)
	mustOpen("203.0.113.3")
	// IPv6: /64 (3), then the /48 (4) across /64s.
	mustOpen("2001:db8:1:1::1")
	mustOpen("2001:db8:1:1::2")
	mustOpen("2001:db8:1:1::3")
	refused("2001:db8:1:1::4", "connections_per_prefix")
	mustOpen("2001:db8:1:2::1")
	refused("2001:db8:1:3::1", "connections_per_ipv6_48")
	// Exempt networks are not counted.
	for range 5 {
		mustOpen("198.51.100.7")
	}
	if n := counter(t, env, "connections", "connections_per_ip", "refused"); n != 1 {
		t.Errorf("per-ip refusals counted %v", n)
	}
}

func asRefusal(err error, r **server.Refusal) bool {
	rr, ok := err.(*server.Refusal)
	if ok {
		*r = rr
	}
	return ok
}

// TestBandwidthPolicy: rates per kind, exemptions after authentication
// (admins, listed JIDs, exempt networks) and one shared bucket per account.
func TestBandwidthPolicy(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Bandwidth.C2S = RateConfig{Rate: "3kb/s", Burst: cfg.Bandwidth.C2S.Burst, WriteRate: "10kb/s", WriteBurst: cfg.Bandwidth.C2S.Burst}
	cfg.Bandwidth.S2SIn.Rate = "30kb/s"
	cfg.Bandwidth.PerAccount = true
	cfg.Bandwidth.Unlimited = []string{"bridge@localhost", "friendly.example"}
	cfg.ExemptNetworks = []string{"192.0.2.0/24"}
	env := newEnv(t, cfg, "admin@localhost")
	conn := func(user string) *server.ConnInfo {
		c := &server.ConnInfo{Remote: netip.MustParseAddrPort("203.0.113.9:5000")}
		if user != "" {
			c.User = jid.MustParse(user)
		}
		return c
	}
	pre := env.Srv.Bandwidth(server.ConnC2S, conn(""))
	want := policy.ByteRate{PerSecond: 3000, Burst: 2 * time.Second}
	if pre.Read != want || pre.Write.PerSecond != 10000 || pre.SharedRead != nil {
		t.Fatalf("before login: %+v", pre)
	}
	if b := env.Srv.Bandwidth(server.ConnS2SIn, conn("")); b.Read.PerSecond != 30000 {
		t.Errorf("s2s_in: %+v", b)
	}
	if b := env.Srv.Bandwidth(server.ConnS2SIn, conn("friendly.example")); !b.Read.Unlimited() {
		t.Errorf("listed domain: %+v", b)
	}
	for _, u := range []string{"admin@localhost", "bridge@localhost"} {
		if b := env.Srv.Bandwidth(server.ConnC2S, conn(u)); !b.Read.Unlimited() || b.SharedRead != nil {
			t.Errorf("%s not exempt: %+v", u, b)
		}
	}
	ex := conn("alice@localhost")
	ex.Remote = netip.MustParseAddrPort("192.0.2.5:1")
	if b := env.Srv.Bandwidth(server.ConnC2S, ex); !b.Read.Unlimited() {
		t.Errorf("exempt network: %+v", b)
	}
	c1, c2 := conn("alice@localhost"), conn("alice@localhost")
	b1 := env.Srv.Bandwidth(server.ConnC2S, c1)
	b2 := env.Srv.Bandwidth(server.ConnC2S, c2)
	if b1.SharedRead == nil || b1.SharedRead != b2.SharedRead || b1.SharedWrite != b2.SharedWrite {
		t.Fatalf("one account's connections do not share a bucket: %p %p", b1.SharedRead, b2.SharedRead)
	}
	if b := env.Srv.Bandwidth(server.ConnC2S, c1); b.SharedRead != b1.SharedRead {
		t.Error("asking again changed the bucket")
	}
	server.Notify(env.Ctx, env.Srv, server.ConnectionClosed, c1)
	server.Notify(env.Ctx, env.Srv, server.ConnectionClosed, c2)
	if b := env.Srv.Bandwidth(server.ConnC2S, conn("alice@localhost")); b.SharedRead == b1.SharedRead {
		t.Error("the account's bucket outlived its connections")
	}
}
