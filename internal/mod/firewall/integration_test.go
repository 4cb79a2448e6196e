package firewall

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"stoa.im/stoa/internal/mod/accountstate"
	"stoa.im/stoa/internal/mod/reports"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
)

// TestWithAccountStateAndReports runs suspend, restrict, sender-state and
// report against the real account state and reports features, found
// through server.Find as in production.
func TestWithAccountStateAndReports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.conf")
	if err := os.WriteFile(rules, []byte(`
rule restricted_no_links on local
    if sender-state restricted
    if body "http"
    then drop
rule honeypot on deliver
    if to bob@localhost
    then report spam "Wrote to the honeypot."
    then suspend "Spam to the honeypot."
    then drop
rule linker on local
    if body "http"
    then restrict "Links."
`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := servertest.NewWithOptions(t, server.Options{
		Admins: []string{"admin@localhost"}, Store: st,
		Features: []server.Feature{accountstate.Feature, reports.Feature, Feature},
		Config: func(name string) any {
			if name == "firewall" {
				return Config{Files: []string{rules}, RateKeys: 10}
			}
			return nil
		},
	})
	for _, u := range []string{"alice", "carol", "bob"} {
		e.AddUser(u+"@localhost", "pw")
	}
	state := func(who string) store.AccountStatus {
		s, err := e.Srv.AccountState(e.Ctx, jid.MustParse(who))
		if err != nil {
			t.Fatal(err)
		}
		return s.Status
	}

	carol := e.Bind("carol@localhost/r")
	carol.SendXML(`<message to='dave@localhost'><body>see http://x</body></message>`)
	if got := state("carol@localhost"); got != store.StatusRestricted {
		t.Fatalf("carol after a link: %s", got)
	}
	// Now restricted: the first rule drops her links (sender-state).
	carol.SendXML(`<message to='alice@localhost/r' id='l2'><body>http://y</body></message>`)

	alice := e.Bind("alice@localhost/r")
	alice.SendXML(`<message to='bob@localhost' id='h1'><body>buy</body></message>`)
	if got := state("alice@localhost"); got != store.StatusSuspended {
		t.Errorf("alice after writing to the honeypot: %s", got)
	}
	if se, closed := alice.Closed(); !closed {
		t.Error("the suspended account's session is still open")
	} else {
		t.Logf("alice's stream ended with %v", se)
	}
	rs, err := st.Reports().List(e.Ctx, store.ReportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Offender != "alice@localhost" || rs[0].Reason != "spam" || rs[0].Reporter != "localhost" || len(rs[0].Evidence) == 0 {
		t.Errorf("reports = %+v", rs)
	}
	for _, el := range alice.Received() {
		if el.Attr("id") == "l2" {
			t.Errorf("a restricted account's link got through: %s", el)
		}
	}
}
