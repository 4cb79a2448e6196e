package firewall

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// fakeDeps records what the sanction and report actions do.
type fakeDeps struct {
	mu      sync.Mutex
	calls   []string
	reports []*server.AbuseReport
	states  map[string]string
}

func (d *fakeDeps) Restrict(_ context.Context, j jid.JID, reason, by string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, fmt.Sprintf("restrict %s %q %s", j, reason, by))
	return nil
}

func (d *fakeDeps) Suspend(_ context.Context, j jid.JID, reason, by string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, fmt.Sprintf("suspend %s %q %s", j, reason, by))
	return nil
}

func (d *fakeDeps) State(_ context.Context, j jid.JID) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.states[j.String()], nil
}

func (d *fakeDeps) FileReport(_ context.Context, r *server.AbuseReport) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reports = append(d.reports, r)
	return int64(len(d.reports)), nil
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	*servertest.Env
	t      *testing.T
	dir    string
	deps   *fakeDeps
	log    *syncBuffer
	st     store.Store
	remote *remoteSink
	fw     *feature
	now    time.Time
	alice  *servertest.Client
	bob    *servertest.Client
	admin  *servertest.Client
}

// remoteSink captures stanzas routed to other servers.
type remoteSink struct {
	mu  sync.Mutex
	got []*xml.Element
}

