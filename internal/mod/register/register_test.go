package register

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/adminsock"
	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/limits"
	"stoa.im/stoa/internal/mod/presence"
	"stoa.im/stoa/internal/mod/roster"
	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/server/servertest"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// openStore opens a fresh SQLite store in a temporary directory.
func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testConfig is open registration with no CAPTCHA, no throttles and no
// new-account restriction: tests turn on what they check.
func testConfig() Config {
	c := Defaults
	c.Mode = ModeOpen
	c.Captcha.Kind = CaptchaNone
	c.Throttle = ThrottleConfig{
		IP: Limit{Period: cd(time.Hour)}, IPv424: Limit{Period: cd(time.Hour)}, IPv648: Limit{Period: cd(time.Hour)},
		IPv664: Limit{Period: cd(time.Hour)}, Global: Limit{Period: cd(time.Hour)},
		RefusedIP: Limit{Period: cd(time.Hour)}, RefusedNet: Limit{Period: cd(time.Hour)},
	}
	c.NewAccounts.Period = 0
	c.Notify.Mode = NotifyOff
	return c
}

func cd(d time.Duration) config.Duration { return config.Duration(d) }

func newEnv(t *testing.T, st store.Store, cfg Config) *servertest.Env {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return servertest.New(t, st, []server.Feature{roster.Feature, presence.Feature, Feature}, map[string]any{"register": cfg})
}

// reg registers name@localhost from ip through server.Register, as the
// web (no CAPTCHA unless values say so) would.
func reg(env *servertest.Env, name, ip string, values map[string]string) error {
	j, err := jid.New(name, "localhost", "")
	if err != nil {
		return err
	}
	if values == nil {
		values = map[string]string{}
	}
	return env.Srv.Register(env.Ctx, &server.Registration{
		JID: j, Password: "correct horse", IP: netip.MustParseAddr(ip), Method: "web", Values: values,
	})
}

// reason returns the refusal reason of err ("" for nil, "?" when err is
// not a refusal).
func reason(err error) string {
	if err == nil {
		return ""
	}
	var r *server.Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return "?" + err.Error()
}

func mustReg(t *testing.T, env *servertest.Env, name, ip string) {
	t.Helper()
	if err := reg(env, name, ip, nil); err != nil {
		t.Fatalf("registering %s from %s: %v", name, ip, err)
	}
}

func accounts(t *testing.T, env *servertest.Env) int {
	t.Helper()
	n, err := env.Srv.Store().Accounts().Count(env.Ctx, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode   string
		values map[string]string
		want   string // refusal reason, "" = created
	}{
		{ModeClosed, nil, "registration_closed"},
		{ModeClosed, map[string]string{ValueInvite: "account"}, "registration_closed"},
		{ModeInvite, nil, "registration_invite_only"},
		{ModeInvite, map[string]string{ValueInvite: "account"}, ""},
		{ModeApproval, nil, ""},
		{ModeOpen, nil, ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.mode, tc.values), func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Mode = tc.mode
			env := newEnv(t, openStore(t), cfg)
			err := reg(env, "alice", "192.0.2.1", tc.values)
			if got := reason(err); got != tc.want {
				t.Fatalf("Register in mode %s = %v (reason %q), want reason %q", tc.mode, err, got, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "localhost") {
				t.Errorf("refusal text %q does not name the host", err)
			}
			// The command line creates accounts whatever the mode.
			if err := env.Srv.CreateUser(env.Ctx, jid.MustParse("bob@localhost"), "pw", "cli"); err != nil {
				t.Errorf("CreateUser in mode %s: %v", tc.mode, err)
			}
		})
	}
}

// TestPerHostMode: [[register.hosts]] overrides the mode of one host.
func TestPerHostMode(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mode = ModeClosed
	cfg.Hosts = []HostConfig{{Host: "open.example", Mode: ModeOpen}}
	st := openStore(t)
	env := servertest.New(t, st, []server.Feature{Feature}, map[string]any{"register": cfg}, "localhost", "open.example")
	for host, want := range map[string]string{"localhost": "registration_closed", "open.example": ""} {
		err := env.Srv.Register(env.Ctx, &server.Registration{
			JID: jid.MustParse("carol@" + host), Password: "correct horse", IP: netip.MustParseAddr("192.0.2.9"), Method: "web",
		})
		if reason(err) != want {
			t.Errorf("%s: Register = %v, want reason %q", host, err, want)
		}
	}
}

// TestNameRefusals: each kind of refused name has its own reason and text.
func TestNameRefusals(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Names.Reserved = []string{"*official*"}
	env := newEnv(t, openStore(t), cfg)
	mustReg(t, env, "paypal", "192.0.2.1")
	tests := []struct {
		name, reason, text string
	}{
		{"paypal", "user_exists", `The name "paypal" is taken`},
		{"раураl", "name_lookalike", `looks too much like the existing account "paypal"`},
		{"paypa1", "name_lookalike", `looks too much like the existing account "paypal"`},
		{"admin", "name_reserved", `The name "admin" is reserved on localhost`},
		{"adm1n", "name_reserved", `(it looks like or matches "admin")`},
		{"webmaster", "name_reserved", "is reserved"},
		{"the-official-one", "name_reserved", `matches "*official*"`},
		{strings.Repeat("a", 65), "name_too_long", "at most 64"},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		err := reg(env, tc.name, "192.0.2.2", nil)
		if reason(err) != tc.reason || err == nil || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Register(%q) = %v (reason %q); want reason %q and a text containing %q", tc.name, err, reason(err), tc.reason, tc.text)
			continue
		}
		seen[err.Error()] = true
	}
	// Short password.
	err := env.Srv.Register(env.Ctx, &server.Registration{JID: jid.MustParse("dave@localhost"), Password: "short", IP: netip.MustParseAddr("192.0.2.3"), Method: "web"})
	if reason(err) != "password_too_short" || !strings.Contains(err.Error(), "at least 8") {
		t.Errorf("short password: %v", err)
	}
	if accounts(t, env) != 1 {
		t.Errorf("accounts = %d, want 1 (only paypal)", accounts(t, env))
	}
	// Every refusal is counted under its reason.
	if v := deniedCount(t, env, "name_reserved"); v != 4 {
		t.Errorf("stoa_policy_denied_total{policy=name_reserved} = %v, want 4", v)
	}
}

