package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/commands"
	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// In-band registration (XEP-0077) with a XEP-0158 hashcash CAPTCHA, driven
// by slixmpp's XEP-0077 plugin and by mellium (a registration stream
// feature written here on mellium's negotiator and form packages), the
// names refused after deletion through each path, and a flood of sign-ups
// from thousands of connections over many loopback addresses.

const nsRegister = "jabber:iq:register"

// registerConfig is a [register] table for the tests: open, hashcash
// with a small difficulty, throttles wide enough for one test's clients
// that all come from 127.0.0.1.
const registerConfig = `
[register]
mode = "open"

[register.captcha]
kind = "hashcash"
hashcash_bits = 12

[register.throttle]
ip = { max = 100, period = "1h" }
ipv4_24 = { max = 100, period = "1h" }
refused_ip = { max = 100, period = "1h" }
refused_net = { max = 100, period = "1h" }
`

// hashcash solves a XEP-0158 SHA-256 challenge: a string starting with
// prefix whose hash's least significant bits are the label's.
func hashcash(prefix, labelHex string) (string, error) {
	label, err := strconv.ParseUint(labelHex, 16, 64)
	if err != nil || label == 0 {
		return "", fmt.Errorf("hashcash label %q: %v", labelHex, err)
	}
	bits := 64 - countLeadingZeros(label)
	mask := uint64(1)<<bits - 1
	for i := 0; ; i++ {
		s := prefix + strconv.Itoa(i)
		sum := sha256.Sum256([]byte(s))
		if binary.BigEndian.Uint64(sum[24:])&mask == label {
			return s, nil
		}
	}
}

func countLeadingZeros(x uint64) int {
	n := 0
	for i := 63; i >= 0 && x&(1<<i) == 0; i-- {
		n++
	}
	return n
}

// regRefusal is a registration the server refused.
type regRefusal struct {
	Condition, Type, Text string
}

func (r *regRefusal) Error() string {
	return fmt.Sprintf("registration refused: %s/%s %q", r.Type, r.Condition, r.Text)
}

// stanzaErr is an <error/> child as encoding/xml sees it.
type stanzaErr struct {
	Type  string `xml:"type,attr"`
	Conds []struct {
		XMLName xml.Name
	} `xml:",any"`
	Text string `xml:"urn:ietf:params:xml:ns:xmpp-stanzas text"`
}

func (e *stanzaErr) refusal() *regRefusal {
	r := &regRefusal{Type: e.Type, Text: e.Text}
	for _, c := range e.Conds {
		if c.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.XMLName.Local != "text" {
			r.Condition = c.XMLName.Local
		}
	}
	return r
}

// tokens returns the tokens of an XML fragment, without xmlns attributes
// (mellium's writer declares namespaces from the names).
func tokens(s string) xml.TokenReader {
	d := xml.NewDecoder(strings.NewReader(s))
	var toks []xml.TokenReader
	for {
		t, err := d.Token()
		if err != nil {
			break
		}
		if st, ok := t.(xml.StartElement); ok {
			st.Attr = slices.DeleteFunc(slices.Clone(st.Attr), func(a xml.Attr) bool {
				return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
			})
			t = st
		}
		toks = append(toks, xmlstream.Token(xml.CopyToken(t)))
	}
	return xmlstream.MultiReader(toks...)
}

