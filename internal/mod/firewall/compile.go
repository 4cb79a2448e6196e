package firewall

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// chain is one of the points where rules run.
type chain uint8

const (
	chainLocal   chain = iota // stanzas from local clients (server.Inbound)
	chainRemote               // stanzas from other servers (server.FromRemote)
	chainDeliver              // stanzas to local accounts and hosts, whatever their origin (server.DeliverLocal)
	numChains
)

var chainNames = [numChains]string{"local", "remote", "deliver"}

func (c chain) String() string { return chainNames[c] }

// condFunc is a compiled condition.
type condFunc func(e *eval) bool

// actionKind is what an action does.
type actionKind uint8

const (
	actPass actionKind = iota + 1
	actDrop
	actBounce
	actLog
	actRestrict
	actSuspend
	actReport
	actNotify
)

var actionNames = map[string]actionKind{
	"pass": actPass, "drop": actDrop, "bounce": actBounce, "log": actLog,
	"restrict": actRestrict, "suspend": actSuspend, "report": actReport, "notify-admins": actNotify,
}

func (k actionKind) String() string {
	for n, v := range actionNames {
		if v == k {
			return n
		}
	}
	return "unknown"
}

// terminal reports whether the action ends the chain.
func (k actionKind) terminal() bool { return k == actPass || k == actDrop || k == actBounce }

type action struct {
	kind actionKind
	text string
	err  *stanza.Error // bounce
	cat  string        // report category
}

// rule is a compiled rule.
type rule struct {
	name    string
	pos     pos
	chains  [numChains]bool
	conds   []condFunc
	actions []action
	// quiet rules (only pass) log at debug level, not info.
	quiet bool
	// summary lists the action names for logs ("report,suspend,drop").
	summary string
	// counters[chain][i] counts actions[i] on a chain (set at load).
	counters [numChains][]prometheus.Counter
}

func (r *rule) match(e *eval) bool {
	for _, c := range r.conds {
		if !c(e) {
			return false
		}
	}
	return true
}

// ruleset is the compiled rules of every file: what the hooks read.
type ruleset struct {
	chains [numChains][]*rule
	rules  int
	nfiles int     // rule files (not lists)
	files  []stamp // rule and list files read, for change detection
	rates  map[string]*policy.Keyed
}

// stamp identifies a file's version.
type stamp struct {
	path    string
	modTime time.Time
	size    int64
}

// same reports whether two stamps describe the same version of a file.
func (s stamp) same(o stamp) bool {
	return s.path == o.path && s.size == o.size && s.modTime.Equal(o.modTime)
}

func statFile(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{path: path}
	}
	return stamp{path: path, modTime: fi.ModTime(), size: fi.Size()}
}

// compiler builds a ruleset from files.
type compiler struct {
	rateKeys int
	now      func() time.Time
	old      *ruleset // rate state is carried over from it
	rs       *ruleset
	lists    map[string]*listVal
	names    map[string]pos
	errs     []error
}

// listVal is a named list's entries with where each came from, compiled
// on first use as patterns or networks.
type listVal struct {
	decl    pos
	entries []listEntry
	pats    *patterns
	nets    *nets
}

type listEntry struct {
	pos pos
	s   string
}

// expand returns the files named by the configured paths (shell patterns
// expanded, sorted), in order, without duplicates.
func expand(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if !strings.ContainsAny(p, "*?[") {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
			continue
		}
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("firewall: files: %q is not a valid pattern: %w", p, err)
		}
		slices.Sort(m)
		for _, f := range m {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// compileFiles reads and compiles the rule files. It returns every error
// found, each naming its file and line; on error no ruleset is returned,
// so the running rules stay in place.
func compileFiles(paths []string, rateKeys int, now func() time.Time, old *ruleset) (*ruleset, error) {
	rs, _, err := compileFilesStamps(paths, rateKeys, now, old)
	return rs, err
}

// compileFilesStamps is compileFiles that also returns the versions of
// the files it read (rules and lists), even on error, so that a change to
// any of them (a missing list file created) triggers the next load.
func compileFilesStamps(paths []string, rateKeys int, now func() time.Time, old *ruleset) (*ruleset, []stamp, error) {
	files, err := expand(paths)
	if err != nil {
		return nil, nil, err
	}
	c := &compiler{
		rateKeys: rateKeys, now: now, old: old,
		rs:    &ruleset{rates: make(map[string]*policy.Keyed)},
		lists: make(map[string]*listVal), names: make(map[string]pos),
	}
	for _, path := range files {
		src, err := os.ReadFile(path)
		c.rs.files = append(c.rs.files, statFile(path))
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("firewall: reading rules: %w", err))
			continue
		}
		c.file(path, string(src))
	}
	if len(c.errs) > 0 {
		return nil, c.rs.files, errors.Join(c.errs...)
	}
	c.rs.nfiles = len(files)
	return c.rs, c.rs.files, nil
}

