package sasl

import (
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"hash"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xdg-go/scram"
)

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// specSSDP computes the XEP-0474 v0.5.0 hash as its §"Server Sends
// Downgrade Protection Hash" describes, independently of SSDPHash.
func specSSDP(h func() hash.Hash, mechs, cbTypes []string) string {
	m := append([]string(nil), mechs...)
	sort.Strings(m) // i;octet collation = byte order
	s := ""
	for i, x := range m {
		if i > 0 {
			s += "\x1e"
		}
		s += x
	}
	if len(cbTypes) > 0 {
		c := append([]string(nil), cbTypes...)
		sort.Strings(c)
		s += "\x1f"
		for i, x := range c {
			if i > 0 {
				s += "\x1e"
			}
			s += x
		}
	}
	d := h()
	d.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(d.Sum(nil))
}

// attr returns the value of attribute k in a SCRAM message.
func attr(msg, k string) (string, bool) {
	for f := range strings.SplitSeq(msg, ",") {
		if v, ok := strings.CutPrefix(f, k+"="); ok {
			return v, true
		}
	}
	return "", false
}

func asFailure(t *testing.T, err error) *Failure {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *Failure", err, err)
	}
	return f
}

func TestMechanismsAndBindings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		version   uint16
		kind      certKind
		noLeaf    bool
		noTLS     bool
		wantCB    []string
		wantMechs []string // with allowPlain
	}{
		{"TLS1.3 P-256", tls.VersionTLS13, certP256, false, false, []string{TLSExporter, TLSServerEndPoint},
			[]string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}},
		{"TLS1.2 P-256 (EMS)", tls.VersionTLS12, certP256, false, false, []string{TLSExporter, TLSServerEndPoint},
			[]string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}},
		{"TLS1.3 P-384", tls.VersionTLS13, certP384, false, false, []string{TLSExporter, TLSServerEndPoint},
			[]string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}},
		{"TLS1.3 Ed25519", tls.VersionTLS13, certEd25519, false, false, []string{TLSExporter},
			[]string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}},
		{"TLS1.3 no leaf", tls.VersionTLS13, certP256, true, false, []string{TLSExporter},
			[]string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}},
		{"no TLS", 0, 0, false, true, nil, []string{SCRAMSHA256, SCRAMSHA1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var info TLSInfo
			if !tc.noTLS {
				info = dialTLS(t, tc.version, tc.kind).info
				if tc.noLeaf {
					info.Leaf = nil
				}
			}
			if got := ChannelBindingTypes(info); !slices.Equal(got, tc.wantCB) {
				t.Errorf("ChannelBindingTypes = %q, want %q", got, tc.wantCB)
			}
			if got := Mechanisms(info, true); !slices.Equal(got, tc.wantMechs) {
				t.Errorf("Mechanisms(plain) = %q, want %q", got, tc.wantMechs)
			}
			noPlain := slices.DeleteFunc(slices.Clone(tc.wantMechs), func(m string) bool { return m == Plain })
			if got := Mechanisms(info, false); !slices.Equal(got, noPlain) {
				t.Errorf("Mechanisms(no plain) = %q, want %q", got, noPlain)
			}
		})
	}
}

func TestEndPointHash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		alg  x509.SignatureAlgorithm
		want crypto.Hash
	}{
		{x509.MD5WithRSA, crypto.SHA256},
		{x509.SHA1WithRSA, crypto.SHA256},
		{x509.ECDSAWithSHA1, crypto.SHA256},
		{x509.SHA256WithRSA, crypto.SHA256},
		{x509.ECDSAWithSHA256, crypto.SHA256},
		{x509.SHA256WithRSAPSS, crypto.SHA256},
		{x509.SHA384WithRSA, crypto.SHA384},
		{x509.ECDSAWithSHA384, crypto.SHA384},
		{x509.SHA512WithRSAPSS, crypto.SHA512},
		{x509.ECDSAWithSHA512, crypto.SHA512},
		{x509.PureEd25519, 0},
		{x509.UnknownSignatureAlgorithm, 0},
	}
	for _, tc := range tests {
		c := &x509.Certificate{SignatureAlgorithm: tc.alg, Raw: []byte("certificate")}
		h, ok := endPointHash(c)
		if ok != (tc.want != 0) || h != tc.want {
			t.Errorf("%v: hash %v, %v; want %v", tc.alg, h, ok, tc.want)
			continue
		}
		b, err := endPointBinding(c)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%v: binding without a hash", tc.alg)
			}
			continue
		}
		d := tc.want.New()
		d.Write(c.Raw)
		if err != nil || string(b) != string(d.Sum(nil)) {
			t.Errorf("%v: binding %x, %v", tc.alg, b, err)
		}
	}
}