// ibrFeature is XEP-0077 registration as a mellium stream feature: it
// runs before SASL, fills in the server's data form with mellium's form
// package, answers the hashcash challenge, and registers user. mellium
// goes on with the next feature when an optional one fails, so the
// outcome is also stored in *outcome.
func ibrFeature(user, password string, outcome *error) xmpp.StreamFeature {
	fail := func(err error) (xmpp.SessionState, io.ReadWriter, error) {
		*outcome = err
		return 0, nil, err
	}
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: "http://jabber.org/features/iq-register", Local: "register"},
		Necessary:  xmpp.Secure,
		Prohibited: xmpp.Authn,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return false, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			r := s.TokenReader()
			defer r.Close()
			d := xml.NewTokenDecoder(r)
			w := s.TokenWriter()
			defer w.Close()
			send := func(tr xml.TokenReader) error {
				if _, err := xmlstream.Copy(w, tr); err != nil {
					return err
				}
				return w.Flush()
			}
			// The answer to our IQ: an iq start element.
			type reply struct {
				Type  string `xml:"type,attr"`
				Query struct {
					Form form.Data `xml:"jabber:x:data x"`
				} `xml:"jabber:iq:register query"`
				Err *stanzaErr `xml:"error"`
			}
			read := func() (*reply, error) {
				for {
					t, err := d.Token()
					if err != nil {
						return nil, err
					}
					if st, ok := t.(xml.StartElement); ok && st.Name.Local == "iq" {
						var rp reply
						if err := d.DecodeElement(&rp, &st); err != nil {
							return nil, err
						}
						return &rp, nil
					}
				}
			}
			get := stanza.IQ{ID: "reg-get", Type: stanza.GetIQ}
			if err := send(get.Wrap(tokens(`<query xmlns='jabber:iq:register'/>`))); err != nil {
				return fail(err)
			}
			rp, err := read()
			if err != nil {
				return fail(err)
			}
			if rp.Err != nil {
				return fail(rp.Err.refusal())
			}
			f := &rp.Query.Form
			var label string
			f.ForFields(func(fd form.FieldData) {
				if fd.Var == "SHA-256" {
					label = fd.Label
				}
			})
			for _, hidden := range []string{"FORM_TYPE", "challenge", "sid", "from", "answers"} {
				if v, ok := f.Raw(hidden); ok && len(v) > 0 {
					if _, err := f.Set(hidden, v[0]); err != nil {
						return fail(err)
					}
				}
			}
			if label != "" {
				from, _ := f.GetString("from")
				answer, err := hashcash(from, label)
				if err != nil {
					return fail(err)
				}
				if _, err := f.Set("SHA-256", answer); err != nil {
					return fail(err)
				}
			}
			if _, err := f.Set("username", user); err != nil {
				return fail(err)
			}
			if _, err := f.Set("password", password); err != nil {
				return fail(err)
			}
			sub, _ := f.Submit()
			set := stanza.IQ{ID: "reg-set", Type: stanza.SetIQ}
			if err := send(set.Wrap(xmlstream.Wrap(sub, xml.StartElement{Name: xml.Name{Space: nsRegister, Local: "query"}}))); err != nil {
				return fail(err)
			}
			if rp, err = read(); err != nil {
				return fail(err)
			}
			if rp.Err != nil {
				return fail(rp.Err.refusal())
			}
			if rp.Type != "result" {
				return fail(fmt.Errorf("registration answered with type %q", rp.Type))
			}
			return 0, nil, nil
		},
	}
}

// melliumRegister registers user with mellium over STARTTLS, then logs in
// with SCRAM-SHA-256 and binds. A refused registration returns a
// *regRefusal (errors.As).
func melliumRegister(ctx context.Context, t *testing.T, addr, user, password string) (*melliumClient, error) {
	t.Helper()
	origin := jid.MustParse(user + "@" + domain)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	var regErr error
	s, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(tlsConfig()), ibrFeature(user, password, &regErr), xmpp.SASL("", password, sasl.ScramSha256), xmpp.BindResource())
	if regErr != nil {
		conn.Close()
		return nil, regErr
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &melliumClient{name: user, jid: s.LocalAddr(), s: s, conn: conn, in: make(chan inStanza, 4096), served: make(chan struct{})}
	go func() {
		defer close(c.served)
		c.serveErr = s.Serve(xmpp.HandlerFunc(c.handle))
	}()
	t.Cleanup(func() { c.close(t) })
	return c, nil
}

// registerIQ sends a jabber:iq:register IQ set with payload from c and
// returns the refusal, if any.
func registerIQ(ctx context.Context, c *melliumClient, payload string) error {
	resp, err := c.s.SendIQ(ctx, stanza.IQ{Type: stanza.SetIQ}.Wrap(tokens(payload)))
	if err != nil {
		return err
	}
	defer resp.Close()
	var rp struct {
		Type string     `xml:"type,attr"`
		Err  *stanzaErr `xml:"error"`
	}
	if err := xml.NewTokenDecoder(resp).Decode(&rp); err != nil {
		return err
	}
	if rp.Err != nil {
		return rp.Err.refusal()
	}
	if rp.Type != "result" {
		return fmt.Errorf("answer of type %q", rp.Type)
	}
	return nil
}

