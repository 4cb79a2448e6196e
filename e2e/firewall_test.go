package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFirewallReload: the firewall's rules work in the real binary, a
// broken file sent with SIGHUP is refused with its file and line while
// the running rules stay, and a fixed file replaces them; decisions show
// in /metrics.
func TestFirewallReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.conf")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(rules, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("rule no_spam on local\n    if body \"spam\"\n    then bounce policy-violation \"No spam here.\"\n")
	srv := startServer(t, serverOptions{extra: fmt.Sprintf("[firewall]\nfiles = [%s]\npoll_interval = \"0s\"\n", strconv.Quote(rules))})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv.addUser(t, "alice", "alice password")
	srv.addUser(t, "bob", "bob password")
	alice := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "alice", password: "alice password"})
	bob := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "bob", password: "bob password"})

	bounced := func(text string) func(inStanza) bool {
		return func(s inStanza) bool {
			return s.XMLName.Local == "message" && s.Type == "error" && strings.Contains(s.Raw, text)
		}
	}
	// check sends body from alice to bob and waits for the bounce or the
	// delivery (a marker message sent after it proves nothing else came).
	check := func(body string, wantBounce bool) {
		t.Helper()
		alice.must(t, alice.sendMessage(ctx, bob.jid.String(), body))
		if wantBounce {
			alice.mustWait(ctx, t, "the bounce of "+body, bounced("No spam here."))
			return
		}
		bob.mustWait(ctx, t, body, isMessage("alice@localhost", body))
	}
	check("buy spam", true)
	check("hello", false)

	waitLog := func(what string, subs ...string) {
		t.Helper()
		guard := time.Now().Add(30 * time.Second) // a guard, not a timing assertion
		for !srv.logHas(subs...) {
			if time.Now().After(guard) {
				t.Fatalf("the server did not log %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// A broken file: refused, with file and line; the old rules stay.
	write("rule no_spam on local\n    if bodyy \"ham\"\n    then bounce policy-violation \"No spam here.\"\n")
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("the rule file's error", "level=ERROR", "firewall", rules+":2: unknown condition")
	check("more spam", true)

	// Fixed: the new rules replace the old ones.
	write("rule no_spam on local\n    if body \"ham\"\n    then bounce policy-violation \"No spam here.\"\n")
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("the reload", "firewall rules loaded", "trigger=reload", "rules=1")
	check("spam is fine now", false)
	check("ham", true)

	if !srv.logHas("firewall rule matched", "policy=firewall", "rule=no_spam", "at="+rules+":1", "chain=local", "actions=bounce", "from=alice@localhost/") {
		t.Errorf("no decision log line")
	}
	resp, err := http.Get("http://" + srv.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`stoa_firewall_decisions_total{action="bounce",chain="local",rule="no_spam"} 3`,
		`stoa_firewall_loads_total{result="error"} 1`,
		`stoa_policy_denied_total{policy="firewall"} 3`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