// TestSuccess runs every mechanism over real TLS 1.2 and 1.3 connections
// with xdg-go/scram's client (PLAIN by hand).
func TestSuccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mech string
		cb   string
		kind certKind
	}{
		{SCRAMSHA1, "", certP256},
		{SCRAMSHA256, "", certP256},
		{SCRAMSHA1Plus, TLSExporter, certP256},
		{SCRAMSHA256Plus, TLSExporter, certP256},
		{SCRAMSHA1Plus, TLSServerEndPoint, certP256},
		{SCRAMSHA256Plus, TLSServerEndPoint, certP256},
		{SCRAMSHA256Plus, TLSServerEndPoint, certP384},
		{SCRAMSHA256Plus, TLSExporter, certEd25519},
		{Plain, "", certP256},
	}
	for _, v := range versions {
		for _, tc := range tests {
			name := v.name + " " + tc.mech + " " + tc.cb
			if tc.kind == certP384 {
				name += " P-384"
			} else if tc.kind == certEd25519 {
				name += " Ed25519"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				conns := dialTLS(t, v.v, tc.kind)
				srv, users := newTestServer(t, nil)
				offered := Mechanisms(conns.info, true)
				var cl clientSide
				var sc *scramClient
				if tc.mech == Plain {
					cl = plainClient{"\x00juliet\x00pencil"}
				} else {
					sc = newSCRAMClient(t, tc.mech, "juliet", "pencil", "", binding(t, conns, tc.cb), false)
					cl = sc
				}
				res := exchange(t, conns, srv, tc.mech, offered, cl)
				if !res.success || res.username != "juliet" {
					t.Fatalf("got %v, want success as juliet", res)
				}
				if users.lastAsked() != "juliet" {
					t.Errorf("lookup asked for %q", users.lastAsked())
				}
				if sc == nil {
					return
				}
				// XEP-0474: the server-first-message carries h= with the
				// hash of what we advertised.
				h := sha256.New
				if strings.HasPrefix(tc.mech, "SCRAM-SHA-1") {
					h = sha1.New
				}
				got, ok := attr(sc.challenges[0], "h")
				want := specSSDP(h, offered, ChannelBindingTypes(conns.info))
				if !ok || got != want {
					t.Errorf("h= %q, want %q (server-first %q)", got, want, sc.challenges[0])
				}
			})
		}
	}
}

