package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stream"
)

// TestUserDelEndsSession: `stoa user del` while the user is online ends
// the user's session with a stream error, and the account can no longer
// log in; other users are not affected.
func TestUserDelEndsSession(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := srv.addUser(t, "bob", "bob's password")
	a := srv.addUser(t, "alice", "alice's password")
	bob := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "bob", password: "bob's password"})
	bob2 := mustGox(t, goxLogin{addr: srv.direct, direct: true, user: b, password: "bob's password"})
	alice := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "alice", password: "alice's password"})

	// Both of bob's sessions work before.
	alice.must(t, alice.sendMessage(ctx, bob.jid.String(), "before"))
	bob.mustWait(ctx, t, "a message from alice", isMessage(a, "before"))

	out, err := srv.stoa(ctx, "", "user", "del", b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "not running") {
		t.Fatalf("stoa user del did not go through the running server: %s", out)
	}

	// mellium sees the stream end with a stream error.
	select {
	case <-bob.served:
	case <-ctx.Done():
		t.Fatalf("bob's mellium session still runs after stoa user del")
	}
	var se stream.Error
	if !errors.As(bob.serveErr, &se) {
		t.Errorf("bob's mellium session ended with %v, want a stream error", bob.serveErr)
	} else if se.Err != "not-authorized" {
		t.Errorf("bob's mellium session ended with stream error %q, want not-authorized", se.Err)
	}
	// go-xmpp too.
	select {
	case <-bob2.done:
		if bob2.err == nil || !strings.Contains(bob2.err.Error(), "stream error") {
			t.Errorf("bob's go-xmpp session ended with %v, want a stream error", bob2.err)
		}
	case <-ctx.Done():
		t.Fatalf("bob's go-xmpp session still runs after stoa user del")
	}

	// Bob cannot log in any more, with either client.
	if _, err := dialMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "bob", password: "bob's password"}); err == nil {
		t.Errorf("bob logged in (mellium) after his account was deleted")
	} else {
		t.Logf("mellium login after user del: %v", err)
	}
	if _, err := dialGox(t, goxLogin{addr: srv.direct, direct: true, user: b, password: "bob's password"}); err == nil {
		t.Errorf("bob logged in (go-xmpp) after his account was deleted")
	}

	// Alice is still there, and the account list no longer has bob.
	alice.must(t, alice.sendMessage(ctx, alice.jid.String(), "still here"))
	alice.mustWait(ctx, t, "her own message", isMessage(a, "still here"))
	out, err = srv.stoa(ctx, "", "user", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, b) || !strings.Contains(out, a) {
		t.Errorf("stoa user list after deleting bob:\n%s", out)
	}
}
