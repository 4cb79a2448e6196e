package invite

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/presence"
	regmod "stoa.im/stoa/internal/mod/register"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

const publicURL = "https://chat.example.org/web"

// newEnv starts a server with roster, presence and invitations;
// admin@localhost is an admin.
func newEnv(t *testing.T, cfg *Config, users ...string) *servertest.Env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := Feature.Defaults.(Config)
	if cfg != nil {
		c = *cfg
	}
	e := servertest.NewWithOptions(t, server.Options{
		Store: st, Admins: []string{"admin@localhost"}, PublicURL: publicURL + "/",
		Features: []server.Feature{roster.Feature, presence.Feature, Feature},
		Config: func(name string) any {
			if name == "invite" {
				return c
			}
			return nil
		},
	})
	for _, u := range users {
		e.AddUser(u, "secret password")
	}
	return e
}

// command runs an ad-hoc command stage as req.From.
func command(t *testing.T, e *servertest.Env, node, from string, f *form.Form) *server.CommandResponse {
	t.Helper()
	c, ok := e.Srv.LookupCommand(node)
	if !ok {
		t.Fatalf("command %s is not registered", node)
	}
	if !e.Srv.MayRunCommand(c, jid.MustParse(from)) {
		t.Fatalf("%s may not run %s", from, node)
	}
	req := &server.CommandRequest{From: jid.MustParse(from), Host: "localhost", Node: node, Form: f, Action: server.ActionExecute}
	if f != nil {
		req.Action, req.Stage = server.ActionComplete, 1
	}
	resp, err := c.Handler(e.Ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", node, err)
	}
	return resp
}

// tokenOf returns the token of a command's result form.
func tokenOf(t *testing.T, resp *server.CommandResponse) string {
	t.Helper()
	if !resp.Completed || resp.Form == nil {
		t.Fatalf("command did not complete with a form: %+v", resp)
	}
	uri := resp.Form.Value("uri")
	_, tok, ok := strings.Cut(uri, "preauth=")
	if !ok {
		t.Fatalf("uri %q has no preauth token", uri)
	}
	tok, _, _ = strings.Cut(tok, ";")
	return tok
}

// create makes an invitation through the admin command.
func create(t *testing.T, e *servertest.Env, args map[string]string) string {
	t.Helper()
	for _, c := range e.Srv.AdminCommands() {
		if c.Name != "invite.create" {
			continue
		}
		res, err := c.Run(e.Ctx, args)
		if err != nil {
			t.Fatalf("invite.create %v: %v", args, err)
		}
		for _, l := range res.Lines {
			if _, tok, ok := strings.Cut(l, "/invite/"); ok {
				return tok
			}
			if _, tok, ok := strings.Cut(l, "/reset/"); ok {
				return tok
			}
			if _, tok, ok := strings.Cut(l, "preauth="); ok {
				tok, _, _ = strings.Cut(tok, ";")
				return tok
			}
		}
		t.Fatalf("invite.create %v: no link in %+v", args, res)
	}
	t.Fatal("invite.create is not registered")
	return ""
}

func register(e *servertest.Env, j, token string) error {
	return e.Srv.Register(e.Ctx, &server.Registration{
		JID: jid.MustParse(j), Password: "a good password", IP: netip.MustParseAddr("192.0.2.7"), Method: "web", Invite: token,
	})
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var r *server.Refusal
	if !errors.As(err, &r) || r.Reason != reason {
		t.Fatalf("got %v, want a refusal %q", err, reason)
	}
	if r.Text == "" {
		t.Errorf("refusal %q has no text for people", reason)
	}
}

func uses(t *testing.T, e *servertest.Env, token string) int {
	t.Helper()
	inv, err := e.Srv.Store().Invites().Get(e.Ctx, token)
	if err != nil {
		t.Fatalf("Get(%s): %v", token, err)
	}
	return inv.Uses
}

