package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/xmpp/xml"
)

// inbox collects what a fake session received, for waits longer than
// servertest's (federation involves TLS handshakes and, with dialback, a
// second connection).
type inbox struct {
	t   *testing.T
	c   *servertest.Client
	got []*xml.Element
}

func newInbox(t *testing.T, n *node, full string) *inbox {
	return &inbox{t: t, c: n.env.Bind(full)}
}

func (b *inbox) send(s string) { b.c.SendXML(s) }

// available marks the session available (there is no presence feature
// here), so that messages to the bare JID reach it.
func (b *inbox) available() { b.c.Sess.SetPresence(xml.New(xml.NSClient, "presence"), 0) }

func (b *inbox) expect(match func(*xml.Element) bool) *xml.Element {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a guard, not a timing assertion
	for {
		b.got = append(b.got, b.c.Received()...)
		for i, el := range b.got {
			if match(el) {
				b.got = append(b.got[:i:i], b.got[i+1:]...)
				return el
			}
		}
		if time.Now().After(deadline) {
			var have []string
			for _, el := range b.got {
				have = append(have, el.String())
			}
			b.t.Fatalf("%s: expected element not received; have: %s", b.c.JID, strings.Join(have, " | "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (b *inbox) expectNothing(match func(*xml.Element) bool) {
	b.t.Helper()
	b.got = append(b.got, b.c.Received()...)
	for _, el := range b.got {
		if match(el) {
			b.t.Fatalf("%s: unexpected %s", b.c.JID, el.String())
		}
	}
}

func chat(to, text string) string {
	return fmt.Sprintf(`<message to='%s' type='chat' id='m-%s'><body>%s</body></message>`, to, text, text)
}

// exchange sends a message each way between alice@a and bob@b.
func exchange(t *testing.T, a, b *node) (alice, bob *inbox) {
	t.Helper()
	alice = newInbox(t, a, "alice@"+a.domain+"/r")
	bob = newInbox(t, b, "bob@"+b.domain+"/r")
	alice.send(chat("bob@"+b.domain+"/r", "hello-bob"))
	got := bob.expect(isMessageWithBody("hello-bob"))
	if got.Attr("from") != "alice@"+a.domain+"/r" {
		t.Errorf("from = %q", got.Attr("from"))
	}
	bob.send(chat("alice@"+a.domain+"/r", "hello-alice"))
	alice.expect(isMessageWithBody("hello-alice"))
	return alice, bob
}

func TestFederation(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "trusted CA")
	other := newCA(t, "unknown CA")
	tests := []struct {
		name       string
		a, b       nodeOpts
		wantOut    string // outcome of a's outgoing authentication
		wantIn     string // outcome of b's incoming authentication of a
		bidiReuses bool   // b's answer goes back on a's connection
		anyRoute   bool   // do not check how b's answer went
	}{{
		name:       "valid certificates: SASL EXTERNAL, bidirectional",
		a:          nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool},
		b:          nodeOpts{cs: ca.issue(t, "b.test"), roots: ca.pool},
		wantOut:    "external",
		wantIn:     "external",
		bidiReuses: true,
	}, {
		name:    "valid certificates, no bidi: two connections",
		a:       nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool, cfg: func(c *Config) { c.Bidi = false }},
		b:       nodeOpts{cs: ca.issue(t, "b.test"), roots: ca.pool, cfg: func(c *Config) { c.Bidi = false }},
		wantOut: "external",
		wantIn:  "external",
	}, {
		name:       "direct TLS from _xmpps-server",
		a:          nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool, direct: true},
		b:          nodeOpts{cs: ca.issue(t, "b.test"), roots: ca.pool, direct: true},
		wantOut:    "external",
		wantIn:     "external",
		bidiReuses: true,
	}, {
		name: "untrusted certificates, policy allows dialback",
		a: nodeOpts{cs: other.issue(t, "a.test"), roots: ca.pool,
			cfg: func(c *Config) { c.InsecureDomains = []string{"b.test"}; c.Bidi = false }},
		b: nodeOpts{cs: other.issue(t, "b.test"), roots: ca.pool,
			cfg: func(c *Config) { c.RequireValidCerts = false; c.Bidi = false }},
		wantOut: "dialback",
		wantIn:  "dialback",
	}, {
		name: "dialback with bidi",
		a: nodeOpts{cs: other.issue(t, "a.test"), roots: ca.pool,
			cfg: func(c *Config) { c.RequireValidCerts = false }},
		b: nodeOpts{cs: other.issue(t, "b.test"), roots: ca.pool,
			cfg: func(c *Config) { c.RequireValidCerts = false }},
		wantOut: "dialback",
		wantIn:  "dialback",
		// b connects to a for the verification anyway; its answer may go
		// on that connection or on a's bidirectional stream.
		anyRoute: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			a := w.node("a.test", tc.a)
			b := w.node("b.test", tc.b)
			exchange(t, a, b)
			if got := a.outcome("out", "b.test", tc.wantOut); got != 1 {
				t.Errorf("a: outgoing %s authentications = %v, want 1", tc.wantOut, got)
			}
			if got := b.outcome("in", "a.test", tc.wantIn); got != 1 {
				t.Errorf("b: incoming %s authentications = %v, want 1", tc.wantIn, got)
			}
			b.svc.mu.Lock()
			bOut := len(b.svc.out)
			b.svc.mu.Unlock()
			if tc.bidiReuses && bOut != 0 {
				t.Errorf("b opened %d outgoing connections although a's stream is bidirectional", bOut)
			}
			if !tc.bidiReuses && !tc.anyRoute && bOut == 0 {
				t.Errorf("b opened no outgoing connection")
			}
		})
	}
}

