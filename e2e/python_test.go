package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"
)

// event is one JSON line a Python client printed.
type event map[string]any

func (e event) str(k string) string {
	s, _ := e[k].(string)
	return s
}

// script is a running Python client from testdata.
type script struct {
	name   string
	cmd    *exec.Cmd
	stderr bytes.Buffer

	mu     sync.Mutex
	events []event
	lines  []string // stdout lines that are not JSON
	done   chan struct{}
	err    error // from Wait, set before done is closed
}

// startScript runs testdata/NAME with /usr/bin/python3 and cfg as its JSON
// argument, trusting the test CA. It is killed if still running when the
// test ends.
func startScript(ctx context.Context, t *testing.T, name string, cfg any) *script {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &script{name: name, done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, python, filepath.Join(env.testdata, name), string(arg))
	s.cmd.Env = append(s.cmd.Environ(), "SSL_CERT_FILE="+env.ca, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e event
			s.mu.Lock()
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				s.lines = append(s.lines, sc.Text())
			} else {
				s.events = append(s.events, e)
			}
			s.mu.Unlock()
		}
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
		}
		<-s.done
		if t.Failed() {
			t.Logf("%s output:\n%s\nstderr:\n%s", name, s.dump(), &s.stderr)
		}
	})
	return s
}

// wait waits for the script to exit and fails the test unless it exited 0.
func (s *script) wait(ctx context.Context, t *testing.T) []event {
	t.Helper()
	select {
	case <-s.done:
	case <-ctx.Done():
		t.Fatalf("%s did not finish in time; output so far:\n%s", s.name, s.dump())
	}
	if s.err != nil {
		t.Fatalf("%s: %v (its output follows)", s.name, s.err)
	}
	return s.snapshot()
}

func (s *script) snapshot() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...)
}

func (s *script) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, e := range s.events {
		j, _ := json.Marshal(e)
		fmt.Fprintf(&b, "%s\n", j)
	}
	for _, l := range s.lines {
		fmt.Fprintf(&b, "(not JSON) %s\n", l)
	}
	return b.String()
}

// find returns the events named name for which match (nil: any) is true.
func find(events []event, name string, match func(event) bool) []event {
	var out []event
	for _, e := range events {
		if e.str("event") == name && (match == nil || match(e)) {
			out = append(out, e)
		}
	}
	return out
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSlixmpp: slixmpp logs in over STARTTLS, manages its roster,
// completes a mutual presence subscription with a mellium peer and chats
// with it. "scram-sha-256" forces SCRAM-SHA-256 (without channel
// binding); "defaults" is slixmpp as a bot author would run it, with only
// a JID and a password. slixmpp 1.8.3 then tries SCRAM-SHA-256-PLUS with
// tls-unique (undefined for TLS 1.3, so refused), then the other
// mechanisms down to PLAIN, which works, as long as the first refusal (a
// channel-binding mismatch, no password was checked) does not make the
// failed-login throttle refuse the rest.
func TestSlixmpp(t *testing.T) {
	t.Parallel()
	requirePython(t, "slixmpp", "python3-slixmpp")
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		mech string // expected mechanism; "" means any
	}{
		{"scram-sha-256", map[string]any{"mechanism": "SCRAM-SHA-256", "no_channel_binding": true}, "SCRAM-SHA-256"},
		{"defaults", map[string]any{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Own server each: failed attempts of one must not throttle
			// the other.
			srv := startServer(t, serverOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			slixJID := srv.addUser(t, "slix", "slix password")
			peerJID := srv.addUser(t, "peer", "peer password")

			peer := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "peer", password: "peer password"})
			if _, err := fetchRoster(ctx, peer); err != nil {
				t.Fatal(err)
			}
			peer.must(t, peer.sendPresence(ctx, "", stanza.AvailablePresence))

			cfg := map[string]any{
				"jid": slixJID, "password": "slix password", "host": "127.0.0.1", "port": portOf(t, srv.starttls),
				"peer": peerJID, "timeout": 60,
			}
			for k, v := range tc.cfg {
				cfg[k] = v
			}
			s := startScript(ctx, t, "slix_peer.py", cfg)
			// Stop waiting on the Go side as soon as the script ends.
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			go func() {
				select {
				case <-s.done:
					scancel()
				case <-sctx.Done():
				}
			}()

			// The mellium side of the handshake; on failure, the script's
			// own account of what happened is the better message.
			err := func() error {
				if _, err := peer.wait(sctx, "subscribe from slixmpp", isPresence(slixJID, "subscribe")); err != nil {
					return err
				}
				if err := peer.sendPresence(ctx, slixJID, stanza.SubscribedPresence); err != nil {
					return err
				}
				if err := peer.sendPresence(ctx, slixJID, stanza.SubscribePresence); err != nil {
					return err
				}
				if _, err := peer.wait(sctx, "subscribed from slixmpp", isPresence(slixJID, "subscribed")); err != nil {
					return err
				}
				if _, err := peer.wait(sctx, "slixmpp's available presence", isPresence(slixJID, "")); err != nil {
					return err
				}
				m, err := peer.wait(sctx, "the message from slixmpp", isMessage(slixJID, "hello from slixmpp"))
				if err != nil {
					return err
				}
				return peer.sendMessage(ctx, m.From, "hello from mellium")
			}()
			events := s.wait(ctx, t)
			if err != nil {
				t.Fatal(err)
			}
			auth := find(events, "auth", nil)
			if len(auth) != 1 || (tc.mech != "" && auth[0].str("mechanism") != tc.mech) {
				t.Errorf("slixmpp authenticated with %v, want %q", auth, tc.mech)
			}
			if st := find(events, "session_start", nil); len(st) != 1 || !strings.HasPrefix(st[0].str("jid"), slixJID+"/") {
				t.Errorf("session_start events %v, want one with a resource of %s", st, slixJID)
			}
			rosters := find(events, "roster", nil)
			if len(rosters) != 2 {
				t.Fatalf("roster events %v, want 2", rosters)
			}
			if items, _ := rosters[0]["items"].(map[string]any); len(items) != 0 {
				t.Errorf("initial roster %v, want empty", items)
			}
			if items, _ := rosters[1]["items"].(map[string]any); items[peerJID] != "both" {
				t.Errorf("final roster %v, want %s with subscription both", items, peerJID)
			}
			if len(find(events, "presence", func(e event) bool { return e.str("type") == "available" && bareOf(e.str("frm")) == peerJID })) == 0 {
				t.Errorf("slixmpp did not see the peer's available presence")
			}
			if len(find(events, "message", func(e event) bool {
				return e.str("frm") == peer.jid.String() && e.str("body") == "hello from mellium" && e.str("type") == "chat"
			})) != 1 {
				t.Errorf("slixmpp did not get the reply exactly once")
			}
			if len(find(events, "error", nil)) != 0 || len(find(events, "done", nil)) != 1 {
				t.Errorf("slixmpp reported errors or did not finish")
			}
		})
	}
}

