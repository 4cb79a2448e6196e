package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const domain = "localhost"

// serverOptions change the generated configuration of one server.
type serverOptions struct {
	// c2s is added to the [c2s] table (key = value lines).
	c2s string
	// extra is appended to the file: tables that the base configuration
	// does not define, e.g. "[c2s.pre_auth]\ntimeout = \"2s\"\n".
	extra string
	// server is added to the [server] table, e.g. `admins = ["a@localhost"]`.
	server string
}

// stoaServer is one `stoa serve -c FILE` process.
type stoaServer struct {
	dir      string // data_dir
	cfg      string // configuration file
	starttls string // host:port of the STARTTLS listener
	direct   string // host:port of the direct TLS listener
	metrics  string // host:port of the metrics listener
	http     string // host:port of the web listener, unless the test configured [http]

	cmd     *exec.Cmd
	log     *logBuffer
	exited  chan struct{} // closed when the process has exited
	waitErr error         // set before exited is closed
}

// logBuffer collects the server's output; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer starts a server on free loopback ports with its own data
// directory and stops it when the test ends: SIGTERM, then the test fails
// if the process does not exit within 15 s or exits non-zero (a data race
// in a -race build exits with 66). The server's log is printed when the
// test failed.
func startServer(t *testing.T, opts serverOptions) *stoaServer {
	t.Helper()
	// Not t.TempDir(): the admin socket lives in the data directory and
	// unix socket paths are limited to 108 bytes; test names are long.
	dir, err := os.MkdirTemp("", "stoa-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for attempt := 1; ; attempt++ {
		s, retry, err := tryStart(t, dir, opts)
		if err == nil {
			t.Cleanup(func() { s.stop(t) })
			return s
		}
		if retry && attempt < 5 {
			t.Logf("port taken between picking and binding it; trying other ports: %v", err)
			continue
		}
		t.Fatal(err)
	}
}

// tryStart starts the server once. retry reports that a port picked as
// free was taken by someone else in the meantime.
func tryStart(t *testing.T, dir string, opts serverOptions) (s *stoaServer, retry bool, err error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, false, err
	}
	s = &stoaServer{
		dir:      filepath.Join(dir, "data"),
		cfg:      filepath.Join(dir, "stoa.toml"),
		starttls: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		direct:   net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		metrics:  net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2])),
		log:      &logBuffer{},
		exited:   make(chan struct{}),
	}
	q := strconv.Quote
	cfg := fmt.Sprintf(`[server]
hosts = [%s]
data_dir = %s
shutdown_timeout = "5s"
%s

[log]
level = "debug"

[[tls.certificates]]
cert = %s
key = %s

[metrics]
listen = %s

[c2s]
listen = [%s]
listen_tls = [%s]
%s
%s`, q(domain), q(s.dir), opts.server, q(env.cert), q(env.key), q(s.metrics), q(s.starttls), q(s.direct), opts.c2s, opts.extra)
	// The web listener defaults to a fixed port; tests that do not
	// configure it themselves get a free one.
	if !strings.Contains(opts.extra, "[http]") {
		s.http = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3]))
		cfg += fmt.Sprintf("\n[http]\nlisten = %s\n", q(s.http))
	}
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		return nil, false, err
	}

	s.cmd = exec.Command(env.bin, "serve", "-c", s.cfg)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("starting %s: %w", env.bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	// Ready when it logged that it started and the ports accept.
	guard := time.After(60 * time.Second)
	for !strings.Contains(s.log.String(), "stoa started") {
		select {
		case <-s.exited:
			log := s.log.String()
			return nil, strings.Contains(log, "address already in use"),
				fmt.Errorf("stoa serve exited during startup (%v); config:\n%s\nlog:\n%s", s.waitErr, cfg, log)
		case <-guard:
			s.kill()
			return nil, false, fmt.Errorf("stoa serve did not start within 60 s; log:\n%s", s.log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, a := range []string{s.starttls, s.direct, s.metrics} {
		c, err := net.DialTimeout("tcp", a, 10*time.Second)
		if err != nil {
			s.kill()
			return nil, false, fmt.Errorf("the server logged that it started but %s does not accept: %v; log:\n%s", a, err, s.log.String())
		}
		c.Close()
	}
	return s, false, nil
}

func (s *stoaServer) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// stop is the cleanup: SIGTERM and a clean exit within 15 s.
func (s *stoaServer) stop(t *testing.T) {
	select {
	case <-s.exited:
		t.Errorf("stoa serve exited before the end of the test: %v", s.waitErr)
	default:
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
		select {
		case <-s.exited:
			if s.waitErr != nil {
				t.Errorf("stoa serve did not exit cleanly after SIGTERM: %v", s.waitErr)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("stoa serve did not exit within 15 s of SIGTERM; killed")
			s.kill()
		}
	}
	log := s.log.String()
	if strings.Contains(log, "WARNING: DATA RACE") {
		t.Errorf("the server reported a data race")
	}
	if strings.Contains(log, "panic:") {
		t.Errorf("the server panicked")
	}
	if t.Failed() {
		t.Logf("server log (%s):\n%s", s.cfg, log)
	}
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago (the server may still lose the race for one; startServer
// retries then).
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// stoa runs a stoa command against this server's configuration (through
// its admin socket) and returns its combined output.
func (s *stoaServer) stoa(ctx context.Context, stdin string, args ...string) (string, error) {
	args = append(args, "-c", s.cfg)
	cmd := exec.CommandContext(ctx, env.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("stoa %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// addUser creates local@localhost with the password through the running
// server and returns the bare JID.
func (s *stoaServer) addUser(t *testing.T, local, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := local + "@" + domain
	out, err := s.stoa(ctx, password+"\n", "user", "add", j, "--password-stdin")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "not running") {
		t.Fatalf("stoa user add did not go through the running server: %s", out)
	}
	return j
}

// logHas reports whether the server's log contains every substring
// on one line.
func (s *stoaServer) logHas(subs ...string) bool {
	for _, line := range strings.Split(s.log.String(), "\n") {
		ok := true
		for _, sub := range subs {
			if !strings.Contains(line, sub) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// errTimeout is returned by the wait helpers when their guard expires.
var errTimeout = errors.New("timed out")