func TestTokens(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		tok := NewToken()
		if !ValidToken(tok) {
			t.Fatalf("NewToken() = %q is not a valid token", tok)
		}
		if seen[tok] {
			t.Fatalf("NewToken repeated %q", tok)
		}
		seen[tok] = true
	}
	for _, bad := range []string{"", "short", strings.Repeat("a", 23), strings.Repeat("a", 25), strings.Repeat("a", 23) + "-", strings.Repeat("é", 12)} {
		if ValidToken(bad) {
			t.Errorf("ValidToken(%q) = true", bad)
		}
	}
}

func TestURIs(t *testing.T) {
	t.Parallel()
	tok := strings.Repeat("A", 24)
	tests := []struct {
		inv          store.Invite
		uri, landing string
	}{
		{store.Invite{Token: tok, Kind: store.InviteAccount, Host: "example.org"},
			"xmpp:example.org?register;preauth=" + tok, publicURL + "/invite/" + tok},
		{store.Invite{Token: tok, Kind: store.InviteAccount, Host: "example.org", JID: "juliet@example.org"},
			"xmpp:juliet@example.org?register;preauth=" + tok, publicURL + "/invite/" + tok},
		{store.Invite{Token: tok, Kind: store.InviteContact, Host: "example.org", Creator: "romeo@example.org"},
			"xmpp:romeo@example.org?roster;preauth=" + tok, publicURL + "/invite/" + tok},
		{store.Invite{Token: tok, Kind: store.InviteContact, Host: "example.org", Creator: "ro&me;o@example.org", AllowRegister: true},
			"xmpp:ro%26me%3Bo@example.org?roster;preauth=" + tok + ";ibr=y", publicURL + "/invite/" + tok},
		{store.Invite{Token: tok, Kind: store.InviteReset, Host: "example.org", JID: "romeo@example.org"},
			"", publicURL + "/reset/" + tok},
	}
	for _, tc := range tests {
		if got := URI(tc.inv); got != tc.uri {
			t.Errorf("URI(%+v) = %q, want %q", tc.inv, got, tc.uri)
		}
		if got := LandingURL(publicURL, tc.inv); got != tc.landing {
			t.Errorf("LandingURL(%+v) = %q, want %q", tc.inv, got, tc.landing)
		}
		if got := LandingURL("", tc.inv); got != "" {
			t.Errorf("LandingURL without a web listener = %q, want none", got)
		}
	}
}

func TestRegisterWithInvitations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "romeo@localhost")
	ctx := e.Ctx
	st := e.Srv.Store().Invites()

	// An account invitation: one account, then used up.
	tok := create(t, e, map[string]string{})
	if err := register(e, "alice@localhost", tok); err != nil {
		t.Fatalf("register with an account invitation: %v", err)
	}
	if n := uses(t, e, tok); n != 1 {
		t.Errorf("uses after sign-up = %d, want 1", n)
	}
	wantReason(t, register(e, "alice2@localhost", tok), "invite_invalid")

	// A reserved name: only its invitation may take it, and only it.
	res := create(t, e, map[string]string{"user": "Juliet"})
	wantReason(t, register(e, "juliet@localhost", ""), "invite_reserved")
	wantReason(t, register(e, "nurse@localhost", res), "invite_reserved")
	if n := uses(t, e, res); n != 0 {
		t.Errorf("a refused sign-up kept the use of the invitation: uses = %d", n)
	}
	if err := register(e, "juliet@localhost", res); err != nil {
		t.Fatalf("register the reserved name with its invitation: %v", err)
	}
	// Reserving an existing or reserved account is refused.
	for _, c := range e.Srv.AdminCommands() {
		if c.Name == "invite.create" {
			if _, err := c.Run(ctx, map[string]string{"user": "romeo"}); err == nil {
				t.Errorf("reserving an existing account's name succeeded")
			}
		}
	}

	// A failed registration gives the use back: the name exists.
	tok = create(t, e, map[string]string{})
	if err := register(e, "romeo@localhost", tok); !errors.Is(err, server.ErrUserExists) {
		t.Fatalf("register an existing name: %v, want ErrUserExists", err)
	}
	if n := uses(t, e, tok); n != 0 {
		t.Errorf("uses after a failed sign-up = %d, want 0 (given back)", n)
	}

	// Tokens that do not allow registration, or are unknown or malformed.
	reset := create(t, e, map[string]string{"reset": "romeo@localhost"})
	wantReason(t, register(e, "bob@localhost", reset), "invite_not_for_registration")
	contact, err := e.Srv.Store().Invites().Get(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	contact.Token, contact.Kind, contact.Creator, contact.AllowRegister = NewToken(), store.InviteContact, "romeo@localhost", false
	if err := st.Create(ctx, contact); err != nil {
		t.Fatal(err)
	}
	wantReason(t, register(e, "bob@localhost", contact.Token), "invite_not_for_registration")
	wantReason(t, register(e, "bob@localhost", NewToken()), "invite_invalid")
	wantReason(t, register(e, "bob@localhost", "not a token"), "invite_invalid")

	// An expired invitation.
	old := contact
	old.Token, old.Kind, old.Creator = NewToken(), store.InviteAccount, ""
	old.Created, old.Expires = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	if err := st.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	wantReason(t, register(e, "bob@localhost", old.Token), "invite_invalid")

	// A token for another host.
	e2 := old
	e2.Token, e2.Host, e2.Expires = NewToken(), "elsewhere.example", time.Now().Add(time.Hour)
	if err := st.Create(ctx, e2); err != nil {
		t.Fatal(err)
	}
	wantReason(t, register(e, "bob@localhost", e2.Token), "invite_wrong_host")
}

func TestSingleUseRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := create(t, e, map[string]string{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 6 {
		wg.Go(func() {
			err := register(e, "racer"+string(rune('a'+i))+"@localhost", tok)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d sign-ups succeeded with one single-use invitation, want 1", ok)
	}
}

// rosterOf returns owner's subscription to contact ("" when no item).
func rosterOf(t *testing.T, e *servertest.Env, owner, contact string) string {
	t.Helper()
	it, err := e.Srv.Store().Roster().Get(e.Ctx, owner, contact)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	s := string(it.Subscription)
	if it.Ask {
		s += "+ask"
	}
	if it.Approved {
		s += "+approved"
	}
	return s
}

// TestContactInvitationSignUp: XEP-0401 "invite" by a user, the invitee
// signs up with it, both become mutual contacts and the inviter's client
// gets roster pushes.
func TestContactInvitationSignUp(t *testing.T) {
	t.Parallel()
	cfg := Feature.Defaults.(Config)
	cfg.UserInvites = "register"
	e := newEnv(t, &cfg, "romeo@localhost")
	romeo := e.Bind("romeo@localhost/phone")
	romeo.SendXML(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	romeo.Expect(servertest.Name("iq", "id", "r1"))

	resp := command(t, e, NodeInvite, "romeo@localhost/phone", nil)
	if got := resp.Form.FormType(); got != formInvitation {
		t.Errorf("FORM_TYPE = %q, want %q", got, formInvitation)
	}
	uri := resp.Form.Value("uri")
	if !strings.HasPrefix(uri, "xmpp:romeo@localhost?roster;preauth=") || !strings.HasSuffix(uri, ";ibr=y") {
		t.Errorf("uri = %q, want a roster URI of romeo with ibr=y", uri)
	}
	if l := resp.Form.Value("landing-url"); !strings.HasPrefix(l, publicURL+"/invite/") {
		t.Errorf("landing-url = %q", l)
	}
	for _, f := range []string{"expire", "expiry"} {
		if _, err := time.Parse(time.RFC3339, resp.Form.Value(f)); err != nil {
			t.Errorf("%s %q is not a XEP-0082 DateTime: %v", f, resp.Form.Value(f), err)
		}
	}
	tok := tokenOf(t, resp)
	if err := register(e, "juliet@localhost", tok); err != nil {
		t.Fatalf("sign-up with the contact invitation: %v", err)
	}
	if got := rosterOf(t, e, "romeo@localhost", "juliet@localhost"); got != "both" {
		t.Errorf("romeo's subscription to juliet = %q, want both", got)
	}
	if got := rosterOf(t, e, "juliet@localhost", "romeo@localhost"); got != "both" {
		t.Errorf("juliet's subscription to romeo = %q, want both", got)
	}
	romeo.Expect(func(el *xml.Element) bool {
		q := el.Child("jabber:iq:roster", "query")
		if el.Local != "iq" || el.Attr("type") != "set" || q == nil {
			return false
		}
		it := q.Child("jabber:iq:roster", "item")
		return it != nil && it.Attr("jid") == "juliet@localhost" && it.Attr("subscription") == "both"
	})
}

// TestPreAuthenticatedSubscription: XEP-0379 §3.4 with an existing
// account: its subscription request carrying romeo's token is approved
// for romeo, who asks back.
func TestPreAuthenticatedSubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "romeo@localhost", "mercutio@localhost", "tybalt@localhost")
	resp := command(t, e, NodeInvite, "romeo@localhost/phone", nil)
	if strings.Contains(resp.Form.Value("uri"), "ibr=y") {
		t.Errorf("with user_invites = contact, a user's invitation allows sign-up: %s", resp.Form.Value("uri"))
	}
	tok := tokenOf(t, resp)

	// A wrong token is left for the client (graceful degradation).
	tybalt := e.Bind("tybalt@localhost/x")
	tybalt.SendXML(`<presence type='subscribe' to='romeo@localhost'><preauth xmlns='urn:xmpp:pars:0' token='` + NewToken() + `'/></presence>`)
	if got := rosterOf(t, e, "romeo@localhost", "tybalt@localhost"); got != "" {
		t.Errorf("an unknown token changed romeo's roster: %q", got)
	}

	// Mercutio's client pre-approves romeo (XEP-0379 §3.4), then asks.
	m := e.Bind("mercutio@localhost/x")
	m.SendXML(`<presence type='subscribed' to='romeo@localhost'/>`)
	m.SendXML(`<presence type='subscribe' to='romeo@localhost'><preauth xmlns='urn:xmpp:pars:0' token='` + tok + `'/></presence>`)
	for _, pair := range [][2]string{{"romeo@localhost", "mercutio@localhost"}, {"mercutio@localhost", "romeo@localhost"}} {
		if got := rosterOf(t, e, pair[0], pair[1]); got != "both" {
			t.Errorf("%s's subscription to %s = %q, want both", pair[0], pair[1], got)
		}
	}
	if n := uses(t, e, tok); n != 1 {
		t.Errorf("uses = %d, want 1", n)
	}
	// Used up: tybalt's request with it is left alone.
	tybalt.SendXML(`<presence type='subscribe' to='romeo@localhost'><preauth xmlns='urn:xmpp:pars:0' token='` + tok + `'/></presence>`)
	if got := rosterOf(t, e, "romeo@localhost", "tybalt@localhost"); got != "" {
		t.Errorf("a used token changed romeo's roster: %q", got)
	}
}

func TestPreauthIQ(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "romeo@localhost")
	h := e.Srv.PreAuthIQ(nsPARS)
	if h == nil {
		t.Fatal("no pre-authentication handler for urn:xmpp:pars:0")
	}
	good := create(t, e, map[string]string{})
	reset := create(t, e, map[string]string{"reset": "romeo@localhost"})
	tests := []struct {
		name, token, typ string
		cond             stanza.Condition
	}{
		{"valid", good, "set", ""},
		{"unknown", NewToken(), "set", stanza.ItemNotFound},
		{"reset link", reset, "set", stanza.ItemNotFound},
		{"get", good, "get", stanza.BadRequest},
		{"no TLS", good, "set", stanza.PolicyViolation},
	}
	for _, tc := range tests {
		c := &server.ConnInfo{Host: "localhost", TLS: tc.name != "no TLS", Remote: netip.MustParseAddrPort("192.0.2.1:5000")}
		iq := servertest.Parse(t, `<iq type='`+tc.typ+`' id='p'><preauth xmlns='urn:xmpp:pars:0' token='`+tc.token+`'/></iq>`)
		_, err := h(e.Ctx, c, iq)
		var se *stanza.Error
		switch {
		case tc.cond == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.cond == "" && c.Invite != tc.token:
			t.Errorf("%s: the connection did not keep the token", tc.name)
		case tc.cond != "" && (!errors.As(err, &se) || se.Condition != tc.cond):
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.cond)
		case tc.cond != "" && c.Invite != "":
			t.Errorf("%s: a refused token was kept", tc.name)
		}
	}
	// The token kept on the connection is used by the in-band sign-up.
	c := &server.ConnInfo{Host: "localhost", TLS: true, Invite: good, InviteAt: time.Now()}
	err := e.Srv.Register(e.Ctx, &server.Registration{JID: jid.MustParse("ibr@localhost"), Password: "a good password", Method: "inband", Conn: c})
	if err != nil {
		t.Fatalf("in-band sign-up with the connection's token: %v", err)
	}
	if n := uses(t, e, good); n != 1 {
		t.Errorf("uses = %d, want 1", n)
	}
	var found bool
	for _, el := range e.Srv.PreAuthFeatures(c) {
		found = found || (el.Space == nsIBRToken && el.Local == "register")
	}
	if !found {
		t.Errorf("the XEP-0445 stream feature is not offered")
	}
}

