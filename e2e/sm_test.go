package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Stream management, carbons, CSI and push with clients nobody on the team
// wrote (slixmpp, xmpp.js), and the drop test of docs/messages.md: the
// client's TCP connection is cut while messages are in flight; it resumes
// and gets each exactly once, or, when it does not come back in time, the
// messages wait in offline storage.

// dropProxy forwards TCP connections to a server. freeze makes it swallow
// what the server sends (the bytes are "in flight": written by the server,
// never received); cut resets every connection.
type dropProxy struct {
	t      *testing.T
	l      net.Listener
	target string
	frozen atomic.Bool

	mu    sync.Mutex
	conns []*net.TCPConn
	wg    sync.WaitGroup
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{t: t, l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *dropProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *dropProxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.l.Accept()
		if err != nil {
			return
		}
		sc, err := net.Dial("tcp", p.target)
		if err != nil {
			cc.Close()
			continue
		}
		c, s := cc.(*net.TCPConn), sc.(*net.TCPConn)
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(s, c); s.CloseWrite() }()
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && !p.frozen.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					c.CloseWrite()
					return
				}
			}
		}()
	}
}

// cut resets every connection (no FIN, no TLS close_notify, no stream end).
func (p *dropProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.SetLinger(0)
		_ = c.Close()
	}
	p.conns = nil
}

// proc is a client script (Python or Node) driven through stdin, printing
// one JSON event per line.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer

	mu     sync.Mutex
	events []event
	lines  []string
	done   chan struct{}
}

func startProc(ctx context.Context, t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e event
			p.mu.Lock()
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				p.events = append(p.events, e)
			} else {
				p.lines = append(p.lines, sc.Text())
			}
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s events:\n%s\nstderr:\n%s", name, p.dump(), p.stderr.String())
		}
	})
	_ = ctx
	return p
}

func (p *proc) dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, e := range p.events {
		j, _ := json.Marshal(e)
		fmt.Fprintf(&b, "%s\n", j)
	}
	for _, l := range p.lines {
		fmt.Fprintf(&b, "(not JSON) %s\n", l)
	}
	return b.String()
}

func (p *proc) command(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, s+"\n"); err != nil {
		p.t.Fatalf("%s: command %q: %v", p.name, s, err)
	}
}