// compileSource compiles one file's text (tests, `check`).
func compileSource(name, src string, rateKeys int, now func() time.Time) (*ruleset, error) {
	c := &compiler{
		rateKeys: rateKeys, now: now,
		rs:    &ruleset{rates: make(map[string]*policy.Keyed)},
		lists: make(map[string]*listVal), names: make(map[string]pos),
	}
	c.file(name, src)
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return c.rs, nil
}

func (c *compiler) file(path, src string) {
	p, err := parse(path, src)
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	// Lists first, so a rule may use a list declared further down.
	for _, l := range p.lists {
		c.list(path, l)
	}
	for _, r := range p.rules {
		c.rule(r)
	}
}

func (c *compiler) errorf(p pos, format string, args ...any) {
	c.errs = append(c.errs, errorf(p, format, args...))
}

func (c *compiler) list(path string, d listDecl) {
	if prev, dup := c.lists[d.name]; dup {
		c.errorf(d.pos, "list %s is already defined at %s", d.name, prev.decl)
		return
	}
	lv := &listVal{decl: d.pos}
	c.lists[d.name] = lv
	for _, v := range d.values {
		lv.entries = append(lv.entries, listEntry{pos: d.pos, s: v})
	}
	if d.file == "" {
		return
	}
	lp := d.file
	if !filepath.IsAbs(lp) {
		lp = filepath.Join(filepath.Dir(path), lp)
	}
	data, err := os.ReadFile(lp)
	c.rs.files = append(c.rs.files, statFile(lp))
	if err != nil {
		c.errorf(d.pos, "list %s: %v", d.name, err)
		return
	}
	for n, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		lv.entries = append(lv.entries, listEntry{pos: pos{file: lp, line: n + 1}, s: line})
	}
}

func (c *compiler) rule(d *ruleDecl) {
	if prev, dup := c.names[d.name]; dup {
		c.errorf(d.pos, "rule %s is already defined at %s (rule names are unique: they label metrics and logs)", d.name, prev)
		return
	}
	c.names[d.name] = d.pos
	r := &rule{name: d.name, pos: d.pos}
	for _, w := range d.chains {
		i := slices.Index(chainNames[:], w.s)
		if i < 0 || w.quoted {
			c.errorf(d.pos, "rule %s: unknown chain %q (chains: local, remote, deliver)", d.name, w.s)
			return
		}
		r.chains[i] = true
	}
	nerr := len(c.errs)
	for i, cd := range d.conds {
		fn := c.cond(d, i, cd)
		if fn == nil {
			continue
		}
		if cd.not {
			inner := fn
			fn = func(e *eval) bool { return !inner(e) }
		}
		r.conds = append(r.conds, fn)
	}
	if len(d.actions) == 0 {
		c.errorf(d.pos, "rule %s has no action: add a line such as \"then drop\"", d.name)
	}
	var names []string
	r.quiet = true
	for i, a := range d.actions {
		act, ok := c.action(d, a)
		if !ok {
			continue
		}
		if act.kind.terminal() && i != len(d.actions)-1 {
			c.errorf(d.actions[i+1].pos, "rule %s: nothing runs after \"%s\": move this action before it", d.name, act.kind)
		}
		if act.kind != actPass {
			r.quiet = false
		}
		r.actions = append(r.actions, act)
		names = append(names, act.kind.String())
	}
	r.summary = strings.Join(names, ",")
	if len(c.errs) > nerr {
		return
	}
	c.rs.rules++
	for ch := range numChains {
		if r.chains[ch] {
			c.rs.chains[ch] = append(c.rs.chains[ch], r)
		}
	}
}

