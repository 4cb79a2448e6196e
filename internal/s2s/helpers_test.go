package s2s

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/xmpp/xml"
)

// testCA issues certificates for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	dir  string
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, pool: pool, dir: t.TempDir()}
}

// issue writes a certificate for names and returns the store serving it.
func (ca *testCA) issue(t testing.TB, names ...string) *certs.Store {
	t.Helper()
	return ca.issueTmpl(t, &x509.Certificate{DNSNames: names, Subject: pkix.Name{CommonName: names[0]}})
}

func (ca *testCA) issueTmpl(t testing.TB, tmpl *x509.Certificate) *certs.Store {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	base := filepath.Join(ca.dir, strings.ReplaceAll(tmpl.Subject.CommonName, "*", "star")+big.NewInt(time.Now().UnixNano()).String())
	if err := os.WriteFile(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := certs.Load([]certs.Pair{{Cert: base + ".crt", Key: base + ".key"}})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// world is a set of in-process servers that federate over loopback,
// found through one shared map resolver.
type world struct {
	t   *testing.T
	mu  sync.Mutex
	res *MapResolver
}

func newWorld(t *testing.T) *world {
	return &world{t: t, res: &MapResolver{SRV: map[string][]*net.SRV{}, Hosts: map[string][]netip.Addr{}}}
}

// lockedResolver lets tests change the map while servers resolve.
type lockedResolver struct{ w *world }

func (l lockedResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.w.res.LookupSRV(ctx, service, proto, name)
}

func (l lockedResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.w.res.LookupNetIP(ctx, network, host)
}

// node is one in-process server with federation.
type node struct {
	domain string
	env    *servertest.Env
	svc    *Service
}

type nodeOpts struct {
	cfg    func(*Config)
	cs     *certs.Store
	roots  *x509.CertPool
	admins []string
	direct bool // publish only the direct TLS listener
	// features are set up before federation's (e.g. a bandwidth policy).
	features []server.Feature
}

func (w *world) node(domain string, o nodeOpts) *node {
	t := w.t
	t.Helper()
	cfg := Defaults
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.ListenTLS = []string{"127.0.0.1:0"}
	cfg.ConnectTimeout = 10 * 1e9
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	svc, err := New(Options{Config: cfg, Certs: o.cs, Secret: []byte("secret of " + domain), Roots: o.roots,
		Resolver: lockedResolver{w}, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	env := servertest.NewWithOptions(t, server.Options{Hosts: []string{domain}, Admins: o.admins, Features: append(o.features, svc.Feature())})
	if err := svc.Listen(); err != nil {
		t.Fatal(err)
	}
	svc.Serve(env.Ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Shutdown(ctx); err != nil {
			t.Errorf("shutdown of %s: %v", domain, err)
		}
	})
	st, dt := svc.Addrs()
	w.mu.Lock()
	if o.direct {
		a := dt[0].(*net.TCPAddr)
		w.res.SRV["_xmpps-server._tcp."+domain] = []*net.SRV{{Target: "direct." + domain + ".", Port: uint16(a.Port)}}
		w.res.Hosts["direct."+domain] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	} else {
		a := st[0].(*net.TCPAddr)
		w.res.SRV["_xmpp-server._tcp."+domain] = []*net.SRV{{Target: "xmpp." + domain + ".", Port: uint16(a.Port)}}
		w.res.Hosts["xmpp."+domain] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	w.mu.Unlock()
	return &node{domain: domain, env: env, svc: svc}
}

// testWriter sends the log to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// outcome reads stoa_s2s_authentications_total.
func (n *node) outcome(dir, domain, outcome string) float64 {
	return metricValue(n, "stoa_s2s_authentications_total", map[string]string{"direction": dir, "domain": domain, "outcome": outcome})
}

// metricValue reads a counter of the node's registry.
func metricValue(n *node, name string, labels map[string]string) float64 {
	mfs, _ := n.env.Srv.Registry().Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func body(el *xml.Element) string { return el.ChildText(xml.NSClient, "body") }

func isMessageWithBody(text string) func(*xml.Element) bool {
	return func(el *xml.Element) bool { return el.Local == "message" && body(el) == text }
}

func isError(cond string) func(*xml.Element) bool {
	return func(el *xml.Element) bool {
		if el.Attr("type") != "error" {
			return false
		}
		e := el.Child(xml.NSClient, "error")
		return e != nil && e.Child(nsStanzas, cond) != nil
	}
}

// testutilDenied reads stoa_policy_denied_total{policy=reason}.
func testutilDenied(n *node, reason string) float64 {
	return metricValue(n, "stoa_policy_denied_total", map[string]string{"policy": reason})
}
