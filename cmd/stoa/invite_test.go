package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"stoa.im/stoa/internal/app"
)

// TestInviteCommands runs the invitation commands against a stopped node
// and a running one.
func TestInviteCommands(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	f, _, err := app.DevConfigPorts(data, "localhost", "127.0.0.1", app.DevPorts{})
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "", "invite", "create", "--data", data, "--expires", "2d", "--note", "first")
	if code != 0 || !strings.Contains(stdout, "/invite/") || !strings.Contains(stdout, "xmpp:localhost?register;preauth=") ||
		!strings.Contains(stderr, "created an account invitation for localhost") || !strings.Contains(stderr, "server not running") {
		t.Fatalf("invite create: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, tok, _ := strings.Cut(strings.Split(stdout, "\n")[0], "/invite/")

	for _, st := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"invite", "create", "--reset", "nobody@localhost", "--data", data}, 1, "", "there is no account"},
		{[]string{"invite", "create", "--reset", "a@localhost", "--contact", "b@localhost", "--data", data}, 1, "", "cannot be combined"},
		{[]string{"invite", "create", "--user", "two words", "--data", data}, 1, "", "cannot be an account name"},
		{[]string{"invite", "create", "--expires", "soon", "--data", data}, 1, "", "not a duration"},
		{[]string{"invite", "list", "--data", data}, 0, tok + "\taccount\tlocalhost", "1 valid invitation (server not running; read the database directly)"},
		{[]string{"invite", "revoke", "--data", data}, 2, "", "expected one argument"},
		{[]string{"invite", "revoke", tok, "-c", f.Path}, 0, "revoked", ""},
		{[]string{"invite", "revoke", tok, "-c", f.Path}, 1, "", "there is no invitation"},
	} {
		code, stdout, stderr := runCmd(t, "", st.args...)
		if code != st.code || !strings.Contains(stdout, st.stdout) || !strings.Contains(stderr, st.stderr) {
			t.Errorf("stoa %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(st.args, " "), code, stdout, stderr, st.code, st.stdout, st.stderr)
		}
	}

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
	code, stdout, stderr = runCmd(t, "", "invite", "create", "--user", "juliet", "--data", data)
	if code != 0 || !strings.Contains(stdout, "xmpp:juliet@localhost?register;preauth=") || strings.Contains(stderr, "not running") {
		t.Errorf("invite create on a running node: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
