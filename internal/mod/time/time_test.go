package time

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	gotime "time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/stanza"
)

func TestAnswer(t *testing.T) {
	t.Parallel()
	now := gotime.Date(2024, 3, 5, 7, 8, 9, 123456789, gotime.FixedZone("X", -6*3600))
	el := answer(now)
	if got := el.ChildText(NS, "tzo"); got != "+00:00" {
		t.Errorf("tzo = %q", got)
	}
	if got, want := el.ChildText(NS, "utc"), "2024-03-05T13:08:09.123Z"; got != want {
		t.Errorf("utc = %q, want %q", got, want)
	}
}

func TestTime(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var d *server.Disco
	probe := server.Feature{Name: "probe", Setup: func(s *server.Setup, _ any) error { d = s.Disco(); return nil }}
	env := servertest.New(t, st, []server.Feature{Feature, probe}, nil)
	if !slices.Contains(d.ServerInfo("localhost").Features, NS) {
		t.Errorf("server features lack %s", NS)
	}

	c := env.Bind("alice@localhost/a")
	c.SendXML(`<iq type='get' id='t1' to='localhost'><time xmlns='urn:xmpp:time'/></iq>`)
	r := c.Expect(servertest.Name("iq", "id", "t1"))
	if r.Attr("type") != "result" {
		t.Fatalf("reply = %s, want a result", r)
	}
	tm := r.Child(NS, "time")
	if tm == nil {
		t.Fatalf("reply %s has no <time/>", r)
	}
	if _, err := gotime.Parse(gotime.RFC3339, tm.ChildText(NS, "utc")); err != nil {
		t.Errorf("utc: %v", err)
	}

	// To an account, the server does not answer for it.
	c.SendXML(`<iq type='get' id='t2' to='bob@localhost'><time xmlns='urn:xmpp:time'/></iq>`)
	r = c.Expect(servertest.Name("iq", "id", "t2"))
	if e := stanza.ParseError(r); e == nil || e.Condition != stanza.ServiceUnavailable {
		t.Errorf("reply = %s, want service-unavailable", r)
	}
}