func deniedCount(t *testing.T, env *servertest.Env, policy string) float64 {
	t.Helper()
	mfs, err := env.Srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "stoa_policy_denied_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "policy" && l.GetValue() == policy {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestTombstonesEveryPath: a name deleted through any path (in-band,
// command line through the admin socket's code, an admin command, the
// web) is never issued again, nor its look-alikes, immediately and after
// a restart; the command line cannot recreate it either.
func TestTombstonesEveryPath(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	env := newEnv(t, st, testConfig())
	paths := []struct {
		name string
		del  func(j jid.JID) error
	}{
		{"inband", func(j jid.JID) error { return env.Srv.DeleteUser(env.Ctx, j, "inband") }},
		{"cli", func(j jid.JID) error {
			resp := adminsock.Exec(env.Ctx, env.Srv, adminsock.Request{Cmd: "user.del", Args: map[string]string{"jid": j.String()}})
			if !resp.OK {
				return errors.New(resp.Error)
			}
			return nil
		}},
		{"admin", func(j jid.JID) error { return env.Srv.DeleteUser(env.Ctx, j, "admin") }},
		{"web", func(j jid.JID) error { return env.Srv.DeleteUser(env.Ctx, j, "web") }},
	}
	for _, p := range paths {
		name := "user" + p.name
		mustReg(t, env, name, "192.0.2.1")
		// The check right before deletion must not leave a stale answer.
		if err := reg(env, name, "192.0.2.1", nil); reason(err) != "user_exists" {
			t.Fatalf("%s: second registration = %v", p.name, err)
		}
		if err := p.del(jid.MustParse(name + "@localhost")); err != nil {
			t.Fatalf("%s: deleting: %v", p.name, err)
		}
		err := reg(env, name, "192.0.2.1", nil)
		if reason(err) != "name_tombstoned" || !strings.Contains(err.Error(), "belonged to an account that was deleted") {
			t.Errorf("%s: re-registering the deleted name = %v", p.name, err)
		}
		look := name[:4] + "." + name[4:]
		err = reg(env, look, "192.0.2.1", nil)
		if reason(err) != "name_tombstoned" || !strings.Contains(err.Error(), "looks like") {
			t.Errorf("%s: registering the look-alike %q = %v", p.name, look, err)
		}
		err = env.Srv.CreateUser(env.Ctx, jid.MustParse(name+"@localhost"), "pw", "cli")
		if !errors.Is(err, server.ErrNameTaken) || !strings.Contains(err.Error(), "deleted") {
			t.Errorf("%s: CreateUser over the tombstone = %v", p.name, err)
		}
		ts, err := st.Registration().LookupName(env.Ctx, "localhost", policy.NameKey(name))
		if err != nil || ts.Via != p.name {
			t.Errorf("%s: tombstone = %+v, %v", p.name, ts, err)
		}
	}
	// After a restart (a new server over the same store) too.
	env2 := newEnv(t, st, testConfig())
	if err := reg(env2, "userinband", "192.0.2.1", nil); reason(err) != "name_tombstoned" {
		t.Errorf("after restart: %v", err)
	}
	// An admin can free a name on purpose.
	if r := runAdmin(t, env2, "register.untombstone", map[string]string{"jid": "userweb@localhost"}); !strings.Contains(r.Message, "may be registered again") {
		t.Errorf("untombstone: %+v", r)
	}
	mustReg(t, env2, "userweb", "192.0.2.1")
}

func runAdmin(t *testing.T, env *servertest.Env, name string, args map[string]string) server.AdminResult {
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

func TestTombstoneExpiry(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Names.TombstoneExpiry = cd(time.Nanosecond)
	env := newEnv(t, openStore(t), cfg)
	mustReg(t, env, "eve", "192.0.2.1")
	if err := env.Srv.DeleteUser(env.Ctx, jid.MustParse("eve@localhost"), "inband"); err != nil {
		t.Fatal(err)
	}
	// With an expiry, an expired tombstone frees the name.
	mustReg(t, env, "eve", "192.0.2.1")
}

// TestRefusalsKeepBudget: refused attempts never use the accounts budget
// of their address; a flood of refused attempts is throttled on its own.
func TestRefusalsKeepBudget(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Throttle.IP = Limit{Max: 2, Period: cd(time.Hour)}
	cfg.Throttle.RefusedIP = Limit{Max: 5, Period: cd(time.Hour)}
	env := newEnv(t, openStore(t), cfg)
	mustReg(t, env, "paypal", "198.51.100.1")
	// The honest user behind 192.0.2.7 picks taken, reserved and
	// look-alike names first.
	for _, n := range []string{"paypal", "admin", "раураl", "root"} {
		if err := reg(env, n, "192.0.2.7", nil); err == nil || strings.HasPrefix(reason(err), "registration_") {
			t.Fatalf("Register(%q) = %v, want a name refusal", n, err)
		}
	}
	// Both accounts of the budget are still there.
	mustReg(t, env, "honest1", "192.0.2.7")
	mustReg(t, env, "honest2", "192.0.2.7")
	err := reg(env, "honest3", "192.0.2.7", nil)
	if reason(err) != "registration_throttle_ip" || !strings.Contains(err.Error(), "from your address") || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("third account from one address = %v", err)
	}
	// A flood of refused attempts from another address: after 5 refusals
	// its attempts are refused outright, even with a good name.
	for i := range 5 {
		if err := reg(env, "admin", "192.0.2.99", nil); reason(err) != "name_reserved" {
			t.Fatalf("refused attempt %d = %v", i, err)
		}
	}
	err = reg(env, "goodname", "192.0.2.99", nil)
	if reason(err) != "registration_refused_ip" || !strings.Contains(err.Error(), "refused sign-up attempts") {
		t.Fatalf("after a flood of refusals = %v", err)
	}
	// Throttle refusals do not count as refused attempts: the first
	// address is still throttled for accounts, not for refusals.
	if err := reg(env, "admin", "192.0.2.7", nil); reason(err) != "registration_throttle_ip" {
		t.Errorf("throttled address = %v", err)
	}
}

// TestThrottleExact: concurrent sign-ups from many addresses over several
// networks create exactly what the limits allow.
func TestThrottleExact(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Throttle.IP = Limit{Max: 2, Period: cd(time.Hour)}
	cfg.Throttle.IPv424 = Limit{Max: 5, Period: cd(time.Hour)}
	cfg.Throttle.IPv664 = Limit{Max: 1, Period: cd(time.Hour)}
	cfg.Throttle.IPv648 = Limit{Max: 3, Period: cd(time.Hour)}
	cfg.Throttle.Global = Limit{Max: 1000, Period: cd(time.Hour)}
	env := newEnv(t, openStore(t), cfg)
	// 6 IPv4 networks × 4 addresses × 3 attempts, and 2 IPv6 /48s × 4 /64s × 2.
	var sources []string
	for n := range 6 {
		for a := range 4 {
			for range 3 {
				sources = append(sources, fmt.Sprintf("10.0.%d.%d", n, a+1))
			}
		}
	}
	for s := range 2 {
		for n := range 4 {
			for range 2 {
				sources = append(sources, fmt.Sprintf("2001:db8:%x:%x::1", s, n))
			}
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		others  []error
	)
	for i, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := reg(env, fmt.Sprintf("user%04d", i), src, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case !strings.HasPrefix(reason(err), "registration_throttle_"):
				others = append(others, err)
			}
		}()
	}
	wg.Wait()
	// IPv4: per network min(5, 4 addresses × min(2, 3)) = 5, × 6 = 30.
	// IPv6: per /48 min(3, 4 × min(1, 2)) = 3, × 2 = 6.
	if created != 36 || len(others) > 0 {
		t.Errorf("created %d accounts (other errors: %v); the limits allow exactly 36", created, others)
	}
	if n := accounts(t, env); n != created {
		t.Errorf("accounts in the store = %d, want %d", n, created)
	}
}

