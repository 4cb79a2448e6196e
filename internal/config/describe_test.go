package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDescribeRoundTrip(t *testing.T) {
	t.Parallel()
	type odd struct {
		Empty   []string          `toml:"empty" help:"Empty default slice (not nil)."`
		Map     map[string]string `toml:"map" help:"Keys that need quoting." reload:"true"`
		Control string            `toml:"control" help:"Control characters and unicode."`
		Neg     int               `toml:"neg" help:"A negative integer." min:"-10"`
		Big     float64           `toml:"big" help:"A float with an exponent."`
		Whole   float64           `toml:"whole" help:"A whole float."`
		Days    Duration          `toml:"days" help:"Whole days."`
		Zero    Size              `toml:"zero" help:"Zero bytes."`
		Odd     Size              `toml:"odd" help:"A size in bytes."`
	}
	sections := append(sampleSections(), Section{
		Name: "odd",
		Help: strings.Repeat("A long help paragraph that needs wrapping. ", 5),
		Defaults: odd{
			Empty:   []string{},
			Map:     map[string]string{"a.b": "1", "": "empty", "ü": "\x00\x7f\"\\", "x y": "z"},
			Control: "line\nbreak\ttab \u00e9\u2028",
			Neg:     -3,
			Big:     1e21,
			Whole:   2,
			Days:    Duration(72 * time.Hour),
			Odd:     1023,
		},
	})
	out := Describe(sections)
	f, err := Parse("describe.toml", []byte(out), sections)
	if err != nil {
		t.Fatalf("Describe output does not parse: %v\n%s", err, out)
	}
	for _, s := range sections {
		if got, want := f.Section(s.Name), normalised(s.Defaults); !reflect.DeepEqual(got, want) {
			t.Errorf("section %s after the round trip:\n%+v\nwant\n%+v", s.Name, got, want)
		}
	}
	if again := Describe(sections); again != out {
		t.Error("Describe is not deterministic")
	}
	for _, want := range []string{
		"# Client-to-server connections: listeners, limits and TLS.\n[c2s]\n",
		"# Close idle streams after this long. Minimum 1s, maximum 1d. Applied on\n# reload.\ntimeout = \"5m\"\n",
		"# Lowest level logged. One of: debug, info, warn, error. Applied on reload.\nlevel = \"info\"\n",
		"[c2s.tls]\n",
		"[[c2s.certificate]]\n",
		"[c2s.certificate.ocsp]\n",
		"max_stanza_size = \"256KiB\"\n",
		"handshake_timeout = \"30s\"\n",
		"ratio = 0.5\n",
		"whole = 2.0\n",
		"days = \"3d\"\n",
		"odd = \"1023B\"\n",
		"\"a.b\" = \"1\"\n",
		"# [[upload.slot]]\n# # Domain the certificate is for.\n# domain = \"\"\n",
		"# [upload.headers]\n# key = \"value\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Describe output lacks %q", want)
		}
	}
	for i, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "#") && len(l) > 80 {
			t.Errorf("line %d is %d bytes long: %q", i+1, len(l), l)
		}
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	md := Markdown(sampleSections())
	for _, want := range []string{
		"# Configuration reference\n",
		"\n## [c2s]\n\nClient-to-server connections: listeners, limits and TLS.\n\n| Key | Type | Default | Reloadable | Description |\n",
		"| `listen` | array of strings | `[\"[::]:5222\"]` | no | Addresses to accept client connections on. |\n",
		"| `timeout` | duration | `\"5m\"` | yes | Close idle streams after this long. Minimum 1s, maximum 1d. |\n",
		"| `max_stanza_size` | size | `\"256KiB\"` | yes | Largest stanza accepted. Minimum 1KiB, maximum 16MiB. |\n",
		"| `features` | array of strings | `[\"csi\", \"sm\"]` | no | Optional stream features. One of: `csi`, `sm`, `carbons`. |\n",
		"| `tls` | table |  | yes | TLS for client connections. |\n",
		"| `tls.min_version` | string | `\"1.2\"` | yes | Oldest TLS version accepted. One of: `1.2`, `1.3`. |\n",
		"| `certificate` | array of tables | 2 tables, see `stoa config describe` | no | Extra certificates, one table each. |\n",
		"| `certificate[].priority` | integer | `0` | no | Higher wins. Minimum 0, maximum 10. |\n",
		"| `certificate[].ocsp.refresh` | duration | `\"0s\"` | no | How often to refresh. Minimum 0s. |\n",
		"| `labels` | table of strings | `{ env = \"test\", \"odd key\" = \"tab\\there\" }` | no | Free-form labels. |\n",
		"| `level` | string | `\"info\"` | yes | Lowest level logged. One of: `debug`, `info`, `warn`, `error`. |\n",
		"| `slot` | array of tables | `[]` | no |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	// Section order follows the registry.
	if strings.Index(md, "## [server]") > strings.Index(md, "## [log]") ||
		strings.Index(md, "## [log]") > strings.Index(md, "## [c2s]") {
		t.Error("sections are not in registry order")
	}
	type pipe struct {
		A string `toml:"a" help:"Either | or." enum:"x|y,z"`
	}
	md = Markdown([]Section{{Name: "p", Help: "h", Defaults: pipe{A: "z"}}})
	if !strings.Contains(md, "| `a` | string | `\"z\"` | no | Either \\| or. One of: `x\\|y`, `z`. |\n") {
		t.Errorf("pipes are not escaped:\n%s", md)
	}
}

func TestDescribePanicsOnBadRegistry(t *testing.T) {
	t.Parallel()
	bad := []Section{{Name: "", Help: "h", Defaults: sampleLog{}}}
	for name, fn := range map[string]func(){
		"Describe": func() { Describe(bad) },
		"Markdown": func() { Markdown(bad) },
		"Changed":  func() { Changed(nil, nil, bad) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			fn()
		}()
	}
}
