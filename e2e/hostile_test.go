package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"
)

// chatters are two mellium users exchanging messages in a loop for as long
// as the test runs, to show that hostile connections do not disturb them.
type chatters struct {
	alice, bob *melliumClient
	rounds     atomic.Int64
	mu         sync.Mutex
	err        error
	stop       chan struct{}
	done       chan struct{}
}

// startChatters logs in two fresh users and starts the loop; it stops at
// the end of the test, which fails if a round failed.
func startChatters(t *testing.T, srv *stoaServer) *chatters {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.addUser(t, "chat-alice", "alice pw")
	srv.addUser(t, "chat-bob", "bob pw")
	c := &chatters{
		alice: mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "chat-alice", password: "alice pw"}),
		bob:   mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "chat-bob", password: "bob pw"}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	for _, m := range []*melliumClient{c.alice, c.bob} {
		m.must(t, m.sendPresence(ctx, "", stanza.AvailablePresence))
	}
	go c.loop()
	t.Cleanup(func() {
		close(c.stop)
		<-c.done
		if err := c.failure(); err != nil {
			t.Errorf("the chat between two logged-in users was disturbed after %d rounds: %v", c.rounds.Load(), err)
		} else if c.rounds.Load() == 0 {
			t.Errorf("the chatters never completed a round")
		}
	})
	return c
}

func (c *chatters) loop() {
	defer close(c.done)
	a, b := c.alice.jid.Bare().String(), c.bob.jid.Bare().String()
	for i := 0; ; i++ {
		select {
		case <-c.stop:
			return
		default:
		}
		err := func() error {
			// A guard, not a performance bound: a round normally takes
			// milliseconds.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ping, pong := fmt.Sprintf("ping %d", i), fmt.Sprintf("pong %d", i)
			if err := c.alice.sendMessage(ctx, c.bob.jid.String(), ping); err != nil {
				return err
			}
			if _, err := c.bob.wait(ctx, ping, isMessage(a, ping)); err != nil {
				return err
			}
			if err := c.bob.sendMessage(ctx, a, pong); err != nil {
				return err
			}
			_, err := c.alice.wait(ctx, pong, isMessage(b, pong))
			return err
		}()
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("round %d: %w", i, err)
			c.mu.Unlock()
			return
		}
		c.rounds.Add(1)
		// Drop what the waits kept aside (presence), so it cannot pile up.
		c.alice.mu.Lock()
		c.alice.backlog = nil
		c.alice.mu.Unlock()
		c.bob.mu.Lock()
		c.bob.backlog = nil
		c.bob.mu.Unlock()
	}
}