// args returns the words of a condition or action as strings.
func strs(ws []word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.s
	}
	return out
}

// listRef returns the list named by "in NAME" arguments, or nil when the
// arguments are literal values.
func (c *compiler) listRef(cd condDecl) (*listVal, bool) {
	if len(cd.args) == 0 || cd.args[0].quoted || cd.args[0].s != "in" {
		return nil, true
	}
	if len(cd.args) != 2 {
		c.errorf(cd.pos, "%s in LIST: name one list, e.g. \"if %s in spam_domains\"", cd.name, cd.name)
		return nil, false
	}
	lv := c.lists[cd.args[1].s]
	if lv == nil {
		c.errorf(cd.pos, "%s: there is no list %q (declare it with \"list %s ...\" in a rules file)", cd.name, cd.args[1].s, cd.args[1].s)
		return nil, false
	}
	return lv, true
}

// patternsOf compiles the patterns of a from/to condition.
func (c *compiler) patternsOf(cd condDecl, domain bool) *patterns {
	lv, ok := c.listRef(cd)
	if !ok {
		return nil
	}
	if lv != nil {
		if lv.pats == nil {
			lv.pats = newPatterns()
			for _, e := range lv.entries {
				if msg := checkPattern(e.s, false); msg != "" {
					c.errorf(e.pos, "%s", msg)
					continue
				}
				lv.pats.add(e.s)
			}
		}
		return lv.pats
	}
	if len(cd.args) == 0 {
		c.errorf(cd.pos, "%s needs addresses or \"in LIST\", e.g. \"if %s spam.example *.spam.example\"", cd.name, cd.name)
		return nil
	}
	ps := newPatterns()
	for _, a := range strs(cd.args) {
		if msg := checkPattern(a, domain); msg != "" {
			c.errorf(cd.pos, "%s", msg)
			continue
		}
		ps.add(a)
	}
	return ps
}

func checkPattern(s string, domain bool) string {
	if s == "" || strings.ContainsAny(s, " \t\"<>'") {
		return fmt.Sprintf("%q is not an address pattern", s)
	}
	if domain && strings.ContainsAny(s, "@/") {
		return fmt.Sprintf("%q is not a domain pattern (no @ or /; use from or to for addresses)", s)
	}
	return ""
}

func (c *compiler) nets(cd condDecl) *nets {
	lv, ok := c.listRef(cd)
	if !ok {
		return nil
	}
	if lv != nil {
		if lv.nets == nil {
			lv.nets = newNets()
			for _, e := range lv.entries {
				if !lv.nets.add(e.s) {
					c.errorf(e.pos, "%q is not an IP address or CIDR prefix (e.g. 192.0.2.0/24)", e.s)
				}
			}
		}
		return lv.nets
	}
	if len(cd.args) == 0 {
		c.errorf(cd.pos, "ip needs addresses, prefixes or \"in LIST\", e.g. \"if ip 192.0.2.0/24\"")
		return nil
	}
	n := newNets()
	for _, a := range strs(cd.args) {
		if !n.add(a) {
			c.errorf(cd.pos, "%q is not an IP address or CIDR prefix (e.g. 192.0.2.0/24)", a)
		}
	}
	return n
}

var (
	kindNames = map[string]server.Kind{"message": server.KindMessage, "presence": server.KindPresence, "iq": server.KindIQ}
	typeNames = map[string]bool{
		"chat": true, "normal": true, "groupchat": true, "headline": true, "error": true,
		"available": true, "unavailable": true, "subscribe": true, "subscribed": true,
		"unsubscribe": true, "unsubscribed": true, "probe": true,
		"get": true, "set": true, "result": true,
	}
	subNames = map[string]bool{"none": true, "to": true, "from": true, "both": true}
)

// cond compiles one condition; nil after reporting an error.
func (c *compiler) cond(d *ruleDecl, idx int, cd condDecl) condFunc {
	args := strs(cd.args)
	noArgs := func() bool {
		if len(args) > 0 {
			c.errorf(cd.pos, "%s takes no arguments", cd.name)
			return false
		}
		return true
	}
	switch cd.name {
	case "kind":
		var mask [4]bool
		if len(args) == 0 {
			c.errorf(cd.pos, "kind needs message, presence or iq")
			return nil
		}
		for _, a := range args {
			k, ok := kindNames[a]
			if !ok {
				c.errorf(cd.pos, "unknown kind %q (message, presence or iq)", a)
				return nil
			}
			mask[k] = true
		}
		return func(e *eval) bool { return int(e.st.Kind) < len(mask) && mask[e.st.Kind] }
	case "type":
		if len(args) == 0 {
			c.errorf(cd.pos, "type needs stanza types, e.g. \"if type chat normal\"")
			return nil
		}
		for _, a := range args {
			if !typeNames[a] {
				c.errorf(cd.pos, "unknown stanza type %q", a)
				return nil
			}
		}
		return func(e *eval) bool { return slices.Contains(args, e.stanzaType()) }
	case "from", "to":
		ps := c.patternsOf(cd, false)
		if ps == nil {
			return nil
		}
		from := cd.name == "from"
		return func(e *eval) bool {
			j := e.st.To
			if from {
				j = e.st.From
			}
			if j.IsZero() {
				return false
			}
			if ps.match(j.Bare().String()) {
				return true
			}
			return ps.full && j.Resource() != "" && ps.match(j.String())
		}
	case "from-domain", "to-domain":
		ps := c.patternsOf(cd, true)
		if ps == nil {
			return nil
		}
		from := cd.name == "from-domain"
		return func(e *eval) bool {
			j := e.st.To
			if from {
				j = e.st.From
			}
			return !j.IsZero() && ps.match(j.Domain())
		}
	case "from-local":
		if !noArgs() {
			return nil
		}
		return func(e *eval) bool { return e.f.srv.Host(e.st.From.Domain()) != nil }
	case "to-local":
		if !noArgs() {
			return nil
		}
		return func(e *eval) bool { return !e.st.To.IsZero() && e.f.srv.Host(e.st.To.Domain()) != nil }
	case "payload":
		return c.payload(cd, args)
	case "body":
		if len(args) != 1 {
			c.errorf(cd.pos, "body takes one regular expression in quotes, e.g. if body \"(?i)https?://\"")
			return nil
		}
		re, err := compileBody(args[0])
		if err != nil {
			c.errorf(cd.pos, "body: %q is not a valid regular expression: %v", args[0], err)
			return nil
		}
		return func(e *eval) bool {
			b := e.body()
			return b != "" && re.match(b, e.foldedBody())
		}
	case "sender-age":
		return c.age(cd, args)
	case "sender-state":
		if len(args) == 0 {
			c.errorf(cd.pos, "sender-state needs states, e.g. \"if sender-state restricted\"")
			return nil
		}
		return func(e *eval) bool { return slices.Contains(args, e.senderState()) }
	case "in-roster":
		for _, a := range args {
			if !subNames[a] {
				c.errorf(cd.pos, "in-roster: unknown subscription %q (none, to, from or both)", a)
				return nil
			}
		}
		return func(e *eval) bool {
			sub, ok := e.rosterSub()
			return ok && (len(args) == 0 || slices.Contains(args, sub))
		}
	case "ip":
		n := c.nets(cd)
		if n == nil {
			return nil
		}
		return func(e *eval) bool { return n.match(e.ip) }
	case "rate":
		return c.rate(d, idx, cd, args)
	}
	c.errorf(cd.pos, "unknown condition %q (kind, type, from, to, from-domain, to-domain, from-local, to-local, payload, body, sender-age, sender-state, in-roster, ip, rate)", cd.name)
	return nil
}

func (c *compiler) payload(cd condDecl, args []string) condFunc {
	if len(args) == 0 {
		c.errorf(cd.pos, "payload needs a namespace or {namespace}name, e.g. \"if payload jabber:x:oob\"")
		return nil
	}
	type elem struct{ ns, local string }
	var want []elem
	for _, a := range args {
		if strings.HasPrefix(a, "{") {
			i := strings.IndexByte(a, '}')
			if i < 0 || i == len(a)-1 {
				c.errorf(cd.pos, "payload: %q: write {namespace}name", a)
				return nil
			}
			want = append(want, elem{a[1:i], a[i+1:]})
			continue
		}
		want = append(want, elem{ns: a})
	}
	return func(e *eval) bool {
		for _, ch := range e.st.El.Children {
			if ch.IsText() {
				continue
			}
			for _, w := range want {
				if ch.Space == w.ns && (w.local == "" || ch.Local == w.local) {
					return true
				}
			}
		}
		return false
	}
}

// parseDuration reads 30s, 10m, 2h, 1d, 1w.
func parseDuration(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	n, err := strconv.ParseFloat(s[:len(s)-1], 64)
	if unit == 0 || err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n * float64(unit)), true
}

func (c *compiler) age(cd condDecl, args []string) condFunc {
	if len(args) != 2 {
		c.errorf(cd.pos, "sender-age takes a comparison and a duration, e.g. \"if sender-age < 2d\"")
		return nil
	}
	d, ok := parseDuration(args[1])
	if !ok {
		c.errorf(cd.pos, "sender-age: %q is not a duration (a number with s, m, h, d or w, e.g. 2d)", args[1])
		return nil
	}
	var cmp func(age time.Duration) bool
	switch args[0] {
	case "<":
		cmp = func(a time.Duration) bool { return a < d }
	case "<=":
		cmp = func(a time.Duration) bool { return a <= d }
	case ">":
		cmp = func(a time.Duration) bool { return a > d }
	case ">=":
		cmp = func(a time.Duration) bool { return a >= d }
	default:
		c.errorf(cd.pos, "sender-age: compare with <, <=, > or >=, not %q", args[0])
		return nil
	}
	now := c.now
	return func(e *eval) bool {
		created, ok := e.senderCreated()
		return ok && cmp(now().Sub(created))
	}
}

// rateKeys are what a rate counts per.
var rateKeyNames = []string{"sender", "sender-domain", "recipient", "ip", "pair", "all"}

func parseRate(s string) (perSecond float64, count float64, ok bool) {
	n, unit, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	v, err := strconv.ParseFloat(n, 64)
	if err != nil || v <= 0 {
		return 0, 0, false
	}
	var secs float64
	switch unit {
	case "s", "sec", "second":
		secs = 1
	case "m", "min", "minute":
		secs = 60
	case "h", "hour":
		secs = 3600
	case "d", "day":
		secs = 86400
	default:
		return 0, 0, false
	}
	return v / secs, v, true
}

// rate compiles "rate > N/UNIT [burst B] [per KEY]": true once the
// stanzas reaching it (those that met the conditions before it) exceed the
// rate for the key. Each evaluation counts one stanza.
func (c *compiler) rate(d *ruleDecl, idx int, cd condDecl, args []string) condFunc {
	usage := "rate takes \"> N/UNIT\" (UNIT second, minute, hour or day), then optionally \"burst B\" and \"per sender|sender-domain|recipient|ip|pair|all\""
	if len(args) < 2 || args[0] != ">" {
		c.errorf(cd.pos, "%s", usage)
		return nil
	}
	perSec, burst, ok := parseRate(args[1])
	if !ok {
		c.errorf(cd.pos, "rate: %q is not a rate such as 10/minute; %s", args[1], usage)
		return nil
	}
	per := "sender"
	rest := args[2:]
	for len(rest) > 0 {
		if len(rest) < 2 {
			c.errorf(cd.pos, "%s", usage)
			return nil
		}
		switch rest[0] {
		case "burst":
			b, err := strconv.ParseFloat(rest[1], 64)
			if err != nil || b < 1 {
				c.errorf(cd.pos, "rate: burst %q must be a number of at least 1", rest[1])
				return nil
			}
			burst = b
		case "per":
			if !slices.Contains(rateKeyNames, rest[1]) {
				c.errorf(cd.pos, "rate: per %q: count per sender, sender-domain, recipient, ip, pair or all", rest[1])
				return nil
			}
			per = rest[1]
		default:
			c.errorf(cd.pos, "%s", usage)
			return nil
		}
		rest = rest[2:]
	}
	// Keep the counts of an unchanged rate across reloads.
	id := fmt.Sprintf("%s#%d %s", d.name, idx, strings.Join(args, " "))
	k := c.old.rate(id)
	if k == nil {
		k = policy.NewKeyed(perSec, burst, c.rateKeys, c.now)
	}
	c.rs.rates[id] = k
	key := rateKey(per)
	return func(e *eval) bool { return !k.Allow(key(e), 1) }
}