func TestSSDPHashExample(t *testing.T) {
	t.Parallel()
	// The example of XEP-0474 §"Example": SHA-1 of
	// 'SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point'.
	const want = "G6k/rBLDqgOhRRaCuuatSDFkJ08="
	if got := SSDPHash(sha1.New, []string{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"},
		[]string{"tls-server-end-point", "tls-exporter"}); got != want {
		t.Errorf("SSDPHash = %q, want %q", got, want)
	}
	mechs := []string{"SCRAM-SHA-256-PLUS", "PLAIN", "SCRAM-SHA-1"}
	if got, want := SSDPHash(sha256.New, mechs, nil), specSSDP(sha256.New, mechs, nil); got != want {
		t.Errorf("SSDPHash without bindings = %q, want %q", got, want)
	}
}

// tamperClient changes the h= attribute of the server-first-message before
// the real client sees it, as a MITM that rewrote the advertised lists and
// the hash would. The client's proof then covers a different message.
type tamperClient struct{ *scramClient }

func (c tamperClient) step(ch []byte) ([]byte, error) {
	if ch != nil {
		s := string(ch)
		if i := strings.Index(s, ",h="); i >= 0 {
			ch = []byte(s[:i] + ",h=" + specSSDP(sha256.New, []string{SCRAMSHA256}, nil))
		}
	}
	return c.scramClient.step(ch)
}

func TestSSDPTamperedFails(t *testing.T) {
	t.Parallel()
	conns := dialTLS(t, tls.VersionTLS13, certP256)
	srv, _ := newTestServer(t, nil)
	cl := tamperClient{newSCRAMClient(t, SCRAMSHA256, "juliet", "pencil", "", scram.ChannelBinding{}, false)}
	res := exchange(t, conns, srv, SCRAMSHA256, Mechanisms(conns.info, false), cl)
	if res.failure == nil || res.failure.Condition != NotAuthorized {
		t.Fatalf("got %v, want not-authorized", res)
	}
}

// TestWrongPasswordLikeUnknownUser checks that a wrong password and an
// unknown user give the same failure, and that unknown users get stable
// fake salts with the configured iteration count.
func TestWrongPasswordLikeUnknownUser(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{SCRAMSHA1, SCRAMSHA256, SCRAMSHA256Plus, SCRAMSHA1Plus, Plain} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			var expensive atomic.Int32
			srv, _ := newTestServer(t, func(c *Config) {
				c.Expensive = func(ctx context.Context, work func()) error {
					expensive.Add(1)
					work()
					return nil
				}
			})
			var failures []*Failure
			for _, user := range []string{"juliet", "romeo"} {
				conns := dialTLS(t, tls.VersionTLS13, certP256)
				var cl clientSide = plainClient{"\x00" + user + "\x00wrong"}
				if mech != Plain {
					cb := ""
					if strings.HasSuffix(mech, "-PLUS") {
						cb = TLSExporter
					}
					cl = newSCRAMClient(t, mech, user, "wrong", "", binding(t, conns, cb), false)
				}
				res := exchange(t, conns, srv, mech, Mechanisms(conns.info, true), cl)
				if res.failure == nil {
					t.Fatalf("%s: got %v, want failure", user, res)
				}
				failures = append(failures, res.failure)
			}
			if failures[0].Condition != NotAuthorized || *failures[0] != *failures[1] {
				t.Errorf("wrong password: %v; unknown user: %v; want the same not-authorized", failures[0], failures[1])
			}
			if mech == Plain && expensive.Load() != 2 {
				t.Errorf("Expensive ran %d times, want 2 (unknown users take the same path)", expensive.Load())
			}
		})
	}

	// Fake salts: stable per user and secret, configured iterations.
	first := func(srv *Server, user string) string {
		conv, err := srv.Start(context.Background(), SCRAMSHA256, TLSInfo{}, []string{SCRAMSHA256})
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := conv.Step(context.Background(), []byte("n,,n="+user+",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	srv, _ := newTestServer(t, func(c *Config) { c.Iterations = 5000 })
	a, b := first(srv, "romeo"), first(srv, "romeo")
	sa, _ := attr(a, "s")
	sb, _ := attr(b, "s")
	if sa == "" || sa != sb {
		t.Errorf("fake salt not stable: %q vs %q", sa, sb)
	}
	if i, _ := attr(a, "i"); i != "5000" {
		t.Errorf("fake iterations %q, want 5000", i)
	}
	if raw, _ := base64.StdEncoding.DecodeString(sa); len(raw) != 16 {
		t.Errorf("fake salt of %d bytes, want 16", len(raw))
	}
	if s, _ := attr(first(srv, "mercutio"), "s"); s == sa {
		t.Errorf("two unknown users share a salt")
	}
	other, _ := newTestServer(t, func(c *Config) { c.Secret = []byte("other") })
	if s, _ := attr(first(other, "romeo"), "s"); s == sa {
		t.Errorf("fake salt does not depend on the secret")
	}
	if s, _ := attr(first(srv, "juliet"), "s"); s != base64.StdEncoding.EncodeToString(pencil().SHA256.Salt) {
		t.Errorf("known user got salt %q", s)
	}
}

// TestBadChannelBinding includes bindings of another connection, as a MITM
// relaying the exchange would present.
func TestBadChannelBinding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mech     string
		kind     certKind
		cb       func(t *testing.T, conns tlsConns) scram.ChannelBinding
		wantCond string
	}{
		{"exporter of another connection", SCRAMSHA256Plus, certP256, func(t *testing.T, _ tlsConns) scram.ChannelBinding {
			return binding(t, dialTLS(t, tls.VersionTLS13, certP256), TLSExporter)
		}, NotAuthorized},
		{"end-point of another certificate", SCRAMSHA1Plus, certP256, func(t *testing.T, _ tlsConns) scram.ChannelBinding {
			return binding(t, dialTLS(t, tls.VersionTLS13, certP256), TLSServerEndPoint)
		}, NotAuthorized},
		{"tls-unique", SCRAMSHA256Plus, certP256, func(*testing.T, tlsConns) scram.ChannelBinding {
			return scram.NewTLSUniqueBinding([]byte("0123456789ab"))
		}, NotAuthorized},
		{"end-point with Ed25519 certificate", SCRAMSHA256Plus, certEd25519, func(t *testing.T, c tlsConns) scram.ChannelBinding {
			d := sha256.Sum256(c.info.Leaf.Raw)
			return scram.ChannelBinding{Type: scram.ChannelBindingTLSServerEndpoint, Data: d[:]}
		}, NotAuthorized},
		{"PLUS without binding", SCRAMSHA256Plus, certP256, func(*testing.T, tlsConns) scram.ChannelBinding {
			return scram.ChannelBinding{}
		}, MalformedRequest},
		{"binding with non-PLUS mechanism", SCRAMSHA256, certP256, func(t *testing.T, c tlsConns) scram.ChannelBinding {
			return binding(t, c, TLSExporter)
		}, MalformedRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conns := dialTLS(t, tls.VersionTLS13, tc.kind)
			srv, _ := newTestServer(t, nil)
			cl := newSCRAMClient(t, tc.mech, "juliet", "pencil", "", tc.cb(t, conns), false)
			res := exchange(t, conns, srv, tc.mech, Mechanisms(conns.info, false), cl)
			if res.failure == nil || res.failure.Condition != tc.wantCond {
				t.Fatalf("got %v, want %s", res, tc.wantCond)
			}
		})
	}
}

