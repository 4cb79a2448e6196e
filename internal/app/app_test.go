package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"stoa.im/stoa/internal/mod"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/adminsock"
	"stoa.im/stoa/internal/config"
)

func TestSections(t *testing.T) {
	t.Parallel()
	secs := Sections()
	if err := config.Check(secs); err != nil {
		t.Fatalf("the option registry is broken:\n%v", err)
	}
	var names []string
	for _, s := range secs {
		names = append(names, s.Name)
	}
	want := []string{"server", "log", "storage", "tls", "metrics", "c2s"}
	if !slices.Equal(names[:len(want)], want) {
		t.Errorf("first sections = %v, want %v", names[:len(want)], want)
	}
	// Stable: a second call gives the same order.
	var again []string
	for _, s := range Sections() {
		again = append(again, s.Name)
	}
	if !slices.Equal(names, again) {
		t.Errorf("Sections order changed between calls: %v, then %v", names, again)
	}
}

// TestConfigDocs fails when docs/configuration.md is not what the option
// registry generates.
func TestConfigDocs(t *testing.T) {
	t.Parallel()
	got, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("%v; run: go run ./cmd/stoa config docs > docs/configuration.md", err)
	}
	if want := config.Markdown(Sections()); string(got) != want {
		t.Errorf("docs/configuration.md is stale; run: go run ./cmd/stoa config docs > docs/configuration.md")
	}
}

func TestExampleConfig(t *testing.T) {
	t.Parallel()
	f, err := config.Load("../../contrib/stoa.toml.example", Sections())
	if err != nil {
		t.Fatalf("contrib/stoa.toml.example does not load:\n%v", err)
	}
	s, err := decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.server.Hosts) == 0 || len(s.tls.Certificates) == 0 {
		t.Errorf("the example should set hosts and certificates: %+v %+v", s.server, s.tls)
	}
}

// TestConfigProblems checks that mistakes are reported as file:line: key:
// problem, as `stoa check config` prints them.
func TestConfigProblems(t *testing.T) {
	t.Parallel()
	const good = "[server]\nhosts = [\"example.org\"]\n\n[[tls.certificates]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n"
	tests := []struct {
		name, file string
		want       []string // one per problem, in order
	}{
		{"good", good, nil},
		{"no hosts", "[[tls.certificates]]\ncert = \"c\"\nkey = \"k\"\n",
			[]string{"t.toml: server.hosts: at least one host is required"}},
		{"bad host", strings.Replace(good, `"example.org"`, `"example.org", "bad host"`, 1),
			[]string{`t.toml:2: server.hosts[1]: "bad host" is not a valid domain name`}},
		{"duplicate host", strings.Replace(good, `"example.org"`, `"example.org", "example.org"`, 1),
			[]string{`t.toml:2: server.hosts[1]: "example.org" is listed twice`}},
		{"admin not bare", strings.Replace(good, "hosts", "admins = [\"example.org\", \"a@example.org/r\"]\nhosts", 1), []string{
			`t.toml:2: server.admins[0]: "example.org" is not a bare JID`,
			`t.toml:2: server.admins[1]: "a@example.org/r" is not a bare JID`,
		}},
		{"log level", good + "[log]\nlevel = \"verbose\"\n",
			[]string{`t.toml:8: log.level: "verbose" is not one of debug, info, warn, error`}},
		{"typo", good + "[metrics]\nlisen = \"127.0.0.1:1\"\n",
			[]string{`t.toml:8: metrics.lisen: unknown key (did you mean "listen"?)`}},
		{"metrics address", good + "[metrics]\nlisten = \"localhost\"\n",
			[]string{`t.toml:8: metrics.listen: "localhost" is not a host:port address`}},
		{"key missing", "[server]\nhosts = [\"example.org\"]\n\n[[tls.certificates]]\ncert = \"c.pem\"\n",
			[]string{"t.toml:4: tls.certificates[0].key: the private key path is missing"}},
		{"storage driver", good + "[storage]\ndriver = \"postgres\"\n",
			[]string{`t.toml:8: storage.driver: "postgres" is not one of sqlite`}},
		{"shutdown timeout", strings.Replace(good, "hosts", "shutdown_timeout = \"0s\"\nhosts", 1),
			[]string{"t.toml:2: server.shutdown_timeout: 0s is below the minimum 1s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("t.toml", []byte(tc.file), Sections())
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *config.Error", err)
			}
			if len(ce.Problems) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ce.Problems), len(tc.want), err)
			}
			for i, p := range ce.Problems {
				if !strings.HasPrefix(p.Error(), tc.want[i]) {
					t.Errorf("problem %d = %q, want prefix %q", i, p.Error(), tc.want[i])
				}
			}
		})
	}
}

func TestSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	log := slog.New(slog.DiscardHandler)
	a, err := loadSecret(path, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != secretSize {
		t.Fatalf("secret has %d bytes", len(a))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %o, want 600", fi.Mode().Perm())
	}
	b, err := loadSecret(path, log)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("the secret changed when read again")
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSecret(path, log); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("short secret: err = %v, want 'damaged'", err)
	}
}

