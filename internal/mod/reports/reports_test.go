package reports

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/mod/blocking"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// remote stands in for federation: it answers service discovery for
// evil.example with an abuse address and records what is sent there.
type remote struct {
	mu   sync.Mutex
	sent []*xml.Element
	got  chan struct{} // one value per message sent there
}

func newRemote() *remote { return &remote{got: make(chan struct{}, 100)} }

func (r *remote) feature() server.Feature {
	return server.Feature{Name: "fakes2s", Doc: "test", Setup: func(s *server.Setup, _ any) error {
		srv := s.Server()
		s.Hook(server.DeliverRemote, server.PrioFeature, func(ctx context.Context, st *server.Stanza) server.Result {
			if st.To.Domain() != "evil.example" {
				return server.Next
			}
			if st.Kind == server.KindIQ && st.To.IsDomain() {
				form := xml.New("jabber:x:data", "x").SetAttr("type", "result")
				form.Append(xml.New("jabber:x:data", "field").SetAttr("var", "FORM_TYPE").SetAttr("type", "hidden").
					AppendText("jabber:x:data", "value", "http://jabber.org/network/serverinfo"))
				form.Append(xml.New("jabber:x:data", "field").SetAttr("var", "abuse-addresses").
					AppendText("jabber:x:data", "value", "mailto:abuse@evil.example").
					AppendText("jabber:x:data", "value", "xmpp:abuse@evil.example"))
				q := xml.New("http://jabber.org/protocol/disco#info", "query").Append(form)
				_ = srv.RouteElement(ctx, stanza.Result(st.El, q))
				return server.Done
			}
			r.mu.Lock()
			r.sent = append(r.sent, st.El.Copy())
			r.mu.Unlock()
			r.got <- struct{}{}
			return server.Done
		})
		return nil
	}}
}

func (r *remote) messages() []*xml.Element {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

func newEnv(t *testing.T, extra ...server.Feature) *servertest.Env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	features := append([]server.Feature{roster.Feature, presence.Feature, blocking.Feature, Feature}, extra...)
	return servertest.NewWithOptions(t, server.Options{Store: st, Features: features, Admins: []string{"admin@localhost"}})
}

func admin(t *testing.T, env *servertest.Env, name string, args map[string]string) server.AdminResult {
	t.Helper()
	for _, c := range env.Srv.AdminCommands() {
		if c.Name == name {
			r, err := c.Run(env.Ctx, args)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return r
		}
	}
	t.Fatalf("no admin command %s", name)
	return server.AdminResult{}
}

