package jid

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/text/secure/precis"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want           string
		local, domain, res string
	}{
		// RFC 7622 §3.5, examples of valid JIDs.
		{"juliet@example.com", "juliet@example.com", "juliet", "example.com", ""},
		{"juliet@example.com/foo", "juliet@example.com/foo", "juliet", "example.com", "foo"},
		{"juliet@example.com/foo bar", "juliet@example.com/foo bar", "juliet", "example.com", "foo bar"},
		{"juliet@example.com/foo@bar", "juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"},
		{`foo\20bar@example.com`, `foo\20bar@example.com`, `foo\20bar`, "example.com", ""},
		{"fussball@example.com", "fussball@example.com", "fussball", "example.com", ""},
		{"fußball@example.com", "fußball@example.com", "fußball", "example.com", ""},
		{"π@example.com", "π@example.com", "π", "example.com", ""},
		{"Σ@example.com/foo", "σ@example.com/foo", "σ", "example.com", "foo"},
		{"σ@example.com/foo", "σ@example.com/foo", "σ", "example.com", "foo"},
		{"ς@example.com/foo", "ς@example.com/foo", "ς", "example.com", "foo"},
		{"king@example.com/♚", "king@example.com/♚", "king", "example.com", "♚"},
		{"example.com", "example.com", "", "example.com", ""},
		{"example.com/foobar", "example.com/foobar", "", "example.com", "foobar"},
		{"a.example.com/b@example.net", "a.example.com/b@example.net", "", "a.example.com", "b@example.net"},
		// mellium-style cases.
		{"Juliet@Example.COM/Balcony", "juliet@example.com/Balcony", "juliet", "example.com", "Balcony"},
		{"ＪＵＬＩＥＴ@example.com", "juliet@example.com", "juliet", "example.com", ""},
		{"juliet@example.com./x", "juliet@example.com/x", "juliet", "example.com", "x"},
		{"juliet@xn--bcher-kva.example", "juliet@bücher.example", "juliet", "bücher.example", ""},
		{"juliet@BÜCHER.example", "juliet@bücher.example", "juliet", "bücher.example", ""},
		{"juliet@bücher。example", "juliet@bücher.example", "juliet", "bücher.example", ""},
		{"example.com/a/b/c", "example.com/a/b/c", "", "example.com", "a/b/c"},
		{"juliet@example.com/ x ", "juliet@example.com/ x ", "juliet", "example.com", " x "},
		// IP literals.
		{"juliet@192.0.2.1/r", "juliet@192.0.2.1/r", "juliet", "192.0.2.1", "r"},
		{"[2001:DB8::0001]", "[2001:db8::1]", "", "[2001:db8::1]", ""},
		{"juliet@[::1]/r", "juliet@[::1]/r", "juliet", "[::1]", "r"},
		{"１９２.０.２.１", "192.0.2.1", "", "192.0.2.1", ""},
		// Lengths at the limit.
		{strings.Repeat("a", 1023) + "@" + strings.Repeat("b", 63) + ".example",
			strings.Repeat("a", 1023) + "@" + strings.Repeat("b", 63) + ".example",
			strings.Repeat("a", 1023), strings.Repeat("b", 63) + ".example", ""},
		{"x.example/" + strings.Repeat("r", 1023), "x.example/" + strings.Repeat("r", 1023),
			"", "x.example", strings.Repeat("r", 1023)},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			j, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if j.String() != tc.want || j.Local() != tc.local || j.Domain() != tc.domain || j.Resource() != tc.res {
				t.Fatalf("Parse(%q) = %q (%q, %q, %q), want %q (%q, %q, %q)", tc.in,
					j, j.Local(), j.Domain(), j.Resource(), tc.want, tc.local, tc.domain, tc.res)
			}
			// Idempotence.
			again, err := Parse(j.String())
			if err != nil || again != j {
				t.Fatalf("Parse(Parse(%q).String()) = %q, %v; want %q", tc.in, again, err, j)
			}
			// New from the parts gives the same value.
			n, err := New(j.Local(), j.Domain(), j.Resource())
			if err != nil || n != j {
				t.Fatalf("New(parts of %q) = %q, %v", tc.in, n, err)
			}
			if j.IsZero() || j.IsBare() != (tc.res == "") || j.IsDomain() != (tc.local == "" && tc.res == "") {
				t.Fatalf("predicates wrong for %q", j)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want error
	}{
		// RFC 7622 §3.5, examples of invalid JIDs.
		{"juliet@@example.com", ErrDomain},
		{"@example.com", ErrEmptyLocal},
		{"juliet@example.com/", ErrEmptyResource},
		{"henryⅣ@example.com", ErrLocal},
		{"♚@example.com", ErrLocal},
		{"juliet@", ErrEmptyDomain},
		{"/foobar", ErrEmptyDomain},
		// Others.
		{"", ErrEmptyDomain},
		{"a@b@c", ErrDomain},
		{"@", ErrEmptyLocal},
		{"jul iet@example.com", ErrLocal},
		{"juliet@exa mple.com", ErrDomain},
		{"juliet@example..com", ErrDomain},
		{"juliet@.", ErrEmptyDomain},
		{"juliet@example.com..", ErrDomain},
		{"juliet@-example.com", ErrDomain},
		{"juliet@xn--a.example", ErrDomain},
		{"juliet@example_host", ErrDomain},
		{"juliet@[::1", ErrDomain},
		{"juliet@[192.0.2.1]", ErrDomain},
		{"juliet@[fe80::1%eth0]", ErrDomain},
		{"juliet@::1", ErrDomain},
		{"juliet@example.com/a\x00b", ErrResource},
		{"juliet@example.com/\u200d", ErrResource},
		{"ju\x7fliet@example.com", ErrLocal},
		{"ju\u200bliet@example.com", ErrLocal},
		{"ju:liet@example.com", ErrLocal},
		{"ju<liet@example.com", ErrLocal},
		{"ju＠liet@example.com", ErrLocal}, // fullwidth @ maps to a forbidden @
		{"\xff@example.com", ErrLocal},
		{"juliet@exa\xffmple.com", ErrDomain},
		{strings.Repeat("a", 1024) + "@example.com", ErrLocal},
		{"juliet@" + strings.Repeat("b", 64) + ".example", ErrDomain},
		{"example.com/" + strings.Repeat("r", 1024), ErrResource},
		{"juliet@" + strings.Repeat("b", 60) + "ü.example", ErrDomain}, // A-label > 63
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			j, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tc.in, j)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse(%q) error %v, want %v", tc.in, err, tc.want)
			}
			if !j.IsZero() {
				t.Fatalf("Parse(%q) returned non-zero JID on error", tc.in)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	t.Parallel()
	full := MustParse("juliet@example.com/balcony")
	bare := MustParse("juliet@example.com")
	dom := MustParse("example.com")
	if full.Bare() != bare || !full.Bare().Equal(bare) || full.Bare().String() != "juliet@example.com" {
		t.Errorf("Bare = %q", full.Bare())
	}
	if full.DomainJID() != dom || bare.DomainJID() != dom || dom.DomainJID() != dom {
		t.Errorf("DomainJID = %q", full.DomainJID())
	}
	if full.IsBare() || !bare.IsBare() || full.IsDomain() || bare.IsDomain() || !dom.IsDomain() {
		t.Errorf("predicates wrong")
	}
	if full.Equal(bare) {
		t.Errorf("full equals bare")
	}
	w, err := bare.WithResource("Orchard")
	if err != nil || w.String() != "juliet@example.com/Orchard" || w.Resource() != "Orchard" || w.Bare() != bare {
		t.Errorf("WithResource = %q, %v", w, err)
	}
	w, err = full.WithResource("ｘ")
	if err != nil || w.String() != "juliet@example.com/ｘ" {
		t.Errorf("WithResource(fullwidth) = %q, %v", w, err)
	}
	if w, err := full.WithResource(""); err != nil || w != bare {
		t.Errorf("WithResource(\"\") = %q, %v", w, err)
	}
	if _, err := full.WithResource("a\x00"); !errors.Is(err, ErrResource) {
		t.Errorf("WithResource(bad) err = %v", err)
	}
	if _, err := (JID{}).WithResource("x"); err == nil {
		t.Errorf("WithResource on zero JID succeeded")
	}
	var z JID
	if !z.IsZero() || z.String() != "" || z.Local() != "" || z.Domain() != "" || z.Resource() != "" {
		t.Errorf("zero JID misbehaves")
	}
	if n, err := New("", "example.com", ""); err != nil || n != dom {
		t.Errorf("New domain = %q, %v", n, err)
	}
	if n, err := New("Juliet", "EXAMPLE.com.", "r"); err != nil || n.String() != "juliet@example.com/r" {
		t.Errorf("New = %q, %v", n, err)
	}
	if _, err := New("a@b", "example.com", ""); !errors.Is(err, ErrLocal) {
		t.Errorf("New with @ in local: %v", err)
	}
	if _, err := New("a", "", ""); !errors.Is(err, ErrEmptyDomain) {
		t.Errorf("New without domain: %v", err)
	}
	// Usable as a map key.
	m := map[JID]int{MustParse("Juliet@Example.com"): 1}
	if m[bare] != 1 {
		t.Errorf("map lookup by equal JID failed")
	}
	// Text round trip.
	var u JID
	if err := u.UnmarshalText([]byte("Juliet@Example.COM/Balcony")); err != nil || u.String() != "juliet@example.com/Balcony" {
		t.Errorf("UnmarshalText = %q, %v", u, err)
	}
	if b, _ := u.MarshalText(); string(b) != "juliet@example.com/Balcony" {
		t.Errorf("MarshalText = %q", b)
	}
	if err := u.UnmarshalText([]byte("@x")); err == nil {
		t.Errorf("UnmarshalText accepted bad JID")
	}
	defer func() {
		if recover() == nil {
			t.Errorf("MustParse did not panic")
		}
	}()
	MustParse("@")
}

