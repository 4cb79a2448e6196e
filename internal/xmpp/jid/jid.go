// Package jid implements XMPP addresses (RFC 7622).
//
// A JID is a comparable value holding one canonical string plus the offsets
// of its parts, so == and map keys work on prepared addresses. Parts are
// prepared as RFC 7622 requires:
//
//   - localpart: PRECIS UsernameCaseMapped (RFC 8265), minus the characters
//     RFC 7622 §3.3.1 forbids (" & ' / : < > @);
//   - domainpart: IDNA2008 via golang.org/x/net/idna's Lookup profile (UTS #46
//     mapping, so it is lowercased), stored in Unicode form, one trailing dot
//     removed, every label at most 63 octets in its ASCII form; IPv4 and
//     bracketed IPv6 literals are accepted and stored in canonical form;
//   - resourcepart: PRECIS OpaqueString (RFC 8265).
//
// Each part is limited to 1023 octets after preparation. The PRECIS tables are
// those of golang.org/x/text (Unicode 15.0.0).
//
// Canonical ASCII input takes a fast path that neither allocates nor calls the
// PRECIS or IDNA code; the fuzz target checks it against the full path.
package jid

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
)

// maxPart is the longest a prepared part may be, in octets (RFC 7622 §3).
const maxPart = 1023

// maxLabel is the longest a domain label may be in its ASCII form (RFC 5890).
const maxLabel = 63

// Errors returned (wrapped) by Parse, New and the Prep functions; match them
// with errors.Is. The message names the offending part.
var (
	ErrEmptyLocal    = errors.New("jid: empty localpart")
	ErrEmptyDomain   = errors.New("jid: empty domainpart")
	ErrEmptyResource = errors.New("jid: empty resourcepart")
	ErrLocal         = errors.New("jid: invalid localpart")
	ErrDomain        = errors.New("jid: invalid domainpart")
	ErrResource      = errors.New("jid: invalid resourcepart")
)

// JID is a prepared XMPP address. The zero value is the empty JID (IsZero);
// all other values are valid. JIDs compare with == (or Equal).
type JID struct {
	s string
	// dom is the offset of the domainpart in s (0 without a localpart,
	// else one past the '@').
	dom int32
	// res is the offset of the '/' before the resourcepart, or len(s).
	res int32
}

// Parse parses and prepares a JID string.
func Parse(s string) (JID, error) {
	rest, resource, hasRes := strings.Cut(s, "/")
	if hasRes && resource == "" {
		return JID{}, fmt.Errorf("jid: parsing %q: %w", s, ErrEmptyResource)
	}
	local, domain, hasLocal := strings.Cut(rest, "@")
	if !hasLocal {
		local, domain = "", rest
	} else if local == "" {
		return JID{}, fmt.Errorf("jid: parsing %q: %w", s, ErrEmptyLocal)
	}
	// Fast path: the input is already canonical ASCII; keep the string.
	if (!hasLocal || asciiLocalCanonical(local)) && asciiDomainCanonical(domain) &&
		(!hasRes || asciiResourceCanonical(resource)) {
		j := JID{s: s, res: int32(len(s))}
		if hasLocal {
			j.dom = int32(len(local) + 1)
		}
		if hasRes {
			j.res = int32(len(local) + len(domain))
			if hasLocal {
				j.res++
			}
		}
		return j, nil
	}
	j, err := build(local, domain, resource, hasLocal, hasRes)
	if err != nil {
		return JID{}, fmt.Errorf("jid: parsing %q: %w", s, err)
	}
	return j, nil
}

// New builds a JID from its parts, preparing each. An empty local or
// resource means the part is absent; the domain is required.
func New(local, domain, resource string) (JID, error) {
	j, err := build(local, domain, resource, local != "", resource != "")
	if err != nil {
		return JID{}, fmt.Errorf("jid: building from parts: %w", err)
	}
	return j, nil
}

// MustParse is Parse for constants: it panics if s is not a valid JID.
func MustParse(s string) JID {
	j, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return j
}

func build(local, domain, resource string, hasLocal, hasRes bool) (JID, error) {
	return buildWith(preparers{PrepLocal, prepDomain, PrepResource}, local, domain, resource, hasLocal, hasRes)
}

// preparers are the part preparation functions; tests swap in the full
// (no fast path) versions to check the fast paths against them.
type preparers struct {
	local, domain, resource func(string) (string, error)
}

func buildWith(p preparers, local, domain, resource string, hasLocal, hasRes bool) (JID, error) {
	var err error
	if hasLocal {
		if local, err = p.local(local); err != nil {
			return JID{}, err
		}
	}
	if domain, err = p.domain(domain); err != nil {
		return JID{}, err
	}
	if hasRes {
		if resource, err = p.resource(resource); err != nil {
			return JID{}, err
		}
	}
	return assemble(local, domain, resource), nil
}

// assemble joins prepared parts; an empty local or resource is absent.
func assemble(local, domain, resource string) JID {
	var b strings.Builder
	b.Grow(len(local) + len(domain) + len(resource) + 2)
	var j JID
	if local != "" {
		b.WriteString(local)
		b.WriteByte('@')
		j.dom = int32(b.Len())
	}
	b.WriteString(domain)
	j.res = int32(b.Len())
	if resource != "" {
		b.WriteByte('/')
		b.WriteString(resource)
	}
	j.s = b.String()
	return j
}

// PrepLocal prepares a localpart (for example a username from SASL or the
// command line) with UsernameCaseMapped and the RFC 7622 restrictions.
func PrepLocal(s string) (string, error) {
	if asciiLocalCanonical(s) {
		return s, nil
	}
	if l, ok := lowerASCII(s); ok && asciiLocalCanonical(l) {
		return l, nil
	}
	return prepLocalFull(s)
}

func prepLocalFull(s string) (string, error) {
	if s == "" {
		return "", ErrEmptyLocal
	}
	p, err := precis.UsernameCaseMapped.String(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrLocal, s, err)
	}
	if i := strings.IndexAny(p, localForbidden); i >= 0 {
		return "", fmt.Errorf("%w %q: character %q not allowed", ErrLocal, s, p[i])
	}
	if len(p) > maxPart {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrLocal, maxPart)
	}
	if p == "" {
		return "", ErrEmptyLocal
	}
	return p, nil
}

// PrepResource prepares a resourcepart with OpaqueString.
func PrepResource(s string) (string, error) {
	if asciiResourceCanonical(s) {
		return s, nil
	}
	return prepResourceFull(s)
}

func prepResourceFull(s string) (string, error) {
	if s == "" {
		return "", ErrEmptyResource
	}
	p, err := precis.OpaqueString.String(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrResource, s, err)
	}
	if len(p) > maxPart {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrResource, maxPart)
	}
	if p == "" {
		return "", ErrEmptyResource
	}
	return p, nil
}

// prepDomain prepares a domainpart.
func prepDomain(s string) (string, error) {
	if asciiDomainCanonical(s) {
		return s, nil
	}
	if l, ok := lowerASCII(s); ok && asciiDomainCanonical(l) {
		return l, nil
	}
	return prepDomainFull(s)
}

func prepDomainFull(s string) (string, error) {
	if s == "" {
		return "", ErrEmptyDomain
	}
	if s[0] == '[' {
		// IPv6 literal (RFC 7622 §3.2: IP-literal of RFC 3986, no zones).
		if s[len(s)-1] != ']' {
			return "", fmt.Errorf("%w %q: unterminated IPv6 literal", ErrDomain, s)
		}
		a, err := netip.ParseAddr(s[1 : len(s)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("%w %q: bad IPv6 literal", ErrDomain, s)
		}
		return "[" + a.String() + "]", nil
	}
	s = strings.TrimSuffix(s, ".")
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() {
			return "", fmt.Errorf("%w %q: IPv6 literal needs brackets", ErrDomain, s)
		}
		return a.String(), nil
	}
	a, err := idna.Lookup.ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrDomain, s, err)
	}
	// Mapping may have produced a trailing dot (U+3002 and friends); a
	// trailing ASCII dot left after the strip above is an empty label.
	if !strings.HasSuffix(s, ".") {
		a = strings.TrimSuffix(a, ".")
	}
	if a == "" {
		return "", ErrEmptyDomain
	}
	for label := range strings.SplitSeq(a, ".") {
		if label == "" {
			return "", fmt.Errorf("%w %q: empty label", ErrDomain, s)
		}
		if len(label) > maxLabel {
			return "", fmt.Errorf("%w %q: label longer than %d bytes", ErrDomain, s, maxLabel)
		}
	}
	u, err := idna.Lookup.ToUnicode(a)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrDomain, s, err)
	}
	if len(u) > maxPart {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrDomain, maxPart)
	}
	// A mapped domain may spell an IPv4 address (fullwidth digits).
	if ip, err := netip.ParseAddr(u); err == nil {
		if !ip.Is4() {
			return "", fmt.Errorf("%w %q: IPv6 literal needs brackets", ErrDomain, s)
		}
		return ip.String(), nil
	}
	return u, nil
}

// lowerASCII returns s with ASCII letters lowercased if s is all ASCII and
// has uppercase letters; ok is false otherwise.
func lowerASCII(s string) (lower string, ok bool) {
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return "", false
		}
		upper = upper || ('A' <= c && c <= 'Z')
	}
	if !upper {
		return "", false
	}
	return strings.ToLower(s), true
}

// localForbidden are the characters RFC 7622 §3.3.1 excludes from localparts
// beyond what UsernameCaseMapped excludes.
const localForbidden = "\"&'/:<>@"

// asciiLocalCanonical reports whether s is a non-empty localpart that
// UsernameCaseMapped leaves unchanged and RFC 7622 allows: printable ASCII
// without uppercase letters or forbidden characters.
func asciiLocalCanonical(s string) bool {
	if s == "" || len(s) > maxPart {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || ('A' <= c && c <= 'Z') {
			return false
		}
		switch c {
		case '"', '&', '\'', '/', ':', '<', '>', '@':
			return false
		}
	}
	return true
}

// asciiResourceCanonical reports whether s is a non-empty resourcepart that
// OpaqueString leaves unchanged: printable ASCII and space (control
// characters and non-ASCII bytes take the full path).
func asciiResourceCanonical(s string) bool {
	if s == "" || len(s) > maxPart {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// asciiDomainCanonical reports whether s is a lowercase LDH domain name that
// the IDNA Lookup profile leaves unchanged and that is not an IP address:
// labels of 1..63 of [a-z0-9-], no hyphen at either end of a label, no "--"
// at positions 3-4 (which covers xn--), and at least one letter or hyphen in
// the last label (so it cannot be a dotted-quad IPv4 address).
func asciiDomainCanonical(s string) bool {
	if s == "" || len(s) > maxPart {
		return false
	}
	start := 0
	lastAlpha := false
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			switch {
			case 'a' <= c && c <= 'z', c == '-':
				lastAlpha = true
			case '0' <= c && c <= '9':
			default:
				return false
			}
			continue
		}
		label := s[start:i]
		if label == "" || len(label) > maxLabel || label[0] == '-' || label[len(label)-1] == '-' ||
			(len(label) >= 4 && label[2] == '-' && label[3] == '-') {
			return false
		}
		if i < len(s) {
			lastAlpha = false
		}
		start = i + 1
	}
	return lastAlpha
}

// Local returns the localpart ("" if none).
func (j JID) Local() string {
	if j.dom == 0 {
		return ""
	}
	return j.s[:j.dom-1]
}

// Domain returns the domainpart.
func (j JID) Domain() string { return j.s[j.dom:j.res] }

// Resource returns the resourcepart ("" if none).
func (j JID) Resource() string {
	if int(j.res) >= len(j.s) {
		return ""
	}
	return j.s[j.res+1:]
}

// Bare returns the JID without its resourcepart.
func (j JID) Bare() JID {
	return JID{s: j.s[:j.res], dom: j.dom, res: j.res}
}

// DomainJID returns the JID of the domain alone.
func (j JID) DomainJID() JID {
	d := j.Domain()
	return JID{s: d, res: int32(len(d))}
}

// WithResource returns the bare JID with resourcepart r (prepared). An empty
// r returns the bare JID.
func (j JID) WithResource(r string) (JID, error) {
	if j.IsZero() {
		return JID{}, fmt.Errorf("jid: adding a resource: %w", ErrEmptyDomain)
	}
	if r == "" {
		return j.Bare(), nil
	}
	p, err := PrepResource(r)
	if err != nil {
		return JID{}, fmt.Errorf("jid: adding a resource: %w", err)
	}
	return JID{s: j.s[:j.res] + "/" + p, dom: j.dom, res: j.res}, nil
}

// String returns the canonical string form.
func (j JID) String() string { return j.s }

// IsZero reports whether j is the zero JID.
func (j JID) IsZero() bool { return j.s == "" }

// IsBare reports whether j has no resourcepart.
func (j JID) IsBare() bool { return int(j.res) == len(j.s) }

// IsDomain reports whether j has neither localpart nor resourcepart.
func (j JID) IsDomain() bool { return j.dom == 0 && j.IsBare() }

// Equal reports whether j and o are the same address.
func (j JID) Equal(o JID) bool { return j == o }

// MarshalText implements encoding.TextMarshaler.
func (j JID) MarshalText() ([]byte, error) { return []byte(j.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler; empty text gives the
// zero JID.
func (j *JID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*j = JID{}
		return nil
	}
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*j = p
	return nil
}
