package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// printResult writes the human-readable summary of one run.
func printResult(w io.Writer, r *Result) {
	s := r.Settings
	fmt.Fprintf(w, "\nstoa-bench: %s %s at %s (%s, %s, %d users from %d source addresses)\n", s.Server, s.ServerVersion, s.Addr, s.TLS, s.Mech, s.Users, len(s.Sources))
	fmt.Fprintf(w, "machine: %s, %d cores, %.0f GiB, Linux %s, %s, load %s\n\n", r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryGiB, r.Machine.Kernel, r.Machine.Go, r.Machine.LoadAvg)
	tw := func(k string, format string, args ...any) {
		fmt.Fprintf(w, "  %-34s %s\n", k, fmt.Sprintf(format, args...))
	}
	if a := r.Accounts; a != nil {
		tw("accounts ("+a.Method+")", "%d created, %d existed, %d failed, %.1fs", a.Created, a.Existing, a.Failed, a.Seconds)
	}
	if l := r.Login; l != nil {
		tw("login storm", "%d ok, %d failed, %.0f logins/s (concurrency %d)", l.OK, l.Failed, l.PerSecond, l.Concurrency)
		tw("  latency", "p50 %.1f ms, p99 %.1f ms, max %.1f ms", l.Latency.P50, l.Latency.P99, l.Latency.Max)
		tw("  server CPU", "%.2f ms per login (%.2f cores)", l.ServerCPUms, l.Usage.ServerCores)
		tw("  bench CPU", "%.2f cores (%.0f%% of the machine), %d client PBKDF2 runs", l.Usage.BenchCores, 100*l.Usage.BenchShare, l.ClientKDF)
	}
	if i := r.Idle; i != nil {
		tw("idle", "%d sessions, RSS %s before, %s after logins, %s after %.0fs", i.Sessions, mib(i.RSSBefore), mib(i.RSSAfterLogin), mib(i.RSSSettled), i.SettleSeconds)
		tw("  per session", "%.1f KB settled (%.1f KB right after the logins)", i.PerSessionSettled/1000, i.PerSessionLogin/1000)
	}
	printChat := func(name string, c *ChatResult) {
		tw(name, "%d senders, offered %.0f/s, sent %.0f/s, delivered %.0f/s, lost %d", c.Senders, c.Offered, c.SentRate, c.Delivered, c.Lost)
		tw("  latency", "p50 %.2f, p90 %.2f, p99 %.2f, max %.1f ms", c.Latency.P50, c.Latency.P90, c.Latency.P99, c.Latency.Max)
		tw("  server CPU", "%.1f µs per message (%.2f cores)", c.CPUPerMsgUs, c.Usage.ServerCores)
		tw("  bench CPU", "%.2f cores (%.0f%% of the machine)", c.Usage.BenchCores, 100*c.Usage.BenchShare)
	}
	if c := r.Chat; c != nil {
		printChat("chat (fixed rate)", c)
	}
	if p := r.Presence; p != nil {
		tw("presence", "%d contacts, %d changes, %d/%d broadcasts (%.0f/s), lost %d", p.Contacts, p.Changes, p.Received, p.Expected, p.Rate, p.Lost)
		tw("  latency", "p50 %.2f, p90 %.2f, p99 %.2f, max %.1f ms", p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.Max)
		tw("  server CPU", "%.1f µs per broadcast (%.2f cores)", p.CPUPerBcstUs, p.Usage.ServerCores)
	}
	if sr := r.Saturation; sr != nil {
		for _, st := range sr.Steps {
			tw("  step "+st.Label, "sent %.0f/s, delivered %.0f/s, p99 %.1f ms, lost %d, held %v, server %.2f cores, bench %.2f cores",
				st.SentRate, st.Delivered, st.Latency.P99, st.Lost, st.Held, st.Usage.ServerCores, st.Usage.BenchCores)
		}
		tw("saturation", "%.0f messages/s", sr.Saturation)
		if sr.Half != nil {
			printChat("half saturation", sr.Half)
		}
	}
	if c := r.Capacity; c != nil {
		tw("capacity", "%d of %d sessions; stopped by: %s", c.Sessions, c.Target, c.StoppedBy)
		for _, p := range c.Points {
			tw(fmt.Sprintf("  %d sessions", p.Sessions), "RSS %s, %.1f KB/session, %.0f logins/s", mib(p.RSS), p.PerSession/1000, p.LoginsPerS)
		}
	}
	if r.Disconnects > 0 {
		tw("unexpected disconnects", "%d (first: %s)", r.Disconnects, r.FirstClose)
	}
	fmt.Fprintln(w)
}