func (rs *ruleset) rate(id string) *policy.Keyed {
	if rs == nil {
		return nil
	}
	return rs.rates[id]
}

func rateKey(per string) func(e *eval) string {
	switch per {
	case "sender-domain":
		return func(e *eval) string { return e.st.From.Domain() }
	case "recipient":
		return func(e *eval) string { return e.st.To.Bare().String() }
	case "ip":
		return func(e *eval) string {
			if !e.ip.IsValid() {
				return ""
			}
			return policy.PrefixBits(e.ip, 32, 64)
		}
	case "pair":
		return func(e *eval) string { return e.st.From.Bare().String() + " " + e.st.To.Bare().String() }
	case "all":
		return func(*eval) string { return "" }
	}
	return func(e *eval) string { return e.st.From.Bare().String() }
}

// conditions lists the stanza error conditions a bounce may use.
var conditions = []stanza.Condition{
	stanza.BadRequest, stanza.Conflict, stanza.FeatureNotImplemented, stanza.Forbidden, stanza.Gone,
	stanza.ItemNotFound, stanza.NotAcceptable, stanza.NotAllowed, stanza.NotAuthorized,
	stanza.PolicyViolation, stanza.RecipientUnavailable, stanza.RegistrationRequired,
	stanza.RemoteServerNotFound, stanza.ResourceConstraint, stanza.ServiceUnavailable,
	stanza.SubscriptionRequired, stanza.UndefinedCondition,
}

var reportCategories = []string{"spam", "abuse", "other"}

// action compiles a "then" line.
func (c *compiler) action(d *ruleDecl, a stmt) (action, bool) {
	name := a.args[0].s
	kind, ok := actionNames[name]
	if !ok {
		c.errorf(a.pos, "unknown action %q (pass, drop, bounce, log, restrict, suspend, report, notify-admins)", name)
		return action{}, false
	}
	rest := a.args[1:]
	act := action{kind: kind}
	// text takes an optional final quoted text.
	text := func() bool {
		switch {
		case len(rest) == 0:
			return true
		case len(rest) == 1 && rest[0].quoted:
			act.text = rest[0].s
			rest = nil
			return true
		}
		c.errorf(a.pos, "%s: unexpected %q (put the text in double quotes)", name, rest[0].s)
		return false
	}
	switch kind {
	case actPass, actDrop:
		if len(rest) > 0 {
			c.errorf(a.pos, "%s takes no arguments", name)
			return action{}, false
		}
	case actBounce:
		cond := stanza.PolicyViolation
		if len(rest) > 0 && !rest[0].quoted {
			cond = stanza.Condition(rest[0].s)
			if !slices.Contains(conditions, cond) {
				c.errorf(a.pos, "bounce: %q is not a stanza error condition (e.g. policy-violation, forbidden, service-unavailable, not-acceptable)", rest[0].s)
				return action{}, false
			}
			rest = rest[1:]
		}
		if !text() {
			return action{}, false
		}
		if act.text == "" {
			act.text = "This was refused by the server's policy (" + d.name + "); contact the server's administrators if you think this is a mistake."
		}
		act.err = stanza.NewError(cond, act.text)
	case actReport:
		act.cat = "spam"
		if len(rest) > 0 && !rest[0].quoted {
			if !slices.Contains(reportCategories, rest[0].s) {
				c.errorf(a.pos, "report: category %q: use spam, abuse or other", rest[0].s)
				return action{}, false
			}
			act.cat = rest[0].s
			rest = rest[1:]
		}
		if !text() {
			return action{}, false
		}
	default:
		if !text() {
			return action{}, false
		}
	}
	return act, true
}
