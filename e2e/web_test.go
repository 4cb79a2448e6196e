package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The web tests drive Debian's Chromium (package chromium) with
// playwright-core from npm, pinned by web/package-lock.json and installed
// with `npm ci` into the user's cache directory (never a browser
// download: the script points playwright at /usr/bin/chromium).

const chromiumPath = "/usr/bin/chromium"

// requireBrowser returns the node_modules directory holding
// playwright-core, installing it when missing; it skips (or fails under
// STOA_REQUIRE_CLIENTS=1) when Chromium, node or npm is missing or the
// install fails.
func requireBrowser(t *testing.T) string {
	t.Helper()
	requireClient(t, "Chromium", "chromium", func() error {
		_, err := os.Stat(chromiumPath)
		return err
	})
	requireClient(t, "Node.js and npm", "nodejs npm", func() error {
		for _, b := range []string{"node", "npm"} {
			if _, err := exec.LookPath(b); err != nil {
				return err
			}
		}
		return nil
	})
	var dir string
	requireClient(t, "playwright-core (npm ci in e2e/web)", "nodejs npm", func() error {
		var err error
		dir, err = installNodeDeps()
		return err
	})
	return dir
}

// installNodeDeps runs `npm ci` for web/package-lock.json into a cache
// directory keyed by the lock file's hash, once.
func installNodeDeps() (string, error) {
	src, err := filepath.Abs("web")
	if err != nil {
		return "", err
	}
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	final := filepath.Join(cache, "stoa-e2e", "web-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(final, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "playwright-core", "package.json")); err == nil {
		return modules, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in a copy of %s: %v: %s", src, err, out)
	}
	// Another test process may have finished first: either copy is fine.
	if err := os.Rename(tmp, final); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, serr := os.Stat(modules); serr != nil {
			return "", fmt.Errorf("moving the installed modules into place: %w", err)
		}
	}
	return modules, nil
}

// browserRun is what web/signup.cjs reports.
type browserRun struct {
	Steps         []string `json:"steps"`
	ConsoleErrors []string `json:"consoleErrors"`
	NoJSHeading   string   `json:"noJSHeading"`
	NoJSAppHref   string   `json:"noJSAppHref"`
	NoJSForm      bool     `json:"noJSForm"`
	NoJSNote      string   `json:"noJSNote"`
	LandingTitle  string   `json:"landingTitle"`
	Heading       string   `json:"heading"`
	AppHref       string   `json:"appHref"`
	Suggested     string   `json:"suggested"`
	PowBefore     string   `json:"powStatusBefore"`
	ResultHeading string   `json:"resultHeading"`
	Alert         string   `json:"alert"`
	Address       string   `json:"address"`
	Focused       string   `json:"focused"`
}

// runBrowser runs web/signup.cjs on an invitation link.
func runBrowser(ctx context.Context, t *testing.T, modules, landing, username, password string) browserRun {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("web", "signup.cjs"))
	if err != nil {
		t.Fatal(err)
	}
	arg, _ := json.Marshal(map[string]any{
		"landing": landing, "username": username, "password": password,
		"chromium": chromiumPath, "timeoutMs": 60000,
	})
	cmd := exec.CommandContext(ctx, "node", script, string(arg))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("browser run for %s: %v\nstdout:\n%s\nstderr:\n%s", username, err, &stdout, &stderr)
	}
	var r browserRun
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &r); err != nil {
		t.Fatalf("browser output: %v\n%s", err, &stdout)
	}
	t.Logf("browser run for %s: %+v", username, r)
	return r
}

