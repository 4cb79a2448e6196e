package e2e

import (
	"context"
	"encoding/base64"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

// TestMechanisms: SCRAM-SHA-1 and PLAIN logins work over TLS with go-xmpp
// and mellium, and PLAIN is neither offered nor accepted without TLS.
func TestMechanisms(t *testing.T) {
	t.Parallel()
	// The wrong-password case must not throttle the other logins.
	srv := startServer(t, serverOptions{extra: noBackoff})
	u := srv.addUser(t, "erin", "erin's password")

	for _, mech := range []string{"SCRAM-SHA-1", "PLAIN", "SCRAM-SHA-256"} {
		for _, direct := range []bool{true, false} {
			name := mech + "/starttls"
			addr := srv.starttls
			if direct {
				name, addr = mech+"/directtls", srv.direct
			}
			t.Run("go-xmpp/"+name, func(t *testing.T) {
				t.Parallel()
				g := mustGox(t, goxLogin{addr: addr, direct: direct, user: u, password: "erin's password", mech: mech})
				if !strings.HasPrefix(g.c.JID(), u+"/") {
					t.Errorf("bound %q", g.c.JID())
				}
				// go-xmpp records the mechanism only for SCRAM.
				if strings.HasPrefix(mech, "SCRAM") && g.c.Mechanism != mech {
					t.Errorf("logged in with %q, want %s", g.c.Mechanism, mech)
				}
			})
			t.Run("mellium/"+name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				m := map[string]sasl.Mechanism{"SCRAM-SHA-1": sasl.ScramSha1, "PLAIN": sasl.Plain, "SCRAM-SHA-256": sasl.ScramSha256}[mech]
				c := mustMellium(ctx, t, melliumLogin{addr: addr, direct: direct, local: "erin", password: "erin's password", mech: m})
				if c.jid.Bare().String() != u {
					t.Errorf("bound %s", c.jid)
				}
			})
		}
	}
	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		for _, mech := range []string{"SCRAM-SHA-1", "PLAIN"} {
			if _, err := dialGox(t, goxLogin{addr: srv.direct, direct: true, user: u, password: "nope", mech: mech}); err == nil {
				t.Errorf("%s: logged in with a wrong password", mech)
			}
		}
	})
}

// TestPlainNeedsTLS: with require_tls = false, a plain-text stream is
// offered the SCRAM mechanisms but not PLAIN, and PLAIN is refused there.
func TestPlainNeedsTLS(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{c2s: "require_tls = false"})
	srv.addUser(t, "frank", "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", srv.starttls)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := newRaw(t, conn)
	f, err := r.open()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Mechanisms) == 0 {
		t.Fatalf("no mechanisms offered before TLS with require_tls = false")
	}
	if slices.Contains(f.Mechanisms, "PLAIN") || slices.ContainsFunc(f.Mechanisms, func(m string) bool { return strings.HasSuffix(m, "-PLUS") }) {
		t.Errorf("offered without TLS: %v; want neither PLAIN nor -PLUS", f.Mechanisms)
	}
	if err := r.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00frank\x00pw")) + "</auth>"); err != nil {
		t.Fatal(err)
	}
	el, raw, err := r.next()
	if err != nil {
		t.Fatal(err)
	}
	if el.Name.Local != "failure" {
		t.Fatalf("PLAIN without TLS: got %s, want a <failure/>", raw)
	}
	t.Logf("PLAIN without TLS: %s", raw)
}