// TestReportWithBlock: a XEP-0377 report sent with a block reaches the
// queue with its reason, stanza-ids and text, the admin gets a chat
// message, the operator lists, shows and resolves it; with the reporter's
// consent it is forwarded to the offender's server's abuse address,
// without the reporter's address.
func TestReportWithBlock(t *testing.T) {
	t.Parallel()
	fed := newRemote()
	env := newEnv(t, fed.feature())
	env.AddUser("alice@localhost", "pw")
	env.AddUser("admin@localhost", "pw")
	adm := env.Bind("admin@localhost/desk")
	adm.SendXML(`<presence/>`)
	a := env.Bind("alice@localhost/r")
	a.SendXML(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='spammer@evil.example'>` +
		`<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>` +
		`<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='28482-98726-73623'/>` +
		`<text xml:lang='en'>Never came trouble to my house like this.</text><report-origin/></report>` +
		`</item><item jid='quiet@evil.example'/></block></iq>`)
	if r := a.Expect(servertest.Name("iq", "id", "b1")); r.Attr("type") != "result" {
		t.Fatalf("block with report: %s", r)
	}
	note := adm.Expect(func(el *xml.Element) bool { return el.Local == "message" })
	body := note.ChildText(xml.NSClient, "body")
	for _, want := range []string{"Abuse report #1", "alice@localhost", "spammer@evil.example", "spam", "Never came trouble", "28482-98726-73623", "stoa reports show 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("admin notice lacks %q: %s", want, body)
		}
	}
	reps, err := env.Srv.Store().Reports().List(env.Ctx, store.ReportFilter{})
	if err != nil || len(reps) != 1 {
		t.Fatalf("queue: %v, %v; want one report (the second item had none)", reps, err)
	}
	r := reps[0]
	if r.Reporter != "alice@localhost" || r.Offender != "spammer@evil.example" || r.Reason != "spam" || r.Source != "xep-0377" ||
		len(r.StanzaIDs) != 1 || r.StanzaIDs[0].ID != "28482-98726-73623" || !strings.Contains(r.Text, "trouble") {
		t.Errorf("stored report: %+v", r)
	}
	// The block happened too.
	a.SendXML(`<iq type='get' id='g1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if g := a.Expect(servertest.Name("iq", "id", "g1")); !strings.Contains(g.String(), "spammer@evil.example") {
		t.Errorf("block list: %s", g)
	}

	if l := admin(t, env, "reports.list", nil); len(l.Lines) != 1 || !strings.Contains(l.Lines[0], "#1") {
		t.Errorf("reports.list: %+v", l)
	}
	show := admin(t, env, "reports.show", map[string]string{"id": "1"})
	if !strings.Contains(strings.Join(show.Lines, "\n"), "28482-98726-73623") {
		t.Errorf("reports.show: %+v", show)
	}
	admin(t, env, "reports.resolve", map[string]string{"id": "1", "note": "suspended", "by": "admin@localhost"})
	if l := admin(t, env, "reports.list", nil); len(l.Lines) != 0 {
		t.Errorf("open reports after resolving: %+v", l)
	}
	if l := admin(t, env, "reports.list", map[string]string{"state": "resolved"}); len(l.Lines) != 1 {
		t.Errorf("resolved reports: %+v", l)
	}

	// Forwarded (asynchronously) to xmpp:abuse@evil.example.
	select {
	case <-fed.got:
	case <-time.After(30 * time.Second): // a guard only
		t.Fatal("the report was never forwarded")
	}
	fwd := fed.messages()[0]
	if fwd.Attr("to") != "abuse@evil.example" || fwd.Child(nsReporting, "report") == nil ||
		!strings.Contains(fwd.String(), "spammer@evil.example") || strings.Contains(fwd.String(), "alice") {
		t.Errorf("forwarded report: %s", fwd)
	}

	// The early form (slixmpp): urn:xmpp:reporting:0 on the whole block.
	a.SendXML(`<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'><report xmlns='urn:xmpp:reporting:0'>` +
		`<text xmlns='urn:xmpp:reporting:0'>legacy</text><abuse/></report><item jid='troll@evil.example'/></block></iq>`)
	a.Expect(servertest.Name("iq", "id", "b2"))
	reps, _ = env.Srv.Store().Reports().List(env.Ctx, store.ReportFilter{Offender: "troll@evil.example"})
	if len(reps) != 1 || reps[0].Reason != "abuse" || reps[0].Text != "legacy" {
		t.Errorf("legacy report: %+v", reps)
	}
}

// TestReportsService: other features file reports through the service
// they find; reports without consent are not forwarded; a reporter is
// limited per hour.
func TestReportsService(t *testing.T) {
	t.Parallel()
	fed := newRemote()
	env := newEnv(t, fed.feature())
	filer, ok := server.Find[interface {
		FileReport(context.Context, *server.AbuseReport) (int64, error)
	}](env.Srv)
	if !ok {
		t.Fatal("the reports service is not provided")
	}
	ev := xml.New(xml.NSClient, "message").SetAttr("from", "bot@evil.example").AppendText(xml.NSClient, "body", "buy now")
	id, err := filer.FileReport(env.Ctx, &server.AbuseReport{
		Reporter: jid.MustParse("localhost"), Offender: jid.MustParse("bot@evil.example"),
		Reason: "spam", Text: "rule honeypot", Evidence: ev, Source: "firewall honeypot.rules:3",
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := env.Srv.Store().Reports().Get(env.Ctx, id)
	if err != nil || !strings.Contains(string(r.Evidence), "buy now") || r.Reporter != "localhost" {
		t.Fatalf("report %d: %+v, %v", id, r, err)
	}
	for i := range 30 {
		_, err = filer.FileReport(env.Ctx, &server.AbuseReport{Reporter: jid.MustParse("alice@localhost"), Offender: jid.MustParse("x@evil.example"), Reason: "abuse"})
		if err != nil {
			if i != 20 {
				t.Errorf("report %d refused: %v; want the 21st", i+1, err)
			}
			break
		}
	}
	if err == nil {
		t.Error("no per-reporter limit")
	}
	if n := len(fed.messages()); n != 0 {
		t.Errorf("%d reports forwarded without the reporter's consent", n)
	}
}