func TestRefusedCertificate(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "trusted CA")
	other := newCA(t, "unknown CA")
	w := newWorld(t)
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool, admins: []string{"admin@a.test"}})
	w.node("b.test", nodeOpts{cs: other.issue(t, "b.test"), roots: ca.pool})
	admin := newInbox(t, a, "admin@a.test/console")
	admin.available()
	alice := newInbox(t, a, "alice@a.test/r")

	alice.send(chat("bob@b.test", "one"))
	e := alice.expect(isError("remote-server-not-found"))
	if txt := e.Child(xml.NSClient, "error").ChildText(nsStanzas, "text"); !strings.Contains(txt, "certificate") {
		t.Errorf("bounce text %q does not mention the certificate", txt)
	}
	n := admin.expect(func(el *xml.Element) bool { return el.Local == "message" && strings.Contains(body(el), "b.test") })
	for _, want := range []string{"from a.test to b.test failed", "not signed by a trusted authority", "SHA-256", "insecure_domains"} {
		if !strings.Contains(body(n), want) {
			t.Errorf("notice %q lacks %q", body(n), want)
		}
	}
	if got := a.outcome("out", "b.test", "untrusted"); got != 1 {
		t.Errorf("untrusted outcomes = %v", got)
	}
	// The second failure is not notified again (throttled per domain).
	alice.send(chat("bob@b.test", "two"))
	alice.expect(isError("remote-server-not-found"))
	admin.expectNothing(func(el *xml.Element) bool { return el.Local == "message" })
	if got := a.outcome("out", "b.test", "untrusted"); got != 2 {
		t.Errorf("untrusted outcomes = %v", got)
	}
}

