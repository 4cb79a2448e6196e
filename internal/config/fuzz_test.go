package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a File
// or an *Error whose every problem names the file, and that a File holds
// every section.
func FuzzParse(f *testing.F) {
	sections := sampleSections()
	f.Add([]byte(Describe(sections)))
	f.Add([]byte("[c2s]\nlisten = [\"a\", 1]\n[[c2s.certificate]]\ndomian = 1\n"))
	f.Add([]byte("[c2s.certificate.ocsp]\n[[c2s.certificate]]\n"))
	f.Add([]byte("a.b.c = 1\n[a]\n"))
	f.Add([]byte("c2s = { tls = { ciphers = [[1], [\"x\"]] } }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.toml", data, sections)
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("error %T without problems: %v", err, err)
			}
			for _, p := range cerr.Problems {
				if !strings.HasPrefix(p.Error(), "fuzz.toml") || p.Msg == "" {
					t.Fatalf("bad problem %+v", p)
				}
			}
			return
		}
		for _, s := range sections {
			if file.Section(s.Name) == nil {
				t.Fatalf("section %s missing", s.Name)
			}
		}
	})
}
