// Command stoa-bench is stoa's load tool. It logs in many XMPP clients
// (STARTTLS or direct TLS; SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN; bind,
// initial presence, optionally the roster) against any server and runs
// scenarios: a login storm, an idle hold (the server's RSS per session),
// chat at a fixed rate and up to saturation (delivery latency from a time
// stamp in the body, lost messages), and presence fan-out to rosters of K
// mutual contacts. It prints a table and writes JSON with the machine, the
// settings and the versions; `stoa-bench report` puts several runs side
// by side with ratios. See docs/benchmarks.md.
//
// Usage:
//
//	stoa-bench [flags]                  run scenarios against one server
//	stoa-bench report [-o FILE] JSON... compare runs (first = stoa)
//	stoa-bench tsung LOGDIR             summarize a tsung run as JSON
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 {
		switch args[0] {
		case "report":
			return runReport(args[1:], stdout, stderr)
		case "tsung":
			return runTsung(args[1:], stdout, stderr)
		}
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	res, err := runBench(ctx, cfg, stderr)
	if res != nil {
		printResult(stdout, res)
		if cfg.Out != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(cfg.Out, append(b, '\n'), 0o644); werr != nil {
				fmt.Fprintln(stderr, "stoa-bench: writing the result:", werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "stoa-bench:", err)
		return 1
	}
	return 0
}

// Config is every setting of a run; it is written into the JSON result.
type Config struct {
	Server        string   `json:"server"`         // label: stoa, ejabberd, prosody, ...
	ServerVersion string   `json:"server_version"` // free text
	PID           int      `json:"pid"`            // server process for CPU and RSS (0: not sampled)
	Addr          string   `json:"addr"`
	Domain        string   `json:"domain"`
	TLS           string   `json:"tls"` // starttls | direct
	Mech          string   `json:"mech"`
	CA            string   `json:"ca,omitempty"`
	Sources       []string `json:"sources"`
	Users         int      `json:"users"`
	First         int      `json:"first"`
	UserPrefix    string   `json:"user_prefix"`
	PassPrefix    string   `json:"password_prefix"`
	Resource      string   `json:"resource"`
	Roster        bool     `json:"fetch_roster"`
	Scenarios     []string `json:"scenarios"`
	Timeout       Duration `json:"timeout"`

	Create            string `json:"create"` // none | stoa | ibr | prosodyctl | ejabberdctl
	CreateConcurrency int    `json:"create_concurrency"`
	StoaBin           string `json:"stoa_bin,omitempty"`
	StoaConfig        string `json:"stoa_config,omitempty"`
	StoaSocket        string `json:"stoa_socket,omitempty"`
	Keys              string `json:"key_cache,omitempty"`

	LoginConcurrency int      `json:"login_concurrency"`
	LoginRate        float64  `json:"login_rate"` // logins/s, 0 = as fast as the concurrency allows
	Settle           Duration `json:"settle"`

	MsgRate      float64  `json:"msg_rate_per_user"` // messages per second per user (fixed-rate chat)
	ChatDuration Duration `json:"chat_duration"`
	MsgSize      int      `json:"msg_body_bytes"`
	Drain        Duration `json:"drain"`

	SatStart    float64  `json:"saturation_start_rate"` // total messages/s of the first step
	SatFactor   float64  `json:"saturation_factor"`
	SatStep     Duration `json:"saturation_step"`
	SatMax      float64  `json:"saturation_max_rate"`
	SatHalfTime Duration `json:"saturation_half_duration"`

	Contacts         int      `json:"contacts"`               // K mutual contacts per user (ring)
	PresenceRate     float64  `json:"presence_rate_per_user"` // presence changes per second per user
	PresenceDuration Duration `json:"presence_duration"`

	CapacityBatch  int   `json:"capacity_batch"`
	CapacityMaxRSS int64 `json:"capacity_max_rss_bytes"`

	Out string `json:"-"`
}

// Duration is a time.Duration that reads and writes as "10s" in JSON.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
func (d Duration) String() string { return time.Duration(d).String() }
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Scenario names.
var allScenarios = []string{"accounts", "warmup", "rosters", "login", "idle", "chat", "presence", "saturation", "capacity"}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	c := Config{
		Timeout: Duration(30 * time.Second), Settle: Duration(10 * time.Second),
		ChatDuration: Duration(20 * time.Second), Drain: Duration(10 * time.Second),
		SatFactor: 1.5, SatStep: Duration(5 * time.Second), SatHalfTime: Duration(15 * time.Second),
		PresenceDuration: Duration(15 * time.Second),
	}
	fs := flag.NewFlagSet("stoa-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Server, "server", "stoa", "label of the server under test (stoa, ejabberd, prosody)")
	fs.StringVar(&c.ServerVersion, "server-version", "", "the server's version, as text for the report")
	fs.IntVar(&c.PID, "pid", 0, "the server's process id: its CPU time and RSS are read from /proc (0: not measured)")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:5222", "server address")
	fs.StringVar(&c.Domain, "domain", "localhost", "XMPP domain of the accounts")
	fs.StringVar(&c.TLS, "tls", "starttls", "starttls or direct (XEP-0368)")
	fs.StringVar(&c.Mech, "mech", mechSCRAM256, "SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN")
	fs.StringVar(&c.CA, "ca", "", "CA certificate to verify the server with (default: not verified)")
	src := fs.String("src", "127.0.0.1", "local addresses to connect from, comma-separated, or a range like 127.0.0.1-127.0.0.8 (each gives ~28k ports)")
	fs.IntVar(&c.Users, "users", 100, "number of accounts (and sessions)")
	fs.IntVar(&c.First, "first", 1, "index of the first account")
	fs.StringVar(&c.UserPrefix, "user-prefix", "user", "account names are PREFIX<index>")
	fs.StringVar(&c.PassPrefix, "password-prefix", "pass", "passwords are PREFIX<index>")
	fs.StringVar(&c.Resource, "resource", "bench", "resource to bind")
	fs.BoolVar(&c.Roster, "roster", true, "fetch the roster at login")
	scen := fs.String("scenarios", "login,idle,chat", "comma-separated, run in this order: "+strings.Join(allScenarios, ","))
	fs.Var(&c.Timeout, "timeout", "time one login may take")
	fs.StringVar(&c.Create, "create", "none", "create the accounts first: none, stoa (stoa user add), stoa-socket (the same request on stoa's admin socket), ibr (XEP-0077), prosodyctl, ejabberdctl")
	fs.IntVar(&c.CreateConcurrency, "create-concurrency", 4, "accounts created at the same time")
	fs.StringVar(&c.StoaBin, "stoa-bin", "stoa", "stoa binary for -create stoa")
	fs.StringVar(&c.StoaConfig, "stoa-config", "", "stoa configuration file for -create stoa (-c FILE)")
	fs.StringVar(&c.StoaSocket, "stoa-socket", "", "stoa's admin socket (DATA_DIR/stoa.sock) for -create stoa-socket")
	fs.StringVar(&c.Keys, "keys", "", "file caching SCRAM keys between runs (clients cache them after the first login)")
	fs.IntVar(&c.LoginConcurrency, "login-concurrency", 50, "logins in flight at once")
	fs.Float64Var(&c.LoginRate, "login-rate", 0, "logins started per second (0: as fast as login-concurrency allows)")
	fs.Var(&c.Settle, "settle", "idle: time to wait after the logins before reading the server's RSS")
	fs.Float64Var(&c.MsgRate, "msg-rate", 1, "chat: messages per second each user sends")
	fs.Var(&c.ChatDuration, "chat-duration", "chat: duration of the fixed-rate phase")
	fs.IntVar(&c.MsgSize, "msg-size", 64, "chat: bytes of padding in each body (after the stamp)")
	fs.Var(&c.Drain, "drain", "chat/presence: longest wait for stanzas in flight after sending stops")
	fs.Float64Var(&c.SatStart, "sat-start", 1000, "saturation: total messages/s of the first step")
	fs.Float64Var(&c.SatFactor, "sat-factor", 1.5, "saturation: rate factor between steps")
	fs.Var(&c.SatStep, "sat-step", "saturation: duration of each step")
	fs.Float64Var(&c.SatMax, "sat-max", 500000, "saturation: highest rate tried")
	fs.Var(&c.SatHalfTime, "sat-half", "saturation: duration of the run at half the saturation rate")
	fs.IntVar(&c.Contacts, "contacts", 10, "rosters/presence: mutual contacts per user (even; neighbours on a ring)")
	fs.Float64Var(&c.PresenceRate, "presence-rate", 0.2, "presence: presence changes per second per user")
	fs.Var(&c.PresenceDuration, "presence-duration", "presence: duration")
	fs.IntVar(&c.CapacityBatch, "capacity-batch", 5000, "capacity: sessions added between measurements")
	var maxRSS string
	fs.StringVar(&maxRSS, "capacity-max-rss", "8GiB", "capacity: stop when the server's RSS passes this")
	fs.StringVar(&c.Out, "o", "", "write the result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("stoa-bench: unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	if c.TLS != "starttls" && c.TLS != "direct" {
		return c, fmt.Errorf("stoa-bench: -tls must be starttls or direct")
	}
	switch c.Mech {
	case mechSCRAM256, mechSCRAM1, mechPlain:
	default:
		return c, fmt.Errorf("stoa-bench: -mech must be SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN")
	}
	switch c.Create {
	case "none", "stoa", "stoa-socket", "ibr", "prosodyctl", "ejabberdctl":
	default:
		return c, fmt.Errorf("stoa-bench: -create must be none, stoa, stoa-socket, ibr, prosodyctl or ejabberdctl")
	}
	if c.Users < 2 {
		return c, fmt.Errorf("stoa-bench: -users must be at least 2")
	}
	if c.Contacts%2 != 0 || c.Contacts >= c.Users {
		return c, fmt.Errorf("stoa-bench: -contacts must be even and less than -users")
	}
	var err error
	if c.CapacityMaxRSS, err = parseSize(maxRSS); err != nil {
		return c, err
	}
	if c.Sources, err = parseSources(*src); err != nil {
		return c, err
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		ok := false
		for _, a := range allScenarios {
			ok = ok || a == s
		}
		if !ok {
			return c, fmt.Errorf("stoa-bench: unknown scenario %q (known: %s)", s, strings.Join(allScenarios, ", "))
		}
		c.Scenarios = append(c.Scenarios, s)
	}
	return c, nil
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mul    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			var n int64
			if _, err := fmt.Sscan(v, &n); err != nil {
				return 0, fmt.Errorf("stoa-bench: bad size %q", s)
			}
			return n * u.mul, nil
		}
	}
	return 0, fmt.Errorf("stoa-bench: bad size %q", s)
}

// parseSources reads "a,b" or "a-b" (a range of IPv4 addresses).
func parseSources(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if lo, hi, ok := strings.Cut(part, "-"); ok {
			a, err1 := netip.ParseAddr(lo)
			b, err2 := netip.ParseAddr(hi)
			if err1 != nil || err2 != nil || !a.Is4() || !b.Is4() || b.Less(a) {
				return nil, fmt.Errorf("stoa-bench: bad address range %q", part)
			}
			for x := a; ; x = x.Next() {
				out = append(out, x.String())
				if x == b || len(out) > 1024 {
					break
				}
			}
			continue
		}
		if _, err := netip.ParseAddr(part); err != nil {
			return nil, fmt.Errorf("stoa-bench: bad source address %q", part)
		}
		out = append(out, part)
	}
	return out, nil
}

// raiseFileLimit lifts the open-files limit as far as allowed: every
// session is a socket.
func raiseFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	want := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return want.Cur
	}
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}