func TestIncomingUntrustedRefused(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "trusted CA")
	other := newCA(t, "unknown CA")
	w := newWorld(t)
	// a accepts anything (dialback), b requires valid certificates and
	// does not trust a's.
	a := w.node("a.test", nodeOpts{cs: other.issue(t, "a.test"), roots: ca.pool, cfg: func(c *Config) { c.RequireValidCerts = false }})
	b := w.node("b.test", nodeOpts{cs: ca.issue(t, "b.test"), roots: ca.pool, admins: []string{"admin@b.test"}})
	admin := newInbox(t, b, "admin@b.test/console")
	admin.available()
	bob := newInbox(t, b, "bob@b.test/r")
	alice := newInbox(t, a, "alice@a.test/r")
	alice.send(chat("bob@b.test/r", "spoof?"))
	alice.expect(isError("remote-server-not-found"))
	bob.expectNothing(isMessageWithBody("spoof?"))
	admin.expect(func(el *xml.Element) bool {
		return el.Local == "message" && strings.Contains(body(el), "from a.test to b.test failed")
	})
	if got := b.outcome("in", "a.test", "untrusted"); got < 1 {
		t.Errorf("b: untrusted = %v", got)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool,
		cfg: func(c *Config) { c.BlockedDomains = []string{"blocked.test"} }})
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	w.mu.Lock()
	w.res.SRV["_xmpp-server._tcp.down.test"] = []*net.SRV{{Target: "127.0.0.1", Port: uint16(port)}}
	w.mu.Unlock()
	alice := newInbox(t, a, "alice@a.test/r")
	for _, to := range []string{"nowhere.test", "down.test", "blocked.test"} {
		alice.send(chat("bob@"+to, "x-"+to))
		e := alice.expect(isError("remote-server-not-found"))
		if e.Attr("from") != "bob@"+to {
			t.Errorf("bounce from %q", e.Attr("from"))
		}
	}
	if a.outcome("out", "nowhere.test", "dns") != 1 || a.outcome("out", "down.test", "connect") != 1 {
		t.Errorf("outcomes: dns %v, connect %v", a.outcome("out", "nowhere.test", "dns"), a.outcome("out", "down.test", "connect"))
	}
	a.svc.mu.Lock()
	defer a.svc.mu.Unlock()
	if _, ok := a.svc.out[pair{"a.test", "blocked.test"}]; ok {
		t.Error("a connection to a blocked domain was attempted")
	}
}

func TestStanzaTooBig(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool, cfg: func(c *Config) { c.MaxStanzaSize = 10000 }})
	alice := newInbox(t, a, "alice@a.test/r")
	alice.send(chat("bob@b.test", strings.Repeat("x", 20000)))
	alice.expect(isError("policy-violation"))
}

func TestIdleClose(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	idle := func(c *Config) { c.IdleTimeout = 300 * 1e6; c.Bidi = false }
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool, cfg: idle})
	b := w.node("b.test", nodeOpts{cs: ca.issue(t, "b.test"), roots: ca.pool, cfg: idle})
	alice, bob := exchange(t, a, b)
	// Wait (guarded) until a's idle connection is gone, then send again:
	// a new connection is made.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.svc.mu.Lock()
		n := len(a.svc.out)
		a.svc.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was not closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	alice.send(chat("bob@b.test/r", "again"))
	bob.expect(isMessageWithBody("again"))
	if got := a.outcome("out", "b.test", "external"); got != 2 {
		t.Errorf("a authenticated %v times, want 2 (reconnected after the idle close)", got)
	}
}