// TsungSummary is a tsung run reduced to the figures stoa-bench reports.
type TsungSummary struct {
	Server       string  `json:"server"`
	LogDir       string  `json:"log_dir"`
	Messages     int64   `json:"messages_timed"`
	LatencyMean  float64 `json:"latency_mean_ms"`
	LatencyMax   float64 `json:"latency_max_ms"`
	AuthMean     float64 `json:"login_mean_ms"`
	AuthCount    int64   `json:"logins"`
	ConnectMean  float64 `json:"connect_mean_ms"`
	Users        int64   `json:"users_max"`
	Errors       int64   `json:"errors"`
	ErrorKinds   string  `json:"error_kinds,omitempty"`
	ServerCPU    float64 `json:"server_cpu_seconds"`
	CPUPerMsgUs  float64 `json:"server_cpu_us_per_message"`
	WallSeconds  float64 `json:"wall_seconds"`
	MessagesRate float64 `json:"messages_per_second"`
}

// runTsung reads tsung.log of a run directory and prints the summary as JSON.
func runTsung(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stoa-bench tsung", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "server label")
	cpu := fs.Float64("cpu", 0, "server CPU seconds used during the run (measured by the caller)")
	wall := fs.Float64("wall", 0, "wall seconds of the run")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: stoa-bench tsung [-server NAME] [-cpu SECONDS] [-wall SECONDS] LOGDIR")
		return 2
	}
	s, err := parseTsung(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "stoa-bench:", err)
		return 1
	}
	s.Server, s.ServerCPU, s.WallSeconds = *server, *cpu, *wall
	if s.Messages > 0 && *cpu > 0 {
		s.CPUPerMsgUs = *cpu * 1e6 / float64(s.Messages)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return 0
}

func parseTsung(dir string) (*TsungSummary, error) {
	f, err := os.Open(filepath.Join(dir, "tsung.log"))
	if err != nil {
		return nil, fmt.Errorf("reading the tsung log: %w", err)
	}
	defer f.Close()
	s := &TsungSummary{LogDir: dir}
	var errKinds []string
	errTotals := map[string]int64{}
	var first, last int64
	var msgRateMax float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "# stats: dump at "); ok {
			t, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if first == 0 {
				first = t
			}
			last = t
			continue
		}
		rest, ok := strings.CutPrefix(line, "stats: ")
		if !ok {
			continue
		}
		fl := strings.Fields(rest)
		if len(fl) < 3 {
			continue
		}
		name := fl[0]
		num := func(i int) float64 {
			if i >= len(fl) {
				return 0
			}
			v, _ := strconv.ParseFloat(fl[i], 64)
			return v
		}
		switch {
		case len(fl) >= 8: // count mean stddev max min globalmean globalcount
			switch name {
			case "xmpp_msg_latency":
				s.LatencyMean, s.Messages = num(6), int64(num(7))
				s.LatencyMax = math.Max(s.LatencyMax, num(4))
				msgRateMax = math.Max(msgRateMax, num(1))
			case "tr_auth":
				s.AuthMean, s.AuthCount = num(6), int64(num(7))
			case "connect":
				s.ConnectMean = num(6)
			}
		case strings.HasPrefix(name, "error"):
			errTotals[name] = int64(num(2))
		case name == "users":
			s.Users = max(s.Users, int64(num(2)))
		}
	}
	for k, v := range errTotals {
		s.Errors += v
		errKinds = append(errKinds, fmt.Sprintf("%s=%d", k, v))
	}
	s.ErrorKinds = strings.Join(errKinds, " ")
	if last > first && s.Messages > 0 {
		s.MessagesRate = float64(s.Messages) / float64(last-first)
	}
	return s, sc.Err()
}