func TestDowngradeYFlag(t *testing.T) {
	t.Parallel()
	// PLUS offered: a client saying "y" saw a stripped list.
	conns := dialTLS(t, tls.VersionTLS13, certP256)
	srv, _ := newTestServer(t, nil)
	cl := newSCRAMClient(t, SCRAMSHA256, "juliet", "pencil", "", scram.ChannelBinding{}, true)
	res := exchange(t, conns, srv, SCRAMSHA256, Mechanisms(conns.info, false), cl)
	if res.failure == nil || res.failure.Condition != NotAuthorized {
		t.Fatalf("y with PLUS offered: got %v, want not-authorized", res)
	}
	// No PLUS offered: "y" is fine.
	conns = dialTLS(t, tls.VersionTLS13, certP256)
	noCB := conns
	noCB.info = TLSInfo{}
	cl = newSCRAMClient(t, SCRAMSHA1, "juliet", "pencil", "", scram.ChannelBinding{}, true)
	res = exchange(t, noCB, srv, SCRAMSHA1, Mechanisms(noCB.info, false), cl)
	if !res.success {
		t.Fatalf("y without PLUS offered: got %v, want success", res)
	}
}

func TestAuthzid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		authzid  string
		domain   string
		password string
		want     string // "" = success
	}{
		{"", "example.com", "pencil", ""},
		{"juliet@example.com", "example.com", "pencil", ""},
		{"Juliet@EXAMPLE.com", "example.com", "pencil", ""},
		{"juliet@example.com", "EXAMPLE.COM.", "pencil", ""},
		{"romeo@example.com", "example.com", "pencil", InvalidAuthzid},
		{"juliet@example.com/balcony", "example.com", "pencil", InvalidAuthzid},
		{"juliet@example.org", "example.com", "pencil", InvalidAuthzid},
		{"example.com", "example.com", "pencil", InvalidAuthzid},
		{"@example.com", "example.com", "pencil", InvalidAuthzid},
		{"juliet@example.com", "", "pencil", InvalidAuthzid},
		{"romeo@example.com", "example.com", "wrong", NotAuthorized},
	}
	for _, mech := range []string{SCRAMSHA256, Plain} {
		for _, tc := range tests {
			t.Run(mech+" "+tc.authzid+" "+tc.domain+" "+tc.password, func(t *testing.T) {
				t.Parallel()
				conns := dialTLS(t, tls.VersionTLS13, certP256)
				srv, _ := newTestServer(t, func(c *Config) { c.Domain = tc.domain })
				var cl clientSide = plainClient{tc.authzid + "\x00juliet\x00" + tc.password}
				if mech != Plain {
					cl = newSCRAMClient(t, mech, "juliet", tc.password, tc.authzid, scram.ChannelBinding{}, false)
				}
				res := exchange(t, conns, srv, mech, Mechanisms(conns.info, true), cl)
				if tc.want == "" {
					if !res.success || res.username != "juliet" {
						t.Fatalf("got %v, want success", res)
					}
					return
				}
				if res.failure == nil || res.failure.Condition != tc.want {
					t.Fatalf("got %v, want %s", res, tc.want)
				}
			})
		}
	}
}

