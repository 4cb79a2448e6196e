package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"
)

// goSendxmpp is Debian's go-sendxmpp command.
func goSendxmpp(t *testing.T) string {
	t.Helper()
	var path string
	requireClient(t, "go-sendxmpp", "go-sendxmpp", func() error {
		p, err := exec.LookPath("go-sendxmpp")
		if err != nil {
			p, err = exec.LookPath("/usr/bin/go-sendxmpp")
		}
		path = p
		return err
	})
	return path
}

// TestSendxmppOffline: go-sendxmpp sends messages (over STARTTLS and
// direct TLS) to a user who is offline; when the user logs in with
// mellium and sends initial presence, the messages arrive with an
// XEP-0203 <delay/> stamp.
func TestSendxmppOffline(t *testing.T) {
	t.Parallel()
	bin := goSendxmpp(t)
	srv := startServer(t, serverOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := srv.addUser(t, "alice", "alice pw")
	b := srv.addUser(t, "bob", "bob pw")
	home := t.TempDir()
	before := time.Now().Add(-time.Minute) // guards against a wild stamp only

	for _, c := range []struct {
		name string
		args []string
	}{
		{"starttls", []string{"-j", srv.starttls}},
		{"directtls", []string{"-t", "-j", srv.direct}},
	} {
		body := "offline hello over " + c.name
		args := append([]string{"-u", a, "-p", "alice pw", "--timeout", "20"}, c.args...)
		args = append(args, b)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(cmd.Environ(), "SSL_CERT_FILE="+env.ca, "HOME="+home)
		cmd.Stdin = strings.NewReader(body + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go-sendxmpp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	bob := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "bob", password: "bob pw"})
	// XEP-0160: offline messages are delivered on initial presence.
	bob.must(t, bob.sendPresence(ctx, "", stanza.AvailablePresence))
	for _, name := range []string{"starttls", "directtls"} {
		body := "offline hello over " + name
		m := bob.mustWait(ctx, t, fmt.Sprintf("the offline message %q", body), func(s inStanza) bool {
			return s.XMLName.Local == "message" && bareOf(s.From) == a && strings.TrimSpace(s.Body) == body
		})
		if m.Delay == nil {
			t.Errorf("offline message without an XEP-0203 <delay/>: %v", m)
			continue
		}
		stamp, err := time.Parse(time.RFC3339Nano, m.Delay.Stamp)
		if err != nil {
			t.Errorf("delay stamp %q: %v", m.Delay.Stamp, err)
		} else if stamp.Before(before) || stamp.After(time.Now().Add(time.Minute)) {
			t.Errorf("delay stamp %s is not around the time the message was sent", stamp)
		}
		if !strings.HasSuffix(m.Delay.Stamp, "Z") {
			t.Errorf("delay stamp %q is not in UTC (XEP-0082)", m.Delay.Stamp)
		}
		if m.Delay.From != domain {
			t.Logf("delay from %q (XEP-0203 suggests the server, %q)", m.Delay.From, domain)
		}
	}
	// Delivered once: a second session gets nothing stored.
	bob2 := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "bob", password: "bob pw"})
	bob2.must(t, bob2.sendPresence(ctx, "", stanza.AvailablePresence))
	bob2.must(t, bob2.sendMessage(ctx, bob2.jid.String(), "marker"))
	bob2.mustWait(ctx, t, "marker", isMessage(b, "marker"))
	for _, st := range bob2.seen() {
		if st.XMLName.Local == "message" && st.Delay != nil {
			t.Errorf("offline message delivered again to a later session: %v", st)
		}
	}
}