// TestThrottleSurvivesRestart: the account windows come back from the
// registration log, the refused-attempt windows from the throttle state.
func TestThrottleSurvivesRestart(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	cfg := testConfig()
	cfg.Throttle.IP = Limit{Max: 1, Period: cd(time.Hour)}
	cfg.Throttle.RefusedIP = Limit{Max: 2, Period: cd(time.Hour)}
	env := newEnv(t, st, cfg)
	mustReg(t, env, "first", "192.0.2.1")
	for range 2 {
		if err := reg(env, "root", "192.0.2.2", nil); reason(err) != "name_reserved" {
			t.Fatal(err)
		}
	}
	env.Srv.Stop() // saves the throttle state
	env2 := newEnv(t, st, cfg)
	if err := reg(env2, "second", "192.0.2.1", nil); reason(err) != "registration_throttle_ip" {
		t.Errorf("after restart, the address that created an account: %v", err)
	}
	if err := reg(env2, "third", "192.0.2.2", nil); reason(err) != "registration_refused_ip" {
		t.Errorf("after restart, the address with refused attempts: %v", err)
	}
	mustReg(t, env2, "fourth", "192.0.2.3")
}

func TestExemptAndGlobal(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Throttle.IP = Limit{Max: 1, Period: cd(time.Hour)}
	cfg.Throttle.Global = Limit{Max: 3, Period: cd(time.Hour)}
	cfg.Throttle.Exempt = []string{"192.0.2.0/24"}
	env := newEnv(t, openStore(t), cfg)
	// Loopback is not exempt by default.
	mustReg(t, env, "loop1", "127.0.0.1")
	if err := reg(env, "loop2", "127.0.0.1", nil); reason(err) != "registration_throttle_ip" {
		t.Errorf("second sign-up from loopback = %v", err)
	}
	// The exempt network skips the per-address limit, not the global one.
	mustReg(t, env, "ex1", "192.0.2.5")
	mustReg(t, env, "ex2", "192.0.2.5")
	err := reg(env, "ex3", "192.0.2.5", nil)
	if reason(err) != "registration_throttle_global" || !strings.Contains(err.Error(), "limit of new accounts") {
		t.Errorf("past the global cap = %v", err)
	}
}