// recorder is a slog handler that keeps every message and signals the
// ones a test waits for.
type recorder struct {
	level *slog.LevelVar
	mu    sync.Mutex
	lines []string
	wait  map[string]chan struct{}
}

func newRecorder(level *slog.LevelVar, waitFor ...string) *recorder {
	r := &recorder{level: level, wait: map[string]chan struct{}{}}
	for _, m := range waitFor {
		r.wait[m] = make(chan struct{}, 16)
	}
	return r
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level.Level() }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler           { return r }
func (r *recorder) WithGroup(string) slog.Handler                { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	if c, ok := r.wait[rec.Message]; ok {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	return nil
}

func (r *recorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

func (r *recorder) await(t *testing.T, msg string) {
	t.Helper()
	select {
	case <-r.wait[msg]:
	case <-time.After(time.Minute):
		t.Fatalf("no log message %q; log:\n%s", msg, r.dump())
	}
}

// node runs a dev node on free ports and returns its Info, a cancel func
// and the channel Run's result arrives on.
type testNode struct {
	info   Info
	cancel context.CancelFunc
	done   chan error
	rec    *recorder
	level  *slog.LevelVar
	file   *config.File
	reload chan struct{}
}

func startDev(t *testing.T, load func() (*config.File, error), waitFor ...string) *testNode {
	t.Helper()
	f, files, err := DevConfigPorts(t.TempDir(), "localhost", "127.0.0.1", DevPorts{})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{done: make(chan error, 1), level: new(slog.LevelVar), file: f, reload: make(chan struct{})}
	n.rec = newRecorder(n.level, waitFor...)
	ready := make(chan Info, 1)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		n.done <- Run(ctx, Options{
			Config: f, Load: load, Logger: slog.New(n.rec), Level: n.level, Version: "test",
			CA: files.CA, Reload: n.reload, Ready: func(in Info) { ready <- in },
		})
	}()
	select {
	case n.info = <-ready:
	case err := <-n.done:
		t.Fatalf("Run returned before it was ready: %v\nlog:\n%s", err, n.rec.dump())
	}
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			t.Logf("node log:\n%s", n.rec.dump())
		}
	})
	return n
}

// stop cancels the node's context and checks that Run returns nil within
// the shutdown timeout (with a margin: this guards against hangs).
func (n *testNode) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	timeout := time.Duration(config.Get[ServerConfig](n.file, "server").ShutdownTimeout)
	select {
	case err := <-n.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(timeout + 10*time.Second):
		t.Fatalf("Run did not return within the shutdown timeout (%s)", timeout)
	}
}

func call(t *testing.T, sock string, req adminsock.Request) adminsock.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := adminsock.Call(ctx, sock, req)
	if err != nil {
		t.Fatalf("%s: %v", req.Cmd, err)
	}
	if !resp.OK {
		t.Fatalf("%s: %s", req.Cmd, resp.Error)
	}
	return resp
}

// readUntil reads from c until the data holds marker.
func readUntil(t *testing.T, c net.Conn, marker string) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	var buf []byte
	tmp := make([]byte, 4096)
	for !bytes.Contains(buf, []byte(marker)) {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			t.Fatalf("reading until %q: %v; got %q", marker, err, buf)
		}
	}
	return string(buf)
}