func (r *remoteSink) take() []*xml.Element {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

// newEnv starts a server whose firewall runs rules (written to
// rules.conf) with extra files (lists) written beside it. Accounts alice,
// bob and admin exist and each has a session (resource r).
func newEnv(t *testing.T, rules string, files map[string]string, cfgMod ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), deps: &fakeDeps{states: map[string]string{}}, log: &syncBuffer{}, remote: &remoteSink{}}
	e.now = time.Now()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(e.dir, "rules.conf")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(e.dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	cfg := Config{Files: []string{path}, RateKeys: 100}
	for _, m := range cfgMod {
		m(&cfg)
	}
	fw := server.Feature{Name: "firewall", Defaults: cfg, Setup: func(s *server.Setup, c any) error {
		return setupWith(s, c, options{deps: func() Deps { return Deps{Sanctions: e.deps, Reports: e.deps} }, now: func() time.Time { return e.now },
			created: func(f *feature) { e.fw = f }})
	}}
	sink := server.Feature{Name: "sink", Setup: func(s *server.Setup, _ any) error {
		s.Hook(server.DeliverRemote, server.PrioFallback, func(_ context.Context, st *server.Stanza) server.Result {
			e.remote.mu.Lock()
			e.remote.got = append(e.remote.got, st.El.Copy())
			e.remote.mu.Unlock()
			return server.Done
		})
		return nil
	}}
	e.Env = servertest.NewWithOptions(t, server.Options{
		Admins: []string{"admin@localhost"}, Store: st, Features: []server.Feature{fw, sink},
		Logger: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	for _, u := range []string{"alice", "bob", "admin"} {
		// Straight into the store: no password hashing, which is slow under -race.
		if err := st.Accounts().Create(context.Background(), u+"@localhost", store.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	e.alice, e.bob, e.admin = e.Bind("alice@localhost/r"), e.Bind("bob@localhost/r"), e.Bind("admin@localhost/r")
	return e
}

// outcome is what became of a stanza.
type outcome string

const (
	delivered outcome = "delivered"
	dropped   outcome = "dropped"
)

func bounced(c stanza.Condition) outcome { return outcome("bounced " + string(c)) }

// send sends a message from a local client to bob and says what became of it.
func (e *env) send(from *servertest.Client, attrs, inner string) outcome {
	e.t.Helper()
	id := server.NewSessionID()
	from.SendXML(fmt.Sprintf(`<message to='bob@localhost/r' id='%s' %s>%s</message>`, id, attrs, inner))
	return e.result(from, id)
}

func (e *env) result(from *servertest.Client, id string) outcome {
	e.t.Helper()
	for _, el := range e.bob.Received() {
		if el.Attr("id") == id && el.Attr("type") != "error" {
			return delivered
		}
	}
	if from != nil {
		for _, el := range from.Received() {
			if el.Attr("id") == id && el.Attr("type") == "error" {
				return bounced(stanza.ParseError(el).Condition)
			}
		}
	}
	for _, el := range e.remote.take() {
		if el.Attr("id") == id && el.Attr("type") == "error" {
			return bounced(stanza.ParseError(el).Condition)
		}
	}
	return dropped
}

// sendRemote passes a stanza from another server to bob, as s2s would.
func (e *env) sendRemote(from, ip, inner string) outcome {
	e.t.Helper()
	id := server.NewSessionID()
	el := servertest.Parse(e.t, fmt.Sprintf(`<message from='%s' to='bob@localhost/r' id='%s' type='chat'>%s</message>`, from, id, inner))
	st, err := server.NewStanza(el)
	if err != nil {
		e.t.Fatal(err)
	}
	var peer netip.AddrPort
	if ip != "" {
		peer = netip.AddrPortFrom(netip.MustParseAddr(ip), 5269)
	}
	e.Srv.InboundRemote(e.Ctx, st, peer)
	return e.result(nil, id)
}

func (e *env) write(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

const body = `<body>hello</body>`

func TestConditions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rules string
		files map[string]string
		// send runs the stanza(s) and returns outcomes to compare with want.
		send func(e *env) []outcome
		want []outcome
	}{
		{"kind", "rule r on local\n if kind presence iq\n then drop\nrule m on local\n if kind message\n then bounce",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body)} }, []outcome{bounced(stanza.PolicyViolation)}},
		{"type", "rule r on local\n if type headline\n then drop",
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "type='headline'", body), e.send(e.alice, "type='chat'", body), e.send(e.alice, "", body)}
			}, []outcome{dropped, delivered, delivered}},
		{"type normal is the default", "rule r on local\n if type normal\n then drop",
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "", body), e.send(e.alice, "type='chat'", body)}
			},
			[]outcome{dropped, delivered}},
		{"from pattern", "rule r on deliver\n if from ali*@localhost\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body), e.send(e.admin, "", body)} },
			[]outcome{dropped, delivered}},
		{"from full JID", "rule r on deliver\n if from alice@localhost/r\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body), e.send(e.admin, "", body)} },
			[]outcome{dropped, delivered}},
		{"to", "rule r on local\n if to bob@localhost\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body)} }, []outcome{dropped}},
		{"not to", "rule r on local\n if not to bob@localhost\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body)} }, []outcome{delivered}},
		{"to-domain", "rule r on local\n if to-domain *.example localhost\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body)} }, []outcome{dropped}},
		{"from-domain in a list file", "list spam file spam.txt\nrule r on remote\n if from-domain in spam\n then bounce forbidden \"Blocked.\"",
			map[string]string{"spam.txt": "# spam servers\nspam.example\n*.spam.example  # and subdomains\n"},
			func(e *env) []outcome {
				return []outcome{e.sendRemote("m@spam.example", "", body), e.sendRemote("m@a.spam.example", "", body), e.sendRemote("m@good.example", "", body)}
			}, []outcome{bounced(stanza.Forbidden), bounced(stanza.Forbidden), delivered}},
		{"from in an inline list", "list vips alice@localhost admin@localhost\nrule r on deliver\n if from in vips\n then pass\nrule d on deliver\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body)} }, []outcome{delivered}},
		{"from-local and to-local", "rule r on deliver\n if not from-local\n if to-local\n then drop",
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "", body), e.sendRemote("m@remote.example", "", body)}
			}, []outcome{delivered, dropped}},
		{"payload namespace", "rule r on local\n if payload jabber:x:oob\n then drop",
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "", `<x xmlns='jabber:x:oob'><url>http://x</url></x>`), e.send(e.alice, "", body)}
			}, []outcome{dropped, delivered}},
		{"payload element", "rule r on local\n if payload {http://jabber.org/protocol/xhtml-im}html\n then drop",
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "", `<html xmlns='http://jabber.org/protocol/xhtml-im'/>`), e.send(e.alice, "", `<foo xmlns='http://jabber.org/protocol/xhtml-im'/>`)}
			}, []outcome{dropped, delivered}},
		{"body regexp", `rule r on local
 if body "(?i)buy .* now"
 then drop`,
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "", `<body>BUY pills NOW</body>`), e.send(e.alice, "", body), e.send(e.alice, "", "")}
			}, []outcome{dropped, delivered, delivered}},
		{"sender-age new", "rule r on local\n if sender-age < 1d\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body)} }, []outcome{dropped}},
		{"sender-age old", "rule r on local\n if sender-age < 1d\n then drop",
			nil, func(e *env) []outcome { e.now = e.now.Add(48 * time.Hour); return []outcome{e.send(e.alice, "", body)} }, []outcome{delivered}},
		{"sender-age of a remote sender never matches", "rule r on remote\n if sender-age >= 0s\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.sendRemote("m@remote.example", "", body)} }, []outcome{delivered}},
		{"sender-state", "rule r on local\n if sender-state restricted\n then drop",
			nil, func(e *env) []outcome {
				e.deps.states["alice@localhost"] = "restricted"
				return []outcome{e.send(e.alice, "", body), e.send(e.admin, "", body)}
			}, []outcome{dropped, delivered}},
		{"in-roster", "rule r on deliver\n if not type error\n if not in-roster\n then bounce service-unavailable",
			nil, func(e *env) []outcome {
				if _, err := e.st.Roster().Put(e.Ctx, "bob@localhost", store.RosterItem{JID: "alice@localhost", Subscription: store.SubBoth}); err != nil {
					e.t.Fatal(err)
				}
				return []outcome{e.send(e.alice, "", body), e.send(e.admin, "", body)}
			}, []outcome{delivered, bounced(stanza.ServiceUnavailable)}},
		{"in-roster with subscription", "rule r on deliver\n if in-roster none to\n then drop",
			nil, func(e *env) []outcome {
				if _, err := e.st.Roster().Put(e.Ctx, "bob@localhost", store.RosterItem{JID: "alice@localhost", Subscription: store.SubTo}); err != nil {
					e.t.Fatal(err)
				}
				if _, err := e.st.Roster().Put(e.Ctx, "bob@localhost", store.RosterItem{JID: "admin@localhost", Subscription: store.SubBoth}); err != nil {
					e.t.Fatal(err)
				}
				return []outcome{e.send(e.alice, "", body), e.send(e.admin, "", body)}
			}, []outcome{dropped, delivered}},
		{"ip of a local client", "rule r on local\n if ip 127.0.0.0/8\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body)} }, []outcome{dropped}},
		{"ip list of a remote server", "list bad cidr.txt\nlist badnets file cidr.txt\nrule r on remote\n if ip in badnets\n then drop",
			map[string]string{"cidr.txt": "198.51.100.0/24\n2001:db8::/32\n203.0.113.9\n"},
			func(e *env) []outcome {
				return []outcome{
					e.sendRemote("a@r.example", "198.51.100.7", body), e.sendRemote("a@r.example", "2001:db8::1", body),
					e.sendRemote("a@r.example", "203.0.113.9", body), e.sendRemote("a@r.example", "192.0.2.1", body),
					e.sendRemote("a@r.example", "", body),
				}
			}, []outcome{dropped, dropped, dropped, delivered, delivered}},
		{"rate per sender", "rule r on local\n if kind message\n if rate > 2/minute\n then bounce resource-constraint \"Slow down.\"",
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "", body), e.send(e.alice, "", body), e.send(e.alice, "", body), e.send(e.admin, "", body)}
			}, []outcome{delivered, delivered, bounced(stanza.ResourceConstraint), delivered}},
		{"rate refills", "rule r on local\n if rate > 1/minute\n then drop",
			nil, func(e *env) []outcome {
				a, b := e.send(e.alice, "", body), e.send(e.alice, "", body)
				e.now = e.now.Add(time.Minute)
				return []outcome{a, b, e.send(e.alice, "", body)}
			}, []outcome{delivered, dropped, delivered}},
		{"rate per recipient counts every sender", "rule r on local\n if rate > 1/hour per recipient\n then drop",
			nil, func(e *env) []outcome { return []outcome{e.send(e.alice, "", body), e.send(e.admin, "", body)} },
			[]outcome{delivered, dropped}},
		{"rate burst", "rule r on local\n if rate > 1/hour burst 3\n then drop",
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "", body), e.send(e.alice, "", body), e.send(e.alice, "", body), e.send(e.alice, "", body)}
			}, []outcome{delivered, delivered, delivered, dropped}},
		{"conditions are ANDed", "rule r on local\n if kind message\n if type chat\n if body \"spam\"\n then drop",
			nil, func(e *env) []outcome {
				return []outcome{e.send(e.alice, "type='chat'", "<body>spam</body>"), e.send(e.alice, "", "<body>spam</body>"), e.send(e.alice, "type='chat'", body)}
			}, []outcome{dropped, delivered, delivered}},
		{"the server's own stanzas are not filtered", "rule r on deliver\n then drop",
			nil, func(e *env) []outcome {
				id := server.NewSessionID()
				el := xml.New(xml.NSClient, "message").SetAttr("from", "localhost").SetAttr("to", "bob@localhost/r").SetAttr("id", id)
				if err := e.Srv.RouteElement(e.Ctx, el); err != nil {
					e.t.Fatal(err)
				}
				return []outcome{e.result(nil, id)}
			}, []outcome{delivered}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.rules, tc.files)
			got := tc.send(e)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("outcomes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	t.Run("pass ends the chain", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "rule friends on local\n if from alice@localhost\n then pass\nrule rest on local\n then drop", nil)
		if got := e.send(e.alice, "", body); got != delivered {
			t.Errorf("alice: %s", got)
		}
		if got := e.send(e.admin, "", body); got != dropped {
			t.Errorf("admin: %s", got)
		}
	})
	t.Run("bounce with condition and text", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "rule r on local\n then bounce not-acceptable \"No, thanks.\"", nil)
		id := server.NewSessionID()
		e.alice.SendXML(`<message to='bob@localhost/r' id='` + id + `'><body>x</body></message>`)
		r := e.alice.Expect(servertest.Name("message", "id", id, "type", "error"))
		if se := stanza.ParseError(r); se.Condition != stanza.NotAcceptable || se.Text != "No, thanks." {
			t.Errorf("bounce = %+v", se)
		}
	})
	t.Run("bounce does not answer errors", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "rule r on local\n then bounce", nil)
		if got := e.send(e.alice, "type='error'", body); got != dropped {
			t.Errorf("error stanza: %s", got)
		}
	})
	t.Run("log", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "rule watch on local\n if body \"hello\"\n then log \"greeting seen\"", nil)
		if got := e.send(e.alice, "", body); got != delivered {
			t.Errorf("log is not terminal: %s", got)
		}
		out := e.log.String()
		for _, want := range []string{`msg="firewall rule matched"`, "policy=firewall", "rule=watch", "at=" + filepath.Join(e.dir, "rules.conf") + ":1",
			"chain=local", "actions=log", "from=alice@localhost/r", "to=bob@localhost/r", `text="greeting seen"`, "ip=127.0.0.1"} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
		if n := strings.Count(out, "firewall rule matched"); n != 1 {
			t.Errorf("%d log lines for one match, want 1", n)
		}
	})
	t.Run("restrict and suspend", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "rule honeypot on deliver\n if to bob@localhost\n then restrict\n then suspend \"Spam to the honeypot.\"\n then drop", nil)
		if got := e.send(e.alice, "", body); got != dropped {
			t.Errorf("outcome %s", got)
		}
		want := []string{
			`restrict alice@localhost "Your account was restricted by an automatic rule; contact the server's administrators." firewall:honeypot`,
			`suspend alice@localhost "Spam to the honeypot." firewall:honeypot`,
		}
		if fmt.Sprint(e.deps.calls) != fmt.Sprint(want) {
			t.Errorf("calls = %q, want %q", e.deps.calls, want)
		}
		// A remote sender cannot be suspended: the rule still drops, and the log says why.
		if got := e.sendRemote("m@remote.example", "", body); got != dropped {
			t.Errorf("remote: %s", got)
		}
		if !strings.Contains(e.log.String(), "is not a local account") {
			t.Errorf("log does not explain the skipped sanction:\n%s", e.log.String())
		}
	})
	t.Run("report", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "rule links on remote\n if body \"http\"\n then report abuse \"Link spam.\"", nil)
		if got := e.sendRemote("m@remote.example", "", "<body>http://spam</body>"); got != delivered {
			t.Errorf("report is not terminal: %s", got)
		}
		if len(e.deps.reports) != 1 {
			t.Fatalf("reports = %v", e.deps.reports)
		}
		r := e.deps.reports[0]
		if r.Offender.String() != "m@remote.example" || r.Reporter.String() != "localhost" || r.Reason != "abuse" || r.Text != "Link spam." ||
			!strings.HasPrefix(r.Source, "firewall links (") || r.Evidence.ChildText(xml.NSClient, "body") != "http://spam" {
			t.Errorf("report = %+v", r)
		}
	})
	t.Run("notify-admins", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "rule watch on local\n if to bob@localhost\n then notify-admins \"Someone wrote to Bob.\"", nil)
		e.admin.Sess.SetPresence(xml.New(xml.NSClient, "presence"), 0) // online: messages to the bare JID reach it
		e.send(e.alice, "", body)
		m := e.admin.Expect(servertest.Name("message", "from", "localhost"))
		b := m.ChildText(xml.NSClient, "body")
		for _, want := range []string{"watch", "alice@localhost/r", "Someone wrote to Bob.", "Body: hello"} {
			if !strings.Contains(b, want) {
				t.Errorf("notification lacks %q: %s", want, b)
			}
		}
		// After a burst of five, at most one a minute per rule.
		for range 10 {
			e.send(e.alice, "", body)
		}
		n := 0
		for _, el := range e.admin.Received() {
			if el.Local == "message" {
				n++
			}
		}
		if n != 4 {
			t.Errorf("%d more notifications, want 4", n)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "rule spam on local\n if body \"spam\"\n then log\n then drop", nil)
		e.send(e.alice, "", "<body>spam</body>")
		e.send(e.alice, "", "<body>spam</body>")
		mfs, err := e.Srv.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		for k, v := range map[string]float64{
			"stoa_firewall_decisions_total{action=drop,chain=local,rule=spam}": 2,
			"stoa_firewall_decisions_total{action=log,chain=local,rule=spam}":  2,
			"stoa_policy_denied_total{policy=firewall}":                        2,
			"stoa_firewall_rules{}":                                            1,
			"stoa_firewall_loads_total{result=ok}":                             1,
		} {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
	})
}

