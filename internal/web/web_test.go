package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	altcha "github.com/altcha-org/altcha-lib-go"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/invite"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/register"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store/sqlite"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	srv   *servertest.Env
	web   *Server
	http  *httptest.Server
	clock *clock
}

// newEnv runs the web handler over a server with the register feature in
// mode (open, invite, ...) and the invitation feature.
func newEnv(t *testing.T, mode string, tweak func(*Config)) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rc := register.Defaults
	rc.Mode = mode
	rc.Throttle.Exempt = []string{"127.0.0.1", "::1"}
	cfg := Defaults
	cfg.PoW.MaxNumber = 1000
	cfg.PoW.MinSolveTime = config.Duration(3 * time.Second)
	if tweak != nil {
		tweak(&cfg)
	}
	e := &env{t: t, clock: &clock{t: time.Now()}}
	e.srv = servertest.NewWithOptions(t, server.Options{
		Store: st, Admins: []string{"admin@localhost"}, PublicURL: PublicURLOf(cfg),
		Features: []server.Feature{roster.Feature, presence.Feature, register.Feature, invite.Feature},
		Config: func(name string) any {
			if name == "register" {
				return rc
			}
			return nil
		},
	})
	e.web, err = New(Options{
		Config: cfg, Server: e.srv.Srv, Secret: []byte("0123456789abcdef0123456789abcdef"),
		Mode: func(string) string { return mode }, Now: e.clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.http = httptest.NewServer(e.web.Handler())
	t.Cleanup(e.http.Close)
	return e
}

// browser is an HTTP client with cookies that does not follow redirects.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) get(c *http.Client, path string) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.Get(e.http.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *env) post(c *http.Client, path string, form url.Values, header ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.http.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var (
	reCSRF      = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	reChallenge = regexp.MustCompile(`data-challenge="([^"]+)"`)
	reToken     = regexp.MustCompile(`name="t" value="([^"]+)"`)
)

// formOf reads the CSRF token and solves the challenge of a page, as
// pow.js does.
func (e *env) formOf(page string) (csrf, pow string) {
	e.t.Helper()
	m := reCSRF.FindStringSubmatch(page)
	c := reChallenge.FindStringSubmatch(page)
	if m == nil || c == nil {
		e.t.Fatalf("no form with a challenge in:\n%s", page)
	}
	var ch powChallenge
	if err := json.Unmarshal([]byte(html.UnescapeString(c[1])), &ch); err != nil {
		e.t.Fatal(err)
	}
	sol, err := altcha.SolveChallenge(ch.Challenge, ch.Salt, altcha.SHA256, int(ch.MaxNumber), 0, nil)
	if err != nil || sol == nil {
		e.t.Fatalf("solving %+v: %v", ch, err)
	}
	b, _ := json.Marshal(altcha.Payload{Algorithm: ch.Algorithm, Challenge: ch.Challenge, Number: int64(sol.Number), Salt: ch.Salt, Signature: ch.Signature})
	return html.UnescapeString(m[1]), base64.StdEncoding.EncodeToString(b)
}

// signUp loads the form, solves it, waits out the minimum solve time and
// sends it.
func (e *env) signUp(c *http.Client, query string, fields url.Values) (*http.Response, string) {
	e.t.Helper()
	_, page := e.get(c, "/register"+query)
	csrf, pow := e.formOf(page)
	e.clock.add(4 * time.Second)
	fields.Set("csrf", csrf)
	fields.Set("pow", pow)
	if m := reToken.FindStringSubmatch(page); m != nil {
		fields.Set("t", m[1])
	}
	return e.post(c, "/register", fields)
}

func account(name, password string) url.Values {
	return url.Values{"username": {name}, "password": {password}, "password2": {password}}
}

func (e *env) exists(j string) bool {
	_, err := e.srv.Srv.Store().Accounts().Get(e.srv.Ctx, j)
	return err == nil
}

func TestSignUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeOpen, nil)
	c := e.browser()
	resp, page := e.get(c, "/register")
	if resp.StatusCode != 200 || !strings.Contains(page, `<form method="post"`) || !strings.Contains(page, "pow.js") {
		t.Fatalf("GET /register = %d:\n%s", resp.StatusCode, page)
	}
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
		"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
	} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s = %q, want %q", h, resp.Header.Get(h), want)
		}
	}
	if ck := resp.Header.Get("Set-Cookie"); !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Lax") {
		t.Errorf("CSRF cookie %q is not HttpOnly and SameSite=Lax", ck)
	}

	resp, page = e.signUp(c, "", account("alice", "correct horse"))
	if resp.StatusCode != 200 || !strings.Contains(page, "alice@localhost") || !strings.Contains(page, "Welcome") {
		t.Fatalf("sign-up = %d:\n%s", resp.StatusCode, page)
	}
	if !e.exists("alice@localhost") {
		t.Fatal("the account was not created")
	}

	// A look-alike is refused with the reason.
	resp, page = e.signUp(c, "", account("a1ice", "correct horse"))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "looks too much like") || !strings.Contains(page, `role="alert"`) {
		t.Fatalf("look-alike sign-up = %d:\n%s", resp.StatusCode, page)
	}
	if e.exists("a1ice@localhost") {
		t.Fatal("the look-alike account was created")
	}
	// The name field keeps the entry and is marked invalid.
	if !strings.Contains(page, `value="a1ice"`) || !strings.Contains(page, `aria-invalid="true"`) {
		t.Errorf("the refused form lost the entry or the invalid mark:\n%s", page)
	}
}

func TestSignUpRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeOpen, nil)
	c := e.browser()
	_, page := e.get(c, "/register")
	csrf, pow := e.formOf(page)
	tests := []struct {
		name   string
		fields url.Values
		header []string
		wait   time.Duration
		code   int
		text   string
	}{
		{"no csrf", url.Values{"pow": {pow}}, nil, 4 * time.Second, 403, english.m["err.csrf"]},
		{"wrong csrf", url.Values{"csrf": {"x" + csrf}, "pow": {pow}}, nil, 0, 403, english.m["err.csrf"]},
		{"other origin", url.Values{"csrf": {csrf}, "pow": {pow}}, []string{"Origin", "https://evil.example"}, 0, 403, english.m["err.csrf"]},
		{"no pow", url.Values{"csrf": {csrf}}, nil, 0, 422, english.m["pow.missing"]},
		{"garbage pow", url.Values{"csrf": {csrf}, "pow": {"bm9wZQ=="}}, nil, 0, 422, english.m["pow.invalid"]},
		{"short password", url.Values{"csrf": {csrf}, "pow": {pow}, "password": {"short"}, "password2": {"short"}}, nil, 0, 422, "at least 8"},
		{"mismatch", url.Values{"csrf": {csrf}, "pow": {pow}, "password2": {"other password"}}, nil, 0, 422, english.m["err.passwordMismatch"]},
		{"bad name", url.Values{"csrf": {csrf}, "pow": {pow}, "username": {"two words"}}, nil, 0, 422, "cannot be an account name"},
		{"wrong host", url.Values{"csrf": {csrf}, "pow": {pow}, "host": {"elsewhere.example"}}, nil, 0, 422, english.m["err.badHost"]},
		{"ok", url.Values{"csrf": {csrf}, "pow": {pow}}, nil, 0, 200, "Welcome"},
		{"replay", url.Values{"csrf": {csrf}, "pow": {pow}, "username": {"bob2"}}, nil, 0, 422, english.m["pow.replay"]},
	}
	for _, tc := range tests {
		f := account("bob", "correct horse")
		for k, v := range tc.fields {
			f[k] = v
		}
		e.clock.add(tc.wait)
		resp, page := e.post(c, "/register", f, tc.header...)
		if resp.StatusCode != tc.code || !strings.Contains(html.UnescapeString(page), tc.text) {
			t.Errorf("%s: %d, want %d with %q:\n%s", tc.name, resp.StatusCode, tc.code, tc.text, page)
		}
		if tc.code != 200 && strings.Contains(page, "Welcome") {
			t.Errorf("%s: an account was created", tc.name)
		}
	}
	if e.exists("bob2@localhost") {
		t.Error("the replayed proof of work created an account")
	}

	// Too fast, and too late.
	_, page = e.get(c, "/register")
	csrf, pow = e.formOf(page)
	f := account("carol", "correct horse")
	f.Set("csrf", csrf)
	f.Set("pow", pow)
	if resp, page := e.post(c, "/register", f); resp.StatusCode != 422 || !strings.Contains(page, english.m["pow.tooFast"]) {
		t.Errorf("sent at once: %d\n%s", resp.StatusCode, page)
	}
	e.clock.add(time.Duration(Defaults.PoW.Expiry) + time.Second)
	if resp, page := e.post(c, "/register", f); resp.StatusCode != 422 || !strings.Contains(page, english.m["pow.expired"]) {
		t.Errorf("sent after expiry: %d\n%s", resp.StatusCode, page)
	}
	if e.exists("carol@localhost") {
		t.Error("carol was created")
	}
}

func TestInvitationPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeInvite, nil)
	c := e.browser()
	if _, page := e.get(c, "/register"); !strings.Contains(page, "by invitation only") || strings.Contains(page, "<form") {
		t.Errorf("invite-only sign-up page shows a form:\n%s", page)
	}
	e.srv.AddUser("romeo@localhost", "romeo's password")
	var tok string
	for _, cmd := range e.srv.Srv.AdminCommands() {
		if cmd.Name == "invite.create" {
			res, err := cmd.Run(e.srv.Ctx, map[string]string{"contact": "romeo@localhost"})
			if err != nil {
				t.Fatal(err)
			}
			_, tok, _ = strings.Cut(res.Lines[0], "/invite/")
		}
	}
	resp, page := e.get(c, "/invite/"+tok)
	if resp.StatusCode != 200 || !strings.Contains(page, "romeo invited you") ||
		!strings.Contains(page, `href="xmpp:romeo@localhost?roster;preauth=`+tok+`;ibr=y"`) ||
		!strings.Contains(page, "/register?t="+tok) {
		t.Fatalf("landing page = %d:\n%s", resp.StatusCode, page)
	}
	if l := resp.Header.Get("Link"); !strings.Contains(l, "xmpp:romeo@localhost") {
		t.Errorf("Link = %q", l)
	}
	for _, bad := range []string{"/invite/" + invite.NewToken(), "/invite/short"} {
		if resp, _ := e.get(c, bad); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", bad, resp.StatusCode)
		}
	}
	// Android visitors see Android apps first.
	req, _ := http.NewRequest("GET", e.http.URL+"/invite/"+tok, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36")
	r2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if !strings.Contains(string(b), "Suggested for Android") {
		t.Errorf("no Android suggestion for an Android visitor")
	}

	resp, page = e.signUp(c, "?t="+tok, account("juliet", "correct horse"))
	if resp.StatusCode != 200 || !strings.Contains(page, "juliet@localhost") || !strings.Contains(page, "romeo@localhost is already in your contacts") {
		t.Fatalf("invited sign-up = %d:\n%s", resp.StatusCode, page)
	}
	if it, err := e.srv.Srv.Store().Roster().Get(e.srv.Ctx, "romeo@localhost", "juliet@localhost"); err != nil || it.Subscription != "both" {
		t.Errorf("romeo's roster item of juliet = %+v, %v; want both", it, err)
	}
	if resp, _ := e.get(c, "/invite/"+tok); resp.StatusCode != 404 {
		t.Errorf("a used invitation's page = %d, want 404", resp.StatusCode)
	}
	if _, page := e.get(c, "/register?t="+tok); !strings.Contains(page, english.m["signup.inviteInvalid"]) {
		t.Errorf("sign-up with a used invitation:\n%s", page)
	}
}

func TestResetPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeClosed, nil)
	e.srv.AddUser("romeo@localhost", "old password")
	var tok string
	for _, cmd := range e.srv.Srv.AdminCommands() {
		if cmd.Name == "invite.create" {
			res, err := cmd.Run(e.srv.Ctx, map[string]string{"reset": "romeo@localhost"})
			if err != nil {
				t.Fatal(err)
			}
			_, tok, _ = strings.Cut(res.Lines[0], "/reset/")
		}
	}
	c := e.browser()
	if resp, _ := e.get(c, "/invite/"+tok); resp.StatusCode != 404 {
		t.Errorf("a reset link as an invitation page = %d, want 404", resp.StatusCode)
	}
	resp, page := e.get(c, "/reset/"+tok)
	if resp.StatusCode != 200 || !strings.Contains(page, "romeo@localhost") {
		t.Fatalf("GET reset = %d\n%s", resp.StatusCode, page)
	}
	csrf := html.UnescapeString(reCSRF.FindStringSubmatch(page)[1])
	if resp, _ := e.post(c, "/reset/"+tok, url.Values{"password": {"new password"}, "password2": {"new password"}}); resp.StatusCode != 403 {
		t.Errorf("reset without CSRF token = %d, want 403", resp.StatusCode)
	}
	resp, page = e.post(c, "/reset/"+tok, url.Values{"csrf": {csrf}, "password": {"new password"}, "password2": {"new password"}})
	if resp.StatusCode != 200 || !strings.Contains(page, "was changed") {
		t.Fatalf("POST reset = %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := e.get(c, "/reset/"+tok); resp.StatusCode != 404 {
		t.Errorf("a used reset link = %d, want 404", resp.StatusCode)
	}
}

func TestClosedAndHome(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeClosed, func(c *Config) { c.SiteName = "Example Chat" })
	c := e.browser()
	if resp, page := e.get(c, "/"); resp.StatusCode != 200 || !strings.Contains(page, "Chat on Example Chat") || strings.Contains(page, "/register\"") {
		t.Errorf("home = %d\n%s", resp.StatusCode, page)
	}
	if _, page := e.get(c, "/register"); !strings.Contains(page, "does not take new accounts") || strings.Contains(page, "<form") {
		t.Errorf("closed sign-up page:\n%s", page)
	}
	if resp, _ := e.get(c, "/nothing/here"); resp.StatusCode != 404 {
		t.Errorf("unknown page = %d", resp.StatusCode)
	}
	if resp, body := e.get(c, "/static/pow.js"); resp.StatusCode != 200 || !strings.Contains(body, "sha256") {
		t.Errorf("pow.js = %d", resp.StatusCode)
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	nets, err := parseNets([]string{"10.0.0.0/8", "::1", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	p := proxies{nets: nets}
	tests := []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:1234", "", "192.0.2.1"},
		{"192.0.2.1:1234", "198.51.100.9", "192.0.2.1"},              // not a proxy: header ignored
		{"127.0.0.1:1234", "198.51.100.9", "198.51.100.9"},           // one trusted proxy
		{"127.0.0.1:1234", "6.6.6.6, 198.51.100.9", "198.51.100.9"},  // forged left part ignored
		{"127.0.0.1:1234", "198.51.100.9, 10.1.2.3", "198.51.100.9"}, // two proxies
		{"127.0.0.1:1234", "10.1.2.3", "10.1.2.3"},                   // only proxies
		{"127.0.0.1:1234", "garbage, 10.1.2.3", "10.1.2.3"},
		{"[::1]:1234", "[2001:db8::7]:443", "2001:db8::7"},
		{"[::ffff:127.0.0.1]:1234", "::ffff:198.51.100.9", "198.51.100.9"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := p.clientIP(r); got != netip.MustParseAddr(tc.want) {
			t.Errorf("clientIP(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.1:1"
	r.Header.Set("X-Forwarded-Proto", "https")
	if p.secure(r) {
		t.Errorf("X-Forwarded-Proto believed from an untrusted peer")
	}
	r.RemoteAddr = "10.0.0.1:1"
	if !p.secure(r) {
		t.Errorf("X-Forwarded-Proto not believed from a trusted proxy")
	}
}

func TestPublicURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Listen: "127.0.0.1:5281"}, "http://127.0.0.1:5281"},
		{Config{Listen: "[::]:443", TLS: true}, "https://localhost:443"},
		{Config{Listen: "127.0.0.1:5281", PublicURL: "https://chat.example.org/web/"}, "https://chat.example.org/web"},
	}
	for _, tc := range tests {
		if got := PublicURLOf(tc.cfg); got != tc.want {
			t.Errorf("PublicURLOf(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
	}
	for _, bad := range []Config{{Listen: "nope"}, {PublicURL: "ftp://x"}, {PublicURL: "https://x/?q=1"}, {TrustedProxies: []string{"10.0.0.0/33"}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) passed", bad)
		}
	}
}

// TestPathPrefix: a public URL with a path serves the pages under it.
func TestPathPrefix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeOpen, func(c *Config) { c.PublicURL = "https://chat.example.org/join" })
	c := e.browser()
	resp, page := e.get(c, "/join/register")
	if resp.StatusCode != 200 || !strings.Contains(page, `action="/join/register"`) || !strings.Contains(page, `src="/join/static/pow.js"`) {
		t.Errorf("GET /join/register = %d\n%s", resp.StatusCode, page)
	}
}