// figure is one row of the comparison table.
type figure struct {
	name   string
	unit   string
	higher bool // higher is better
	get    func(*Result) (float64, bool)
	target string  // e.g. "≥ 2× best peer"
	factor float64 // target ratio to the best peer (0: none)
	abs    func(v float64) (bool, string)
	// median: with interleaved rounds, the figure is the median over the
	// measured run and the rounds of the same server (figures that the
	// host's drifting speed moves: one login storm, one 20 s chat).
	median bool
}

func figures() []figure {
	return []figure{
		{name: "logins per second", unit: "/s", higher: true, factor: 2, target: "≥ 2× best peer", median: true,
			get: func(r *Result) (float64, bool) {
				return val(r.Login != nil, func() float64 { return r.Login.PerSecond })
			}},
		{name: "login latency p50", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Login != nil, func() float64 { return r.Login.Latency.P50 })
		}},
		{name: "login latency p99", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Login != nil, func() float64 { return r.Login.Latency.P99 })
		}},
		{name: "server CPU per login", unit: "ms", median: true, get: func(r *Result) (float64, bool) {
			return val(r.Login != nil && r.Login.Usage.ServerSampled, func() float64 { return r.Login.ServerCPUms })
		}},
		{name: "RSS per idle session, right after the logins", unit: "KB", get: func(r *Result) (float64, bool) {
			return val(r.Idle != nil && r.Idle.RSSBefore > 0, func() float64 { return r.Idle.PerSessionLogin / 1000 })
		}},
		{name: "RSS per idle session, settled", unit: "KB", factor: 0.5, target: "≤ ½ best peer",
			get: func(r *Result) (float64, bool) {
				return val(r.Idle != nil && r.Idle.RSSBefore > 0, func() float64 { return r.Idle.PerSessionSettled / 1000 })
			}},
		{name: "chat: offered rate", unit: "msg/s", higher: true, get: func(r *Result) (float64, bool) {
			return val(r.Chat != nil, func() float64 { return r.Chat.Offered })
		}},
		{name: "chat: server CPU per message", unit: "µs", factor: 1.0 / 3, target: "≤ ⅓ best peer", median: true, get: func(r *Result) (float64, bool) {
			return val(r.Chat != nil && r.Chat.Usage.ServerSampled, func() float64 { return r.Chat.CPUPerMsgUs })
		}},
		{name: "chat: latency p50", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Chat != nil, func() float64 { return r.Chat.Latency.P50 })
		}},
		{name: "chat: latency p90", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Chat != nil, func() float64 { return r.Chat.Latency.P90 })
		}},
		{name: "chat: latency p99", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Chat != nil, func() float64 { return r.Chat.Latency.P99 })
		}},
		{name: "chat: latency max", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Chat != nil, func() float64 { return r.Chat.Latency.Max })
		}},
		{name: "chat: lost messages", unit: "", get: func(r *Result) (float64, bool) {
			return val(r.Chat != nil, func() float64 { return float64(r.Chat.Lost) })
		},
			abs: func(v float64) (bool, string) { return v == 0, "0" }},
		{name: "presence: broadcasts per second", unit: "/s", higher: true, get: func(r *Result) (float64, bool) {
			return val(r.Presence != nil, func() float64 { return r.Presence.Rate })
		}},
		{name: "presence: server CPU per broadcast", unit: "µs", get: func(r *Result) (float64, bool) {
			return val(r.Presence != nil && r.Presence.Usage.ServerSampled, func() float64 { return r.Presence.CPUPerBcstUs })
		}},
		{name: "presence: latency p50", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Presence != nil, func() float64 { return r.Presence.Latency.P50 })
		}},
		{name: "presence: latency p99", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Presence != nil, func() float64 { return r.Presence.Latency.P99 })
		}},
		{name: "presence: lost broadcasts", unit: "", get: func(r *Result) (float64, bool) {
			return val(r.Presence != nil, func() float64 { return float64(r.Presence.Lost) })
		}, abs: func(v float64) (bool, string) { return v == 0, "0" }},
		{name: "chat saturation throughput", unit: "msg/s", higher: true, factor: 3, target: "≥ 3× best peer", get: func(r *Result) (float64, bool) {
			return val(r.Saturation != nil, func() float64 { return r.Saturation.Saturation })
		}},
		{name: "at half saturation: latency p99", unit: "ms", get: func(r *Result) (float64, bool) {
			return val(r.Saturation != nil && r.Saturation.Half != nil, func() float64 { return r.Saturation.Half.Latency.P99 })
		}, abs: func(v float64) (bool, string) { return v < 50, "< 50 ms (stoa)" }},
		{name: "at half saturation: lost messages", unit: "", get: func(r *Result) (float64, bool) {
			return val(r.Saturation != nil && r.Saturation.Half != nil, func() float64 { return float64(r.Saturation.Half.Lost) })
		}, abs: func(v float64) (bool, string) { return v == 0, "0" }},
		{name: "bench CPU share (max over phases)", unit: "%", get: func(r *Result) (float64, bool) {
			m := 0.0
			for _, u := range usages(r) {
				m = math.Max(m, u.BenchShare*100)
			}
			return m, m > 0
		}},
	}
}