func TestPrep(t *testing.T) {
	t.Parallel()
	locals := []struct{ in, want string }{
		{"Juliet", "juliet"},
		{"ＪＵＬＩＥＴ", "juliet"},
		{"juliet", "juliet"},
		{"ΣΑΣ", "σασ"},
		{"", ""},
		{"a b", ""},
		{"a@b", ""},
		{"ǅ", ""},
	}
	for _, tc := range locals {
		got, err := PrepLocal(tc.in)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("PrepLocal(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err == nil {
			if again, err := PrepLocal(got); err != nil || again != got {
				t.Errorf("PrepLocal not idempotent on %q: %q, %v", got, again, err)
			}
		}
	}
	resources := []struct{ in, want string }{
		{"Balcony", "Balcony"},
		{"foo bar", "foo bar"},
		{"a\u00a0b", "a b"}, // non-ASCII space maps to ASCII space
		{"", ""},
		{"\x07", ""},
	}
	for _, tc := range resources {
		got, err := PrepResource(tc.in)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("PrepResource(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// slowParse is Parse without the ASCII fast path.
func slowParse(s string) (JID, error) {
	rest, resource, hasRes := strings.Cut(s, "/")
	if hasRes && resource == "" {
		return JID{}, ErrEmptyResource
	}
	local, domain, hasLocal := strings.Cut(rest, "@")
	if !hasLocal {
		local, domain = "", rest
	} else if local == "" {
		return JID{}, ErrEmptyLocal
	}
	return buildWith(preparers{prepLocalFull, prepDomainFull, prepResourceFull}, local, domain, resource, hasLocal, hasRes)
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"juliet@example.com/balcony", "Juliet@Example.COM/Balcony", "example.com", "a@b@c",
		"xn--bcher-kva.example", "[::1]", "192.0.2.1", "ς@example.com/♚", "a/b/c@d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		slow, slowErr := slowParse(s)
		if (err == nil) != (slowErr == nil) || j != slow {
			t.Fatalf("fast and slow paths disagree on %q: %q, %v vs %q, %v", s, j, err, slow, slowErr)
		}
		for _, p := range []struct {
			name       string
			fast, full func(string) (string, error)
		}{
			{"local", PrepLocal, prepLocalFull},
			{"domain", prepDomain, prepDomainFull},
			{"resource", PrepResource, prepResourceFull},
		} {
			a, errA := p.fast(s)
			b, errB := p.full(s)
			if a != b || (errA == nil) != (errB == nil) {
				t.Fatalf("%s fast and full preparation disagree on %q: %q, %v vs %q, %v", p.name, s, a, errA, b, errB)
			}
		}
		if err != nil {
			return
		}
		if j.IsZero() {
			t.Fatalf("Parse(%q) succeeded with a zero JID", s)
		}
		again, err := Parse(j.String())
		if err != nil || again != j {
			t.Fatalf("Parse(%q) = %q, but it re-parses to %q, %v", s, j, again, err)
		}
		n, err := New(j.Local(), j.Domain(), j.Resource())
		if err != nil || n != j {
			t.Fatalf("New(parts of %q) = %q, %v", j, n, err)
		}
		if j.Local()+"@"+j.Domain() != j.Bare().String() && j.Local() != "" {
			t.Fatalf("Bare of %q = %q", j, j.Bare())
		}
		// Fast prep paths agree with PRECIS.
		if l := j.Local(); l != "" {
			if p, err := precis.UsernameCaseMapped.String(l); err != nil || p != l {
				t.Fatalf("localpart %q not stable under UsernameCaseMapped: %q, %v", l, p, err)
			}
		}
		if r := j.Resource(); r != "" {
			if p, err := precis.OpaqueString.String(r); err != nil || p != r {
				t.Fatalf("resourcepart %q not stable under OpaqueString: %q, %v", r, p, err)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, s := range []string{
		"juliet@example.com/balcony",
		"Juliet@Example.COM/Balcony",
		"ju\u00dfliet@b\u00fccher.example/\u265a",
	} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