// TestInvitedNotThrottled: an invited sign-up is not stopped by the
// throttles (nor asked a CAPTCHA) but counts in them.
func TestInvitedNotThrottled(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Throttle.IP = Limit{Max: 1, Period: cd(time.Hour)}
	env := newEnv(t, openStore(t), cfg)
	inv := map[string]string{ValueInvite: "account"}
	for _, n := range []string{"inv1", "inv2"} {
		if err := env.Srv.Register(env.Ctx, &server.Registration{JID: jid.MustParse(n + "@localhost"), Password: "correct horse",
			IP: netip.MustParseAddr("192.0.2.1"), Method: "inband", Invite: "tok", Values: inv}); err != nil {
			t.Fatalf("invited %s: %v", n, err)
		}
	}
	if err := reg(env, "plain", "192.0.2.1", nil); reason(err) != "registration_throttle_ip" {
		t.Errorf("uninvited sign-up after invited ones = %v", err)
	}
}

func TestCaptchaPolicy(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Captcha.Kind = CaptchaHashcash
	env := newEnv(t, openStore(t), cfg)
	inband := func(name string, values map[string]string) error {
		return env.Srv.Register(env.Ctx, &server.Registration{JID: jid.MustParse(name + "@localhost"), Password: "correct horse",
			IP: netip.MustParseAddr("192.0.2.1"), Method: "inband", Values: values})
	}
	for _, tc := range []struct {
		values map[string]string
		want   string
	}{
		{nil, "captcha_missing"},
		{map[string]string{ValueCaptcha: captchaWrong}, "captcha_wrong"},
		{map[string]string{ValueCaptcha: captchaExpired}, "captcha_expired"},
		{map[string]string{ValueCaptcha: captchaSolved}, ""},
	} {
		if err := inband(fmt.Sprintf("c%d", len(tc.want)), tc.values); reason(err) != tc.want {
			t.Errorf("values %v: %v, want reason %q", tc.values, err, tc.want)
		}
	}
	// The web does its own proof of work; a failed one is refused through
	// the same policy.
	if err := reg(env, "webfail", "192.0.2.1", map[string]string{ValueCaptcha: captchaWrong}); reason(err) != "captcha_wrong" {
		t.Errorf("web with a failed proof: %v", err)
	}
	mustReg(t, env, "webok", "192.0.2.1")
}

// solveHashcash finds an answer to a hashcash challenge.
func solveHashcash(prefix string, bits int, label uint64) string {
	mask := uint64(1)<<bits - 1
	for i := 0; ; i++ {
		s := prefix + strconv.Itoa(i)
		sum := sha256.Sum256([]byte(s))
		if binary.BigEndian.Uint64(sum[24:])&mask == label {
			return s
		}
	}
}

func TestCaptchas(t *testing.T) {
	t.Parallel()
	now := time.Now()
	caps := newCaptchas(CaptchaConfig{Expiry: cd(time.Minute), MaxPending: 100, ImageLength: 5}, func() time.Time { return now })
	c1, c2 := &server.ConnInfo{ID: "1"}, &server.ConnInfo{ID: "2"}
	sub := func(id string, fields ...string) *form.Form {
		f := form.New(form.TypeSubmit, "").Hidden("FORM_TYPE", nsRegister).Hidden("challenge", id)
		for i := 0; i+1 < len(fields); i += 2 {
			f.Add(form.Field{Var: fields[i], Values: []string{fields[i+1]}})
		}
		return f
	}
	ch, err := caps.issue("localhost", c1, CaptchaBoth, 12)
	if err != nil {
		t.Fatal(err)
	}
	if ch.label < 1<<11 || ch.label >= 1<<12 || len(ch.ocr) != 5 || len(ch.png) < 100 || !strings.HasPrefix(ch.cid, "sha1+") {
		t.Fatalf("challenge = label %x, ocr %q, %d bytes of PNG, cid %q", ch.label, ch.ocr, len(ch.png), ch.cid)
	}
	if img, ok := caps.image(ch.cid); !ok || len(img) != len(ch.png) {
		t.Errorf("image(cid) = %d bytes, %v", len(img), ok)
	}
	answer := solveHashcash("localhost", 12, ch.label)
	// Another connection cannot use the challenge.
	if o, _ := caps.check(c2, sub(ch.id, "SHA-256", answer)); o != captchaExpired {
		t.Errorf("other connection: %s", o)
	}
	if o, _ := caps.check(c1, sub(ch.id)); o != captchaMissing {
		t.Errorf("no answer: %s", o)
	}
	if o, _ := caps.check(c1, sub(ch.id, "SHA-256", "otherhost"+answer[len("localhost"):])); o != captchaWrong {
		t.Errorf("answer without the host prefix: %s", o)
	}
	// A wrong answer used the challenge up.
	if o, _ := caps.check(c1, sub(ch.id, "SHA-256", answer)); o != captchaExpired {
		t.Errorf("after a wrong answer: %s", o)
	}
	ch, _ = caps.issue("localhost", c1, CaptchaBoth, 12)
	answer = solveHashcash("localhost", 12, ch.label)
	if o, _ := caps.check(c1, sub(ch.id, "SHA-256", answer)); o != captchaSolved {
		t.Errorf("right hashcash: %s", o)
	}
	// A solved challenge covers a few more attempts on its connection.
	for i := 1; i < maxSolvedUses; i++ {
		if o, _ := caps.check(c1, sub(ch.id)); o != captchaSolved {
			t.Errorf("reuse %d: %s", i, o)
		}
	}
	if o, _ := caps.check(c1, sub(ch.id)); o != captchaExpired {
		t.Errorf("reuse past the limit: %s", o)
	}
	// The image, case- and space-insensitive.
	ch, _ = caps.issue("localhost", c2, CaptchaImage, 12)
	if ch.label != 0 {
		t.Errorf("image-only challenge has a hashcash label")
	}
	spaced := strings.ToLower(ch.ocr[:2]) + " " + ch.ocr[2:]
	if o, _ := caps.check(c2, sub(ch.id, "ocr", spaced)); o != captchaSolved {
		t.Errorf("right image answer %q: %s", spaced, o)
	}
	// Expiry.
	ch, _ = caps.issue("localhost", c1, CaptchaHashcash, 12)
	now = now.Add(2 * time.Minute)
	if o, _ := caps.check(c1, sub(ch.id, "SHA-256", solveHashcash("localhost", 12, ch.label))); o != captchaExpired {
		t.Errorf("expired: %s", o)
	}
	if caps.pending() != 0 {
		t.Errorf("pending after expiry = %d", caps.pending())
	}
}

