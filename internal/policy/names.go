package policy

import (
	"fmt"
	"strings"
	"unicode"

	"go.mau.fi/util/confusable"
	"golang.org/x/text/unicode/norm"

	"stoa.im/stoa/internal/xmpp/jid"
)

// Account names: preparation, look-alike keys and reserved names.
//
// A name's look-alike key (NameKey) is what decides whether two account
// names could be mistaken for each other. It is the Unicode UTS #39
// skeleton of the PRECIS-prepared localpart, lowercased, with combining
// marks removed, the usual digit/letter look-alikes folded together (0/o,
// 1/l/i/|, 5/s, 2/z, rn/m, vv/w, cl/d) and the separators . - _ dropped.
// Two names with the same key are look-alikes: "admin", "Adm1n",
// "аdmin" (Cyrillic а), "ad.min" and "adrnin" all share the key of
// "admin". The store keeps the key of every account and tombstone under a
// unique index, so a look-alike or tombstone check is one indexed lookup.

// PrepName prepares a requested account name (the localpart) with the
// PRECIS UsernameCaseMapped profile (RFC 8265, RFC 7622), or says in
// words why it cannot be an account name.
func PrepName(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("the name is empty")
	}
	p, err := jid.PrepLocal(s)
	if err != nil {
		return "", fmt.Errorf("%q cannot be an account name: use letters, digits and . - _ only, with no spaces", s)
	}
	if p == "" {
		return "", fmt.Errorf("the name is empty")
	}
	return p, nil
}

// nameFolds are the look-alike folds applied after the skeleton, longest
// sequences first. The skeleton already maps many of these (m→rn, 1→l,
// 0→O, I→l); the folds make the result independent of which side of each
// pair a name used.
var nameFolds = strings.NewReplacer(
	"rn", "m",
	"vv", "w",
	"cl", "d",
	"0", "o",
	"1", "l",
	"i", "l",
	"|", "l",
	"5", "s",
	"2", "z",
	".", "",
	"-", "",
	"_", "",
)

// NameKey returns the look-alike key of a prepared localpart (see the
// package comment above). It is deterministic and idempotent.
func NameKey(local string) string {
	k := local
	for range 4 {
		next := foldOnce(k)
		if next == k {
			break
		}
		k = next
	}
	if k == "" {
		// A name made of separators only keeps itself as its key.
		return local
	}
	return k
}

func foldOnce(s string) string {
	s = confusable.Skeleton(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return norm.NFC.String(nameFolds.Replace(b.String()))
}

// DefaultReservedNames are names nobody may register: they look official
// or are mailboxes that RFC 2142 and XMPP (the xmpp@ address of RFC 6120
// §13.7 conventions) give a meaning.
func DefaultReservedNames() []string {
	return []string{
		"admin", "administrator", "root", "abuse", "postmaster", "hostmaster",
		"webmaster", "xmpp", "support", "security", "info", "noreply",
	}
}

// ReservedNames matches requested names against a list of reserved names
// and glob patterns. It is immutable after NewReservedNames and safe for
// concurrent use.
type ReservedNames struct {
	exact map[string]string // look-alike key -> configured entry
	globs []nameGlob
}

type nameGlob struct {
	entry string
	raw   []string // literal segments between '*' of the pattern, '?' kept
	keyed []string // the same segments, each through NameKey
}

// NewReservedNames compiles entries: plain names (compared by look-alike
// key, so "adm1n" is refused when "admin" is reserved) and glob patterns
// using * (any run of characters) and ? (one character), e.g. "*admin*"
// or "support?". Patterns are matched against the prepared name and,
// with their literal parts folded the same way, against its look-alike
// key.
func NewReservedNames(entries []string) (*ReservedNames, error) {
	r := &ReservedNames{exact: make(map[string]string, len(entries))}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if strings.ContainsAny(e, "*?") {
			raw := strings.Split(strings.ToLower(e), "*")
			keyed := make([]string, len(raw))
			for i, seg := range raw {
				parts := strings.Split(seg, "?")
				for j, p := range parts {
					if p != "" {
						parts[j] = foldSegment(p)
					}
				}
				keyed[i] = strings.Join(parts, "?")
			}
			r.globs = append(r.globs, nameGlob{entry: e, raw: raw, keyed: keyed})
			continue
		}
		p, err := PrepName(e)
		if err != nil {
			return nil, fmt.Errorf("reserved name %q: %w", e, err)
		}
		r.exact[NameKey(p)] = e
	}
	return r, nil
}

// foldSegment folds a literal part of a glob pattern like NameKey, except
// that a part made only of separators stays as is.
func foldSegment(s string) string {
	k := s
	for range 4 {
		next := foldOnce(k)
		if next == k {
			break
		}
		k = next
	}
	return k
}

// Match reports whether the prepared name is reserved, and by which
// configured entry.
func (r *ReservedNames) Match(name string) (entry string, ok bool) {
	if r == nil {
		return "", false
	}
	key := NameKey(name)
	if e, ok := r.exact[key]; ok {
		return e, true
	}
	for _, g := range r.globs {
		if globMatch(g.raw, name) || globMatch(g.keyed, key) {
			return g.entry, true
		}
	}
	return "", false
}

// globMatch matches s against a pattern split at '*' (segments may
// contain '?', one rune each).
func globMatch(segs []string, s string) bool {
	rs := []rune(s)
	if len(segs) == 1 {
		return segMatch([]rune(segs[0]), rs) && len([]rune(segs[0])) == len(rs)
	}
	first, last := []rune(segs[0]), []rune(segs[len(segs)-1])
	if len(rs) < len(first)+len(last) || !segMatch(first, rs) || !segMatch(last, rs[len(rs)-len(last):]) {
		return false
	}
	rs = rs[len(first) : len(rs)-len(last)]
	for _, seg := range segs[1 : len(segs)-1] {
		p := []rune(seg)
		found := false
		for i := 0; i+len(p) <= len(rs); i++ {
			if segMatch(p, rs[i:]) {
				rs = rs[i+len(p):]
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// segMatch reports whether s starts with the literal pattern p ('?' is
// any rune).
func segMatch(p, s []rune) bool {
	if len(s) < len(p) {
		return false
	}
	for i, r := range p {
		if r != '?' && r != s[i] {
			return false
		}
	}
	return true
}
