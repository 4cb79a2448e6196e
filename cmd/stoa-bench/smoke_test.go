package main

import (
	"bytes"
	"context"
	"encoding/json"
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

	"stoa.im/stoa/internal/certs"
)

// TestSmoke builds the real stoa, starts it with the benchmark
// configuration (bench/stoa.toml), and runs every scenario of the load
// tool with a few users for a few seconds. It proves the tool works end
// to end; it asserts nothing about speed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a server")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "stoa")
	if out, err := exec.Command("go", "build", "-o", bin, "stoa.im/stoa/cmd/stoa").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	files, err := certs.GenerateDev(filepath.Join(dir, "tls"), []string{"bench.local"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "bench", "stoa.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("@DIR@", filepath.Join(dir, "data"), "@PORT@", port, "@CERT@", files.Cert, "@KEY@", files.Key).Replace(string(tmpl))
	cfgPath := filepath.Join(dir, "stoa.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	serverLog := &lockedBuffer{}
	srv := exec.Command(bin, "serve", "-c", cfgPath)
	srv.Stdout, srv.Stderr = serverLog, serverLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	})
	// Wait until the listener accepts (a guard, not a timing assertion).
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("stoa exited: %v\n%s", err, serverLog.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stoa does not listen on %s: %v\n%s", addr, err, serverLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	out := filepath.Join(dir, "result.json")
	var stdout, stderr bytes.Buffer
	args := []string{
		"-server", "stoa", "-pid", strconv.Itoa(srv.Process.Pid), "-addr", addr, "-domain", "bench.local",
		"-ca", files.CA, "-src", "127.0.0.1,127.0.0.2", "-users", "6", "-contacts", "2",
		"-create", "stoa", "-stoa-bin", bin, "-stoa-config", cfgPath, "-keys", filepath.Join(dir, "keys.json"),
		"-scenarios", "accounts,warmup,rosters,login,idle,chat,presence",
		"-settle", "100ms", "-chat-duration", "1s", "-msg-rate", "5", "-presence-duration", "1s", "-presence-rate", "2",
		"-drain", "20s", "-login-concurrency", "3", "-o", out,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("stoa-bench exited with %d\nstdout:\n%s\nstderr:\n%s\nserver:\n%s", code, stdout.String(), stderr.String(), serverLog.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	switch {
	case r.Accounts == nil || r.Accounts.Created+r.Accounts.Existing != 6:
		t.Errorf("accounts: %+v", r.Accounts)
	case r.Login == nil || r.Login.OK != 6 || r.Login.Failed != 0:
		t.Errorf("login: %+v", r.Login)
	case r.Login.ClientKDF != 0:
		t.Errorf("the login storm derived SCRAM keys %d times although the warm-up cached them", r.Login.ClientKDF)
	case r.Idle == nil || r.Idle.Sessions != 6 || r.Idle.RSSSettled <= 0:
		t.Errorf("idle: %+v", r.Idle)
	case r.Chat == nil || r.Chat.Sent == 0 || r.Chat.Lost != 0 || r.Chat.Received != r.Chat.Sent:
		t.Errorf("chat: %+v", r.Chat)
	case r.Presence == nil || r.Presence.Changes == 0 || r.Presence.Lost != 0 || r.Presence.MutualOK != 6:
		t.Errorf("presence: %+v", r.Presence)
	case r.Disconnects != 0:
		t.Errorf("%d sessions were closed by the server: %s", r.Disconnects, r.FirstClose)
	}
	if t.Failed() {
		t.Logf("stderr:\n%s\nserver:\n%s", stderr.String(), serverLog.String())
	}

	// The report puts runs side by side; a run compared with itself has
	// ratios of 1.
	var rep bytes.Buffer
	if code := runReport([]string{out, out}, &rep, &stderr); code != 0 {
		t.Fatalf("report exited with %d: %s", code, stderr.String())
	}
	if !strings.Contains(rep.String(), "| logins per second (/s) |") || !strings.Contains(rep.String(), "| 1.00× |") {
		t.Errorf("report:\n%s", rep.String())
	}
}

// lockedBuffer collects the server's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