// waitN waits until n events match and returns them (a guard, not a
// timing assertion).
func (p *proc) waitN(ctx context.Context, what string, n int, match func(event) bool) []event {
	p.t.Helper()
	for {
		p.mu.Lock()
		var got []event
		for _, e := range p.events {
			if e.str("event") == "error" {
				p.mu.Unlock()
				p.t.Fatalf("%s reported an error: %s", p.name, e.str("error"))
			}
			if match(e) {
				got = append(got, e)
			}
		}
		p.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("%s: timed out waiting for %s (%d of %d)", p.name, what, len(got), n)
		case <-p.done:
			p.t.Fatalf("%s exited while waiting for %s", p.name, what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p *proc) wait(ctx context.Context, name string) event {
	p.t.Helper()
	return p.waitN(ctx, name, 1, func(e event) bool { return e.str("event") == name })[0]
}

func isEvent(name string) func(event) bool {
	return func(e event) bool { return e.str("event") == name }
}

// messageCounts counts message events by id (carbons excluded).
func (p *proc) messageCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, e := range p.events {
		if e.str("event") == "message" && e["carbon"] != true {
			out[e.str("id")]++
		}
	}
	return out
}

// metric reads one sample from the server's /metrics (0 when absent).
func (s *stoaServer) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// waitLog waits until the server logged a line with every substring.
func (s *stoaServer) waitLog(ctx context.Context, t *testing.T, subs ...string) {
	t.Helper()
	for !s.logHas(subs...) {
		select {
		case <-ctx.Done():
			t.Fatalf("the server never logged %q", subs)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// sendChats sends chat messages from a raw client to `to` with the given ids.
func sendChats(t *testing.T, r *rawStream, to string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := r.send(fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>body of %s</body></message>`, to, id, id)); err != nil {
			t.Fatal(err)
		}
	}
}

const outMessages = `stoa_stanzas_total{dir="out",kind="message"}`

// TestSlixmppDrop is the drop test with slixmpp: messages are in flight
// when the TCP connection is cut. In "resume" the client comes back in
// time and resumes; in "expire" it comes back after the session expired
// and binds anew. Either way it gets every message exactly once (checked
// by id), and the late one gets the unacknowledged ones from offline
// storage.
func TestSlixmppDrop(t *testing.T) {
	t.Parallel()
	requirePython(t, "slixmpp", "python3-slixmpp")
	for _, resume := range []bool{true, false} {
		name := map[bool]string{true: "resume", false: "expire"}[resume]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := serverOptions{}
			if !resume {
				opts.extra = "[c2s.stream_management]\nresume_timeout = \"1s\"\n"
			}
			s := startServer(t, opts)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			alice := s.addUser(t, "alice", "alice password")
			s.addUser(t, "bob", "bob password")
			proxy := newDropProxy(t, s.starttls)

			cfg, _ := json.Marshal(map[string]any{"jid": alice + "/slix", "password": "alice password",
				"host": "127.0.0.1", "port": proxy.port(), "timeout": 110})
			cmd := exec.Command(python, filepath.Join(env.testdata, "slix_sm.py"), string(cfg))
			cmd.Env = append(cmd.Environ(), "SSL_CERT_FILE="+env.ca, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
			p := startProc(ctx, t, "slix_sm.py", cmd)
			full := p.wait(ctx, "session_start").str("jid")
			p.wait(ctx, "sm_enabled")

			bob := mustRawLogin(ctx, t, s.direct, "bob", "bob password")
			sendChats(t, bob, full, "m1", "m2", "m3")
			p.waitN(ctx, "m1..m3", 3, isEvent("message"))
			p.command("ack")
			p.wait(ctx, "acked")

			// In flight: the server writes m4..m6, the client never gets them.
			proxy.frozen.Store(true)
			before := s.metric(t, outMessages)
			sendChats(t, bob, full, "m4", "m5", "m6")
			for s.metric(t, outMessages) < before+3 {
				select {
				case <-ctx.Done():
					t.Fatal("the server did not write m4..m6")
				case <-time.After(10 * time.Millisecond):
				}
			}
			proxy.cut()
			proxy.frozen.Store(false)
			p.wait(ctx, "disconnected")
			s.waitLog(ctx, t, "connection lost; session kept for resumption", "alice@localhost/slix")

			if resume {
				sendChats(t, bob, full, "m7") // while detached
				p.command("reconnect")
				p.wait(ctx, "session_resumed")
			} else {
				s.waitLog(ctx, t, "session not resumed in time", "alice@localhost/slix")
				sendChats(t, bob, alice, "m7") // to the account, now offline
				p.command("reconnect")
				p.wait(ctx, "sm_failed")
				p.waitN(ctx, "a new session", 2, isEvent("session_start"))
			}
			p.waitN(ctx, "m4..m7", 7, isEvent("message"))
			// One more, live, to flush anything that would come twice.
			sendChats(t, bob, alice, "m8")
			p.waitN(ctx, "m8", 8, isEvent("message"))
			counts := p.messageCounts()
			for i := 1; i <= 8; i++ {
				id := fmt.Sprintf("m%d", i)
				if counts[id] != 1 {
					t.Errorf("%s received %d times, want exactly once (all: %v)", id, counts[id], counts)
				}
			}
			if !resume {
				// m4..m6 came from offline storage, stamped.
				for _, e := range p.waitN(ctx, "messages", 8, isEvent("message")) {
					if id := e.str("id"); (id == "m4" || id == "m5" || id == "m6") && e["delay"] != true {
						t.Errorf("%s came without a delay: %v", id, e)
					}
				}
			}
			p.command("quit")
		})
	}
}

// requireXmppJS returns the node_modules directory holding @xmpp/client
// 0.14.0 (pinned by xmppjs/package-lock.json, installed with `npm ci` into
// the user's cache directory once), skipping (or failing under
// STOA_REQUIRE_CLIENTS=1) when node or npm is missing or the install fails.
func requireXmppJS(t *testing.T) string {
	t.Helper()
	requireClient(t, "Node.js 20.10 or later and npm", "nodejs npm", func() error {
		for _, b := range []string{"node", "npm"} {
			if _, err := exec.LookPath(b); err != nil {
				return err
			}
		}
		// xmpp.js 0.14 declares engines node >= 20.10.
		out, err := exec.Command("node", "--version").Output()
		if err != nil {
			return err
		}
		var major, minor int
		if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "v%d.%d", &major, &minor); err != nil {
			return fmt.Errorf("node --version: %q: %w", out, err)
		}
		if major < 20 || (major == 20 && minor < 10) {
			return fmt.Errorf("node %s is too old for xmpp.js 0.14 (20.10 or later)", strings.TrimSpace(string(out)))
		}
		return nil
	})
	var dir string
	requireClient(t, "@xmpp/client 0.14.0 (npm ci in e2e/xmppjs)", "nodejs npm", func() error {
		var err error
		dir, err = installNodeDir("xmppjs", filepath.Join("@xmpp", "client", "package.json"))
		return err
	})
	return dir
}

// installNodeDir runs `npm ci` for the package-lock.json of e2e/<name>
// into a cache directory keyed by the lock file's hash, once; probe is a
// file under node_modules that shows the install is complete.
func installNodeDir(name, probe string) (string, error) {
	src, err := filepath.Abs(name)
	if err != nil {
		return "", err
	}
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	final := filepath.Join(cache, "stoa-e2e", name+"-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(final, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, probe)); err == nil {
		return modules, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in a copy of %s: %v: %s", src, err, out)
	}
	// Another test process may have finished first: either copy is fine.
	if err := os.Rename(tmp, final); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, serr := os.Stat(filepath.Join(modules, probe)); serr != nil {
			return "", fmt.Errorf("moving the installed modules into place: %w", err)
		}
	}
	return modules, nil
}

// TestXmppJSDrop is the drop test with xmpp.js 0.14: messages in flight
// when the TCP connection is cut, more while the session is detached; the
// client resumes (its own stream management) and gets each exactly once.
func TestXmppJSDrop(t *testing.T) {
	t.Parallel()
	modules := requireXmppJS(t)
	s := startServer(t, serverOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	alice := s.addUser(t, "alice", "alice password")
	s.addUser(t, "bob", "bob password")
	proxy := newDropProxy(t, s.starttls)

	script, err := filepath.Abs(filepath.Join("xmppjs", "sm.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"modules": modules, "service": fmt.Sprintf("xmpp://127.0.0.1:%d", proxy.port()),
		"domain": domain, "username": "alice", "password": "alice password", "resource": "xjs"})
	cmd := exec.Command("node", script, string(cfg))
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+env.ca)
	p := startProc(ctx, t, "sm.mjs", cmd)
	online := p.wait(ctx, "online")
	full := online.str("jid")
	if online.str("smid") == "" || full != alice+"/xjs" {
		t.Fatalf("online = %v; want %s/xjs with a resumable stream management session", online, alice)
	}

	bob := mustRawLogin(ctx, t, s.direct, "bob", "bob password")
	sendChats(t, bob, full, "m1", "m2", "m3")
	p.waitN(ctx, "m1..m3", 3, isEvent("message"))

	proxy.frozen.Store(true)
	before := s.metric(t, outMessages)
	sendChats(t, bob, full, "m4", "m5", "m6")
	for s.metric(t, outMessages) < before+3 {
		select {
		case <-ctx.Done():
			t.Fatal("the server did not write m4..m6")
		case <-time.After(10 * time.Millisecond):
		}
	}
	proxy.cut()
	proxy.frozen.Store(false)
	p.wait(ctx, "disconnected")
	s.waitLog(ctx, t, "connection lost; session kept for resumption", full)
	sendChats(t, bob, full, "m7")
	p.command("reconnect")
	p.wait(ctx, "resumed")
	p.waitN(ctx, "m4..m7", 7, isEvent("message"))
	sendChats(t, bob, alice, "m8")
	p.waitN(ctx, "m8", 8, isEvent("message"))
	counts := p.messageCounts()
	for i := 1; i <= 8; i++ {
		if id := fmt.Sprintf("m%d", i); counts[id] != 1 {
			t.Errorf("%s received %d times, want exactly once (all: %v)", id, counts[id], counts)
		}
	}
	for _, e := range p.waitN(ctx, "messages", 8, isEvent("message")) {
		if id := e.str("id"); id >= "m4" && id <= "m7" && e["delay"] != true {
			t.Errorf("%s resent without a delay", id)
		}
	}
	p.command("quit")
}

// rawLoginResource dials with direct TLS, authenticates and binds the
// given resource.
func rawLoginResource(ctx context.Context, t *testing.T, addr, user, password, resource string) *rawStream {
	t.Helper()
	r, err := dialRaw(ctx, t, addr, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.open(); err != nil {
		t.Fatal(err)
	}
	if res, err := r.scramSHA256(user, password); err != nil || res.Outcome != "success" {
		t.Fatalf("login as %s: %v %s", user, err, res.Raw)
	}
	if _, err := r.open(); err != nil {
		t.Fatal(err)
	}
	if err := r.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`); err != nil {
		t.Fatal(err)
	}
	if el, raw, err := r.next(); err != nil || el.Name.Local != "iq" || !strings.Contains(string(raw), "result") {
		t.Fatalf("bind %s: %s %v", resource, raw, err)
	}
	return r
}

// drain reads a raw stream in the background and hands every element to
// fn (until the stream ends).
func drain(r *rawStream, fn func(name string, raw []byte)) {
	go func() {
		for {
			el, raw, err := r.next()
			if err != nil {
				return
			}
			fn(el.Name.Local, raw)
		}
	}()
}

// TestSlixmppCarbonsCSIPush drives slixmpp's carbons (XEP-0280) and CSI
// (XEP-0352) plugins and a push registration (XEP-0357) against a push
// service played by a raw client.
func TestSlixmppCarbonsCSIPush(t *testing.T) {
	t.Parallel()
	requirePython(t, "slixmpp", "python3-slixmpp")
	s := startServer(t, serverOptions{extra: "[push]\nmin_interval = \"0s\"\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	alice := s.addUser(t, "alice", "alice password")
	s.addUser(t, "bob", "bob password")
	s.addUser(t, "app", "app password")

	// The push service: answers every publish and reports it.
	app := rawLoginResource(ctx, t, s.direct, "app", "app password", "srv")
	pushes := make(chan string, 10)
	drain(app, func(name string, raw []byte) {
		if name != "iq" || !bytes.Contains(raw, []byte("urn:xmpp:push:summary")) {
			return
		}
		var iq struct {
			ID string `xml:"id,attr"`
		}
		_ = xml.Unmarshal(raw, &iq)
		_ = app.send(`<iq type='result' id='` + iq.ID + `' to='localhost'/>`)
		pushes <- string(raw)
	})

	desk := rawLoginResource(ctx, t, s.direct, "alice", "alice password", "desk")
	drain(desk, func(string, []byte) {})
	if err := desk.send(`<presence/>`); err != nil {
		t.Fatal(err)
	}

	cfg, _ := json.Marshal(map[string]any{"jid": alice + "/slix", "password": "alice password",
		"host": "127.0.0.1", "port": portOf(t, s.starttls), "timeout": 110, "push": "app@localhost/srv"})
	cmd := exec.Command(python, filepath.Join(env.testdata, "slix_sm.py"), string(cfg))
	cmd.Env = append(cmd.Environ(), "SSL_CERT_FILE="+env.ca, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	p := startProc(ctx, t, "slix_sm.py", cmd)
	p.wait(ctx, "push_enabled")

	// Carbons: a message to the desk, and one the desk sends.
	bob := mustRawLogin(ctx, t, s.direct, "bob", "bob password")
	sendChats(t, bob, alice+"/desk", "c1")
	if err := desk.send(`<message to='bob@localhost' type='chat' id='c2'><body>from the desk</body></message>`); err != nil {
		t.Fatal(err)
	}
	carbons := p.waitN(ctx, "two carbons", 2, func(e event) bool { return e.str("event") == "message" && e["carbon"] == true })
	if ids := carbons[0].str("id") + carbons[1].str("id"); ids != "c1c2" && ids != "c2c1" {
		t.Errorf("carbons = %v, want c1 (received) and c2 (sent)", carbons)
	}

	// CSI: a chat state waits while slixmpp is inactive; a message with
	// a body brings it, stamped, before itself.
	p.command("inactive")
	p.wait(ctx, "csi")
	if err := bob.send(`<message to='` + alice + `/slix' type='chat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`); err != nil {
		t.Fatal(err)
	}
	sendChats(t, bob, alice+"/slix", "m1")
	got := p.waitN(ctx, "cs1 and m1", 2, func(e event) bool {
		return e.str("event") == "message" && e["carbon"] != true
	})
	if got[0].str("id") != "cs1" || got[0]["delay"] != true || got[1].str("id") != "m1" || got[1]["delay"] == true {
		t.Errorf("inactive slixmpp got %v, want the held chat state (delayed), then m1", got)
	}
	// The desk is active: no push so far.
	if v := s.metric(t, "stoa_push_triggered_total"); v != 0 {
		t.Errorf("push triggered %v times while the desk was active", v)
	}

	// The desk leaves; slixmpp is inactive: the next message is pushed.
	if err := desk.send(`</stream:stream>`); err != nil {
		t.Fatal(err)
	}
	s.waitLog(ctx, t, "connection closed", "alice@localhost/desk")
	sendChats(t, bob, alice, "m2")
	select {
	case n := <-pushes:
		for _, want := range []string{"<value>1</value>", "bob@localhost/", "slix-node"} {
			if !strings.Contains(n, want) {
				t.Errorf("notification lacks %q: %s", want, n)
			}
		}
		if strings.Contains(n, "body of m2") {
			t.Errorf("the body was pushed although include_body is off: %s", n)
		}
	case <-ctx.Done():
		t.Fatal("no push notification")
	}
	p.waitN(ctx, "m2", 3, func(e event) bool { return e.str("event") == "message" && e["carbon"] != true })
	p.command("quit")
}