func TestQuotaAndUserInvites(t *testing.T) {
	t.Parallel()
	cfg := Feature.Defaults.(Config)
	cfg.UserQuota = 2
	e := newEnv(t, &cfg, "romeo@localhost", "admin@localhost")
	for i := range 2 {
		if resp := command(t, e, NodeInvite, "romeo@localhost/x", nil); resp.Form == nil {
			t.Fatalf("invitation %d refused: %+v", i+1, resp.Notes)
		}
	}
	resp := command(t, e, NodeInvite, "romeo@localhost/x", nil)
	if resp.Form != nil || len(resp.Notes) != 1 || resp.Notes[0].Type != server.NoteError || !strings.Contains(resp.Notes[0].Text, "2 invitations") {
		t.Errorf("third invitation over a quota of 2: %+v, want an error note", resp)
	}
	for range 3 { // admins have no quota
		if resp := command(t, e, NodeInvite, "admin@localhost/x", nil); resp.Form == nil {
			t.Fatalf("admin invitation refused: %+v", resp.Notes)
		} else if !strings.HasSuffix(resp.Form.Value("uri"), ";ibr=y") {
			t.Errorf("an admin's contact invitation does not allow sign-up: %s", resp.Form.Value("uri"))
		}
	}

	cfg.UserInvites = "none"
	e = newEnv(t, &cfg, "romeo@localhost")
	if resp := command(t, e, NodeInvite, "romeo@localhost/x", nil); resp.Form != nil {
		t.Errorf("user_invites = none, but a user created an invitation")
	}
}

func TestCreateAccountCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "admin@localhost")
	c, _ := e.Srv.LookupCommand(NodeCreateAccount)
	if e.Srv.MayRunCommand(c, jid.MustParse("romeo@localhost/x")) {
		t.Errorf("an ordinary user may run create-account")
	}
	first := command(t, e, NodeCreateAccount, "admin@localhost/x", nil)
	if first.Completed || first.Form == nil || first.Form.Field("username") == nil || first.Form.Field("roster-subscription") == nil {
		t.Fatalf("first stage = %+v, want a form with username and roster-subscription", first)
	}
	sub := form.New(form.TypeSubmit, "").Add(
		form.Field{Var: "username", Values: []string{"juliet"}},
		form.Field{Var: "roster-subscription", Values: []string{"true"}},
		form.Field{Var: "expires", Values: []string{"2d"}},
	)
	resp := command(t, e, NodeCreateAccount, "admin@localhost/x", sub)
	uri := resp.Form.Value("uri")
	if !strings.HasPrefix(uri, "xmpp:juliet@localhost?register;preauth=") {
		t.Errorf("uri = %q", uri)
	}
	exp, err := time.Parse(time.RFC3339, resp.Form.Value("expire"))
	if err != nil || exp.Before(time.Now().Add(47*time.Hour)) || exp.After(time.Now().Add(49*time.Hour)) {
		t.Errorf("expire = %q, want about two days from now", resp.Form.Value("expire"))
	}
	if err := register(e, "juliet@localhost", tokenOf(t, resp)); err != nil {
		t.Fatal(err)
	}
	if got := rosterOf(t, e, "juliet@localhost", "admin@localhost"); got != "both" {
		t.Errorf("juliet's subscription to the inviting admin = %q, want both", got)
	}
	bad := form.New(form.TypeSubmit, "").Add(form.Field{Var: "username", Values: []string{"no spaces please"}})
	if _, err := c.Handler(e.Ctx, &server.CommandRequest{From: jid.MustParse("admin@localhost/x"), Host: "localhost", Form: bad, Stage: 1}); err == nil {
		t.Errorf("an invalid username was accepted")
	}
}

func TestResetPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "romeo@localhost", "admin@localhost")
	before, err := e.Srv.Store().Accounts().Get(e.Ctx, "romeo@localhost")
	if err != nil {
		t.Fatal(err)
	}
	resp := command(t, e, NodeReset, "admin@localhost/x", form.New(form.TypeSubmit, "").Add(form.Field{Var: "accountjid", Values: []string{"romeo@localhost"}}))
	landing := resp.Form.Value("landing-url")
	_, tok, ok := strings.Cut(landing, "/reset/")
	if !ok || resp.Form.Value("uri") != "" {
		t.Fatalf("reset result: landing %q, uri %q; want a /reset/ page and no xmpp: URI", landing, resp.Form.Value("uri"))
	}
	j, err := ResetPassword(e.Ctx, e.Srv, tok, "a new password", "web")
	if err != nil || j.String() != "romeo@localhost" {
		t.Fatalf("ResetPassword = %v, %v", j, err)
	}
	after, err := e.Srv.Store().Accounts().Get(e.Ctx, "romeo@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if string(after.Credentials.SHA256.StoredKey) == string(before.Credentials.SHA256.StoredKey) {
		t.Errorf("the password did not change")
	}
	_, err = ResetPassword(e.Ctx, e.Srv, tok, "another password", "web")
	wantReason(t, err, "invite_invalid")
	// An account invitation is not a reset link.
	_, err = ResetPassword(e.Ctx, e.Srv, create(t, e, map[string]string{}), "x password", "web")
	wantReason(t, err, "invite_invalid")
}

func TestAdminCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, "romeo@localhost")
	run := func(name string, args map[string]string) (server.AdminResult, error) {
		for _, c := range e.Srv.AdminCommands() {
			if c.Name == name {
				return c.Run(e.Ctx, args)
			}
		}
		t.Fatalf("admin command %s is not registered", name)
		return server.AdminResult{}, nil
	}
	bad := []map[string]string{
		{"reset": "nobody@localhost"},
		{"reset": "romeo@localhost", "contact": "romeo@localhost"},
		{"contact": "romeo@elsewhere.example"},
		{"expires": "10s"},
		{"uses": "0"},
		{"uses": "many"},
		{"user": "a b"},
		{"host": "elsewhere.example"},
	}
	for _, args := range bad {
		if _, err := run("invite.create", args); err == nil {
			t.Errorf("invite.create %v succeeded", args)
		}
	}
	res, err := run("invite.create", map[string]string{"contact": "romeo@localhost", "uses": "1", "note": "for the party"})
	if err != nil || !strings.Contains(res.Message, "contact invitation of romeo@localhost") || len(res.Lines) != 2 {
		t.Fatalf("invite.create --contact = %+v, %v", res, err)
	}
	tok := create(t, e, map[string]string{"uses": "5", "expires": "1h"})
	list, err := run("invite.list", map[string]string{})
	if err != nil || len(list.Lines) != 2 || !strings.Contains(strings.Join(list.Lines, "\n"), tok+"\taccount") {
		t.Fatalf("invite.list = %+v, %v", list, err)
	}
	if _, err := run("invite.revoke", map[string]string{"token": tok}); err != nil {
		t.Fatal(err)
	}
	if _, err := run("invite.revoke", map[string]string{"token": tok}); err == nil {
		t.Errorf("revoking twice succeeded")
	}
	wantReason(t, register(e, "alice@localhost", tok), "invite_invalid")
}

func TestPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	now := time.Now()
	cfg := Feature.Defaults.(Config)
	cfg.QuotaPeriod, cfg.KeepExpired = config.Duration(time.Hour), config.Duration(24*time.Hour)
	f := &feature{srv: e.Srv, st: e.Srv.Store(), cfg: cfg, log: slog.New(slog.DiscardHandler),
		now: func() time.Time { return now }, purged: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})}
	mk := func(expired time.Duration) string {
		inv := store.Invite{Token: NewToken(), Kind: store.InviteAccount, Host: "localhost", AllowRegister: true,
			Created: now.Add(-expired - time.Hour), Expires: now.Add(-expired), MaxUses: 1}
		if err := e.Srv.Store().Invites().Create(e.Ctx, inv); err != nil {
			t.Fatal(err)
		}
		return inv.Token
	}
	gone, kept, valid := mk(25*time.Hour), mk(23*time.Hour), mk(-time.Hour)
	f.purge(context.Background())
	if _, err := e.Srv.Store().Invites().Get(e.Ctx, gone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an invitation expired longer than keep_expired was kept: %v", err)
	}
	for _, tok := range []string{kept, valid} {
		if _, err := e.Srv.Store().Invites().Get(e.Ctx, tok); err != nil {
			t.Errorf("purge removed %s: %v", Short(tok), err)
		}
	}
}

// TestWithRegisterFeature: invitations with the registration policies of
// the register feature in invite-only mode, as app wires them.
func TestWithRegisterFeature(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rc := regmod.Defaults
	rc.Mode = regmod.ModeInvite
	e := servertest.NewWithOptions(t, server.Options{
		Store: st, Admins: []string{"admin@localhost"},
		Features: []server.Feature{roster.Feature, presence.Feature, regmod.Feature, Feature},
		Config: func(name string) any {
			if name == "register" {
				return rc
			}
			return nil
		},
	})
	wantReason(t, register(e, "juliet@localhost", ""), "registration_invite_only")
	tok := create(t, e, map[string]string{})
	if err := register(e, "juliet@localhost", tok); err != nil {
		t.Fatalf("invited sign-up in invite-only mode: %v", err)
	}
	// A look-alike of an account is refused, and the invitation kept.
	tok = create(t, e, map[string]string{})
	err = register(e, "jul1et@localhost", tok)
	if err == nil {
		t.Fatal("a look-alike of juliet was registered")
	}
	if n := uses(t, e, tok); n != 0 {
		t.Errorf("the refused look-alike used the invitation: uses = %d", n)
	}
	if err := register(e, "romeo@localhost", tok); err != nil {
		t.Fatalf("the invitation no longer works after a refused attempt: %v", err)
	}
}

// closedModes provides RegistrationModes: every host closed.
type closedModes struct{}

func (closedModes) RegistrationMode(string) string { return "closed" }

// TestNoIBRWhenClosed: where invited people cannot register, contact
// invitations leave out ibr=y (XEP-0401 §3.1).
func TestNoIBRWhenClosed(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	modes := server.Feature{Name: "modes", Setup: func(s *server.Setup, _ any) error {
		s.Provide(closedModes{})
		return nil
	}}
	e := servertest.NewWithOptions(t, server.Options{
		Store: st, Admins: []string{"admin@localhost"},
		Features: []server.Feature{modes, roster.Feature, presence.Feature, Feature},
	})
	e.AddUser("admin@localhost", "secret password")
	resp := command(t, e, NodeInvite, "admin@localhost/x", nil)
	if uri := resp.Form.Value("uri"); strings.Contains(uri, "ibr=y") {
		t.Errorf("uri = %q on a closed host, want no ibr=y", uri)
	}
}
