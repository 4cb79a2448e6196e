package server_test

import (
	"context"
	"testing"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/jid"
)

// SessionCount agrees with Sessions as sessions come and go.
func TestSessionCount(t *testing.T) {
	ctx := context.Background()
	srv, err := server.New(server.Options{Hosts: []string{"localhost"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	alice := jid.MustParse("alice@localhost")
	check := func(want int) {
		t.Helper()
		if got, all := srv.SessionCount(alice), len(srv.Sessions(alice)); got != want || all != want {
			t.Fatalf("SessionCount %d, len(Sessions) %d, want %d", got, all, want)
		}
		if got := srv.SessionCount(jid.MustParse("alice@localhost/any")); got != want {
			t.Fatalf("SessionCount of a full JID %d, want %d (the account's)", got, want)
		}
	}
	check(0)
	s1, err := srv.Bind(ctx, jid.MustParse("alice@localhost/phone"), "s1", &benchConn{})
	if err != nil {
		t.Fatal(err)
	}
	check(1)
	if _, err := srv.Bind(ctx, jid.MustParse("alice@localhost/laptop"), "s2", &benchConn{}); err != nil {
		t.Fatal(err)
	}
	check(2)
	if srv.SessionCount(jid.MustParse("bob@localhost")) != 0 {
		t.Fatal("bob has sessions")
	}
	srv.Unbind(ctx, s1)
	check(1)
}