// rawPeer authenticates to n as domain with a certificate and then lets
// the test write raw XML.
func rawPeer(t *testing.T, n *node, domain string, cs *tlsCert, external bool) (*tls.Conn, *xml.Decoder) {
	t.Helper()
	st, _ := n.svc.Addrs()
	c, err := net.Dial("tcp", st[0].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	header := streamHeader(domain, n.domain, "")
	dec := xml.NewDecoder(c, xml.Limits{})
	if _, err := c.Write(header); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Header(); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Next(); err != nil { // features
		t.Fatal(err)
	}
	c.Write([]byte("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"))
	if el, err := dec.Next(); err != nil || el.Local != "proceed" {
		t.Fatalf("starttls: %v %v", el, err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: n.domain, RootCAs: cs.roots, Certificates: []tls.Certificate{*cs.cert}})
	dec = xml.NewDecoder(tc, xml.Limits{})
	tc.Write(header)
	dec.Header()
	f, err := dec.Next()
	if err != nil || f.Child(nsSASL, "mechanisms") == nil {
		t.Fatalf("features after TLS: %v %v", f, err)
	}
	if !external {
		return tc, dec
	}
	fmt.Fprintf(tc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>%s</auth>", base64.StdEncoding.EncodeToString([]byte(domain)))
	if el, err := dec.Next(); err != nil || el.Local != "success" {
		t.Fatalf("auth: %v %v", el, err)
	}
	dec = xml.NewDecoder(tc, xml.Limits{})
	tc.Write(header)
	dec.Header()
	dec.Next()
	return tc, dec
}

type tlsCert struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

func TestForgedFromRefused(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool})
	alice := newInbox(t, a, "alice@a.test/r")
	peer := ca.issue(t, "b.test")
	tc, dec := rawPeer(t, a, "b.test", &tlsCert{cert: peer.For("b.test"), roots: ca.pool}, true)
	// An authenticated sender is delivered...
	fmt.Fprintf(tc, "<message from='bob@b.test/x' to='alice@a.test/r' type='chat'><body>genuine</body></message>")
	alice.expect(isMessageWithBody("genuine"))
	// ...a forged one ends the stream with invalid-from and goes nowhere.
	fmt.Fprintf(tc, "<message from='ceo@a.test/x' to='alice@a.test/r' type='chat'><body>forged</body></message>")
	el, err := dec.Next()
	if err != nil || el.Local != "error" || el.Child("urn:ietf:params:xml:ns:xmpp-streams", "invalid-from") == nil {
		t.Fatalf("got %v, %v; want a stream error invalid-from", el, err)
	}
	alice.expectNothing(isMessageWithBody("forged"))
	if got := testutilDenied(a, "s2s_invalid_from"); got != 1 {
		t.Errorf("s2s_invalid_from = %v", got)
	}
}