func TestChains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `rule l on local
 if body "local"
 then drop
rule r on remote
 if body "remote"
 then drop
rule d on deliver
 if body "deliver"
 then drop`, nil)
	tests := []struct {
		name string
		got  outcome
		want outcome
	}{
		{"local chain sees local clients", e.send(e.alice, "", "<body>local</body>"), dropped},
		{"local chain does not see remote servers", e.sendRemote("m@r.example", "", "<body>local</body>"), delivered},
		{"remote chain sees remote servers", e.sendRemote("m@r.example", "", "<body>remote</body>"), dropped},
		{"remote chain does not see local clients", e.send(e.alice, "", "<body>remote</body>"), delivered},
		{"deliver chain sees local clients", e.send(e.alice, "", "<body>deliver</body>"), dropped},
		{"deliver chain sees remote servers", e.sendRemote("m@r.example", "", "<body>deliver</body>"), dropped},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	// The local chain runs before routing: stanzas to other servers too.
	e2 := newEnv(t, "rule r on local\n if to-domain elsewhere.example\n then drop", nil)
	id := server.NewSessionID()
	e2.alice.SendXML(`<message to='x@elsewhere.example' id='` + id + `'><body>x</body></message>`)
	for _, el := range e2.remote.take() {
		if el.Attr("id") == id {
			t.Errorf("the local chain let a stanza to another server through: %s", el)
		}
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "list words file words.txt\nrule r on local\n if body \"spam\"\n then drop", map[string]string{"words.txt": "x\n"})
	f := e.feature()
	if got := e.send(e.alice, "", "<body>spam</body>"); got != dropped {
		t.Fatalf("before reload: %s", got)
	}
	if f.changed() {
		t.Error("changed() without a change")
	}

	// A broken file is reported with file and line, and the old rules stay.
	e.write("rules.conf", "rule r on local\n if bodyy \"ham\"\n then drop\n")
	if !f.changed() {
		t.Fatal("changed() missed an edit")
	}
	err := f.load("test")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(e.dir, "rules.conf")+":2: unknown condition \"bodyy\"") {
		t.Fatalf("load error = %v", err)
	}
	if got := e.send(e.alice, "", "<body>spam</body>"); got != dropped {
		t.Errorf("a broken file replaced the running rules: %s", got)
	}
	if f.changed() {
		t.Error("a failed load is retried without a change")
	}
	if !strings.Contains(e.log.String(), "rules.conf:2") {
		t.Error("the error was not logged with file and line")
	}

	// Fixed: SIGHUP (server.Reload) puts the new rules in service.
	e.write("rules.conf", "rule r on local\n if body \"ham\"\n then drop\n")
	e.Srv.Reload(e.Ctx)
	if got := e.send(e.alice, "", "<body>spam</body>"); got != delivered {
		t.Errorf("after reload, spam: %s", got)
	}
	if got := e.send(e.alice, "", "<body>ham</body>"); got != dropped {
		t.Errorf("after reload, ham: %s", got)
	}

	// A list file's change is noticed too.
	e.write("rules.conf", "list words file words.txt\nrule r on local\n if from-domain in words\n then drop\n")
	if err := f.load("test"); err != nil {
		t.Fatal(err)
	}
	e.write("words.txt", "localhost\n")
	if !f.changed() {
		t.Fatal("changed() missed a list file edit")
	}
	if err := f.load("test"); err != nil {
		t.Fatal(err)
	}
	if got := e.send(e.alice, "", body); got != dropped {
		t.Errorf("after list change: %s", got)
	}

	// A list file that does not exist yet: refused; creating it is a change.
	e.write("rules.conf", "list later file later.txt\nrule r on local\n if from-domain in later\n then drop\n")
	if err := f.load("test"); err == nil || !strings.Contains(err.Error(), "later.txt") {
		t.Fatalf("load with a missing list: %v", err)
	}
	if f.changed() {
		t.Error("changed() without a change after a failed load")
	}
	e.write("later.txt", "example.net\n")
	if !f.changed() {
		t.Fatal("changed() missed the creation of the missing list file")
	}
	if err := f.load("test"); err != nil {
		t.Fatal(err)
	}
}

