package firewall

import (
	"errors"
	"fmt"
	"strings"
)

// The rule language, line by line (docs/firewall.md is the reference):
//
//	# a comment, to the end of the line (outside quotes)
//	list NAME VALUE...              a named list, written inline
//	list NAME file PATH             ... or read from a file, one entry a line
//	rule NAME on CHAIN...           a rule for the chains local, remote, deliver
//	    if [not] CONDITION ARGS...  conditions, all of which must hold
//	    then ACTION ARGS...         actions, run in order when they do
//
// Words are separated by blanks; "double quotes" make one word of text with
// blanks (\" and \\ escape). Indentation is free. A rule ends where the
// next list or rule starts.

// pos is a place in a rules file, for errors and logs.
type pos struct {
	file string
	line int
}

func (p pos) String() string { return fmt.Sprintf("%s:%d", p.file, p.line) }

// posError is an error at a place in a file.
type posError struct {
	pos pos
	msg string
}

func (e *posError) Error() string { return e.pos.String() + ": " + e.msg }

func errorf(p pos, format string, args ...any) error {
	return &posError{pos: p, msg: fmt.Sprintf(format, args...)}
}

// word is one token of a line.
type word struct {
	s      string
	quoted bool
}

// splitLine cuts a line into words, dropping a # comment.
func splitLine(p pos, line string) ([]word, error) {
	var out []word
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			return out, nil
		case c == '"':
			var b strings.Builder
			i++
			closed := false
			for i < len(line) {
				c := line[i]
				if c == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					b.WriteByte(line[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, errorf(p, "a quoted text is not closed (add the missing \")")
			}
			out = append(out, word{s: b.String(), quoted: true})
		default:
			j := i
			for j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' && line[j] != '"' {
				if line[j] == '#' {
					break
				}
				j++
			}
			out = append(out, word{s: line[i:j]})
			i = j
		}
	}
	return out, nil
}

// stmt is one parsed line: its keyword and arguments.
type stmt struct {
	pos  pos
	args []word
}

// listDecl is a "list" statement.
type listDecl struct {
	pos    pos
	name   string
	values []string // inline values
	file   string   // or a file (as written)
}

// ruleDecl is a "rule" statement with its conditions and actions.
type ruleDecl struct {
	pos     pos
	name    string
	chains  []word
	conds   []condDecl
	actions []stmt
}

// condDecl is an "if" line.
type condDecl struct {
	pos  pos
	not  bool
	name string
	args []word
}

// parsed is a parsed rules file.
type parsed struct {
	lists []listDecl
	rules []*ruleDecl
}

// parse reads a rules file. It reports every error it finds (up to a
// limit), each naming its file and line.
func parse(file string, src string) (*parsed, error) {
	out := &parsed{}
	var errs []error
	var cur *ruleDecl
	for n, line := range strings.Split(src, "\n") {
		p := pos{file: file, line: n + 1}
		words, err := splitLine(p, line)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		kw := words[0]
		if kw.quoted {
			errs = append(errs, errorf(p, "a line must start with list, rule, if or then, not with quoted text"))
			continue
		}
		switch kw.s {
		case "list":
			cur = nil
			d, err := parseList(p, words[1:])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out.lists = append(out.lists, d)
		case "rule":
			cur = nil
			r, err := parseRuleHeader(p, words[1:])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cur = r
			out.rules = append(out.rules, r)
		case "if":
			if cur == nil {
				errs = append(errs, errorf(p, "\"if\" outside a rule: start the rule with \"rule NAME on CHAIN\""))
				continue
			}
			if len(cur.actions) > 0 {
				errs = append(errs, errorf(p, "a condition after an action: put every \"if\" line of rule %s before its \"then\" lines", cur.name))
				continue
			}
			c := condDecl{pos: p}
			rest := words[1:]
			if len(rest) > 0 && !rest[0].quoted && rest[0].s == "not" {
				c.not = true
				rest = rest[1:]
			}
			if len(rest) == 0 || rest[0].quoted {
				errs = append(errs, errorf(p, "\"if\" needs a condition, e.g. \"if kind message\""))
				continue
			}
			c.name, c.args = rest[0].s, rest[1:]
			cur.conds = append(cur.conds, c)
		case "then":
			if cur == nil {
				errs = append(errs, errorf(p, "\"then\" outside a rule: start the rule with \"rule NAME on CHAIN\""))
				continue
			}
			if len(words) < 2 || words[1].quoted {
				errs = append(errs, errorf(p, "\"then\" needs an action, e.g. \"then drop\""))
				continue
			}
			cur.actions = append(cur.actions, stmt{pos: p, args: words[1:]})
		default:
			errs = append(errs, errorf(p, "unknown statement %q (a line starts with list, rule, if or then)", kw.s))
		}
		if len(errs) >= 50 {
			errs = append(errs, fmt.Errorf("%s: too many errors; stopping", file))
			break
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func parseList(p pos, args []word) (listDecl, error) {
	if len(args) == 0 || args[0].quoted || !validName(args[0].s) {
		return listDecl{}, errorf(p, "a list needs a name of lowercase letters, digits and _ (e.g. \"list spam_domains file spam-domains.txt\")")
	}
	d := listDecl{pos: p, name: args[0].s}
	rest := args[1:]
	if len(rest) > 0 && !rest[0].quoted && rest[0].s == "file" {
		if len(rest) != 2 {
			return listDecl{}, errorf(p, "list %s: \"file\" takes one path", d.name)
		}
		d.file = rest[1].s
		return d, nil
	}
	if len(rest) == 0 {
		return listDecl{}, errorf(p, "list %s is empty: give values or \"file PATH\"", d.name)
	}
	for _, w := range rest {
		d.values = append(d.values, w.s)
	}
	return d, nil
}

func parseRuleHeader(p pos, args []word) (*ruleDecl, error) {
	if len(args) == 0 || args[0].quoted || !validName(args[0].s) {
		return nil, errorf(p, "a rule needs a name of lowercase letters, digits and _, e.g. \"rule block_spam_domains on remote\"")
	}
	r := &ruleDecl{pos: p, name: args[0].s}
	if len(args) < 3 || args[1].s != "on" {
		return nil, errorf(p, "rule %s: say which chains it runs on: \"rule %s on local\" (chains: local, remote, deliver)", r.name, r.name)
	}
	r.chains = args[2:]
	return r, nil
}