func TestUnauthenticatedStanzaRefused(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool})
	st, _ := a.svc.Addrs()
	c, err := net.Dial("tcp", st[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	dec := xml.NewDecoder(c, xml.Limits{})
	c.Write(streamHeader("b.test", "a.test", ""))
	dec.Header()
	f, _ := dec.Next()
	if f.Child(nsTLS, "starttls").Child(nsTLS, "required") == nil {
		t.Errorf("STARTTLS is not required: %v", f)
	}
	c.Write([]byte("<message from='bob@b.test' to='alice@a.test'><body>plain</body></message>"))
	el, err := dec.Next()
	if err != nil || el.Child("urn:ietf:params:xml:ns:xmpp-streams", "policy-violation") == nil {
		t.Fatalf("got %v, %v; want policy-violation", el, err)
	}
}

func TestDialbackKey(t *testing.T) {
	t.Parallel()
	svc, err := New(Options{Config: Defaults, Secret: []byte("s"), Roots: x509.NewCertPool()})
	if err != nil {
		t.Fatal(err)
	}
	k1 := svc.dialbackKey("b.test", "a.test", "id1")
	if len(k1) != 64 || k1 == svc.dialbackKey("b.test", "a.test", "id2") || k1 == svc.dialbackKey("c.test", "a.test", "id1") {
		t.Errorf("keys are not bound to the receiving domain and stream id: %s", k1)
	}
	other, _ := New(Options{Config: Defaults, Secret: []byte("t"), Roots: x509.NewCertPool()})
	if other.dialbackKey("b.test", "a.test", "id1") == k1 {
		t.Error("keys do not depend on the secret")
	}
}

func TestLookupTargets(t *testing.T) {
	t.Parallel()
	res := MapResolver{SRV: map[string][]*net.SRV{
		"_xmpp-server._tcp.both.test":  {{Target: "plain.both.test.", Port: 5269, Priority: 10}},
		"_xmpps-server._tcp.both.test": {{Target: "tls.both.test.", Port: 5270, Priority: 5}},
		"_xmpp-server._tcp.none.test":  {{Target: ".", Port: 0}},
		"_xmpps-server._tcp.dot.test":  {{Target: ".", Port: 0}},
		"_xmpp-server._tcp.dot.test":   {{Target: "x.dot.test", Port: 5299}},
	}}
	tests := []struct {
		domain string
		want   string
		err    bool
	}{
		{"fallback.test", "fallback.test:5269", false},
		{"both.test", "tls://tls.both.test:5270 plain.both.test:5269", false},
		{"none.test", "", true},
		{"dot.test", "x.dot.test:5299", false},
	}
	for _, tc := range tests {
		got, err := lookupTargets(context.Background(), res, tc.domain)
		if (err != nil) != tc.err {
			t.Errorf("%s: err = %v", tc.domain, err)
			continue
		}
		var s []string
		for _, x := range got {
			s = append(s, x.String())
		}
		if strings.Join(s, " ") != tc.want {
			t.Errorf("%s: targets %q, want %q", tc.domain, s, tc.want)
		}
	}
}

func TestStaticRoutes(t *testing.T) {
	t.Parallel()
	r := routeResolver{routes: map[string]route{"p.test": {host: "127.0.0.3", port: 5269}, "q.test": {host: "127.0.0.4", port: 5270, direct: true}}, next: MapResolver{}}
	got, err := lookupTargets(context.Background(), r, "p.test")
	if err != nil || len(got) != 1 || got[0].String() != "127.0.0.3:5269" {
		t.Errorf("p.test: %v %v", got, err)
	}
	got, err = lookupTargets(context.Background(), r, "q.test")
	if err != nil || len(got) != 1 || got[0].String() != "tls://127.0.0.4:5270" {
		t.Errorf("q.test: %v %v", got, err)
	}
	for _, bad := range []string{"nohost", "tls://x", "h:0"} {
		if _, err := parseRoute(bad); err == nil {
			t.Errorf("parseRoute(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	c := Defaults
	c.BlockedDomains = []string{"Spam.Example."}
	c.Routes = map[string]string{"x.test": "127.0.0.1:5269"}
	if err := c.Validate(); err != nil || c.BlockedDomains[0] != "spam.example" {
		t.Errorf("valid config: %v, %v", err, c.BlockedDomains)
	}
	c.Listen = []string{"nope"}
	c.Routes = map[string]string{"x.test": "bad"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "listen") || !strings.Contains(err.Error(), "routes") {
		t.Errorf("bad config: %v", err)
	}
}

func TestBandwidthPolicyApplies(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	type ask struct {
		kind server.ConnKind
		user string
	}
	var mu sync.Mutex
	var asked []ask
	bw := server.Feature{Name: "testbw", Setup: func(s *server.Setup, _ any) error {
		s.SetBandwidth(func(kind server.ConnKind, c *server.ConnInfo) server.Bandwidth {
			mu.Lock()
			asked = append(asked, ask{kind, c.User.String()})
			mu.Unlock()
			return server.Bandwidth{Read: policy.ByteRate{PerSecond: 1 << 20, Burst: time.Second}}
		})
		return nil
	}}
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool, features: []server.Feature{bw}, cfg: func(c *Config) { c.Bidi = false }})
	b := w.node("b.test", nodeOpts{cs: ca.issue(t, "b.test"), roots: ca.pool, features: []server.Feature{bw}, cfg: func(c *Config) { c.Bidi = false }})
	exchange(t, a, b)
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []ask{{server.ConnS2SOut, ""}, {server.ConnS2SOut, "b.test"}, {server.ConnS2SIn, ""}, {server.ConnS2SIn, "a.test"}} {
		if !slices.Contains(asked, want) {
			t.Errorf("the bandwidth policy was not asked for %v; asked: %v", want, asked)
		}
	}
}

func TestDialbackRequests(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool})
	peer := &tlsCert{cert: ca.issue(t, "b.test").For("b.test"), roots: ca.pool}
	t.Run("valid certificate: no verification round trip", func(t *testing.T) {
		tc, dec := rawPeer(t, a, "b.test", peer, false)
		tc.Write(dbElement("result", "b.test", "a.test", "", "", "0123456789abcdef", ""))
		el, err := dec.Next()
		if err != nil || el.Local != "result" || el.Attr("type") != "valid" || el.Attr("from") != "a.test" || el.Attr("to") != "b.test" {
			t.Fatalf("got %v, %v", el, err)
		}
		if got := a.outcome("in", "b.test", "dialback_cert"); got != 1 {
			t.Errorf("dialback_cert = %v", got)
		}
	})
	t.Run("a local domain claimed by a peer", func(t *testing.T) {
		tc, dec := rawPeer(t, a, "b.test", peer, false)
		tc.Write(dbElement("result", "a.test", "a.test", "", "", "0123456789abcdef", ""))
		el, err := dec.Next()
		if err != nil || el.Child("urn:ietf:params:xml:ns:xmpp-streams", "invalid-from") == nil {
			t.Fatalf("got %v, %v; want invalid-from", el, err)
		}
	})
	t.Run("a key that is not ours", func(t *testing.T) {
		tc, dec := rawPeer(t, a, "b.test", peer, false)
		tc.Write(dbElement("verify", "b.test", "a.test", "some-id", "", "forged", ""))
		el, err := dec.Next()
		if err != nil || el.Local != "verify" || el.Attr("type") != "invalid" {
			t.Fatalf("got %v, %v; want type='invalid'", el, err)
		}
		tc.Write(dbElement("verify", "b.test", "a.test", "some-id", "", a.svc.dialbackKey("b.test", "a.test", "some-id"), ""))
		if el, err = dec.Next(); err != nil || el.Attr("type") != "valid" {
			t.Fatalf("got %v, %v; want type='valid'", el, err)
		}
	})
}

