package version

import (
	"context"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/stanza"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    any // nil: the defaults
		os     string
		answer bool
	}{
		{"defaults", nil, "", true},
		{"show os", Config{Answer: true, ShowOS: true}, runtime.GOOS, true},
		{"hidden", Config{Answer: false, ShowOS: true}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			var d *server.Disco
			probe := server.Feature{Name: "probe", Setup: func(s *server.Setup, _ any) error { d = s.Disco(); return nil }}
			env := servertest.New(t, st, []server.Feature{Feature, probe}, map[string]any{"version": tc.cfg})
			if got := slices.Contains(d.ServerInfo("localhost").Features, NS); got != tc.answer {
				t.Errorf("advertised = %v, want %v", got, tc.answer)
			}

			c := env.Bind("alice@localhost/a")
			c.SendXML(`<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>`)
			r := c.Expect(servertest.Name("iq", "id", "v1"))
			if !tc.answer {
				if e := stanza.ParseError(r); e == nil || e.Condition != stanza.ServiceUnavailable {
					t.Fatalf("reply = %s, want service-unavailable", r)
				}
				return
			}
			q := r.Child(NS, "query")
			if r.Attr("type") != "result" || q == nil {
				t.Fatalf("reply = %s, want a result with a query", r)
			}
			if got := q.ChildText(NS, "name"); got != "stoa" {
				t.Errorf("name = %q", got)
			}
			if got := q.ChildText(NS, "version"); got != "test" {
				t.Errorf("version = %q, want the server's (test)", got)
			}
			if got := q.ChildText(NS, "os"); got != tc.os {
				t.Errorf("os = %q, want %q", got, tc.os)
			}
			if (q.Child(NS, "os") != nil) != (tc.os != "") {
				t.Errorf("os element present = %v, want %v", q.Child(NS, "os") != nil, tc.os != "")
			}
		})
	}
}