// preAuth sends an IQ to the pre-authentication handler of ns as the c2s
// layer does, and returns the result payload or the stanza error.
func preAuth(t *testing.T, env *servertest.Env, c *server.ConnInfo, ns, body string) (*xml.Element, *stanza.Error) {
	t.Helper()
	iq := servertest.Parse(t, body)
	h := env.Srv.PreAuthIQ(ns)
	if h == nil {
		t.Fatalf("no pre-authentication handler for %s", ns)
	}
	res, err := h(env.Ctx, c, iq)
	if err != nil {
		var se *stanza.Error
		if !errors.As(err, &se) {
			t.Fatalf("pre-auth handler: %v", err)
		}
		return nil, se
	}
	return res, nil
}

func conn(ip string, tls bool) *server.ConnInfo {
	return &server.ConnInfo{ID: "s1", Host: "localhost", TLS: tls, Remote: netip.AddrPortFrom(netip.MustParseAddr(ip), 40000), Transport: "c2s"}
}

// TestInband drives XEP-0077 with a XEP-0158 hashcash CAPTCHA through the
// pre-authentication handlers.
func TestInband(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Captcha.Kind = CaptchaBoth
	cfg.Captcha.HashcashBits = 10
	env := newEnv(t, openStore(t), cfg)
	c := conn("192.0.2.10", true)

	// The stream feature is offered over TLS only.
	if fs := env.Srv.PreAuthFeatures(c); len(fs) != 1 || fs[0].Space != nsFeature {
		t.Errorf("features over TLS = %v", fs)
	}
	if fs := env.Srv.PreAuthFeatures(conn("192.0.2.10", false)); len(fs) != 0 {
		t.Errorf("features without TLS = %v", fs)
	}
	if _, se := preAuth(t, env, conn("192.0.2.10", false), nsRegister, `<iq type='get' id='g0'><query xmlns='jabber:iq:register'/></iq>`); se == nil || se.Condition != stanza.PolicyViolation {
		t.Errorf("get without TLS: %v", se)
	}

	q, se := preAuth(t, env, c, nsRegister, `<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>`)
	if se != nil {
		t.Fatalf("get: %v", se)
	}
	fm, err := form.Find(q)
	if err != nil || fm == nil || fm.FormType() != nsRegister {
		t.Fatalf("form: %v, %v", fm, err)
	}
	for _, v := range []string{"username", "password", "challenge", "SHA-256", "ocr", "from", "sid"} {
		if !fm.Has(v) {
			t.Errorf("the form has no %s field", v)
		}
	}
	if fm.Value("sid") != "g1" || fm.Value("from") != "localhost" {
		t.Errorf("sid %q, from %q", fm.Value("sid"), fm.Value("from"))
	}
	data := q.Child(nsBoB, "data")
	if data == nil || data.Attr("type") != "image/png" {
		t.Fatalf("no inline image: %s", q)
	}
	// The image is also served on request (XEP-0231).
	img, se := preAuth(t, env, c, nsBoB, `<iq type='get' id='b1'><data xmlns='urn:xmpp:bob' cid='`+data.Attr("cid")+`'/></iq>`)
	if se != nil || img.Text != data.Text {
		t.Errorf("BoB get: %v", se)
	}
	var media *xml.Element
	for _, fl := range q.Child(form.NS, "x").Elements() {
		if fl.Attr("var") == "ocr" {
			media = fl.Child(nsMedia, "media")
		}
	}
	if media == nil || media.ChildText(nsMedia, "uri") != "cid:"+data.Attr("cid") {
		t.Errorf("the ocr field has no media element pointing at the image")
	}
	label, err := strconv.ParseUint(fm.Field("SHA-256").Label, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	submit := func(user, pass, challenge, answer string) *stanza.Error {
		_, se := preAuth(t, env, c, nsRegister, fmt.Sprintf(`<iq type='set' id='s1'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>
<field var='FORM_TYPE'><value>jabber:iq:register</value></field><field var='challenge'><value>%s</value></field>
<field var='SHA-256'><value>%s</value></field><field var='username'><value>%s</value></field><field var='password'><value>%s</value></field></x></query></iq>`,
			challenge, answer, user, pass))
		return se
	}
	// No CAPTCHA answer.
	if se := submit("bob", "correct horse", fm.Value("challenge"), ""); se == nil || !strings.Contains(se.Text, "CAPTCHA") {
		t.Errorf("no answer: %v", se)
	}
	answer := solveHashcash("localhost", 10, label)
	// A reserved name, CAPTCHA solved: refused with conflict and text; the
	// solved challenge still covers the next try.
	if se := submit("admin", "correct horse", fm.Value("challenge"), answer); se == nil || se.Condition != stanza.Conflict || !strings.Contains(se.Text, "reserved") {
		t.Errorf("reserved name: %v", se)
	}
	if se := submit("bob", "correct horse", fm.Value("challenge"), answer); se != nil {
		t.Fatalf("sign-up: %v", se)
	}
	if _, err := env.Srv.Store().Accounts().Get(env.Ctx, "bob@localhost"); err != nil {
		t.Fatalf("bob was not created: %v", err)
	}
	// Legacy fields without the form: CAPTCHA missing.
	if _, se := preAuth(t, env, c, nsRegister, `<iq type='set' id='s2'><query xmlns='jabber:iq:register'><username>carol</username><password>correct horse</password></query></iq>`); se == nil || se.Condition != stanza.NotAcceptable {
		t.Errorf("legacy submission without CAPTCHA: %v", se)
	}
	// Invalid names and missing fields are refused with their texts.
	if _, se := preAuth(t, env, c, nsRegister, `<iq type='set' id='s3'><query xmlns='jabber:iq:register'><username>a b</username><password>correct horse</password></query></iq>`); se == nil || !strings.Contains(se.Text, "account name") {
		t.Errorf("invalid name: %v", se)
	}
	if _, se := preAuth(t, env, c, nsRegister, `<iq type='set' id='s4'><query xmlns='jabber:iq:register'><username>dave</username></query></iq>`); se == nil || !strings.Contains(se.Text, "Password: required") {
		t.Errorf("missing password: %v", se)
	}
	if _, se := preAuth(t, env, c, nsRegister, `<iq type='set' id='s5'><query xmlns='jabber:iq:register'><remove/></query></iq>`); se == nil || se.Condition != stanza.RegistrationRequired {
		t.Errorf("remove before login: %v", se)
	}
}

// TestInbandClosed: a closed host offers no feature and says why.
func TestInbandClosed(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mode = ModeClosed
	env := newEnv(t, openStore(t), cfg)
	c := conn("192.0.2.10", true)
	if fs := env.Srv.PreAuthFeatures(c); len(fs) != 0 {
		t.Errorf("features on a closed host = %v", fs)
	}
	_, se := preAuth(t, env, c, nsRegister, `<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>`)
	if se == nil || se.Condition != stanza.NotAllowed || !strings.Contains(se.Text, "closed") {
		t.Errorf("get on a closed host: %v", se)
	}
}

// TestThrottledNoFeature: a throttled source is not offered registration.
func TestThrottledNoFeature(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Throttle.IP = Limit{Max: 1, Period: cd(time.Hour)}
	env := newEnv(t, openStore(t), cfg)
	c := conn("192.0.2.11", true)
	if len(env.Srv.PreAuthFeatures(c)) != 1 {
		t.Fatal("no feature before any sign-up")
	}
	mustReg(t, env, "one", "192.0.2.11")
	if fs := env.Srv.PreAuthFeatures(c); len(fs) != 0 {
		t.Errorf("features after the address used its budget: %v", fs)
	}
	_, se := preAuth(t, env, c, nsRegister, `<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>`)
	if se == nil || se.Type != stanza.Wait || se.Condition != stanza.PolicyViolation {
		t.Errorf("get from a throttled address: %v", se)
	}
}

// TestPasswordChangeAndCancel: XEP-0077 §3.2 and §3.3 for a logged-in
// account, in any mode (here: closed).
func TestPasswordChangeAndCancel(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mode = ModeClosed
	st := openStore(t)
	env := newEnv(t, st, cfg)
	env.AddUser("alice@localhost", "old password")
	env.AddUser("mallory@localhost", "pw pw pw pw")
	alice := env.Bind("alice@localhost/phone")
	before, _ := st.Accounts().Get(env.Ctx, "alice@localhost")

	alice.SendXML(`<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>`)
	res := alice.Expect(servertest.Name("iq", "id", "r1"))
	if res.Attr("type") != "result" || res.Child(nsRegister, "query").Child(nsRegister, "registered") == nil {
		t.Errorf("get: %s", res)
	}
	alice.SendXML(`<iq type='set' id='p1' to='localhost'><query xmlns='jabber:iq:register'><username>alice</username><password>short</password></query></iq>`)
	if r := alice.Expect(servertest.Name("iq", "id", "p1")); r.Attr("type") != "error" || !strings.Contains(r.String(), "too short") {
		t.Errorf("short password: %s", r)
	}
	alice.SendXML(`<iq type='set' id='p2' to='localhost'><query xmlns='jabber:iq:register'><username>bob</username><password>new password</password></query></iq>`)
	if r := alice.Expect(servertest.Name("iq", "id", "p2")); r.Attr("type") != "error" {
		t.Errorf("other username: %s", r)
	}
	alice.SendXML(`<iq type='set' id='p3' to='localhost'><query xmlns='jabber:iq:register'><username>alice</username><password>new password</password></query></iq>`)
	if r := alice.Expect(servertest.Name("iq", "id", "p3")); r.Attr("type") != "result" {
		t.Fatalf("password change: %s", r)
	}
	after, _ := st.Accounts().Get(env.Ctx, "alice@localhost")
	if string(after.Credentials.SHA256.StoredKey) == string(before.Credentials.SHA256.StoredKey) {
		t.Errorf("the credentials did not change")
	}
	// Another account cannot cancel alice's registration.
	mallory := env.Bind("mallory@localhost/x")
	mallory.SendXML(`<iq type='set' id='m1' to='alice@localhost'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	if r := mallory.Expect(servertest.Name("iq", "id", "m1")); r.Attr("type") != "error" {
		t.Errorf("mallory removing alice: %s", r)
	}
	// Cancel: the result comes first, then the stream ends; the name is
	// tombstoned.
	alice.SendXML(`<iq type='set' id='c1'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	if r := alice.Expect(servertest.Name("iq", "id", "c1")); r.Attr("type") != "result" {
		t.Fatalf("cancel: %s", r)
	}
	if se, closed := alice.Closed(); !closed || se == nil || se.Condition != stanza.StreamNotAuthorized {
		t.Errorf("alice's stream after cancel: %v, %v", se, closed)
	}
	if _, err := st.Accounts().Get(env.Ctx, "alice@localhost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice still exists: %v", err)
	}
	if e, err := st.Registration().LookupName(env.Ctx, "localhost", policy.NameKey("alice")); err != nil || e.State != store.NameTombstone || e.Via != "inband" {
		t.Errorf("tombstone: %+v, %v", e, err)
	}
}

// restrictedEnv is a server with the limits feature enforcing the
// restricted state: restricted accounts may message 2 strangers and send
// 1 subscription request per hour, others 10.
func restrictedEnv(t *testing.T, cfg Config) *servertest.Env {
	t.Helper()
	lc := limits.Defaults
	lc.ExemptNetworks = nil // servertest sessions come from loopback
	lc.ExemptAdmins = false
	lc.Unsolicited = limits.UnsolicitedConfig{Messages: 10, Subscriptions: 10, RestrictedMessages: 2, RestrictedSubscriptions: 1}
	return servertest.New(t, openStore(t), []server.Feature{roster.Feature, presence.Feature, Feature, limits.Feature},
		map[string]any{"register": cfg, "limits": lc})
}

func isError(id string) func(*xml.Element) bool {
	return func(el *xml.Element) bool { return el.Attr("id") == id && el.Attr("type") == "error" }
}

// TestNewAccountRestriction: sign-ups are restricted accounts (limits
// feature: fewer strangers per hour); in approval mode until an admin
// approves, then for what remains of the period.
func TestNewAccountRestriction(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mode = ModeApproval
	cfg.NewAccounts = RestrictConfig{Period: cd(time.Hour)}
	env := restrictedEnv(t, cfg)
	for i := range 5 {
		env.AddUser(fmt.Sprintf("stranger%d@localhost", i), "pw pw pw pw")
		env.Bind(fmt.Sprintf("stranger%d@localhost/r", i)).SendXML(`<presence/>`)
	}
	mustReg(t, env, "newbie", "192.0.2.1")
	st, err := env.Srv.AccountState(env.Ctx, jid.MustParse("newbie@localhost"))
	if err != nil || st.Status != store.StatusRestricted || st.By != "registration" || !st.Expires.IsZero() {
		t.Fatalf("state after sign-up in approval mode = %+v, %v", st, err)
	}
	nb := env.Bind("newbie@localhost/r")
	for i := range 3 {
		nb.SendXML(fmt.Sprintf(`<message to='stranger%d@localhost' type='chat' id='s%d'><body>hi</body></message>`, i, i))
	}
	if r := nb.Expect(isError("s2")); !strings.Contains(r.String(), "restricted") {
		t.Errorf("third stranger: %s", r)
	}
	nb.ExpectNothing(isError("s0"))
	nb.ExpectNothing(isError("s1"))
	// Listed as pending; the admin approves; the period still runs.
	if r := runAdmin(t, env, "register.pending", nil); len(r.Lines) != 1 || !strings.Contains(r.Lines[0], "newbie@localhost") {
		t.Errorf("pending: %+v", r)
	}
	runAdmin(t, env, "register.approve", map[string]string{"jid": "newbie@localhost"})
	st, _ = env.Srv.AccountState(env.Ctx, jid.MustParse("newbie@localhost"))
	if st.Status != store.StatusRestricted || st.Expires.IsZero() || st.Expires.Sub(st.Since) != time.Hour {
		t.Errorf("state after approval within the period = %+v", st)
	}
	if r := runAdmin(t, env, "register.pending", nil); len(r.Lines) != 0 {
		t.Errorf("pending after approval: %+v", r)
	}
	for _, c := range env.Srv.AdminCommands() {
		if c.Name == "register.approve" {
			if _, err := c.Run(env.Ctx, map[string]string{"jid": "newbie@localhost"}); err == nil || !strings.Contains(err.Error(), "not waiting for approval") {
				t.Errorf("approving twice: %v", err)
			}
		}
	}
	nb.SendXML(`<message to='stranger3@localhost' type='chat' id='s3'><body>hi</body></message>`)
	nb.Expect(isError("s3"))
}

// TestApprovalLiftsRestriction: with no time-based restriction, approval
// makes the account active at once, for its live sessions too; open mode
// with a period restricts until the period ends.
func TestApprovalLiftsRestriction(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mode = ModeApproval
	env := restrictedEnv(t, cfg)
	for i := range 4 {
		env.AddUser(fmt.Sprintf("stranger%d@localhost", i), "pw pw pw pw")
		env.Bind(fmt.Sprintf("stranger%d@localhost/r", i)).SendXML(`<presence/>`)
	}
	mustReg(t, env, "newbie", "192.0.2.1")
	nb := env.Bind("newbie@localhost/r")
	for i := range 3 {
		nb.SendXML(fmt.Sprintf(`<message to='stranger%d@localhost' type='chat' id='a%d'><body>hi</body></message>`, i, i))
	}
	nb.Expect(isError("a2"))
	runAdmin(t, env, "register.approve", map[string]string{"jid": "newbie@localhost"})
	if st, _ := env.Srv.AccountState(env.Ctx, jid.MustParse("newbie@localhost")); st.Status != store.StatusActive {
		t.Errorf("state after approval = %+v", st)
	}
	nb.SendXML(`<message to='stranger3@localhost' type='chat' id='a3'><body>hi</body></message>`)
	nb.ExpectNothing(isError("a3"))

	cfg = testConfig()
	cfg.NewAccounts.Period = cd(time.Hour)
	env2 := restrictedEnv(t, cfg)
	mustReg(t, env2, "fresh", "192.0.2.1")
	st, _ := env2.Srv.AccountState(env2.Ctx, jid.MustParse("fresh@localhost"))
	if st.Status != store.StatusRestricted || st.Expires.Sub(st.Since) != time.Hour {
		t.Errorf("open mode with a period: state = %+v", st)
	}
}

// TestNotifyAndLog: watchers get a message per new account with its
// address, IP, method and invitation; the log keeps them.
func TestNotifyAndLog(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Notify = NotifyConfig{Mode: NotifyEach, Watchers: []string{"boss@localhost"}, Interval: cd(time.Hour)}
	env := newEnv(t, openStore(t), cfg)
	env.AddUser("boss@localhost", "pw pw pw pw")
	boss := env.Bind("boss@localhost/desk")
	boss.SendXML(`<presence/>`)
	if err := env.Srv.Register(env.Ctx, &server.Registration{JID: jid.MustParse("newbie@localhost"), Password: "correct horse",
		IP: netip.MustParseAddr("203.0.113.9"), Method: "web", Invite: "abcdefghijkl", Values: map[string]string{ValueInvite: "account"}}); err != nil {
		t.Fatal(err)
	}
	m := boss.Expect(servertest.Name("message", "from", "localhost"))
	body := m.ChildText("", "body")
	for _, want := range []string{"newbie@localhost", "203.0.113.9", "on the web", "invitation abcdef"} {
		if !strings.Contains(body, want) {
			t.Errorf("notification %q lacks %q", body, want)
		}
	}
	r := runAdmin(t, env, "register.log", map[string]string{"ip": "203.0.113.9"})
	if len(r.Lines) != 1 || !strings.Contains(r.Lines[0], "newbie@localhost") || !strings.Contains(r.Lines[0], "abcdefghijkl") {
		t.Errorf("register.log: %+v", r)
	}
}

func TestDigest(t *testing.T) {
	t.Parallel()
	env := newEnv(t, openStore(t), testConfig())
	env.AddUser("boss@localhost", "pw pw pw pw")
	boss := env.Bind("boss@localhost/desk")
	boss.SendXML(`<presence/>`)
	f := &feature{srv: env.Srv, log: env.Srv.Logger()}
	n := newNotifier(f, NotifyConfig{Mode: NotifyDigest, Watchers: []string{"boss@localhost"}})
	n.sendDigest(env.Ctx) // nothing queued: nothing sent
	for i := range 3 {
		n.registered(env.Ctx, store.RegistrationLogEntry{JID: fmt.Sprintf("u%d@localhost", i), Domain: "localhost", IP: "192.0.2.1", Method: "inband", At: time.Now()}, false)
	}
	boss.ExpectNothing(servertest.Name("message"))
	n.sendDigest(env.Ctx)
	m := boss.Expect(servertest.Name("message"))
	if body := m.ChildText("", "body"); !strings.HasPrefix(body, "3 new accounts") || !strings.Contains(body, "u2@localhost") {
		t.Errorf("digest: %q", body)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	bad := []Config{
		func() Config { c := Defaults; c.Hosts = []HostConfig{{Host: "x y"}}; return c }(),
		func() Config { c := Defaults; c.Hosts = []HostConfig{{Host: "a.example", Mode: "wide"}}; return c }(),
		func() Config { c := Defaults; c.Throttle.Exempt = []string{"nonsense"}; return c }(),
		func() Config { c := Defaults; c.Notify.Watchers = []string{"example.org"}; return c }(),
		func() Config { c := Defaults; c.Names.Reserved = []string{"with space"}; return c }(),
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d: no error", i)
		}
	}
	if err := Defaults.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if _, err := (Config{Hosts: []HostConfig{{Host: "other.example"}}}).resolve([]string{"localhost"}); err == nil {
		t.Errorf("an override for a host not served was accepted")
	}
}

// TestBackfill: accounts created before the name index existed (here:
// straight into the store) are indexed at start, so their look-alikes are
// refused and deleting them leaves a tombstone.
func TestBackfill(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	for _, j := range []string{"legacy@localhost", "l3gacy@localhost", "other@localhost"} {
		if err := st.Accounts().Create(context.Background(), j, store.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	env := newEnv(t, st, testConfig())
	// A small database is indexed before Start returns.
	if left, err := st.Registration().UnindexedAccounts(env.Ctx, "localhost", "", 10); err != nil || len(left) != 0 {
		t.Fatalf("unindexed after start: %v, %v", left, err)
	}
	if err := reg(env, "1egacy", "192.0.2.1", nil); reason(err) != "name_lookalike" {
		t.Errorf("look-alike of a backfilled account: %v", err)
	}
	if err := env.Srv.DeleteUser(env.Ctx, jid.MustParse("other@localhost"), "cli"); err != nil {
		t.Fatal(err)
	}
	if err := reg(env, "other", "192.0.2.1", nil); reason(err) != "name_tombstoned" {
		t.Errorf("re-registering a deleted backfilled account: %v", err)
	}
}