func TestReloadKeepsRates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "rule r on local\n if rate > 1/hour\n then drop", nil)
	f := e.feature()
	e.send(e.alice, "", body)
	if err := f.load("test"); err != nil {
		t.Fatal(err)
	}
	if got := e.send(e.alice, "", body); got != dropped {
		t.Errorf("a reload forgot the rate's counts: %s", got)
	}
}

func TestPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "rule r on local\n if body \"spam\"\n then drop", nil, func(c *Config) { c.PollInterval = 0 })
	f := e.feature()
	f.cfg.PollInterval = 1 // 1ns: the goroutine checks as often as it can
	ctx, cancel := context.WithCancel(context.Background())
	wait := f.poll(ctx)
	e.write("rules.conf", "rule r on local\n if body \"ham\"\n then drop\n# changed\n")
	deadline := time.Now().Add(10 * time.Second) // a guard, not a timing assertion
	for !strings.Contains(e.log.String(), `trigger="file change"`) {
		if time.Now().After(deadline) {
			t.Fatal("the poller did not reload the changed file")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wait()
	if got := e.send(e.alice, "", "<body>ham</body>"); got != dropped {
		t.Errorf("after the poller's reload: %s", got)
	}
}

// feature returns the running feature.
func (e *env) feature() *feature { return e.fw }

// example reads a shipped example with example.org replaced by localhost.
func example(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../../docs/firewall-examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "example.org", "localhost")
}