func usages(r *Result) []Usage {
	var u []Usage
	if r.Login != nil {
		u = append(u, r.Login.Usage)
	}
	if r.Chat != nil {
		u = append(u, r.Chat.Usage)
	}
	if r.Presence != nil {
		u = append(u, r.Presence.Usage)
	}
	if r.Saturation != nil {
		for _, s := range r.Saturation.Steps {
			u = append(u, s.Usage)
		}
		if r.Saturation.Half != nil {
			u = append(u, r.Saturation.Half.Usage)
		}
	}
	return u
}

func val(ok bool, f func() float64) (float64, bool) {
	if !ok {
		return 0, false
	}
	return f(), true
}

// runReport compares result files: the first is stoa, the others its peers.
func runReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stoa-bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "also write the Markdown table to this file")
	var tsungFiles multiFlag
	fs.Var(&tsungFiles, "tsung", "a summary written by 'stoa-bench tsung' (repeatable)")
	var roundFiles multiFlag
	fs.Var(&roundFiles, "round", "a result of an interleaved round (login storm and chat; repeatable, any server, in round order)")
	if err := fs.Parse(args); err != nil || fs.NArg() < 1 {
		fmt.Fprintln(stderr, "usage: stoa-bench report [-o FILE] [-tsung FILE]... [-round FILE]... STOA.json PEER.json...")
		return 2
	}
	read := func(p string) (*Result, bool) {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintln(stderr, "stoa-bench:", err)
			return nil, false
		}
		r := &Result{}
		if err := json.Unmarshal(b, r); err != nil {
			fmt.Fprintf(stderr, "stoa-bench: %s: %v\n", p, err)
			return nil, false
		}
		return r, true
	}
	var runs []*Result
	for _, p := range fs.Args() {
		r, ok := read(p)
		if !ok {
			return 1
		}
		runs = append(runs, r)
	}
	rounds := map[string][]*Result{}
	for _, p := range roundFiles {
		r, ok := read(p)
		if !ok {
			return 1
		}
		rounds[r.Settings.Server] = append(rounds[r.Settings.Server], r)
	}
	var ts []*TsungSummary
	for _, p := range tsungFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintln(stderr, "stoa-bench:", err)
			return 1
		}
		t := &TsungSummary{}
		if err := json.Unmarshal(b, t); err != nil {
			fmt.Fprintf(stderr, "stoa-bench: %s: %v\n", p, err)
			return 1
		}
		ts = append(ts, t)
	}
	var sb strings.Builder
	writeReport(&sb, runs, rounds, ts)
	fmt.Fprint(stdout, sb.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(sb.String()), 0o644); err != nil {
			fmt.Fprintln(stderr, "stoa-bench:", err)
			return 1
		}
	}
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// fmtRatio keeps two significant digits of small ratios (0.0042×).
func fmtRatio(v float64) string {
	if a := math.Abs(v); a > 0 && a < 0.1 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return fmtNum(v)
}