func (c *chatters) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// progress waits until n more rounds completed since the call.
func (c *chatters) progress(t *testing.T, n int64) {
	t.Helper()
	want := c.rounds.Load() + n
	guard := time.After(60 * time.Second)
	for c.rounds.Load() < want {
		if err := c.failure(); err != nil {
			t.Fatalf("the chat between two logged-in users stopped: %v", err)
		}
		select {
		case <-guard:
			t.Fatalf("the chat made no progress (%d rounds, want %d)", c.rounds.Load(), want)
		case <-c.done:
			t.Fatalf("the chat stopped: %v", c.failure())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// billionLaughs is the classic entity expansion DTD.
func billionLaughs(root string) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE ` + root + ` [<!ENTITY lol "lol">`)
	prev := "lol"
	for i := 2; i <= 9; i++ {
		name := fmt.Sprintf("lol%d", i)
		b.WriteString(`<!ENTITY ` + name + ` "`)
		for range 10 {
			b.WriteString("&" + prev + ";")
		}
		b.WriteString(`">`)
		prev = name
	}
	b.WriteString(`]>`)
	return b.String()
}

// TestHostileInput: each hostile connection gets the stream error RFC 6120
// prescribes and its stream closed, while two logged-in users keep chatting
// undisturbed.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{})
	chat := startChatters(t, srv)
	srv.addUser(t, "mallory", "mallory pw")

	big := func(n int) string { return strings.Repeat("A", n) }
	cases := []struct {
		name   string
		login  bool   // log in as mallory first (direct TLS)
		direct bool   // without login: direct TLS (else STARTTLS)
		noOpen bool   // do not send a stream header first (payload has its own)
		send   string // the hostile bytes
		cond   string // the expected stream error
	}{
		{name: "oversized-stanza-after-login", login: true, cond: "policy-violation",
			send: "<message to='chat-bob@localhost' type='chat'><body>" + big(300<<10) + "</body></message>"},
		{name: "oversized-element-before-login", direct: true, cond: "policy-violation",
			send: "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + big(12000) + "</auth>"},
		{name: "oversized-element-before-login-starttls", cond: "policy-violation",
			send: "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + big(12000) + "</auth>"},
		{name: "billion-laughs-before-stream", direct: true, noOpen: true, cond: "restricted-xml",
			send: "<?xml version='1.0'?>" + billionLaughs("stream:stream") +
				"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>&lol9;"},
		{name: "billion-laughs-after-login", login: true, cond: "restricted-xml",
			send: billionLaughs("message") + "<message to='chat-bob@localhost'><body>&lol9;</body></message>"},
		{name: "deep-nesting-after-login", login: true, cond: "policy-violation",
			send: "<message to='chat-bob@localhost'>" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</message>"},
		{name: "deep-nesting-before-login", direct: true, cond: "policy-violation",
			send: strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)},
		{name: "invalid-utf8-after-login", login: true, cond: "not-well-formed",
			send: "<message to='chat-bob@localhost' type='chat'><body>caf\xc3\x28 \xff\xfe</body></message>"},
		{name: "invalid-utf8-in-header", direct: true, noOpen: true, cond: "not-well-formed",
			send: "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local\xffhost' version='1.0'>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var r *rawStream
			var err error
			if tc.login {
				r = mustRawLogin(ctx, t, srv.direct, "mallory", "mallory pw")
			} else {
				addr := srv.starttls
				if tc.direct {
					addr = srv.direct
				}
				if r, err = dialRaw(ctx, t, addr, tc.direct); err != nil {
					t.Fatal(err)
				}
				if !tc.noOpen {
					if _, err := r.open(); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Write in the background: the server may stop reading (and
			// close) before it has everything.
			wrote := make(chan error, 1)
			go func() { wrote <- r.send(tc.send) }()
			if tc.noOpen {
				if err := r.readHeader(); err != nil {
					t.Fatalf("the server did not open its stream before the error: %v", err)
				}
			}
			se := r.readStreamError()
			r.conn.Close()
			<-wrote
			if se.Condition != tc.cond {
				t.Errorf("stream error %q (%s; read ended with %v), want %s", se.Condition, se.Raw, se.Err, tc.cond)
			}
			if !se.Closed {
				t.Errorf("the server did not close its stream after the error (read ended with %v)", se.Err)
			}
			chat.progress(t, 3)
		})
	}
}

// TestPreAuthFlood: 200 connections that send nothing do not stop the
// server from serving others, and are closed with connection-timeout once
// [c2s.pre_auth] timeout runs out.
func TestPreAuthFlood(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{extra: "[c2s.pre_auth]\ntimeout = \"2s\"\n"})
	chat := startChatters(t, srv)
	srv.addUser(t, "latecomer", "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const n = 200
	conns := make([]net.Conn, 0, n)
	var d net.Dialer
	for i := range n {
		addr := srv.starttls
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		conns = append(conns, c)
	}

	// While they are open: a new user logs in and the chat goes on.
	late := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "latecomer", password: "pw"})
	late.must(t, late.sendMessage(ctx, late.jid.String(), "still served"))
	late.mustWait(ctx, t, "own message", isMessage(late.jid.Bare().String(), "still served"))
	chat.progress(t, 3)

	// Every silent connection is closed with connection-timeout (RFC 6120
	// §4.9.3.4), after the server opened its stream (§4.9.1.1).
	type result struct {
		i   int
		err error
	}
	results := make(chan result, n)
	for i, c := range conns {
		go func() {
			r := newRaw(t, c)
			if err := r.readHeader(); err != nil {
				results <- result{i, fmt.Errorf("no stream header before the error: %w", err)}
				return
			}
			se := r.readStreamError()
			switch {
			case se.Condition != "connection-timeout":
				results <- result{i, fmt.Errorf("stream error %q (%s; read ended with %v), want connection-timeout", se.Condition, se.Raw, se.Err)}
			case !se.Closed:
				results <- result{i, fmt.Errorf("stream not closed after the error: %v", se.Err)}
			default:
				results <- result{i, nil}
			}
		}()
	}
	var failed []string
	for range n {
		r := <-results
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("connection %d: %v", r.i, r.err))
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d silent connections were not ended properly; first: %s", len(failed), n, failed[0])
	}
	chat.progress(t, 3)
}
