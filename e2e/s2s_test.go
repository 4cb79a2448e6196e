package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sxml "stoa.im/stoa/internal/xmpp/xml"
)

// The federation world: every server on its own loopback address, each
// with port 5269, so that the peers find one another by name through
// /etc/hosts (Prosody, ejabberd) or static routes (stoa), with no DNS.
const (
	ipStoa     = "127.0.69.1" // stoa.test: certificate from the test CA
	ipDialback = "127.0.69.2" // dialback.test: certificate from another CA; uses dialback
	ipProsody  = "127.0.69.3" // prosody.test (and badcert.test, self-signed)
	ipEjabberd = "127.0.69.4" // ejabberd.test
	ipStoa2    = "127.0.69.5" // stoa2.test: a second stoa, certificate from the test CA

	hostsMarker = "# stoa-e2e-s2s: added by e2e/s2s_test.go, removed when it ends"
)

// fedCA is a test certificate authority.
type fedCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemPath string
	pool    *x509.CertPool
	dir     string
}

func newFedCA(t *testing.T, dir, name string) *fedCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	ca := &fedCA{cert: c, key: key, dir: dir, pool: x509.NewCertPool()}
	ca.pool.AddCert(c)
	ca.pemPath = filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".crt")
	if err := os.WriteFile(ca.pemPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue writes a certificate and key for domain; selfSigned ignores the CA.
func (ca *fedCA) issue(t *testing.T, domain string, selfSigned bool) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{domain},
	}
	parent, signer := ca.cert, ca.key
	if selfSigned {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPath = filepath.Join(ca.dir, domain+".crt")
	keyPath = filepath.Join(ca.dir, domain+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// addHosts adds name → address lines to /etc/hosts, marked, and removes
// them (and any left by an earlier run that was killed) when the test ends.
func addHosts(t *testing.T, lines map[string]string) {
	t.Helper()
	clean := func() error {
		b, err := os.ReadFile("/etc/hosts")
		if err != nil {
			return err
		}
		var keep []string
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if !strings.Contains(sc.Text(), hostsMarker) {
				keep = append(keep, sc.Text())
			}
		}
		// Rewritten in place: /etc/hosts may be a bind mount.
		return os.WriteFile("/etc/hosts", []byte(strings.Join(keep, "\n")+"\n"), 0o644)
	}
	if err := clean(); err != nil {
		t.Fatalf("editing /etc/hosts (the federation test needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := clean(); err != nil {
			t.Errorf("removing the test lines from /etc/hosts: %v", err)
		}
	})
	f, err := os.OpenFile("/etc/hosts", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, ip := range lines {
		fmt.Fprintf(f, "%s %s %s\n", ip, name, hostsMarker)
	}
}

// proc is a third-party server process, stopped by PID when the test ends.
type peerProc struct {
	name   string
	cmd    *exec.Cmd
	log    *logBuffer
	logDir string
	exited chan struct{}
}

func startPeerProc(t *testing.T, name, dir string, env []string, args ...string) *peerProc {
	t.Helper()
	p := &peerProc{name: name, log: &logBuffer{}, exited: make(chan struct{}), logDir: dir}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		// The process group: erl starts helper programs (inet_gethost).
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.log.String(), 200))
			if b, err := os.ReadFile(filepath.Join(dir, name+".log")); err == nil {
				t.Logf("%s log:\n%s", name, tail(string(b), 300))
			}
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitListening waits until addr accepts or the process exits.
func (p *peerProc) waitListening(t *testing.T, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.exited:
				t.Fatalf("%s exited during startup; output:\n%s", p.name, tail(p.log.String(), 100))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not listen on %s; output:\n%s", p.name, a, tail(p.log.String(), 100))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// startProsody runs a private Prosody 0.12 on ipProsody: prosody.test with
// a certificate from ca, and badcert.test with a self-signed one.
func startProsody(t *testing.T, dir string, ca *fedCA) *peerProc {
	t.Helper()
	cert, key := ca.issue(t, "prosody.test", false)
	badCert, badKey := ca.issue(t, "badcert.test", true)
	data := filepath.Join(dir, "prosody-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	q := strconv.Quote
	cfg := fmt.Sprintf(`-- private instance for stoa's federation tests
run_as_root = true
daemonize = false
pidfile = %s
data_path = %s
interfaces = { %q }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
http_ports = {}
https_ports = {}
log = { debug = %s }
modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "presence", "ping", "register", "s2s_bidi", "posix" }
allow_registration = true
min_seconds_between_registrations = 0
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false
authentication = "internal_hashed"
storage = "internal"
-- Names come from /etc/hosts (the test adds them); no DNS.
unbound = { hoststxt = true; resolvconf = true }
ssl = { certificate = %s; key = %s; cafile = %s }
VirtualHost "prosody.test"
VirtualHost "badcert.test"
ssl = { certificate = %s; key = %s; cafile = %s }
`, q(filepath.Join(dir, "prosody.pid")), q(data), ipProsody, q(filepath.Join(dir, "prosody.log")),
		q(cert), q(key), q(ca.pemPath), q(badCert), q(badKey), q(ca.pemPath))
	path := filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPeerProc(t, "prosody", dir, nil, "prosody", "--config", path)
	p.waitListening(t, ipProsody+":5222", ipProsody+":5269")
	return p
}

// startEjabberd runs a private ejabberd 23.01 on ipEjabberd, without
// Erlang distribution (no epmd, no ejabberdctl), without Debian's
// shapers, session limits and fail2ban.
func startEjabberd(t *testing.T, dir string, ca *fedCA) *peerProc {
	t.Helper()
	cert, key := ca.issue(t, "ejabberd.test", false)
	c, _ := os.ReadFile(cert)
	k, _ := os.ReadFile(key)
	pemPath := filepath.Join(dir, "ejabberd.pem")
	if err := os.WriteFile(pemPath, append(c, k...), 0o600); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dir, "ejabberd-spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	q := strconv.Quote
	cfg := fmt.Sprintf(`# private instance for stoa's federation tests
loglevel: info
hosts:
  - ejabberd.test
certfiles:
  - %s
ca_file: %s
listen:
  -
    port: 5222
    ip: %q
    module: ejabberd_c2s
    starttls_required: true
    backlog: 128
  -
    port: 5269
    ip: %q
    module: ejabberd_s2s_in
    max_stanza_size: 524288
    backlog: 128
s2s_use_starttls: required
auth_password_format: scram
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
  register:
    allow: all
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_register:
    ip_access: all
    access: register
  mod_s2s_dialback: {}
`, q(pemPath), q(ca.pemPath), ipEjabberd, ipEjabberd)
	path := filepath.Join(dir, "ejabberd.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	inetrc := filepath.Join(dir, "inetrc")
	if err := os.WriteFile(inetrc, []byte("{lookup,[\"file\",\"native\"]}.\n{file, resolv, \"/etc/resolv.conf\"}.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// ejabberdctl knows where Debian put the ejabberd applications.
	erlLibs := "/usr/lib/x86_64-linux-gnu"
	if b, err := os.ReadFile("/usr/sbin/ejabberdctl"); err == nil {
		if m := regexp.MustCompile(`(?m)^ERL_LIBS='([^']+)'`).FindSubmatch(b); m != nil {
			erlLibs = string(m[1])
		}
	}
	env := []string{
		"ERL_LIBS=" + erlLibs,
		"EJABBERD_CONFIG_PATH=" + path,
		"EJABBERD_LOG_PATH=" + filepath.Join(dir, "ejabberd.log"),
		"ERL_INETRC=" + inetrc,
		"ERL_CRASH_DUMP=/dev/null",
		"HOME=" + dir,
	}
	p := startPeerProc(t, "ejabberd", dir, env, "erl", "-noinput", "-noshell", "+K", "true",
		"-mnesia", "dir", strconv.Quote(spool), "-s", "ejabberd")
	p.waitListening(t, ipEjabberd+":5222", ipEjabberd+":5269")
	return p
}

// startFedStoa runs `stoa serve` for domain with its s2s listener on
// ip:5269 and c2s on free ports of 127.0.0.1.
func startFedStoa(t *testing.T, domain, ip, cert, key string, s2sExtra string) *stoaServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "stoa-s2s-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Each domain has its own loopback address, so fixed ports on it
	// cannot collide with the free ports other tests pick on 127.0.0.1.
	s := &stoaServer{
		dir:      filepath.Join(dir, "data"),
		cfg:      filepath.Join(dir, "stoa.toml"),
		starttls: net.JoinHostPort(ip, "5222"),
		direct:   net.JoinHostPort(ip, "5223"),
		metrics:  net.JoinHostPort(ip, "5280"),
		http:     net.JoinHostPort(ip, "5281"),
		log:      &logBuffer{},
		exited:   make(chan struct{}),
	}
	q := strconv.Quote
	cfg := fmt.Sprintf(`[server]
hosts = [%s]
data_dir = %s
shutdown_timeout = "5s"
admins = [%s]

[log]
level = "debug"

[[tls.certificates]]
cert = %s
key = %s

[metrics]
listen = %s

[http]
listen = %s

[c2s]
listen = [%s]
listen_tls = [%s]

[s2s]
listen = [%s]
connect_timeout = "20s"
%s
`, q(domain), q(s.dir), q("admin@"+domain), q(cert), q(key), q(s.metrics), q(s.http), q(s.starttls), q(s.direct),
		q(net.JoinHostPort(ip, "5269")), s2sExtra)
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(env.bin, "serve", "-c", s.cfg)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })
	guard := time.After(60 * time.Second)
	for !strings.Contains(s.log.String(), "stoa started") {
		select {
		case <-s.exited:
			t.Fatalf("stoa serve for %s exited during startup (%v); config:\n%s\nlog:\n%s", domain, s.waitErr, cfg, s.log.String())
		case <-guard:
			t.Fatalf("stoa serve for %s did not start; log:\n%s", domain, s.log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s
}

func (s *stoaServer) addFedUser(t *testing.T, jid, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.stoa(ctx, password+"\n", "user", "add", jid, "--password-stdin"); err != nil {
		t.Fatal(err)
	}
}

// requireFederationPeers checks that Prosody, lua-unbound and ejabberd
// are installed and that the test can edit /etc/hosts.
func requireFederationPeers(t *testing.T) {
	t.Helper()
	requireClient(t, "Prosody 0.12 with lua-unbound and ejabberd 23.01", "prosody lua-unbound ejabberd", func() error {
		for _, p := range []string{"prosody", "lua-unbound", "ejabberd"} {
			if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output(); err != nil || !strings.Contains(string(out), "installed") {
				return fmt.Errorf("package %s is not installed", p)
			}
		}
		if os.Geteuid() != 0 {
			return errors.New("the test must run as root to add names to /etc/hosts")
		}
		return nil
	})
}

// stopSystemInstances stops Prosody or ejabberd services that Debian's
// postinst may have started on the ports the test needs.
func stopSystemInstances(t *testing.T) {
	t.Helper()
	for _, port := range []string{"5222", "5269"} {
		c, err := net.DialTimeout("tcp", ipProsody+":"+port, time.Second)
		if err != nil {
			continue
		}
		c.Close()
		t.Logf("something already listens on port %s (a system Prosody or ejabberd?); stopping the services", port)
		for _, svc := range []string{"prosody", "ejabberd"} {
			out, err := exec.Command("service", svc, "stop").CombinedOutput()
			t.Logf("service %s stop: %v %s", svc, err, out)
		}
		return
	}
}

// fed is the running federation world.
type fed struct {
	ca, other *fedCA
	stoa      *stoaServer // stoa.test
	dialback  *stoaServer // dialback.test
	stoa2     *stoaServer // stoa2.test
	prosody   *peerProc
	ejabberd  *peerProc
}

func TestFederationInterop(t *testing.T) {
	requireFederationPeers(t)
	stopSystemInstances(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fed{ca: newFedCA(t, dir, "stoa test CA"), other: newFedCA(t, dir, "other test CA")}
	addHosts(t, map[string]string{
		"stoa.test": ipStoa, "dialback.test": ipDialback, "stoa2.test": ipStoa2,
		"prosody.test": ipProsody, "badcert.test": ipProsody, "ejabberd.test": ipEjabberd,
	})
	routes := fmt.Sprintf(`[s2s.routes]
"stoa.test" = "%s:5269"
"dialback.test" = "%s:5269"
"stoa2.test" = "%s:5269"
"prosody.test" = "%s:5269"
"badcert.test" = "%s:5269"
"ejabberd.test" = "%s:5269"
`, ipStoa, ipDialback, ipStoa2, ipProsody, ipProsody, ipEjabberd)

	f.prosody = startProsody(t, dir, f.ca)
	f.ejabberd = startEjabberd(t, dir, f.ca)
	c, k := f.ca.issue(t, "stoa.test", false)
	f.stoa = startFedStoa(t, "stoa.test", ipStoa, c, k, fmt.Sprintf("ca_file = %q\n\n%s", f.ca.pemPath, routes))
	c, k = f.other.issue(t, "dialback.test", false)
	f.dialback = startFedStoa(t, "dialback.test", ipDialback, c, k,
		fmt.Sprintf("ca_file = %q\ninsecure_domains = [\"prosody.test\", \"ejabberd.test\"]\n\n%s", f.other.pemPath, routes))
	c, k = f.ca.issue(t, "stoa2.test", false)
	f.stoa2 = startFedStoa(t, "stoa2.test", ipStoa2, c, k, fmt.Sprintf("ca_file = %q\n\n%s", f.ca.pemPath, routes))

	f.stoa.addFedUser(t, "alice@stoa.test", "alice-pw")
	f.stoa.addFedUser(t, "admin@stoa.test", "admin-pw")
	f.dialback.addFedUser(t, "alice@dialback.test", "alice-pw")
	f.stoa2.addFedUser(t, "carol@stoa2.test", "carol-pw")

	login := func(s *stoaServer, domain, user string) *xclient {
		return dialX(t, xlogin{addr: s.starttls, domain: domain, user: user, password: user + "-pw", roots: f.rootsFor(domain)})
	}
	remote := func(addr, domain, user string) *xclient {
		return dialX(t, xlogin{addr: addr, domain: domain, user: user, password: user + "-pw", roots: f.ca.pool, register: true})
	}

	// Each peer: messages and presence subscriptions both ways.
	peers := []struct {
		name      string
		local     *stoaServer
		domain    string
		peerAddr  string
		peer      string
		mechanism string // what stoa's metrics must show for the peer
		// The peer sends first, so it opens the first connection (with
		// Prosody's bidi, the only one), and stoa authenticates it.
		remoteFirst bool
		checkIn     bool // stoa's metrics must show an incoming authentication too
	}{
		{"prosody, valid certificates (SASL EXTERNAL)", f.stoa, "stoa.test", ipProsody + ":5222", "prosody.test", "external", false, false},
		{"prosody, dialback", f.dialback, "dialback.test", ipProsody + ":5222", "prosody.test", "dialback", true, true},
		{"ejabberd, valid certificates (SASL EXTERNAL)", f.stoa, "stoa.test", ipEjabberd + ":5222", "ejabberd.test", "external", false, true},
		{"ejabberd, dialback", f.dialback, "dialback.test", ipEjabberd + ":5222", "ejabberd.test", "dialback", true, true},
		{"stoa, valid certificates (SASL EXTERNAL)", f.stoa, "stoa.test", "", "stoa2.test", "external", false, false},
	}
	for i, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			user := fmt.Sprintf("bob%d", i)
			alice := login(p.local, p.domain, "alice")
			var bob *xclient
			bobJID := user + "@" + p.peer
			if p.peer == "stoa2.test" {
				bobJID = "carol@stoa2.test"
				bob = login(f.stoa2, "stoa2.test", "carol")
			} else {
				bob = remote(p.peerAddr, p.peer, user)
			}
			aliceJID := "alice@" + p.domain
			// Messages both ways.
			toBob := func() {
				alice.send(fmt.Sprintf("<message to='%s' type='chat' id='a%d'><body>hello %s from stoa</body></message>", bobJID, i, p.peer))
				bob.wait("alice's message", stanzaMatch("message", aliceJID, "chat", "hello "+p.peer+" from stoa"))
			}
			toAlice := func() {
				bob.send(fmt.Sprintf("<message to='%s' type='chat' id='b%d'><body>hello stoa from %s</body></message>", aliceJID, i, p.peer))
				alice.wait("bob's message", stanzaMatch("message", bobJID, "chat", "hello stoa from "+p.peer))
			}
			if p.remoteFirst {
				toAlice()
				toBob()
			} else {
				toBob()
				toAlice()
			}
			// alice subscribes to bob's presence; bob approves.
			alice.send(fmt.Sprintf("<presence to='%s' type='subscribe'/>", bobJID))
			bob.wait("alice's subscription request", stanzaMatch("presence", aliceJID, "subscribe", ""))
			bob.send(fmt.Sprintf("<presence to='%s' type='subscribed'/>", aliceJID))
			alice.wait("bob's approval", stanzaMatch("presence", bobJID, "subscribed", ""))
			alice.wait("bob's presence", stanzaMatch("presence", bobJID, "", ""))
			// bob subscribes to alice's; alice approves.
			bob.send(fmt.Sprintf("<presence to='%s' type='subscribe'/>", aliceJID))
			alice.wait("bob's subscription request", stanzaMatch("presence", bobJID, "subscribe", ""))
			alice.send(fmt.Sprintf("<presence to='%s' type='subscribed'/>", bobJID))
			bob.wait("alice's approval", stanzaMatch("presence", aliceJID, "subscribed", ""))
			bob.wait("alice's presence", stanzaMatch("presence", aliceJID, "", ""))

			if n := p.local.metric(t, fmt.Sprintf(`stoa_s2s_authentications_total{direction="out",domain=%q,outcome=%q}`, p.peer, p.mechanism)); n < 1 {
				t.Errorf("stoa's metrics show no outgoing %s authentication with %s", p.mechanism, p.peer)
			}
			if n := p.local.metric(t, fmt.Sprintf(`stoa_s2s_authentications_total{direction="in",domain=%q,outcome=%q}`, p.peer, p.mechanism)); p.checkIn && n < 1 {
				t.Errorf("stoa's metrics show no incoming %s authentication of %s", p.mechanism, p.peer)
			}
		})
	}

	t.Run("stoa check certs", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := f.stoa.stoa(ctx, "", "check", "certs")
		if err != nil || !strings.Contains(out, "stoa.test: ok: valid for stoa.test") {
			t.Errorf("stoa check certs: %v\n%s", err, out)
		}
	})

	t.Run("bad certificate refused, admins told", func(t *testing.T) {
		admin := login(f.stoa, "stoa.test", "admin")
		alice := login(f.stoa, "stoa.test", "alice")
		// badcert.test (Prosody with a self-signed certificate).
		alice.send("<message to='someone@badcert.test' type='chat' id='bad1'><body>hi</body></message>")
		e := alice.wait("the bounce", func(el *sxml.Element) bool {
			return el.Local == "message" && el.Attr("type") == "error" && el.Attr("id") == "bad1"
		})
		if !strings.Contains(e.String(), "remote-server-not-found") || !strings.Contains(e.String(), "self-signed") {
			t.Errorf("bounce: %s", e.String())
		}
		n := admin.wait("the notice about badcert.test", func(el *sxml.Element) bool {
			return el.Local == "message" && strings.Contains(el.ChildText(sxml.NSClient, "body"), "badcert.test")
		})
		if !strings.Contains(n.ChildText(sxml.NSClient, "body"), "SHA-256") {
			t.Errorf("notice: %s", n.String())
		}
		// dialback.test's certificate is from a CA stoa.test does not
		// trust, and stoa.test requires valid certificates: refused both
		// ways.
		alice.send("<message to='alice@dialback.test' type='chat' id='bad2'><body>hi</body></message>")
		alice.wait("the bounce to dialback.test", func(el *sxml.Element) bool {
			return el.Local == "message" && el.Attr("type") == "error" && el.Attr("id") == "bad2"
		})
		admin.wait("the notice about dialback.test", func(el *sxml.Element) bool {
			return el.Local == "message" && strings.Contains(el.ChildText(sxml.NSClient, "body"), "dialback.test")
		})
		da := login(f.dialback, "dialback.test", "alice")
		da.send("<message to='alice@stoa.test' type='chat' id='bad3'><body>hi</body></message>")
		da.wait("the bounce from stoa.test", func(el *sxml.Element) bool {
			return el.Local == "message" && el.Attr("type") == "error" && el.Attr("id") == "bad3"
		})
		if n := f.stoa.metric(t, `stoa_s2s_authentications_total{direction="out",domain="badcert.test",outcome="untrusted"}`); n < 1 {
			t.Errorf("no untrusted outcome counted for badcert.test")
		}
	})
}

// rootsFor is the pool a client of a stoa domain trusts.
func (f *fed) rootsFor(domain string) *x509.CertPool {
	if domain == "dialback.test" {
		return f.other.pool
	}
	return f.ca.pool
}