// inviteLink runs `stoa invite create` with args and returns the landing
// page URL it printed.
func (s *stoaServer) inviteLink(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.stoa(ctx, "", append([]string{"invite", "create"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "not running") {
		t.Fatalf("stoa invite create did not go through the running server: %s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "http://") {
			return strings.TrimSpace(l)
		}
	}
	t.Fatalf("stoa invite create printed no link:\n%s", out)
	return ""
}

// TestWebSignupWithInvitation is the invitation and web sign-up story in
// a real browser, on a server in invite-only mode: an admin creates a
// contact invitation of romeo with `stoa invite create`; Juliet opens the
// link (first without JavaScript: the page still works), follows the web
// sign-up, the page's script solves the proof of work, and the account is
// created; she logs in with a real client and finds romeo in her roster
// with a mutual subscription. A second person using another invitation
// picks the look-alike name "jul1et" and is refused with a reason naming
// the account it looks like; that invitation stays valid.
func TestWebSignupWithInvitation(t *testing.T) {
	t.Parallel()
	modules := requireBrowser(t)
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	web := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	srv := startServer(t, serverOptions{extra: fmt.Sprintf("[http]\nlisten = %q\n\n[register]\nmode = \"invite\"\n", web)})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	srv.addUser(t, "romeo", "romeo's password")
	first := srv.inviteLink(ctx, t, "--contact", "romeo@"+domain)
	second := srv.inviteLink(ctx, t)
	if !strings.HasPrefix(first, "http://"+web+"/invite/") {
		t.Fatalf("invitation link %q is not on the web listener %s", first, web)
	}

	r := runBrowser(ctx, t, modules, first, "juliet", "Juliet's good password")
	if r.NoJSHeading != "romeo invited you to chat" || !strings.HasPrefix(r.NoJSAppHref, "xmpp:romeo@localhost?roster;preauth=") {
		t.Errorf("landing page without JavaScript: heading %q, app link %q", r.NoJSHeading, r.NoJSAppHref)
	}
	if !r.NoJSForm || !strings.Contains(r.NoJSNote, "needs JavaScript") {
		t.Errorf("sign-up without JavaScript: form %v, note %q; want the form and a note on the proof of work", r.NoJSForm, r.NoJSNote)
	}
	if r.Heading != "romeo invited you to chat" || !strings.HasSuffix(r.AppHref, ";ibr=y") || r.Suggested != "Suggested for Linux" {
		t.Errorf("landing page: heading %q, app link %q, first suggestion %q", r.Heading, r.AppHref, r.Suggested)
	}
	if r.ResultHeading != "Welcome!" || !strings.Contains(r.Address, "juliet@localhost") || r.Alert != "" {
		t.Fatalf("sign-up: heading %q, address %q, alert %q; want the welcome page", r.ResultHeading, r.Address, r.Alert)
	}
	if len(r.ConsoleErrors) > 0 {
		t.Errorf("the browser console reported errors (CSP violations, script errors): %q", r.ConsoleErrors)
	}
	if !srv.logHas("account created on the web", "juliet@localhost") {
		t.Errorf("the server did not log the web sign-up")
	}

	// Juliet logs in with a real client; romeo is her contact both ways.
	juliet := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "juliet", password: "Juliet's good password"})
	items, err := fetchRoster(ctx, juliet)
	if err != nil {
		t.Fatal(err)
	}
	if items["romeo@localhost"] != "both" {
		t.Errorf("juliet's roster = %v, want romeo@localhost with subscription both", items)
	}

	// A look-alike of juliet is refused with a reason, in the browser.
	r = runBrowser(ctx, t, modules, second, "jul1et", "another good password")
	if r.ResultHeading == "Welcome!" || !strings.Contains(r.Alert, "looks too much like") || !strings.Contains(r.Alert, "juliet") {
		t.Fatalf("look-alike sign-up: heading %q, alert %q; want a refusal naming juliet", r.ResultHeading, r.Alert)
	}
	if r.Focused != "errors" {
		t.Errorf("after the refusal the focus is on %q, want the error summary", r.Focused)
	}
	for _, e := range r.ConsoleErrors {
		// The refused form comes back with status 422, which Chromium
		// reports; anything else is a script or CSP error.
		if !strings.Contains(e, "status of 422") {
			t.Errorf("the browser console reported an error: %q", e)
		}
	}
	if !srv.logHas("registration refused", "jul1et@localhost", "method=web") {
		t.Errorf("the server did not log the refusal")
	}
	out, err := srv.stoa(ctx, "", "invite", "list")
	if err != nil {
		t.Fatal(err)
	}
	if tok := second[strings.LastIndex(second, "/")+1:]; !strings.Contains(out, tok) {
		t.Errorf("the invitation of the refused attempt is no longer valid:\n%s", out)
	}
	if _, err := dialMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "jul1et", password: "another good password"}); err == nil {
		t.Errorf("the look-alike account can log in")
	}
}

// TestInBandInvitation: XEP-0445 on a raw stream, in invite-only mode:
// the server offers urn:xmpp:ibr-token:0, refuses an unknown token and a
// sign-up without one, accepts the token and then the XEP-0077 sign-up
// without a CAPTCHA; the account logs in with a real client.
func TestInBandInvitation(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{extra: "[register]\nmode = \"invite\"\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := srv.stoa(ctx, "", "invite", "create", "--user", "mercutio")
	if err != nil {
		t.Fatal(err)
	}
	_, tok, ok := strings.Cut(out, "?register;preauth=")
	if !ok {
		t.Fatalf("no xmpp: link in:\n%s", out)
	}
	tok = strings.Fields(tok)[0]

	r, err := dialRaw(ctx, t, srv.starttls, false)
	if err != nil {
		t.Fatal(err)
	}
	r.reset()
	if err := r.send(streamHeader); err != nil {
		t.Fatal(err)
	}
	if err := r.readHeader(); err != nil {
		t.Fatal(err)
	}
	_, feats, err := r.next()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(feats), "urn:xmpp:ibr-token:0") {
		t.Errorf("the stream features do not offer XEP-0445: %s", feats)
	}
	exchange := func(iq string) string {
		t.Helper()
		if err := r.send(iq); err != nil {
			t.Fatal(err)
		}
		_, raw, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	const register = `<iq type='set' id='%s'><query xmlns='jabber:iq:register'><username>mercutio</username><password>a good password</password></query></iq>`
	if got := exchange(fmt.Sprintf(register, "r0")); !strings.Contains(got, "type=\"error\"") && !strings.Contains(got, "type='error'") {
		t.Fatalf("sign-up without a token: %s, want an error", got)
	}
	bad := exchange(`<iq type='set' id='p0'><preauth xmlns='urn:xmpp:pars:0' token='` + strings.Repeat("x", 24) + `'/></iq>`)
	if !strings.Contains(bad, "item-not-found") || !strings.Contains(bad, "invalid or expired") {
		t.Errorf("unknown token: %s, want item-not-found", bad)
	}
	if got := exchange(`<iq type='set' id='p1'><preauth xmlns='urn:xmpp:pars:0' token='` + tok + `'/></iq>`); strings.Contains(got, "error") {
		t.Fatalf("valid token refused: %s", got)
	}
	if got := exchange(fmt.Sprintf(register, "r1")); strings.Contains(got, "error") {
		t.Fatalf("sign-up with the token: %s", got)
	}
	mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "mercutio", password: "a good password"})
	if !srv.logHas("invitation used", "purpose=register", "jid=mercutio@localhost", "method=inband") {
		t.Errorf("the server did not log the use of the invitation")
	}
}
