package ping

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// newEnv starts a server with the ping feature and returns it with the
// disco registry, captured by a probe feature.
func newEnv(t *testing.T) (*servertest.Env, *server.Disco) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var d *server.Disco
	probe := server.Feature{Name: "probe", Setup: func(s *server.Setup, _ any) error { d = s.Disco(); return nil }}
	return servertest.New(t, st, []server.Feature{Feature, probe}, nil), d
}

func TestPing(t *testing.T) {
	t.Parallel()
	env, d := newEnv(t)
	if !slices.Contains(d.ServerInfo("localhost").Features, NS) {
		t.Errorf("server features %v lack %s", d.ServerInfo("localhost").Features, NS)
	}
	c := env.Bind("alice@localhost/a")
	tests := []struct {
		name, xml, id, typ string
		cond               stanza.Condition
	}{
		{"server", `<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "p1", "result", ""},
		{"set is not a ping", `<iq type='set' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "p2", "error", stanza.ServiceUnavailable},
		{"account is not answered", `<iq type='get' id='p3' to='bob@localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "p3", "error", stanza.ServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.SendXML(tc.xml)
			r := c.Expect(servertest.Name("iq", "id", tc.id))
			if got := r.Attr("type"); got != tc.typ {
				t.Fatalf("type = %q, want %q: %s", got, tc.typ, r)
			}
			if tc.typ == "result" {
				if r.Attr("from") != "localhost" || len(r.Elements()) != 0 {
					t.Errorf("pong = %s, want an empty result from localhost", r)
				}
				return
			}
			if e := stanza.ParseError(r); e == nil || e.Condition != tc.cond {
				t.Errorf("error = %v, want %s", e, tc.cond)
			}
		})
	}
}