func TestExampleHoneypot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, strings.ReplaceAll(example(t, "honeypot.rules"), "honeypot@localhost", "bob@localhost"), nil)
	e.admin.Sess.SetPresence(xml.New(xml.NSClient, "presence"), 0)
	if got := e.send(e.alice, "", body); got != dropped {
		t.Errorf("message to the honeypot: %s", got)
	}
	if len(e.deps.reports) != 1 || len(e.deps.calls) != 1 || !strings.HasPrefix(e.deps.calls[0], "suspend alice@localhost") {
		t.Errorf("reports %v, calls %v", e.deps.reports, e.deps.calls)
	}
	e.admin.Expect(servertest.Name("message", "from", "localhost"))
}

func TestExampleNewAccountLinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, example(t, "new-account-links.rules"), nil)
	if _, err := e.st.Roster().Put(e.Ctx, "bob@localhost", store.RosterItem{JID: "admin@localhost", Subscription: store.SubBoth}); err != nil {
		t.Fatal(err)
	}
	link := "<body>see https://spam.example/x</body>"
	var got []outcome
	for range 4 {
		got = append(got, e.send(e.alice, "type='chat'", link))
	}
	want := []outcome{delivered, delivered, delivered, bounced(stanza.PolicyViolation)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("links from a new account to a stranger: %v, want %v", got, want)
	}
	if got := e.send(e.alice, "type='chat'", body); got != delivered {
		t.Errorf("a message without a link: %s", got)
	}
	for range 5 {
		if got := e.send(e.admin, "type='chat'", link); got != delivered {
			t.Errorf("links to a contact: %s", got)
		}
	}
	// The next day, alice is no longer new.
	e.now = e.now.Add(3 * 24 * time.Hour)
	if got := e.send(e.alice, "type='chat'", link); got != delivered {
		t.Errorf("links from an older account: %s", got)
	}
	// A flood: restricted after 20 an hour.
	e2 := newEnv(t, example(t, "new-account-links.rules"), nil)
	for range 21 {
		e2.send(e2.alice, "type='chat'", link)
	}
	if len(e2.deps.calls) != 1 || !strings.HasPrefix(e2.deps.calls[0], "restrict alice@localhost") {
		t.Errorf("calls after a flood: %v", e2.deps.calls)
	}
}

func TestExampleSpamDomains(t *testing.T) {
	t.Parallel()
	dir := "../../../docs/firewall-examples/"
	list, err := os.ReadFile(dir + "spam-domains.txt")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, example(t, "spam-domains.rules"), map[string]string{"spam-domains.txt": string(list)})
	if got := e.sendRemote("bot@x.spam.example", "", body); got != bounced(stanza.PolicyViolation) {
		t.Errorf("from a spam domain: %s", got)
	}
	if got := e.sendRemote("friend@good.example", "", body); got != delivered {
		t.Errorf("from another domain: %s", got)
	}
	id := server.NewSessionID()
	e.alice.SendXML(`<message to='bot@spam.example' id='` + id + `'><body>stop</body></message>`)
	if r := e.alice.Expect(servertest.Name("message", "id", id)); stanza.ParseError(r).Condition != stanza.PolicyViolation {
		t.Errorf("to a spam domain: %s", r)
	}
}
