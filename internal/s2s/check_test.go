package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckDNS(t *testing.T) {
	t.Parallel()
	ip := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	res := MapResolver{
		SRV: map[string][]*net.SRV{
			"_xmpp-server._tcp.good.test":  {{Target: "xmpp.good.test.", Port: 5269}},
			"_xmpps-server._tcp.good.test": {{Target: "xmpp.good.test.", Port: 5270}},
			"_xmpp-client._tcp.good.test":  {{Target: "xmpp.good.test.", Port: 5222}},
			"_xmpps-client._tcp.good.test": {{Target: "xmpp.good.test.", Port: 5223}},
			"_xmpp-server._tcp.bad.test":   {{Target: "gone.bad.test.", Port: 5269}},
			"_xmpp-client._tcp.bad.test":   {{Target: "xmpp.good.test.", Port: 5999}},
		},
		Hosts: map[string][]netip.Addr{"xmpp.good.test": ip, "plain.test": ip},
	}
	c := DNSCheck{S2S: []string{"[::]:5269"}, S2STLS: []string{"[::]:5270"}, C2S: []string{"[::]:5222"}, C2STLS: []string{"[::]:5223"}}
	tests := []struct {
		host   string
		failed bool
		want   []string
	}{
		{"good.test", false, []string{"good.test: ok: _xmpp-server._tcp.good.test → xmpp.good.test:5269 (192.0.2.1)", "good.test: ok: _xmpps-client._tcp.good.test → xmpp.good.test:5223"}},
		{"bad.test", true, []string{"points to gone.bad.test:5269, which has no address", "stoa listens for clients (STARTTLS) on port 5222"}},
		{"plain.test", false, []string{"plain.test: warning: no _xmpp-server._tcp.plain.test record; other servers (STARTTLS) fall back to plain.test:5269", "no _xmpps-server._tcp.plain.test record"}},
		{"missing.test", true, []string{"no _xmpp-server._tcp.missing.test record and no address"}},
	}
	for _, tc := range tests {
		c.Hosts = []string{tc.host}
		fs := CheckDNS(context.Background(), res, c)
		var lines []string
		for _, f := range fs {
			lines = append(lines, f.String())
		}
		all := strings.Join(lines, "\n")
		if Failed(fs) != tc.failed {
			t.Errorf("%s: failed = %v, want %v:\n%s", tc.host, Failed(fs), tc.failed, all)
		}
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: report lacks %q:\n%s", tc.host, w, all)
			}
		}
	}
}

func TestCheckCerts(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	good := ca.issue(t, "good.test")
	wrong := ca.issue(t, "other.test")
	soon := ca.issueTmpl(t, &x509.Certificate{DNSNames: []string{"soon.test"}, Subject: pkix.Name{CommonName: "soon.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(3 * 24 * time.Hour)})
	untrusted := newCA(t, "other CA").issue(t, "good.test")
	check := func(host string, forFn func(string) *tls.Certificate, roots *x509.CertPool, failed bool, want string) {
		t.Helper()
		fs := CheckCerts([]string{host}, forFn, roots, time.Now())
		var lines []string
		for _, f := range fs {
			lines = append(lines, f.String())
		}
		all := strings.Join(lines, "\n")
		if Failed(fs) != failed || !strings.Contains(all, want) {
			t.Errorf("%s: failed = %v (want %v), report:\n%s\nwant %q", host, Failed(fs), failed, all, want)
		}
	}
	check("good.test", good.For, ca.pool, false, "good.test: ok: valid for good.test")
	check("good.test", good.For, ca.pool, false, "no clientAuth")
	check("good.test", wrong.For, ca.pool, true, "not valid for good.test (it is for other.test)")
	check("soon.test", soon.For, ca.pool, false, "warning: the certificate expires")
	check("good.test", untrusted.For, ca.pool, true, "not signed by a trusted authority")
}