func TestTimeoutBounces(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool, cfg: func(c *Config) { c.ConnectTimeout = 1e9 }})
	// A server that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	w.mu.Lock()
	w.res.SRV["_xmpp-server._tcp.silent.test"] = []*net.SRV{{Target: "127.0.0.1", Port: uint16(l.Addr().(*net.TCPAddr).Port)}}
	w.mu.Unlock()
	alice := newInbox(t, a, "alice@a.test/r")
	for i := range 3 {
		alice.send(chat("bob@silent.test", fmt.Sprintf("queued-%d", i)))
	}
	for range 3 {
		alice.expect(isError("remote-server-timeout"))
	}
	if got := a.outcome("out", "silent.test", "timeout"); got != 1 {
		t.Errorf("timeout outcomes = %v, want 1 (one connection attempt for the queue)", got)
	}
}

func TestQueuedInOrder(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	w := newWorld(t)
	a := w.node("a.test", nodeOpts{cs: ca.issue(t, "a.test"), roots: ca.pool})
	b := w.node("b.test", nodeOpts{cs: ca.issue(t, "b.test"), roots: ca.pool})
	alice := newInbox(t, a, "alice@a.test/r")
	bob := newInbox(t, b, "bob@b.test/r")
	const n = 50
	for i := range n {
		alice.send(chat("bob@b.test/r", fmt.Sprintf("m%02d", i)))
	}
	for i := range n {
		el := bob.expect(func(el *xml.Element) bool { return el.Local == "message" })
		if got, want := body(el), fmt.Sprintf("m%02d", i); got != want {
			t.Fatalf("message %d is %q, want %q", i, got, want)
		}
	}
}
