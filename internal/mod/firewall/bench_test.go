package firewall

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/jid"
)

// benchRules writes 100 rules of the kinds a public server uses: domain
// and address blocks, a 1,000-entry domain list, body patterns, payload
// and IP checks, account-age and rate rules. None matches the benchmark's
// stanza, so every rule is evaluated: the worst case.
func benchRules(dir string) (string, error) {
	var b strings.Builder
	var list strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&list, "spam%d.example\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "spam.txt"), []byte(list.String()), 0o600); err != nil {
		return "", err
	}
	b.WriteString("list spam file spam.txt\n")
	n := 0
	rule := func(chain string, lines ...string) {
		fmt.Fprintf(&b, "rule r%d on %s\n", n, chain)
		for _, l := range lines {
			b.WriteString("    " + l + "\n")
		}
		n++
	}
	for i := range 35 {
		rule("local deliver", fmt.Sprintf("if from-domain bad%d.example *.bad%d.example", i, i), "then drop")
	}
	for i := range 15 {
		rule("local", "if kind message", fmt.Sprintf(`if body "(?i)buy cheap pills %d"`, i), "then drop")
	}
	for i := range 10 {
		rule("deliver", fmt.Sprintf("if to honeypot%d@localhost", i), "then report spam", "then notify-admins", "then drop")
	}
	for i := range 10 {
		rule("local", fmt.Sprintf("if ip 10.%d.0.0/16", i), "then drop")
	}
	for i := range 10 {
		rule("local", fmt.Sprintf("if payload urn:example:spam:%d", i), "then drop")
	}
	for range 5 {
		rule("local deliver", "if kind message", "if type chat normal", "if from-domain in spam", "then bounce policy-violation \"Blocked.\"")
	}
	for i := range 10 {
		rule("local", "if kind message", fmt.Sprintf(`if body "https?://link%d\\."`, i), "if sender-age < 1d", "then drop")
	}
	for range 5 {
		rule("local", "if kind presence", "if type subscribe", "if rate > 10/minute", "then drop")
	}
	path := filepath.Join(dir, "bench.rules")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

func BenchmarkFirewall100Rules(b *testing.B) {
	dir := b.TempDir()
	path, err := benchRules(dir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var f *feature
	fw := server.Feature{Name: "firewall", Defaults: Config{Files: []string{path}, RateKeys: 1000}, Setup: func(s *server.Setup, c any) error {
		return setupWith(s, c, options{deps: func() Deps { return Deps{} }, created: func(x *feature) { f = x }})
	}}
	env := servertest.NewWithOptions(b, server.Options{Store: st, Features: []server.Feature{fw}, Logger: slog.New(slog.DiscardHandler)})
	env.AddUser("alice@localhost", "pw")
	alice := env.Bind("alice@localhost/r")
	if got := f.rules.Load().rules; got != 100 {
		b.Fatalf("%d rules loaded", got)
	}
	el := servertest.Parse(b, `<message from='alice@localhost/r' to='bob@localhost' type='chat' id='m1'><body>Hello, are you coming to the meeting at https://example.org/meet tomorrow?</body></message>`)
	msg, err := server.NewStanza(el)
	if err != nil {
		b.Fatal(err)
	}
	msg.Origin = alice.Sess
	ip := netip.MustParseAddr("192.0.2.10")
	ctx := context.Background()
	for _, c := range []chain{chainLocal, chainDeliver} {
		if r := f.run(ctx, c, msg, ip); !r.IsNext() {
			b.Fatalf("the benchmark stanza matched a rule on %s", c)
		}
	}
	b.Run("local", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.run(ctx, chainLocal, msg, ip)
		}
	})
	b.Run("deliver", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.run(ctx, chainDeliver, msg, ip)
		}
	})
	// A stanza from a remote server whose domain is in the 1,000-entry list.
	remote, _ := server.NewStanza(servertest.Parse(b, `<message from='bot@spam999.example' to='bob@localhost' type='chat' id='m2'><body>x</body></message>`))
	b.Run("deliver_blocked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.run(ctx, chainDeliver, remote, netip.Addr{})
		}
	})
	_ = jid.JID{}
}
