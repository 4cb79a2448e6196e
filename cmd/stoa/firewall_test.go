package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFirewallCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.rules")
	if err := os.WriteFile(bad, []byte("rule x on local\n if colour red\n then dropp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "stoa.toml")
	if err := os.WriteFile(cfg, []byte("[server]\nhosts = [\"example.org\"]\ndata_dir = "+quote(dir)+"\n\n[[tls.certificates]]\ncert = \"c\"\nkey = \"k\"\n\n[firewall]\nfiles = ["+quote(bad)+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"firewall", "check", "../../docs/firewall-examples/*.rules"}, 0, "ok: 7 rules in 3 file(s)", ""},
		{[]string{"firewall", "check", bad}, 1, "", bad + ":2: unknown condition \"colour\""},
		{[]string{"firewall", "check", bad}, 1, "", bad + ":3: unknown action \"dropp\""},
		{[]string{"firewall", "check", "-c", cfg}, 1, "", bad + ":2:"},
		{[]string{"firewall", "check"}, 2, "", "give the rule files"},
		{[]string{"firewall", "reload", "-c", cfg}, 1, "", "the server is not running"},
	}
	for _, tc := range tests {
		code, stdout, stderr := runCmd(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("stoa %s: exit %d, stdout %q, stderr %q; want %d, %q, %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }
