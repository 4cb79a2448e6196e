package firewall

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// bodyRegexp is a body condition's regular expression with a literal
// prefilter: most regular expressions need some literal text (a word, a
// "://"), and a body that does not contain it cannot match. Checking
// that first, on a case-folded copy of the body made once per stanza,
// skips the regular expression for nearly every message (Go's regexp
// costs microseconds per run; a substring search, nanoseconds).
type bodyRegexp struct {
	re *regexp.Regexp
	// need holds folded ASCII literals one of which every match
	// contains; nil when no prefilter could be derived.
	need []string
}

func compileBody(expr string) (*bodyRegexp, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	b := &bodyRegexp{re: re}
	if t, err := syntax.Parse(expr, syntax.Perl); err == nil {
		if lits, ok := required(t.Simplify()); ok {
			b.need = lits
		}
	}
	return b, nil
}

// match reports whether the body matches; folded is fold(body).
func (b *bodyRegexp) match(body, folded string) bool {
	if b.need != nil {
		found := false
		for _, l := range b.need {
			if strings.Contains(folded, l) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return b.re.MatchString(body)
}

// required returns literals, folded, one of which every string matching
// re contains. ok is false when it cannot tell (then any text may match).
func required(re *syntax.Regexp) (lits []string, ok bool) {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		if !isASCII(s) || s == "" {
			return nil, false
		}
		return []string{foldASCII(s)}, true
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		// The best requirement of a concatenation is that of one of its
		// parts (runs of literals count as one part): the longest.
		var best []string
		bestLen := 0
		var run strings.Builder
		consider := func(ls []string) {
			shortest := -1
			for _, l := range ls {
				if shortest < 0 || len(l) < shortest {
					shortest = len(l)
				}
			}
			if shortest > bestLen {
				best, bestLen = ls, shortest
			}
		}
		flush := func() {
			if run.Len() > 0 {
				consider([]string{run.String()})
				run.Reset()
			}
		}
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpLiteral && isASCII(string(sub.Rune)) {
				run.WriteString(foldASCII(string(sub.Rune)))
				continue
			}
			flush()
			if ls, ok := required(sub); ok {
				consider(ls)
			}
		}
		flush()
		if best != nil {
			return best, true
		}
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			ls, ok := required(sub)
			if !ok {
				return nil, false
			}
			all = append(all, ls...)
		}
		return all, len(all) > 0
	}
	return nil, false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldASCII lowercases ASCII letters.
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// fold prepares a body for the prefilter: ASCII letters lowercased, and
// the two non-ASCII letters that (?i) matches against ASCII ones (U+212A
// KELVIN SIGN ~ k, U+017F LATIN SMALL LETTER LONG S ~ s) replaced by them,
// so that a body containing a literal case-insensitively contains its
// folded form. Other text is kept as is.
func fold(s string) string {
	needs := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			needs = true
			break
		}
	}
	if !needs {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z':
			b.WriteByte(byte(r) + 'a' - 'A')
		case r == '\u212A':
			b.WriteByte('k')
		case r == '\u017F':
			b.WriteByte('s')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