// wantRefused checks a registration refused with condition and a text
// containing want.
func wantRefused(t *testing.T, what string, err error, condition, want string) {
	t.Helper()
	var r *regRefusal
	if !errors.As(err, &r) {
		t.Errorf("%s: got %v, want a refusal", what, err)
		return
	}
	if r.Condition != condition || !strings.Contains(r.Text, want) {
		t.Errorf("%s: refused with %s %q; want %s and a text containing %q", what, r.Condition, r.Text, condition, want)
		return
	}
	t.Logf("%s: %s: %s", what, r.Condition, r.Text)
}

// TestRegisterSlixmpp: slixmpp's XEP-0077 plugin gets the form, answers
// the hashcash CAPTCHA (XEP-0158), sees taken, reserved and look-alike
// names refused with their texts, registers, logs in, changes its
// password, logs in with the new one and deletes the account; the name is
// then tombstoned.
func TestRegisterSlixmpp(t *testing.T) {
	t.Parallel()
	requirePython(t, "slixmpp", "python3-slixmpp")
	srv := startServer(t, serverOptions{extra: registerConfig})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	srv.addUser(t, "paypal", "paypal password")

	s := startScript(ctx, t, "slix_register.py", map[string]any{
		"user": "slixuser", "domain": domain, "password": "first password", "new_password": "second password",
		"host": "127.0.0.1", "port": portOf(t, srv.starttls), "refused": []string{"paypal", "admin", "раураl", "a b"}, "timeout": 90,
	})
	events := s.wait(ctx, t)
	if len(find(events, "done", nil)) != 1 {
		t.Fatalf("the script did not finish")
	}
	f := find(events, "form", nil)
	if len(f) != 1 || !strings.Contains(fmt.Sprint(f[0]["fields"]), "SHA-256") || !strings.Contains(fmt.Sprint(f[0]["fields"]), "challenge") {
		t.Errorf("form: %v", f)
	}
	if h := find(events, "hashcash", nil); len(h) != 1 || h[0]["bits"] != float64(12) {
		t.Errorf("hashcash: %v", h)
	} else {
		t.Logf("slixmpp solved the 12-bit hashcash in %v tries, %v s", h[0]["tries"], h[0]["seconds"])
	}
	want := map[string][2]string{
		"paypal": {"conflict", `The name "paypal" is taken`},
		"admin":  {"conflict", `The name "admin" is reserved`},
		"раураl": {"conflict", `looks too much like the existing account "paypal"`},
		"a b":    {"not-acceptable", "cannot be an account name"},
	}
	refused := find(events, "refused", nil)
	if len(refused) != len(want) {
		t.Errorf("refusals: %v", refused)
	}
	for _, r := range refused {
		w, ok := want[r.str("user")]
		if !ok || r.str("condition") != w[0] || !strings.Contains(r.str("text"), w[1]) {
			t.Errorf("refusal of %q: %s %q; want %s and %q", r.str("user"), r.str("condition"), r.str("text"), w[0], w[1])
		}
	}
	for _, e := range []string{"registered", "session_start", "password_changed", "login_new_password", "removed"} {
		if len(find(events, e, nil)) != 1 {
			t.Errorf("no %s event", e)
		}
	}
	// The account is gone and its name tombstoned (in-band deletion).
	out, err := srv.stoa(ctx, "", "user", "list")
	if err != nil || strings.Contains(out, "slixuser@") {
		t.Errorf("user list after the in-band deletion: %s %v", out, err)
	}
	out, err = srv.stoa(ctx, "", "register", "tombstones")
	if err != nil || !strings.Contains(out, "slixuser@localhost") || !strings.Contains(out, "via inband") {
		t.Errorf("tombstones: %s %v", out, err)
	}
	if !srv.logHas("account registered", "slixuser@localhost", "method=inband") {
		t.Errorf("the log lacks the registration")
	}
}