// samples returns r and the rounds of its server, the runs a median is
// taken over.
func samples(r *Result, rounds map[string][]*Result) []*Result {
	return append([]*Result{r}, rounds[r.Settings.Server]...)
}

// median returns the median of f over rs (the mean of the middle two for
// an even count); false when no run has the figure.
func median(f figure, rs []*Result) (float64, int, bool) {
	var vs []float64
	for _, r := range rs {
		if v, ok := f.get(r); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], n, true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, n, true
}

// writeReport writes the comparison table: runs[0] is stoa, the others
// its peers; rounds holds the interleaved rounds by server.
func writeReport(w io.Writer, runs []*Result, rounds map[string][]*Result, ts []*TsungSummary) {
	stoa, peers := runs[0], runs[1:]
	m := stoa.Machine
	fmt.Fprintf(w, "Machine: %s, %d cores, %.0f GiB, Linux %s, %s; load average at start: %s.\n\n", m.CPU, m.Cores, m.MemoryGiB, m.Kernel, m.Go, m.LoadAvg)
	s := stoa.Settings
	fmt.Fprintf(w, "Settings: %d users, %s, %s, roster fetched at login: %v, %d contacts each; chat %.2f msg/s per user for %s, body %d+ bytes; presence %.2f changes/s per user for %s; idle settle %s.\n\n",
		s.Users, s.TLS, s.Mech, s.Roster, s.Contacts, s.MsgRate, s.ChatDuration, s.MsgSize, s.PresenceRate, s.PresenceDuration, s.Settle)
	fmt.Fprintf(w, "| figure | %s", label(stoa))
	for _, p := range peers {
		fmt.Fprintf(w, " | %s", label(p))
	}
	for _, p := range peers {
		fmt.Fprintf(w, " | stoa / %s", p.Settings.Server)
	}
	fmt.Fprintf(w, " | target | met |\n|---|---")
	for range peers {
		fmt.Fprint(w, "|---|---")
	}
	fmt.Fprintln(w, "|---|---|")
	for _, f := range figures() {
		name := f.name
		if f.median && len(rounds[stoa.Settings.Server]) > 0 {
			get := f.get
			f.get = func(r *Result) (float64, bool) {
				v, _, ok := median(figure{get: get}, samples(r, rounds))
				return v, ok
			}
			_, n, _ := median(figure{get: get}, samples(stoa, rounds))
			name += fmt.Sprintf(", median of %d runs", n)
		}
		sv, ok := f.get(stoa)
		if !ok {
			continue
		}
		unit := ""
		if f.unit != "" {
			unit = " (" + f.unit + ")"
		}
		fmt.Fprintf(w, "| %s%s | %s", name, unit, fmtNum(sv))
		var best float64
		haveBest := false
		for _, p := range peers {
			v, ok := f.get(p)
			if !ok {
				fmt.Fprint(w, " | –")
				continue
			}
			fmt.Fprintf(w, " | %s", fmtNum(v))
			if !haveBest || (f.higher && v > best) || (!f.higher && v < best) {
				best, haveBest = v, true
			}
		}
		for _, p := range peers {
			v, ok := f.get(p)
			if !ok || v == 0 {
				fmt.Fprint(w, " | –")
				continue
			}
			fmt.Fprintf(w, " | %s×", fmtRatio(sv/v))
		}
		target, met := "", ""
		switch {
		case f.factor > 0 && haveBest:
			target = f.target
			ok := (f.higher && sv >= f.factor*best) || (!f.higher && sv <= f.factor*best)
			met = yesNo(ok)
		case f.abs != nil:
			ok, t := f.abs(sv)
			target, met = t, yesNo(ok)
		}
		fmt.Fprintf(w, " | %s | %s |\n", target, met)
	}
	writeRounds(w, runs, rounds)
	if c := stoa.Capacity; c != nil {
		fmt.Fprintf(w, "\nCapacity: stoa held %d idle TLS sessions (target %d); stopped by: %s.\n", c.Sessions, c.Target, c.StoppedBy)
	}
	if len(ts) > 0 {
		fmt.Fprintf(w, "\ntsung 1.7.0 cross-check (PLAIN, one chat scenario):\n\n")
		fmt.Fprintf(w, "| server | messages timed | msg/s | latency mean (ms) | latency max (ms) | login mean (ms) | server CPU per message, logins included (µs) | errors |\n|---|---|---|---|---|---|---|---|\n")
		for _, t := range ts {
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %d %s |\n", t.Server, t.Messages, fmtNum(t.MessagesRate), fmtNum(t.LatencyMean), fmtNum(t.LatencyMax),
				fmtNum(t.AuthMean), fmtNum(t.CPUPerMsgUs), t.Errors, t.ErrorKinds)
		}
	}
	for _, r := range runs {
		if r.Disconnects > 0 {
			fmt.Fprintf(w, "\n%s: %d sessions were closed by the server during the run (first: %s).\n", r.Settings.Server, r.Disconnects, r.FirstClose)
		}
	}
}