func TestPlatforms(t *testing.T) {
	t.Parallel()
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Linux; Android 14; Pixel 8)":               "android",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)": "ios",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)":           "macos",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64)":              "windows",
		"Mozilla/5.0 (X11; Linux x86_64)":                        "linux",
		"curl/8.0":                                               "",
	} {
		if got := platformOf(ua); got != want {
			t.Errorf("platformOf(%q) = %q, want %q", ua, got, want)
		}
	}
	for _, a := range apps {
		for _, p := range a.Platforms {
			if english.m["platform."+p] == "" {
				t.Errorf("app %s: platform %q has no name in the catalog", a.Name, p)
			}
		}
	}
}

// TestCatalogComplete: every key the templates and the code use exists.
func TestCatalogComplete(t *testing.T) {
	t.Parallel()
	reTpl := regexp.MustCompile(`\{\{[^}]*?\bt "([a-zA-Z0-9.]+)"`)
	reGo := regexp.MustCompile(`\.T\("([a-zA-Z0-9.]+)"|"(pow\.[a-zA-Z0-9]+)"`)
	used := map[string]bool{}
	err := fs.WalkDir(templateFiles, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFiles, path)
		for _, m := range reTpl.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range reGo.FindAllStringSubmatch(string(b), -1) {
			for _, k := range m[1:] {
				if k != "" {
					used[k] = true
				}
			}
		}
	}
	if len(used) < 30 {
		t.Fatalf("found only %d keys in use; the scan is broken", len(used))
	}
	for k := range used {
		if _, ok := english.m[k]; !ok {
			t.Errorf("message %q is used but not in the catalog", k)
		}
	}
	for _, p := range platforms {
		used["platform."+p] = true
	}
	for k := range english.m {
		if !used[k] {
			t.Errorf("message %q is in the catalog but unused", k)
		}
	}
}

// TestTLSListener: with tls = true the listener serves HTTPS with the
// certificate store, marks the connection secure (HSTS, Secure cookie),
// and Shutdown stops it.
func TestTLSListener(t *testing.T) {
	t.Parallel()
	files, err := certs.GenerateDev(t.TempDir(), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := certs.Load([]certs.Pair{{Cert: files.Cert, Key: files.Key}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, ModeOpen, nil)
	cfg := Defaults
	cfg.Listen, cfg.TLS = "127.0.0.1:0", true
	w, err := New(Options{Config: cfg, Server: e.srv.Srv, Certs: cs, Secret: []byte("another secret of enough length!"), Mode: func(string) string { return ModeOpen }})
	if err == nil {
		err = w.Listen()
	}
	if err != nil {
		// newEnv's web server registered the metrics on the same
		// registry already: a second one shares them.
		t.Fatal(err)
	}
	w.Serve(t.Context())
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	resp, err := c.Get("https://" + w.Addr().String() + "/register")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" || !strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") {
		t.Errorf("HTTPS: %d, HSTS %q, cookie %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"), resp.Header.Get("Set-Cookie"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("https://" + w.Addr().String() + "/"); err == nil {
		t.Errorf("the listener still answers after Shutdown")
	}
}