// TestRegisterMellium: a Go client (mellium, with a registration stream
// feature) registers with the hashcash CAPTCHA, logs in, changes its
// password, logs in with the new one and deletes its account. Then
// tombstoned names (after in-band deletion, `stoa user del` and the
// XEP-0133 delete-user command), their look-alikes, reserved names and
// look-alikes of accounts are refused, each with its own text; the
// refusals are counted in the metrics.
func TestRegisterMellium(t *testing.T) {
	t.Parallel()
	// No login backoff: the test checks that the old password fails.
	srv := startServer(t, serverOptions{extra: registerConfig + "\n[c2s.login_backoff]\nbase = \"0s\"\n", server: `admins = ["boss@localhost"]`})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	c, err := melliumRegister(ctx, t, srv.starttls, "gouser", "first password")
	if err != nil {
		t.Fatalf("mellium registration: %v", err)
	}
	if c.jid.Bare().String() != "gouser@localhost" {
		t.Errorf("bound %s", c.jid)
	}
	// XEP-0077 §3.3: a short password is refused with its text, a good
	// one changes it.
	err = registerIQ(ctx, c, `<query xmlns='jabber:iq:register'><username>gouser</username><password>short</password></query>`)
	wantRefused(t, "short password", err, "not-acceptable", "too short")
	if err := registerIQ(ctx, c, `<query xmlns='jabber:iq:register'><username>gouser</username><password>second password</password></query>`); err != nil {
		t.Fatalf("password change: %v", err)
	}
	c.close(t)
	if _, err := dialMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "gouser", password: "first password"}); err == nil {
		t.Errorf("the old password still works")
	}
	c2 := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "gouser", password: "second password"})
	// XEP-0077 §3.2: the result, then the stream ends.
	if err := registerIQ(ctx, c2, `<query xmlns='jabber:iq:register'><remove/></query>`); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	select {
	case <-c2.served:
	case <-ctx.Done():
		t.Fatal("the session still runs after the account was deleted")
	}

	// Deletion through the command line and through XEP-0133.
	srv.addUser(t, "cliuser", "cli password")
	if out, err := srv.stoa(ctx, "", "user", "del", "cliuser@localhost"); err != nil || strings.Contains(out, "not running") {
		t.Fatalf("stoa user del: %s %v", out, err)
	}
	srv.addUser(t, "admuser", "adm password")
	srv.addUser(t, "boss", "boss password")
	boss := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "boss", password: "boss password"})
	deleteUser(ctx, t, boss, "admuser@localhost")
	srv.addUser(t, "paypal", "paypal password")

	for _, tc := range []struct {
		name, condition, text string
	}{
		{"gouser", "conflict", `The name "gouser" belonged to an account that was deleted`},
		{"g0user", "conflict", `looks like "gouser", the name of an account that was deleted`},
		{"cliuser", "conflict", `The name "cliuser" belonged to an account that was deleted`},
		{"c1iuser", "conflict", `looks like "cliuser"`},
		{"admuser", "conflict", `The name "admuser" belonged to an account that was deleted`},
		{"adm.user", "conflict", `looks like "admuser"`},
		{"admin", "conflict", `The name "admin" is reserved on localhost`},
		{"postmaster", "conflict", "is reserved"},
		{"paypal", "conflict", `The name "paypal" is taken`},
		{"paypa1", "conflict", `looks too much like the existing account "paypal"`},
	} {
		_, err := melliumRegister(ctx, t, srv.starttls, tc.name, "a good password")
		wantRefused(t, tc.name, err, tc.condition, tc.text)
	}
	// A fresh name still works.
	if _, err := melliumRegister(ctx, t, srv.starttls, "fresh", "a good password"); err != nil {
		t.Errorf("a fresh name: %v", err)
	}
	for policy, n := range map[string]float64{"name_tombstoned": 6, "name_reserved": 2, "name_lookalike": 1, "user_exists": 1} {
		if got := srv.metric(t, `stoa_policy_denied_total{policy="`+policy+`"}`); got != n {
			t.Errorf("stoa_policy_denied_total{policy=%q} = %v, want %v", policy, got, n)
		}
	}
	if got := srv.metric(t, `stoa_register_attempts_total{method="inband",outcome="created"}`); got != 2 {
		t.Errorf("created in-band = %v, want 2", got)
	}
	out, err := srv.stoa(ctx, "", "register", "tombstones")
	for _, w := range []string{"gouser@localhost deleted", "via inband", "cliuser@localhost deleted", "via cli", "admuser@localhost deleted", "via admin"} {
		if err != nil || !strings.Contains(out, w) {
			t.Errorf("tombstones lack %q: %s %v", w, out, err)
		}
	}
	out, err = srv.stoa(ctx, "", "register", "log")
	if err != nil || !strings.Contains(out, "gouser@localhost") || !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "inband") {
		t.Errorf("register log: %s %v", out, err)
	}
}