// writeRounds lists every run behind the medians: the measured run (run
// 0) and each interleaved round, with stoa's ratio to the best peer of
// the same round.
func writeRounds(w io.Writer, runs []*Result, rounds map[string][]*Result) {
	stoa, peers := runs[0], runs[1:]
	n := len(rounds[stoa.Settings.Server])
	if n == 0 {
		return
	}
	var med []figure
	for _, f := range figures() {
		if f.median {
			med = append(med, f)
		}
	}
	fmt.Fprintf(w, "\nRuns behind the medians (run 0: the measured run; then %d interleaved rounds, each restarting every server in turn for a login storm and the fixed-rate chat):\n\n| run |", n)
	for _, f := range med {
		for _, r := range runs {
			fmt.Fprintf(w, " %s: %s (%s) |", f.name, r.Settings.Server, f.unit)
		}
		if f.factor > 0 {
			fmt.Fprintf(w, " %s: stoa / best peer |", f.name)
		}
	}
	fmt.Fprint(w, "\n|---|")
	for _, f := range med {
		fmt.Fprint(w, strings.Repeat("---|", len(runs)))
		if f.factor > 0 {
			fmt.Fprint(w, "---|")
		}
	}
	fmt.Fprintln(w)
	at := func(r *Result, i int) *Result {
		if i == 0 {
			return r
		}
		if rs := rounds[r.Settings.Server]; i <= len(rs) {
			return rs[i-1]
		}
		return nil
	}
	for i := 0; i <= n; i++ {
		fmt.Fprintf(w, "| %d |", i)
		for _, f := range med {
			for _, r := range runs {
				v, ok := 0.0, false
				if rr := at(r, i); rr != nil {
					v, ok = f.get(rr)
				}
				if ok {
					fmt.Fprintf(w, " %s |", fmtNum(v))
				} else {
					fmt.Fprint(w, " – |")
				}
			}
			if f.factor == 0 {
				continue
			}
			sv, ok := 0.0, false
			if rr := at(stoa, i); rr != nil {
				sv, ok = f.get(rr)
			}
			best, haveBest := 0.0, false
			for _, p := range peers {
				rr := at(p, i)
				if rr == nil {
					continue
				}
				if v, vok := f.get(rr); vok && (!haveBest || (f.higher && v > best) || (!f.higher && v < best)) {
					best, haveBest = v, true
				}
			}
			if ok && haveBest && best != 0 {
				fmt.Fprintf(w, " %s× |", fmtRatio(sv/best))
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
}

func label(r *Result) string {
	if r.Settings.ServerVersion != "" {
		return r.Settings.Server + " " + r.Settings.ServerVersion
	}
	return r.Settings.Server
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}