func TestUsernames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mech, user string
		wantLookup string // "" = refused before lookup
		wantOK     bool
	}{
		{SCRAMSHA256, "Juliet", "juliet", true},
		{SCRAMSHA256, "ＪＵＬＩＥＴ", "juliet", true},
		{SCRAMSHA256, "jul,i=et", "jul,i=et", true}, // sent as jul=2Ci=3Det
		{SCRAMSHA1, "jul iet", "", false},
		{SCRAMSHA1, "juliet@example.com", "", false},
		{Plain, "JULIET", "juliet", true},
		{Plain, "jul,i=et", "jul,i=et", true},
		{Plain, "jul iet", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.mech+" "+tc.user, func(t *testing.T) {
			t.Parallel()
			conns := dialTLS(t, tls.VersionTLS13, certP256)
			srv, users := newTestServer(t, nil)
			var cl clientSide = plainClient{"\x00" + tc.user + "\x00pencil"}
			if tc.mech != Plain {
				sc := newSCRAMClient(t, tc.mech, "x", "pencil", "", scram.ChannelBinding{}, false)
				// NewClient SASLpreps, which would map fullwidth letters;
				// send the name as given.
				c, err := scram.SHA256.NewClientUnprepped(tc.user, "pencil", "")
				if tc.mech == SCRAMSHA1 {
					c, err = scram.SHA1.NewClientUnprepped(tc.user, "pencil", "")
				}
				if err != nil {
					t.Fatal(err)
				}
				sc.conv = c.NewConversation()
				cl = sc
			}
			res := exchange(t, conns, srv, tc.mech, Mechanisms(conns.info, true), cl)
			if res.success != tc.wantOK {
				t.Fatalf("got %v, want success=%v", res, tc.wantOK)
			}
			if tc.wantOK && res.username != tc.wantLookup {
				t.Errorf("username %q, want %q", res.username, tc.wantLookup)
			}
			if !tc.wantOK && res.failure.Condition != NotAuthorized {
				t.Errorf("failure %v, want not-authorized", res.failure)
			}
			if got := users.lastAsked(); got != tc.wantLookup {
				t.Errorf("lookup asked for %q, want %q", got, tc.wantLookup)
			}
		})
	}
}

