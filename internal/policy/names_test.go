package policy

import (
	"strings"
	"testing"
)

func TestPrepName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Alice", "alice", true},
		{"ｊｕｌｉｅｔ", "juliet", true}, // width mapping
		{"ǅ", "", false},           // disallowed by UsernameCaseMapped
		{"jul iet", "", false},
		{"a@b", "", false},
		{"", "", false},
		{"a.b-c_d", "a.b-c_d", true},
	}
	for _, tc := range tests {
		got, err := PrepName(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("PrepName(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "name") {
			t.Errorf("PrepName(%q) error %q does not talk about the name", tc.in, err)
		}
	}
}

// TestNameKeyLookAlikes: names that people would mistake for each other
// share a key; clearly different names do not.
func TestNameKeyLookAlikes(t *testing.T) {
	t.Parallel()
	same := [][]string{
		{"admin", "adm1n", "admín", "аdmin" /* Cyrillic а */, "ad.min", "ad_min", "adrnin", "admln", "adm|n"},
		{"paypal", "раураl" /* Cyrillic */, "paypa1", "pay-pal"},
		{"support", "suppοrt" /* Greek omicron */, "supp0rt", "5upport"},
		{"bob", "b0b", "bоb" /* Cyrillic о */},
		{"william", "wiiliam", "wllliam", "vvilliam"},
		{"modem", "rnodern"},
		{"dave", "clave"},
		{"zed", "2ed"},
		{"juliet", "ｊｕｌｉｅｔ"},
	}
	for _, group := range same {
		var want string
		for i, n := range group {
			p, err := PrepName(n)
			if err != nil {
				t.Errorf("PrepName(%q): %v", n, err)
				continue
			}
			k := NameKey(p)
			if i == 0 {
				want = k
			} else if k != want {
				t.Errorf("NameKey(%q) = %q, want %q (the key of %q)", n, k, want, group[0])
			}
			if NameKey(k) != k {
				t.Errorf("NameKey is not idempotent on %q: %q then %q", n, k, NameKey(k))
			}
		}
	}
	different := [][2]string{{"alice", "bob"}, {"anna", "hanna"}, {"admin", "admins"}, {"mark", "marc"}, {"tom", "tim"}}
	for _, d := range different {
		if NameKey(d[0]) == NameKey(d[1]) {
			t.Errorf("NameKey(%q) == NameKey(%q) = %q; they are different names", d[0], d[1], NameKey(d[0]))
		}
	}
	if k := NameKey("___"); k == "" {
		t.Errorf("NameKey of separators only is empty")
	}
}

func TestReservedNames(t *testing.T) {
	t.Parallel()
	r, err := NewReservedNames(append(DefaultReservedNames(), "*official*", "stoa-?", "team*"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		entry string // "" = not reserved
	}{
		{"admin", "admin"},
		{"adm1n", "admin"},
		{"аdmin", "admin"},
		{"postmaster", "postmaster"},
		{"xmpp", "xmpp"},
		{"noreply", "noreply"},
		{"alice", ""},
		{"administrators", ""},
		{"the-official-bot", "*official*"},
		{"the0fficialbot", "*official*"}, // look-alike of the pattern
		{"stoa-1", "stoa-?"},
		{"stoa-12", ""},
		{"teamlead", "team*"},
		{"steam", ""},
	}
	for _, tc := range tests {
		p, err := PrepName(tc.name)
		if err != nil {
			t.Fatalf("PrepName(%q): %v", tc.name, err)
		}
		entry, ok := r.Match(p)
		if ok != (tc.entry != "") || entry != tc.entry {
			t.Errorf("Match(%q) = %q, %v; want %q", tc.name, entry, ok, tc.entry)
		}
	}
	if _, err := NewReservedNames([]string{"bad name"}); err == nil {
		t.Errorf("NewReservedNames accepted a name with a space")
	}
	var none *ReservedNames
	if _, ok := none.Match("admin"); ok {
		t.Errorf("a nil ReservedNames matched")
	}
}

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"a*", "a", true},
		{"a*c", "abbbc", true},
		{"a*c", "ab", false},
		{"*b*", "abc", true},
		{"*b*d*", "abcxd", true},
		{"*b*d*", "adcb", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*", "", true},
	}
	for _, tc := range tests {
		if got := globMatch(strings.Split(tc.pat, "*"), tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pat, tc.s, got, tc.want)
		}
	}
}