// TestAioxmpp: aioxmpp logs in over STARTTLS (override_peer with
// STARTTLSConnector), sends a message to a go-xmpp client and receives its
// reply. (To the full JID: go-xmpp's initial presence is refused, so it
// is not available for messages to the bare JID; see
// TestGoXMPPInitialPresence.)
func TestAioxmpp(t *testing.T) {
	t.Parallel()
	requirePython(t, "aioxmpp", "python3-aioxmpp")
	srv := startServer(t, serverOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	aio := srv.addUser(t, "aio", "aio password")
	gox := srv.addUser(t, "gox", "gox password")
	peer := mustGox(t, goxLogin{addr: srv.direct, direct: true, user: gox, password: "gox password"})

	s := startScript(ctx, t, "aio_chat.py", map[string]any{
		"jid": aio, "password": "aio password", "host": "127.0.0.1", "port": portOf(t, srv.starttls),
		"peer": peer.c.JID(), "timeout": 60,
	})
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go func() {
		select {
		case <-s.done:
			scancel()
		case <-sctx.Done():
		}
	}()
	v, err := peer.wait(sctx, "the message from aioxmpp", goxChat(aio, "hello from aioxmpp"))
	if err == nil {
		from := v.(goxmppChat).Remote
		if _, err = peer.c.Send(goxmppChat{Remote: from, Type: "chat", Text: "hello from go-xmpp"}); err != nil {
			err = fmt.Errorf("go-xmpp: send: %w", err)
		}
	}
	events := s.wait(ctx, t)
	if err != nil {
		t.Fatal(err)
	}
	if st := find(events, "session_start", nil); len(st) != 1 || !strings.HasPrefix(st[0].str("jid"), aio+"/") {
		t.Errorf("session_start events %v, want one with a resource of %s", st, aio)
	}
	if len(find(events, "message", func(e event) bool {
		return e.str("frm") == peer.c.JID() && e.str("body") == "hello from go-xmpp" && e.str("type") == "chat"
	})) != 1 {
		t.Errorf("aioxmpp did not get the reply from %s exactly once", peer.c.JID())
	}
	if len(find(events, "done", nil)) != 1 || len(find(events, "error", nil)) != 0 {
		t.Errorf("aioxmpp reported errors or did not finish")
	}
}
