package firewall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, want string
	}{
		{"unknown statement", "block everything", `f.rules:1: unknown statement "block"`},
		{"if outside a rule", "\n\nif kind message", `f.rules:3: "if" outside a rule`},
		{"then outside a rule", "then drop", `f.rules:1: "then" outside a rule`},
		{"rule without chain", "rule r\n then drop", `f.rules:1: rule r: say which chains`},
		{"unknown chain", "rule r on outbound\n then drop", `f.rules:1: rule r: unknown chain "outbound"`},
		{"bad rule name", "rule Spam-Rule on local\n then drop", `f.rules:1: a rule needs a name of lowercase letters`},
		{"duplicate rule", "rule r on local\n then drop\nrule r on deliver\n then drop", `f.rules:3: rule r is already defined at f.rules:1`},
		{"no action", "rule r on local\n if kind message", `f.rules:1: rule r has no action`},
		{"condition after action", "rule r on local\n then log\n if kind message\n then drop", `f.rules:3: a condition after an action`},
		{"action after terminal", "rule r on local\n then drop\n then log", `f.rules:3: rule r: nothing runs after "drop"`},
		{"unknown condition", "rule r on local\n if colour red\n then drop", `f.rules:2: unknown condition "colour"`},
		{"unknown action", "rule r on local\n then reject", `f.rules:2: unknown action "reject"`},
		{"unclosed quote", "rule r on local\n then log \"oops", `f.rules:2: a quoted text is not closed`},
		{"bad kind", "rule r on local\n if kind mesage\n then drop", `f.rules:2: unknown kind "mesage"`},
		{"bad type", "rule r on local\n if type spam\n then drop", `f.rules:2: unknown stanza type "spam"`},
		{"bad regexp", "rule r on local\n if body \"([\"\n then drop", `f.rules:2: body: "([" is not a valid regular expression`},
		{"body unquoted words", "rule r on local\n if body buy now\n then drop", `f.rules:2: body takes one regular expression`},
		{"bad age", "rule r on local\n if sender-age < 2 days\n then drop", `f.rules:2: sender-age takes a comparison and a duration`},
		{"bad age unit", "rule r on local\n if sender-age < 2y\n then drop", `f.rules:2: sender-age: "2y" is not a duration`},
		{"bad rate", "rule r on local\n if rate 10/minute\n then drop", `f.rules:2: rate takes "> N/UNIT"`},
		{"bad rate unit", "rule r on local\n if rate > 10/fortnight\n then drop", `f.rules:2: rate: "10/fortnight" is not a rate`},
		{"bad rate key", "rule r on local\n if rate > 10/minute per resource\n then drop", `f.rules:2: rate: per "resource"`},
		{"bad ip", "rule r on local\n if ip 300.1.1.1\n then drop", `f.rules:2: "300.1.1.1" is not an IP address`},
		{"unknown list", "rule r on local\n if from-domain in nope\n then drop", `f.rules:2: from-domain: there is no list "nope"`},
		{"domain pattern with @", "rule r on local\n if from-domain a@b\n then drop", `f.rules:2: "a@b" is not a domain pattern`},
		{"bad bounce condition", "rule r on local\n then bounce go-away", `f.rules:2: bounce: "go-away" is not a stanza error condition`},
		{"bounce text unquoted", "rule r on local\n then bounce forbidden go away", `f.rules:2: bounce: unexpected "go"`},
		{"bad report category", "rule r on local\n then report phishing", `f.rules:2: report: category "phishing"`},
		{"pass with argument", "rule r on local\n then pass now", `f.rules:2: pass takes no arguments`},
		{"bad in-roster", "rule r on local\n if in-roster friends\n then drop", `f.rules:2: in-roster: unknown subscription "friends"`},
		{"bad payload", "rule r on local\n if payload {urn:x\n then drop", `f.rules:2: payload: "{urn:x": write {namespace}name`},
		{"duplicate list", "list a x\nlist a y", `f.rules:2: list a is already defined at f.rules:1`},
		{"empty list", "list a", `f.rules:1: list a is empty`},
		{"missing list file", "list a file /nonexistent/list.txt", `f.rules:1: list a: open /nonexistent/list.txt`},
		{"from-local argument", "rule r on local\n if from-local yes\n then drop", `f.rules:2: from-local takes no arguments`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := compileSource("f.rules", tc.src, 10, time.Now)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestCompileReportsEveryError(t *testing.T) {
	t.Parallel()
	_, err := compileSource("f.rules", "rule a on local\n if colour red\n then drop\nrule b on local\n then reject\n", 10, time.Now)
	if err == nil || !strings.Contains(err.Error(), "f.rules:2:") || !strings.Contains(err.Error(), "f.rules:5:") {
		t.Errorf("error = %v, want both f.rules:2 and f.rules:5", err)
	}
}

func TestListFileErrorsNameTheListFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nets.txt"), []byte("192.0.2.0/24\n\nnot-an-ip\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "a.rules")
	if err := os.WriteFile(rules, []byte("list nets file nets.txt\nrule r on local\n if ip in nets\n then drop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := compileFiles([]string{rules}, 10, time.Now, nil)
	want := filepath.Join(dir, "nets.txt") + `:3: "not-an-ip" is not an IP address`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestCompileGood(t *testing.T) {
	t.Parallel()
	src := `# comments and blank lines are fine

list staff "admin@example.org" mod@example.org   # quoted or not
rule everything_at_once on local remote deliver
    if kind message presence
    if not type error
    if from *@example.org in-the-middle*@x.example
    if to-domain example.org *.example.org
    if payload jabber:x:oob {urn:xmpp:foo}bar
    if body "(?i)\"quoted\" \\d+"
    if sender-age <= 1.5d
    if sender-state restricted
    if in-roster both from
    if ip 192.0.2.0/24 2001:db8::/32 ::ffff:198.51.100.1
    if rate > 0.5/second burst 3 per pair
    then log "text with \"quotes\""
    then report other
    then notify-admins
    then restrict
    then suspend "why"
    then bounce
rule staff_pass on deliver
    if from in staff
    then pass
`
	rs, err := compileSource("good.rules", src, 10, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if rs.rules != 2 || len(rs.chains[chainLocal]) != 1 || len(rs.chains[chainRemote]) != 1 || len(rs.chains[chainDeliver]) != 2 {
		t.Errorf("rules %d, chains %d %d %d", rs.rules, len(rs.chains[chainLocal]), len(rs.chains[chainRemote]), len(rs.chains[chainDeliver]))
	}
	r := rs.chains[chainLocal][0]
	if len(r.conds) != 11 || r.summary != "log,report,notify-admins,restrict,suspend,bounce" || r.quiet {
		t.Errorf("rule: %d conditions, summary %q, quiet %v", len(r.conds), r.summary, r.quiet)
	}
	if r.actions[0].text != `text with "quotes"` {
		t.Errorf("text = %q", r.actions[0].text)
	}
	if !rs.chains[chainDeliver][1].quiet {
		t.Error("a pass-only rule is not quiet")
	}
}

func TestPatterns(t *testing.T) {
	t.Parallel()
	ps := newPatterns()
	for _, p := range []string{"Spam.Example", "*.spam.example", "bot*@*.example", "a*b*c", "user@host/Res"} {
		ps.add(p)
	}
	tests := []struct {
		s    string
		want bool
	}{
		{"spam.example", true},
		{"x.spam.example", true},
		{"spam.example.org", false},
		{"bot12@a.example", true},
		{"robot@a.example", false},
		{"abc", true},
		{"aXbYc", true},
		{"acb", false},
		{"user@host/Res", true},
		{"user@host/res", false},
	}
	for _, tc := range tests {
		if got := ps.match(tc.s); got != tc.want {
			t.Errorf("match(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
	if !ps.full {
		t.Error("a pattern with a resource does not turn on full-JID matching")
	}
}

func TestSplitLine(t *testing.T) {
	t.Parallel()
	ws, err := splitLine(pos{}, `  if body "a # b" # comment`)
	if err != nil || len(ws) != 3 || ws[2].s != "a # b" || !ws[2].quoted {
		t.Errorf("words = %+v, err %v", ws, err)
	}
}

// The literal prefilter must never hide a match: compare with the plain
// regular expression on tricky inputs.
func TestBodyPrefilter(t *testing.T) {
	t.Parallel()
	exprs := []string{
		`(?i)buy cheap pills`, `https?://link\.`, `(?i)(casino|lottery) win`, `spam+ed`, `a{2,}b`,
		`(?i)skype`, `^hello$`, `x*`, `(?i)k`, `[0-9]+ bitcoin`, `(?i)wélcome`, `(hi|)there`,
	}
	bodies := []string{
		"BUY CHEAP PILLS now", "buy cheap pill", "see http://link.example", "HTTPS://LINK.example",
		"Casino WIN!", "LOTTERY win", "spammmed", "aab", "ab", "\u017Fkype", "S\u212Aype", "hello", "hello!",
		"", "\u212A", "42 bitcoin", "WÉLCOME", "wélcome", "there", "hithere", "théré",
	}
	for _, ex := range exprs {
		b, err := compileBody(ex)
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range bodies {
			if got, want := b.match(body, fold(body)), b.re.MatchString(body); got != want {
				t.Errorf("%q on %q: prefiltered %v, regexp %v (need %q)", ex, body, got, want, b.need)
			}
		}
	}
	if b, _ := compileBody(`(?i)buy cheap pills`); len(b.need) != 1 || b.need[0] != "buy cheap pills" {
		t.Errorf("need = %q", b.need)
	}
	if b, _ := compileBody(`https?://link\.`); len(b.need) != 1 || b.need[0] != "://link." {
		t.Errorf("need = %q", b.need)
	}
}

// The example rule sets shipped in docs/ must compile.
func TestExamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../../docs/firewall-examples/*.rules")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v, %v", files, err)
	}
	for _, f := range files {
		rs, err := compileFiles([]string{f}, 10, time.Now, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if rs.rules == 0 {
			t.Errorf("%s: no rules", f)
		}
	}
	// And all together, as an operator would load them.
	if _, err := compileFiles([]string{"../../../docs/firewall-examples/*.rules"}, 10, time.Now, nil); err != nil {
		t.Errorf("together: %v", err)
	}
}
