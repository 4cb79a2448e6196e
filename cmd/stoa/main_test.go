package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"stoa.im/stoa/internal/app"
)

// TestBinary builds the command and runs it as an operator would.
func TestBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "stoa")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[server]\nhosts = [\"example.org\"]\nadmins = [\"nobody\"]\n\n[[tls.certificates]]\ncert = \"c\"\nkey = \"k\"\n\n[c2s]\nlisen = [\":5222\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args       []string
		code       int
		stdout     string // substring
		stderr     string // substring
		stdoutNone bool
	}{
		{args: []string{"version"}, code: 0, stdout: "stoa "},
		{args: []string{"--help"}, code: 0, stdout: "user add"},
		{args: []string{}, code: 2, stderr: "Usage: stoa COMMAND"},
		{args: []string{"user", "--help"}, code: 0, stdout: "user passwd"},
		{args: []string{"user", "add", "--help"}, code: 0, stdout: "--password-stdin"},
		{args: []string{"user"}, code: 2, stderr: "user del"},
		{args: []string{"user", "rename"}, code: 2, stderr: `unknown command "user rename"`},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"; run 'stoa --help'`},
		{args: []string{"user", "add"}, code: 2, stderr: "expected one argument"},
		{args: []string{"user", "add", "a@example.org"}, code: 2, stderr: "-c FILE"},
		{args: []string{"version", "--bogus"}, code: 2, stderr: "flag provided but not defined"},
		{args: []string{"check", "config", "-c", bad}, code: 1, stdoutNone: true, stderr: bad + ":3: server.admins[0]:"},
		{args: []string{"check", "config", "-c", bad}, code: 1, stderr: bad + `:10: c2s.lisen: unknown key (did you mean "listen"?)`},
		{args: []string{"check", "config", "-c", "../../contrib/stoa.toml.example"}, code: 0, stdout: "ok"},
		{args: []string{"check", "config", "-c", filepath.Join(dir, "missing.toml")}, code: 1, stderr: "config describe"},
		{args: []string{"check", "config"}, code: 2, stderr: "required"},
		{args: []string{"config", "describe"}, code: 0, stdout: "[[tls.certificates]]"},
		{args: []string{"config", "docs"}, code: 0, stdout: "# Configuration reference"},
		{args: []string{"features", "--hooks"}, code: 0, stdout: "deliver-local:"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(bin, tc.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, &stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, &stderr)
			}
			if tc.stdoutNone && stdout.Len() > 0 {
				t.Errorf("stdout should be empty:\n%s", &stdout)
			}
		})
	}
}

// runCmd runs the command line in process with stdin.
func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	in, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.WriteString(stdin); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out, errb bytes.Buffer
	code = run(args, in, &out, &errb)
	return code, out.String(), errb.String()
}

// TestUserCommands runs the user commands against a stopped node (the
// database is changed directly) and a running one (through the socket).
func TestUserCommands(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	f, _, err := app.DevConfigPorts(data, "localhost", "127.0.0.1", app.DevPorts{})
	if err != nil {
		t.Fatal(err)
	}

	offline := "(server not running; changed the database directly)"
	steps := []struct {
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"pw1\n", []string{"user", "add", "alice@localhost", "--data", data, "--password-stdin"}, 0, "created alice@localhost " + offline, ""},
		{"pw1\n", []string{"user", "add", "alice@localhost", "--data", data, "--password-stdin"}, 1, "", "already exists"},
		{"", []string{"user", "add", "bob@localhost", "--data", data}, 2, "", "not a terminal: pipe the password and add --password-stdin"},
		{"\n", []string{"user", "add", "bob@localhost", "--data", data, "--password-stdin"}, 1, "", "empty"},
		{"pw2\n", []string{"user", "add", "bob@elsewhere.test", "--data", data, "--password-stdin"}, 1, "", "not a domain served here"},
		{"pw2\n", []string{"user", "passwd", "--password-stdin", "alice@localhost", "-c", f.Path}, 0, "changed the password of alice@localhost " + offline, ""},
		{"", []string{"user", "list", "--data", data}, 0, "alice@localhost\n", "1 account (server not running; read the database directly)"},
		{"", []string{"user", "add", "x@localhost", "--data", data, "-c", f.Path}, 2, "", "not both"},
		{"", []string{"user", "list", "--data", t.TempDir()}, 1, "", "has no dev.toml"},
	}
	for _, st := range steps {
		code, stdout, stderr := runCmd(t, st.stdin, st.args...)
		if code != st.code || !strings.Contains(stdout, st.stdout) || !strings.Contains(stderr, st.stderr) {
			t.Errorf("stoa %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(st.args, " "), code, stdout, stderr, st.code, st.stdout, st.stderr)
		}
	}

	// The same through a running node.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- app.Run(ctx, app.Options{Config: f, LogOutput: &bytes.Buffer{}, Ready: func(app.Info) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	online := []struct {
		stdin  string
		args   []string
		code   int
		stdout string
	}{
		{"pw3\n", []string{"user", "add", "carol@localhost", "--data", data, "--password-stdin"}, 0, "created carol@localhost\n"},
		{"", []string{"user", "del", "alice@localhost", "-c", f.Path}, 0, "deleted alice@localhost\n"},
		{"", []string{"user", "list", "localhost", "--data", data}, 0, "carol@localhost\n"},
		{"", []string{"user", "del", "alice@localhost", "--data", data}, 1, ""},
	}
	for _, st := range online {
		code, stdout, stderr := runCmd(t, st.stdin, st.args...)
		if code != st.code || stdout != st.stdout || strings.Contains(stderr, "not running") {
			t.Errorf("stoa %s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q",
				strings.Join(st.args, " "), code, stdout, stderr, st.code, st.stdout)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