const header = `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

func TestRunDev(t *testing.T) {
	t.Parallel()
	n := startDev(t, nil)
	in := n.info
	if len(in.DirectTLS) != 1 || len(in.STARTTLS) != 1 || in.Metrics == nil {
		t.Fatalf("Info = %+v, want one listener of each kind and metrics", in)
	}
	if in.AdminSocket != filepath.Join(in.DataDir, "stoa.sock") || in.CA == "" {
		t.Errorf("Info = %+v", in)
	}
	if fi, err := os.Stat(in.AdminSocket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket: %v, mode %v", err, fi.Mode())
	}

	// Accounts through the admin socket.
	call(t, in.AdminSocket, adminsock.Request{Cmd: "user.add", Args: map[string]string{"jid": "alice@localhost", "password": "correct horse"}})
	if got := call(t, in.AdminSocket, adminsock.Request{Cmd: "user.list"}).Users; !slices.Equal(got, []string{"alice@localhost"}) {
		t.Errorf("user.list = %v, want [alice@localhost]", got)
	}

	// Direct TLS, verified against the dev CA.
	caPEM, err := os.ReadFile(in.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the dev CA does not parse")
	}
	tc, err := tls.Dial("tcp", in.DirectTLS[0].String(), &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatalf("direct TLS: %v", err)
	}
	defer tc.Close()
	if _, err := io.WriteString(tc, header); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, tc, "</stream:features>")
	for _, want := range []string{"<stream:stream", "from='localhost'", "<stream:features>", "urn:ietf:params:xml:ns:xmpp-sasl", "SCRAM-SHA-256"} {
		if !strings.Contains(got, want) {
			t.Errorf("direct TLS stream lacks %q: %s", want, got)
		}
	}

	// STARTTLS: plain text until the client upgrades.
	pc, err := net.Dial("tcp", in.STARTTLS[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := io.WriteString(pc, header); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, pc, "</stream:features>"); !strings.Contains(got, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>") {
		t.Errorf("STARTTLS features: %s", got)
	}

	// Metrics and health.
	for path, want := range map[string]string{"/healthz": "ok", "/metrics": "stoa_sessions"} {
		resp, err := http.Get("http://" + in.Metrics.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %.200s", path, resp.StatusCode, body)
		}
	}

	call(t, in.AdminSocket, adminsock.Request{Cmd: "user.del", Args: map[string]string{"jid": "alice@localhost"}})
	if got := call(t, in.AdminSocket, adminsock.Request{Cmd: "user.list"}).Users; len(got) != 0 {
		t.Errorf("user.list after del = %v, want none", got)
	}

	n.stop(t)
	// Open streams were closed with system-shutdown.
	if got := readUntil(t, tc, "</stream:stream>"); !strings.Contains(got, "system-shutdown") {
		t.Errorf("stream end: %s", got)
	}
	if _, err := os.Lstat(in.AdminSocket); !os.IsNotExist(err) {
		t.Errorf("admin socket after shutdown: %v, want it removed", err)
	}
	if _, err := adminsock.Call(context.Background(), in.AdminSocket, adminsock.Request{Cmd: "user.list"}); !errors.Is(err, adminsock.ErrNotRunning) {
		t.Errorf("Call after shutdown: %v, want ErrNotRunning", err)
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var next func() (*config.File, error)
	load := func() (*config.File, error) {
		mu.Lock()
		defer mu.Unlock()
		return next()
	}
	n := startDev(t, load, "configuration reloaded", "reload: the configuration has errors; keeping the running configuration")
	if got := n.level.Level(); got != slog.LevelInfo {
		t.Fatalf("level = %v, want INFO", got)
	}
	orig, err := os.ReadFile(n.file.Path)
	if err != nil {
		t.Fatal(err)
	}

	// A reloadable change (log level) and one that needs a restart.
	changed := strings.Replace(string(orig), `level = "info"`, `level = "debug"`, 1)
	changed = strings.Replace(changed, "[metrics]\nlisten = ", "[metrics]\nlisten = \"127.0.0.1:1\"\n# was ", 1)
	mu.Lock()
	next = func() (*config.File, error) { return config.Parse(n.file.Path, []byte(changed), Sections()) }
	mu.Unlock()
	n.reload <- struct{}{}
	n.rec.await(t, "configuration reloaded")
	if got := n.level.Level(); got != slog.LevelDebug {
		t.Errorf("level after reload = %v, want DEBUG", got)
	}
	log := n.rec.dump()
	if !strings.Contains(log, "applied=[log.level]") || !strings.Contains(log, "keys=[metrics.listen]") {
		t.Errorf("reload log should name log.level as applied and metrics.listen as needing a restart:\n%s", log)
	}

	// A broken file changes nothing.
	mu.Lock()
	next = func() (*config.File, error) {
		return config.Parse(n.file.Path, []byte(strings.Replace(changed, `level = "debug"`, `level = "loud"`, 1)), Sections())
	}
	mu.Unlock()
	n.reload <- struct{}{}
	n.rec.await(t, "reload: the configuration has errors; keeping the running configuration")
	if got := n.level.Level(); got != slog.LevelDebug {
		t.Errorf("level after a bad reload = %v, want DEBUG still", got)
	}
	n.stop(t)
}

// TestStartFailure checks that a node that cannot start releases what it
// opened, so the same data directory can be used at once.
func TestStartFailure(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	f, _, err := DevConfigPorts(dir, "localhost", "127.0.0.1", DevPorts{Metrics: busy.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), Options{Config: f, Logger: slog.New(slog.DiscardHandler), Ready: func(Info) { t.Error("Ready called") }})
	if err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Fatalf("Run = %v, want a metrics listen error", err)
	}
	if _, err := os.Lstat(SocketPath(dir)); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind: %v", err)
	}
	// The store was closed: it opens again.
	srv, closeSrv, err := Offline(context.Background(), f, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if hosts := srv.Hosts(); !slices.Equal(hosts, []string{"localhost"}) {
		t.Errorf("hosts = %v", hosts)
	}
	if err := closeSrv(); err != nil {
		t.Fatal(err)
	}
}

// TestFeatureDocs fails when docs/features.md is not what the feature
// registry says.
func TestFeatureDocs(t *testing.T) {
	got, err := os.ReadFile("../../docs/features.md")
	want := FeaturesMarkdown(mod.All())
	if err != nil || string(got) != want {
		t.Errorf("docs/features.md is stale; run: go run ./cmd/stoa features --markdown > docs/features.md")
	}
}