// deleteUser runs XEP-0133 delete-user as the admin c, with mellium's
// ad-hoc commands client.
func deleteUser(ctx context.Context, t *testing.T, c *melliumClient, account string) {
	t.Helper()
	cmd := commands.Command{JID: jid.MustParse(domain), Node: "http://jabber.org/protocol/admin#delete-user"}
	resp, payload, err := cmd.Execute(ctx, nil, c.s)
	if err != nil {
		t.Fatalf("delete-user: %v", err)
	}
	var f form.Data
	pd := xml.NewTokenDecoder(payload)
	for {
		tok, err := pd.Token()
		if err != nil {
			t.Fatalf("delete-user: no form in the answer: %v", err)
		}
		if st, ok := tok.(xml.StartElement); ok && st.Name.Space == form.NS && st.Name.Local == "x" {
			if err := pd.DecodeElement(&f, &st); err != nil {
				t.Fatalf("delete-user form: %v", err)
			}
			break
		}
	}
	payload.Close()
	if _, err := f.Set("FORM_TYPE", "http://jabber.org/protocol/admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Set("accountjids", []jid.JID{jid.MustParse(account)}); err != nil {
		t.Fatal(err)
	}
	sub, _ := f.Submit()
	resp2, p2, err := resp.Complete().Execute(ctx, sub, c.s)
	if err != nil {
		t.Fatalf("delete-user, complete: %v", err)
	}
	p2.Close()
	if resp2.Status != "completed" {
		t.Fatalf("delete-user ended with status %q", resp2.Status)
	}
}

// floodOutcome is what one sign-up attempt of the flood got.
type floodOutcome struct {
	created   bool
	condition string
	text      string
	err       error // connection-level failure (not a refusal)
}

// floodRegister connects from local (a 127.x.y.z address) with direct TLS
// and registers user in-band (no CAPTCHA in the flood configuration).
func floodRegister(ctx context.Context, addr string, local net.IP, user, password string) floodOutcome {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 20 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return floodOutcome{err: err}
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(60 * time.Second))
	cfg := tlsConfig()
	cfg.NextProtos = []string{"xmpp-client"}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return floodOutcome{err: err}
	}
	r := newRaw(nil, tc)
	if _, err := r.open(); err != nil {
		return floodOutcome{err: err}
	}
	iq := func(id, body string) (floodOutcome, bool) {
		if err := r.send(fmt.Sprintf(`<iq type='set' id='%s'><query xmlns='jabber:iq:register'>%s</query></iq>`, id, body)); err != nil {
			return floodOutcome{err: err}, false
		}
		for {
			el, b, err := r.next()
			if err != nil {
				return floodOutcome{err: err}, false
			}
			if el.Name.Local != "iq" || !bytes.Contains(b, []byte("'"+id+"'")) && !bytes.Contains(b, []byte(`"`+id+`"`)) {
				continue
			}
			var rp struct {
				Type string     `xml:"type,attr"`
				Err  *stanzaErr `xml:"error"`
			}
			if err := xml.Unmarshal(b, &rp); err != nil {
				return floodOutcome{err: fmt.Errorf("parsing %s: %w", b, err)}, false
			}
			if rp.Err != nil {
				rf := rp.Err.refusal()
				return floodOutcome{condition: rf.Condition, text: rf.Text}, false
			}
			return floodOutcome{created: true}, true
		}
	}
	out, _ := iq("f1", "<username>"+user+"</username><password>"+password+"</password>")
	_ = r.send("</stream:stream>")
	return out
}

