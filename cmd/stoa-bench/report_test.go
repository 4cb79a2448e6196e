package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRun returns a result of server with a login storm and a chat.
func fakeRun(server string, logins, cpuLogin, cpuMsg float64) *Result {
	r := &Result{}
	r.Settings.Server = server
	r.Login = &LoginResult{PerSecond: logins, ServerCPUms: cpuLogin, Usage: Usage{ServerSampled: true}}
	r.Chat = &ChatResult{CPUPerMsgUs: cpuMsg, Usage: Usage{ServerSampled: true}}
	return r
}

// TestReportRounds: with interleaved rounds, logins per second and CPU per
// message are medians over the measured run and the rounds, each server's
// own, and the target is judged on the medians; the rounds are listed.
func TestReportRounds(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r *Result) string {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// stoa's measured run misses the CPU target (120 vs 345: 0.35×); its
	// rounds do not. The peer's fastest run is a round.
	args := []string{
		"-round", write("s1.json", fakeRun("stoa", 500, 2.0, 100)),
		"-round", write("p1.json", fakeRun("peer", 200, 6.0, 400)),
		"-round", write("s2.json", fakeRun("stoa", 520, 2.2, 110)),
		"-round", write("p2.json", fakeRun("peer", 190, 6.5, 420)),
		write("stoa.json", fakeRun("stoa", 450, 2.5, 120)),
		write("peer.json", fakeRun("peer", 210, 6.2, 345)),
	}
	var out, errb strings.Builder
	if code := runReport(args, &out, &errb); code != 0 {
		t.Fatalf("report exited with %d: %s", code, errb.String())
	}
	rep := out.String()
	for _, want := range []string{
		// medians: stoa logins 450/500/520 -> 500, peer 190/200/210 -> 200
		"| logins per second, median of 3 runs (/s) | 500 | 200 | 2.50× | ≥ 2× best peer | yes |",
		"| server CPU per login, median of 3 runs (ms) | 2.20 | 6.20 | 0.35× |",
		// stoa 100/110/120 -> 110; peer 345/400/420 -> 400: 0.28×, met
		"| chat: server CPU per message, median of 3 runs (µs) | 110 | 400 | 0.28× | ≤ ⅓ best peer | yes |",
		// the rounds table: run 0 is the measured run, with its own ratio
		"| 0 | 450 | 210 | 2.14× | 2.50 | 6.20 | 120 | 345 | 0.35× |",
		"| 2 | 520 | 190 | 2.74× | 2.20 | 6.50 | 110 | 420 | 0.26× |",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}

	// Without rounds the measured run alone decides: the CPU target is missed.
	out.Reset()
	if code := runReport(args[8:], &out, &errb); code != 0 {
		t.Fatalf("report exited with %d: %s", code, errb.String())
	}
	if want := "| chat: server CPU per message (µs) | 120 | 345 | 0.35× | ≤ ⅓ best peer | **no** |"; !strings.Contains(out.String(), want) {
		t.Errorf("report without rounds lacks %q:\n%s", want, out.String())
	}

	if strings.Contains(out.String(), "Runs behind the medians") {
		t.Errorf("report without rounds lists rounds:\n%s", out.String())
	}
}