func startConv(t *testing.T, srv *Server, mech string, info TLSInfo) *Conversation {
	t.Helper()
	c, err := srv.Start(context.Background(), mech, info, Mechanisms(info, true))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	info := dialTLS(t, tls.VersionTLS13, certP256).info
	srv, _ := newTestServer(t, nil)
	first := []struct {
		mech, in, want string
	}{
		{SCRAMSHA256, "x", MalformedRequest},
		{SCRAMSHA256, "n", MalformedRequest},
		{SCRAMSHA256, "n,", MalformedRequest},
		{SCRAMSHA256, "n,,", MalformedRequest},
		{SCRAMSHA256, "n,,n=juliet", MalformedRequest},
		{SCRAMSHA256, "n,,r=abc,n=juliet", MalformedRequest},
		{SCRAMSHA256, "n,b=x,n=juliet,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,a=ju=liet,n=juliet,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,a=,n=juliet,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,,n=ju=2liet,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,,n=ju=,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,,m=x,n=juliet,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,,n=,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,,n=juliet,r=", MalformedRequest},
		{SCRAMSHA256, "n,,n=juliet,r=a b", MalformedRequest},
		{SCRAMSHA256, "n,,n=juliet,r=abc,1=x", MalformedRequest},
		{SCRAMSHA256, "n,,n=juliet,r=abc,x", MalformedRequest},
		{SCRAMSHA256, "q,,n=juliet,r=abc", MalformedRequest},
		{SCRAMSHA256, "p,,n=juliet,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,,n=jul\xffiet,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,,n=jul\x00iet,r=abc", MalformedRequest},
		{SCRAMSHA256, "n,,n=juliet,r=" + strings.Repeat("a", maxInput), MalformedRequest},
		{SCRAMSHA256Plus, "p=tls-exporter", MalformedRequest},
		{SCRAMSHA256Plus, "p=,,n=juliet,r=abc", NotAuthorized},
		{SCRAMSHA256Plus, "y,,n=juliet,r=abc", MalformedRequest},
		{Plain, "juliet\x00pencil", MalformedRequest},
		{Plain, "\x00\x00pencil", MalformedRequest},
		{Plain, "\x00juliet\x00", MalformedRequest},
		{Plain, "\x00juliet\x00pencil\x00", MalformedRequest},
		{Plain, "\x00jul\xffiet\x00pencil", MalformedRequest},
		{Plain, "\x00juliet\x00pen\x80cil", MalformedRequest},
	}
	for _, tc := range first {
		c := startConv(t, srv, tc.mech, info)
		out, done, err := c.Step(context.Background(), []byte(tc.in))
		if err == nil {
			t.Errorf("%s %q: accepted (out %q, done %v)", tc.mech, tc.in, out, done)
			continue
		}
		if f := asFailure(t, err); f.Condition != tc.want || out != nil || done {
			t.Errorf("%s %q: %v, want %s", tc.mech, tc.in, err, tc.want)
		}
		if _, _, err := c.Step(context.Background(), []byte("n,,n=juliet,r=abc")); err == nil {
			t.Errorf("%s %q: conversation continued after failure", tc.mech, tc.in)
		}
		if c.Username() != "" && c.Username() != "juliet" {
			t.Errorf("%s %q: Username %q", tc.mech, tc.in, c.Username())
		}
	}

	// client-final-message problems, after a valid first message.
	final := []struct {
		name string
		msg  func(nonce string) string
		want string
	}{
		{"too few fields", func(n string) string { return "c=biws,r=" + n }, MalformedRequest},
		{"no c=", func(n string) string { return "x=biws,r=" + n + ",p=AAAA" }, MalformedRequest},
		{"bad c= base64", func(n string) string { return "c=!!!!,r=" + n + ",p=AAAA" }, MalformedRequest},
		{"no r=", func(n string) string { return "c=biws,x=" + n + ",p=AAAA" }, MalformedRequest},
		{"no p=", func(n string) string { return "c=biws,r=" + n + ",x=AAAA" }, MalformedRequest},
		{"bad p= base64", func(n string) string { return "c=biws,r=" + n + ",p=A" }, MalformedRequest},
		{"bad extension", func(n string) string { return "c=biws,r=" + n + ",,p=AAAA" }, MalformedRequest},
		{"not UTF-8", func(n string) string { return "c=biws,r=" + n + ",e=\xff,p=AAAA" }, MalformedRequest},
		{"other gs2 header", func(n string) string { return "c=eSws,r=" + n + ",p=AAAA" }, NotAuthorized + ": channel binding mismatch"},
		{"nonce mismatch", func(n string) string { return "c=biws,r=" + n + "x,p=AAAA" }, NotAuthorized + ": nonce mismatch"},
		{"short proof", func(n string) string { return "c=biws,r=" + n + ",p=AAAA" }, NotAuthorized},
		{"wrong proof", func(n string) string {
			return "c=biws,r=" + n + ",e=ext,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
		}, NotAuthorized},
	}
	for _, tc := range final {
		c := startConv(t, srv, SCRAMSHA256, info)
		out, _, err := c.Step(context.Background(), []byte("n,,n=juliet,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		nonce, _ := attr(string(out), "r")
		if !strings.HasPrefix(nonce, "abc") || len(nonce) < 3+20 {
			t.Fatalf("server nonce %q", nonce)
		}
		_, done, err := c.Step(context.Background(), []byte(tc.msg(nonce)))
		if err == nil || done {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		cond, text, hasText := strings.Cut(tc.want, ": ")
		if f := asFailure(t, err); f.Condition != cond || (hasText && f.Text != text) {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
		if c.Username() != "juliet" {
			t.Errorf("%s: Username %q after failure, want the attempted juliet", tc.name, c.Username())
		}
	}
}

func TestEmptyInitialResponse(t *testing.T) {
	t.Parallel()
	info := dialTLS(t, tls.VersionTLS13, certP256).info
	srv, _ := newTestServer(t, nil)
	ctx := context.Background()

	// SCRAM: an empty initial response gets an empty challenge.
	c := startConv(t, srv, SCRAMSHA256, info)
	sc := newSCRAMClient(t, SCRAMSHA256, "juliet", "pencil", "", scram.ChannelBinding{}, false)
	out, done, err := c.Step(ctx, nil)
	if err != nil || done || len(out) != 0 {
		t.Fatalf("empty initial response: %q, %v, %v", out, done, err)
	}
	msg, _ := sc.step(nil)
	for !done {
		if out, done, err = c.Step(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if !done {
			msg, _ = sc.step(out)
		}
	}
	if err := sc.verify(out); err != nil || c.Username() != "juliet" {
		t.Fatalf("verify: %v, username %q", err, c.Username())
	}
	if _, _, err := c.Step(ctx, msg); err == nil {
		t.Errorf("Step after success accepted")
	}
	if c.Mechanism() != SCRAMSHA256 || c.ChannelBinding() != "" {
		t.Errorf("Mechanism %q ChannelBinding %q", c.Mechanism(), c.ChannelBinding())
	}

	// PLAIN the same way.
	c = startConv(t, srv, Plain, info)
	if out, done, err := c.Step(ctx, []byte{}); err != nil || done || len(out) != 0 {
		t.Fatalf("PLAIN empty: %q, %v, %v", out, done, err)
	}
	if out, done, err := c.Step(ctx, []byte("\x00juliet\x00pencil")); err != nil || !done || len(out) != 0 {
		t.Fatalf("PLAIN: %q, %v, %v", out, done, err)
	}

	// Two empty messages are one too many.
	c = startConv(t, srv, SCRAMSHA1, info)
	c.Step(ctx, nil)
	if _, _, err := c.Step(ctx, nil); err == nil || asFailure(t, err).Condition != MalformedRequest {
		t.Errorf("second empty response: %v", err)
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	info := dialTLS(t, tls.VersionTLS13, certP256).info
	srv, _ := newTestServer(t, nil)
	ctx := context.Background()
	tests := []struct {
		name    string
		mech    string
		info    TLSInfo
		offered []string
		want    string
	}{
		{"not offered", SCRAMSHA1, info, []string{SCRAMSHA256}, InvalidMechanism},
		{"unknown", "DIGEST-MD5", info, []string{"DIGEST-MD5"}, InvalidMechanism},
		{"empty", "", info, []string{""}, InvalidMechanism},
		{"PLAIN without TLS", Plain, TLSInfo{}, []string{Plain}, EncryptionRequired},
		{"PLUS without TLS", SCRAMSHA256Plus, TLSInfo{}, []string{SCRAMSHA256Plus}, InvalidMechanism},
		{"ok", SCRAMSHA256Plus, info, Mechanisms(info, false), ""},
	}
	for _, tc := range tests {
		c, err := srv.Start(ctx, tc.mech, tc.info, tc.offered)
		if tc.want == "" {
			if err != nil || c == nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || asFailure(t, err).Condition != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}

func TestPlainExpensive(t *testing.T) {
	t.Parallel()
	info := dialTLS(t, tls.VersionTLS13, certP256).info
	// A pool of one worker goroutine, owned by the test.
	jobs := make(chan func())
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case j := <-jobs:
				j()
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-finished })
	var calls atomic.Int32
	pool := func(ctx context.Context, work func()) error {
		calls.Add(1)
		done := make(chan struct{})
		select {
		case jobs <- func() { work(); close(done) }:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-done
		return nil
	}
	srv, _ := newTestServer(t, func(c *Config) { c.Expensive = pool })
	ctx := context.Background()
	c := startConv(t, srv, Plain, info)
	if _, done, err := c.Step(ctx, []byte("\x00juliet\x00pencil")); err != nil || !done || c.Username() != "juliet" {
		t.Fatalf("PLAIN through pool: %v, %v, %q", done, err, c.Username())
	}
	if calls.Load() != 1 {
		t.Errorf("pool called %d times, want 1", calls.Load())
	}

	// A saturated pool until ctx ends: temporary-auth-failure.
	busy, _ := newTestServer(t, func(c *Config) {
		c.Expensive = func(ctx context.Context, work func()) error {
			<-ctx.Done()
			return ctx.Err()
		}
	})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c = startConv(t, busy, Plain, info)
	_, _, err := c.Step(cctx, []byte("\x00juliet\x00pencil"))
	if err == nil || asFailure(t, err).Condition != TemporaryAuthFailure || !errors.Is(err, context.Canceled) {
		t.Fatalf("saturated pool: %v", err)
	}

	// SCRAM does no PBKDF2 on the server.
	calls.Store(0)
	c = startConv(t, srv, SCRAMSHA256, info)
	c.Step(ctx, []byte("n,,n=juliet,r=abc"))
	if calls.Load() != 0 {
		t.Errorf("SCRAM used the pool")
	}
}

func TestLookupError(t *testing.T) {
	t.Parallel()
	info := dialTLS(t, tls.VersionTLS13, certP256).info
	dbErr := errors.New("database is down")
	for _, mech := range []string{SCRAMSHA256, Plain} {
		srv, users := newTestServer(t, nil)
		users.err = dbErr
		c := startConv(t, srv, mech, info)
		msg := "n,,n=juliet,r=abc"
		if mech == Plain {
			msg = "\x00juliet\x00pencil"
		}
		_, _, err := c.Step(context.Background(), []byte(msg))
		if err == nil || asFailure(t, err).Condition != TemporaryAuthFailure || !errors.Is(err, dbErr) {
			t.Errorf("%s: %v, want temporary-auth-failure wrapping the cause", mech, err)
		}
		if strings.Contains(asFailure(t, err).Text, "database") {
			t.Errorf("%s: failure text leaks the cause: %q", mech, asFailure(t, err).Text)
		}
	}
}

func TestUnusableStoredKeys(t *testing.T) {
	t.Parallel()
	srv, users := newTestServer(t, nil)
	onlySHA1 := Credentials{SHA1: pencil().SHA1}
	users.users["legacy"] = onlySHA1
	// SCRAM-SHA-256 fails like a wrong password, SCRAM-SHA-1 and PLAIN work.
	for _, tc := range []struct {
		mech string
		ok   bool
	}{{SCRAMSHA256, false}, {SCRAMSHA1, true}, {Plain, true}} {
		conns := dialTLS(t, tls.VersionTLS13, certP256)
		var cl clientSide = plainClient{"\x00legacy\x00pencil"}
		if tc.mech != Plain {
			cl = newSCRAMClient(t, tc.mech, "legacy", "pencil", "", scram.ChannelBinding{}, false)
		}
		res := exchange(t, conns, srv, tc.mech, Mechanisms(conns.info, true), cl)
		if res.success != tc.ok || (!tc.ok && res.failure.Text != textAuthFailed) {
			t.Errorf("%s: %v, want success=%v", tc.mech, res, tc.ok)
		}
	}
}

func TestNewCredentials(t *testing.T) {
	t.Parallel()
	c, err := NewCredentials("pencil", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		name string
		keys ScramKeys
		h    scram.HashGeneratorFcn
	}{{"SHA-1", c.SHA1, scram.SHA1}, {"SHA-256", c.SHA256, scram.SHA256}} {
		if k.keys.Iterations != DefaultIterations || len(k.keys.Salt) != 16 {
			t.Errorf("%s: iterations %d, salt %d bytes", k.name, k.keys.Iterations, len(k.keys.Salt))
		}
		cl, err := k.h.NewClient("juliet", "pencil", "")
		if err != nil {
			t.Fatal(err)
		}
		want, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(k.keys.Salt), Iters: k.keys.Iterations})
		if err != nil {
			t.Fatal(err)
		}
		if string(want.StoredKey) != string(k.keys.StoredKey) || string(want.ServerKey) != string(k.keys.ServerKey) {
			t.Errorf("%s: keys differ from xdg-go/scram's", k.name)
		}
	}
	if string(c.SHA1.Salt) == string(c.SHA256.Salt) {
		t.Errorf("SHA-1 and SHA-256 share a salt")
	}
	if d, _ := NewCredentials("pencil", 0); string(d.SHA256.Salt) == string(c.SHA256.Salt) {
		t.Errorf("salt not random")
	}
	if _, err := NewCredentials("pencil", 100); err == nil {
		t.Errorf("100 iterations accepted")
	}
	if _, err := NewCredentials("", 0); err == nil {
		t.Errorf("empty password accepted")
	}
	// Passwords are prepared: a non-ASCII space is an ASCII space.
	d, err := NewCredentials("pen\u00a0cil", 4096)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := deriveKeys(sha256.New, "pen cil", d.SHA256.Salt, 4096)
	if string(k.StoredKey) != string(d.SHA256.StoredKey) {
		t.Errorf("password not prepared with OpaqueString")
	}
}

func TestFailureError(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	f := &Failure{Condition: TemporaryAuthFailure, Text: "try later", Err: cause}
	if f.Error() != "sasl: temporary-auth-failure: try later: cause" || !errors.Is(f, cause) {
		t.Errorf("Error() = %q", f.Error())
	}
	if (&Failure{Condition: Aborted}).Error() != "sasl: aborted" {
		t.Errorf("bare failure string wrong")
	}
}