// latencyStats summarises chat round trips.
func latencyStats(d []time.Duration) string {
	if len(d) == 0 {
		return "no messages"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("%d messages, p50 %v, p90 %v, p99 %v, max %v", len(s), p(0.5).Round(10*time.Microsecond), p(0.9).Round(10*time.Microsecond),
		p(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

// TestRegisterFlood: thousands of in-band sign-up attempts from many
// loopback addresses spread over /24 networks (any 127.x.y.z is a source
// on Linux), some with refused names, create exactly the accounts the
// throttles allow; refused names never use the budget; a source that
// floods refused attempts is cut off; a logged-in pair keeps chatting
// meanwhile (its latency is reported, not asserted).
//
// Policy: 2 accounts per address, 5 per /24, 1000 per hour in total;
// 3 refused attempts per address, 100 per /24.
//
//	"honest" sources: 60 networks × 8 addresses; each address sends one
//	reserved name, then three good names: min(5, 8 × min(2, 3)) = 5 per
//	network = 300 accounts (the reserved names use no budget).
//	"refused" sources: 10 networks × 10 addresses; each address sends five
//	reserved names, then a good one: cut off after three refusals, 0
//	accounts.
func TestRegisterFlood(t *testing.T) {
	t.Parallel()
	const (
		honestNets, honestAddrs, honestGood = 60, 8, 3
		badNets, badAddrs, badTries         = 10, 10, 5
		want                                = honestNets * 5
	)
	srv := startServer(t, serverOptions{extra: `
[register]
mode = "open"
[register.captcha]
kind = "none"
[register.notify]
mode = "off"
[register.throttle]
ip = { max = 2, period = "1h" }
ipv4_24 = { max = 5, period = "1h" }
global = { max = 1000, period = "1h" }
refused_ip = { max = 3, period = "1h" }
refused_net = { max = 100, period = "1h" }
`})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The chatting pair.
	srv.addUser(t, "alice", "alice password")
	bobJID := srv.addUser(t, "bob", "bob password")
	alice := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "alice", password: "alice password"})
	bob := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "bob", password: "bob password"})
	aliceJID := alice.jid.Bare().String()
	alice.must(t, alice.sendPresence(ctx, "", stanza.AvailablePresence))
	bob.must(t, bob.sendPresence(ctx, "", stanza.AvailablePresence))

	type source struct {
		ip    net.IP
		names []string
	}
	var sources []source
	n := 0
	name := func() string { n++; return fmt.Sprintf("flood%05d", n) }
	for net1 := range honestNets {
		for a := range honestAddrs {
			s := source{ip: net.IPv4(127, 20, byte(net1), byte(a+1)), names: []string{"admin"}}
			for range honestGood {
				s.names = append(s.names, name())
			}
			sources = append(sources, s)
		}
	}
	for net1 := range badNets {
		for a := range badAddrs {
			s := source{ip: net.IPv4(127, 30, byte(net1), byte(a+1))}
			for range badTries {
				s.names = append(s.names, "root")
			}
			s.names = append(s.names, name())
			sources = append(sources, s)
		}
	}
	attempts := 0
	for _, s := range sources {
		attempts += len(s.names)
	}

	var (
		mu         sync.Mutex
		created    int
		refusals   = map[string]int{} // condition + first words of the text
		badCounts  = map[string]int{} // refusals of the flooding sources by condition
		connErrs   []error
		noText     int
		attemptDur []time.Duration
	)
	work := make(chan source)
	var wg sync.WaitGroup
	start := time.Now()
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				for _, nm := range s.names {
					t0 := time.Now()
					o := floodRegister(ctx, srv.direct, s.ip, nm, "flood password")
					mu.Lock()
					attemptDur = append(attemptDur, time.Since(t0))
					switch {
					case o.err != nil:
						connErrs = append(connErrs, fmt.Errorf("%s %s: %w", s.ip, nm, o.err))
					case o.created:
						created++
					default:
						if o.text == "" {
							noText++
						}
						if s.ip[13] == 30 { // 127.30.x.y: the flooding sources
							badCounts[o.condition]++
						}
						words := strings.Fields(o.text)
						refusals[o.condition+": "+strings.Join(words[:min(5, len(words))], " ")]++
					}
					mu.Unlock()
				}
			}
		}()
	}
	// Meanwhile, alice and bob chat: one message at a time, each
	// measured from alice's send to bob's receipt.
	floodDone := make(chan struct{})
	var lat []time.Duration
	chatDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-floodDone:
				chatDone <- nil
				return
			default:
			}
			body := fmt.Sprintf("chat %d", i)
			t0 := time.Now()
			if err := alice.sendMessage(ctx, bobJID, body); err != nil {
				chatDone <- err
				return
			}
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second) // a guard, not a measure
			_, err := bob.wait(wctx, "a chat message", isMessage(aliceJID, body))
			wcancel()
			if err != nil {
				chatDone <- err
				return
			}
			lat = append(lat, time.Since(t0))
		}
	}()
	for _, s := range sources {
		work <- s
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	close(floodDone)
	if err := <-chatDone; err != nil {
		t.Errorf("the chatting pair failed during the flood: %v", err)
	}

	out, err := srv.stoa(ctx, "", "user", "list")
	if err != nil {
		t.Fatal(err)
	}
	stored := strings.Count(out, "flood")
	t.Logf("flood: %d attempts from %d addresses in %d /24 networks in %v (%.0f attempts/s), 24 concurrent clients",
		attempts, len(sources), honestNets+badNets, elapsed.Round(time.Millisecond), float64(attempts)/elapsed.Seconds())
	t.Logf("flood: %d accounts created (the policy allows %d), %d in the store", created, want, stored)
	for k, v := range refusals {
		t.Logf("flood: refused %5d × %s", v, k)
	}
	t.Logf("flood: chat latency alice→bob during the flood: %s", latencyStats(lat))
	t.Logf("flood: sign-up attempt duration (connect, TLS, stream, registration): %s", latencyStats(attemptDur))
	t.Logf("flood: server CPU %.1f s", srv.metric(t, "process_cpu_seconds_total"))
	for _, m := range []string{
		`stoa_register_attempts_total{method="inband",outcome="created"}`,
		`stoa_register_attempts_total{method="inband",outcome="refused"}`,
		`stoa_register_refused_total{reason="name_reserved"}`,
		`stoa_register_refused_total{reason="registration_throttle_ip"}`,
		`stoa_register_refused_total{reason="registration_throttle_ipv4_24"}`,
		`stoa_register_refused_total{reason="registration_refused_ip"}`,
	} {
		t.Logf("flood: %s %v", m, srv.metric(t, m))
	}
	if len(connErrs) > 0 {
		t.Errorf("%d attempts failed below XMPP (first: %v)", len(connErrs), connErrs[0])
	}
	if created != want || stored != want {
		t.Errorf("created %d accounts (%d stored); the policy allows exactly %d", created, stored, want)
	}
	if noText > 0 {
		t.Errorf("%d refusals came without a text", noText)
	}
	// The flooding sources: three reserved names refused as such per
	// address, then everything refused as a flood (their good names too).
	if got := badCounts["conflict"]; got != badNets*badAddrs*3 {
		t.Errorf("flooding sources: %d name refusals, want %d", got, badNets*badAddrs*3)
	}
	if got := badCounts["policy-violation"]; got != badNets*badAddrs*(badTries-3+1) {
		t.Errorf("flooding sources: %d flood refusals, want %d", got, badNets*badAddrs*(badTries-3+1))
	}
	if got := srv.metric(t, `stoa_register_attempts_total{method="inband",outcome="refused"}`); got != float64(attempts-want) {
		t.Errorf("refused attempts counted: %v, want %d", got, attempts-want)
	}
}
