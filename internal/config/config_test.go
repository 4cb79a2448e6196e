package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		toml string
		want []string // every line of the error, in order
	}{
		{
			name: "unknown key with suggestion",
			toml: "[c2s]\n\nlisen = []\n",
			want: []string{`stoa.toml:3: c2s.lisen: unknown key (did you mean "listen"?)`},
		},
		{
			name: "unknown key, hyphen for underscore",
			toml: "[c2s]\nmax-sessions = 3\n",
			want: []string{`stoa.toml:2: c2s.max-sessions: unknown key (did you mean "max_sessions"?)`},
		},
		{
			name: "unknown key, transposition",
			toml: "[log]\nlevle = \"info\"\n",
			want: []string{`stoa.toml:2: log.levle: unknown key (did you mean "level"?)`},
		},
		{
			name: "unknown key without suggestion",
			toml: "[log]\ncolour = true\n",
			want: []string{`stoa.toml:2: log.colour: unknown key`},
		},
		{
			name: "unknown quoted key",
			toml: "[log]\n\"a b\" = true\n",
			want: []string{`stoa.toml:2: log."a b": unknown key`},
		},
		{
			name: "unknown nested key",
			toml: "[c2s]\nlisten = []\n[c2s.tls]\ncrt_file = \"x\"\n",
			want: []string{`stoa.toml:4: c2s.tls.crt_file: unknown key (did you mean "cert_file"?)`},
		},
		{
			name: "unknown key in dotted form",
			toml: "[c2s]\ntls.keyfile = \"x\"\n",
			want: []string{`stoa.toml:2: c2s.tls.keyfile: unknown key (did you mean "key_file"?)`},
		},
		{
			name: "unknown key in second array table",
			toml: "[[c2s.certificate]]\ndomain = \"a\"\n[[c2s.certificate]]\ndomian = \"b\"\n",
			want: []string{`stoa.toml:4: c2s.certificate[1].domian: unknown key (did you mean "domain"?)`},
		},
		{
			name: "unknown key in inline table in array",
			toml: "[c2s]\ncertificate = [\n  { domain = \"a\" },\n  { domain = \"b\", prio = 1 },\n]\n",
			want: []string{`stoa.toml:4: c2s.certificate[1].prio: unknown key`},
		},
		{
			name: "unknown section",
			toml: "[c2ss]\nlisten = []\n",
			want: []string{`stoa.toml:1: c2ss: unknown section (did you mean "c2s"?)`},
		},
		{
			name: "top-level key of a section",
			toml: "# comment\nlisten = [\"x\"]\n",
			want: []string{`stoa.toml:2: listen: key outside any table (put it under [c2s])`},
		},
		{
			name: "top-level key of several sections",
			toml: "cert_file = \"x\"\npath = \"y\"\n",
			want: []string{
				`stoa.toml:1: cert_file: key outside any table (put it under [server])`,
				`stoa.toml:2: path: key outside any table (put it under [upload])`,
			},
		},
		{
			name: "section is not a table",
			toml: "c2s = 5\n",
			want: []string{`stoa.toml:1: c2s: expected a table, got integer`},
		},
		{
			name: "wrong type: array of strings",
			toml: "[c2s]\nlisten = 5222\n",
			want: []string{`stoa.toml:2: c2s.listen: expected an array of strings, got integer`},
		},
		{
			name: "wrong type: array element on its own line",
			toml: "[c2s]\nlisten = [\n  \"a\",\n  5222,\n]\n",
			want: []string{`stoa.toml:4: c2s.listen[1]: expected a string, got integer`},
		},
		{
			name: "wrong type: string",
			toml: "[log]\nformat = 1.5\n",
			want: []string{`stoa.toml:2: log.format: expected a string, got float`},
		},
		{
			name: "wrong type: bool",
			toml: "[c2s]\ncompression = \"yes\"\n",
			want: []string{`stoa.toml:2: c2s.compression: expected a boolean, got string`},
		},
		{
			name: "wrong type: integer",
			toml: "[c2s]\nmax_sessions = 2.0\n",
			want: []string{`stoa.toml:2: c2s.max_sessions: expected an integer, got float`},
		},
		{
			name: "wrong type: float",
			toml: "[c2s]\nratio = true\n",
			want: []string{`stoa.toml:2: c2s.ratio: expected a number, got boolean`},
		},
		{
			name: "wrong type: table",
			toml: "[c2s]\ntls = \"on\"\n",
			want: []string{`stoa.toml:2: c2s.tls: expected a table, got string`},
		},
		{
			name: "wrong type: array of tables",
			toml: "[c2s]\ncertificate = { domain = \"x\" }\n",
			want: []string{`stoa.toml:2: c2s.certificate: expected an array of tables, got table`},
		},
		{
			name: "wrong type: array of tables element",
			toml: "[c2s]\ncertificate = [{ domain = \"x\" }, \"y\"]\n",
			want: []string{`stoa.toml:2: c2s.certificate[1]: expected a table, got string`},
		},
		{
			name: "wrong type: map value",
			toml: "[c2s.labels]\nenv = \"prod\"\nweight = 3\n",
			want: []string{`stoa.toml:3: c2s.labels.weight: expected a string, got integer`},
		},
		{
			name: "wrong type: date",
			toml: "[server]\nmotd = 2024-01-02\n",
			want: []string{`stoa.toml:2: server.motd: expected a string, got date`},
		},
		{
			name: "enum",
			toml: "[log]\nformat = \"json\"\n\n\n\n\n\nlevel = \"verbose\"\n",
			want: []string{`stoa.toml:8: log.level: "verbose" is not one of debug, info, warn, error`},
		},
		{
			name: "enum in array",
			toml: "[c2s]\nfeatures = [\"csi\", \"mam\"]\n",
			want: []string{`stoa.toml:2: c2s.features[1]: "mam" is not one of csi, sm, carbons`},
		},
		{
			name: "bound in nested table in array of tables",
			toml: "[[c2s.certificate]]\n[c2s.certificate.ocsp]\nrefresh = \"-1m\"\n",
			want: []string{`stoa.toml:3: c2s.certificate[0].ocsp.refresh: -1m is below the minimum 0s`},
		},
		{
			name: "int below min",
			toml: "[c2s]\nmax_sessions = 0\n",
			want: []string{`stoa.toml:2: c2s.max_sessions: 0 is below the minimum 1`},
		},
		{
			name: "int above max",
			toml: "[c2s]\nmax_sessions = 1_001\n",
			want: []string{`stoa.toml:2: c2s.max_sessions: 1001 is above the maximum 1000`},
		},
		{
			name: "float above max",
			toml: "[c2s]\nratio = 1.5\n",
			want: []string{`stoa.toml:2: c2s.ratio: 1.5 is above the maximum 1`},
		},
		{
			name: "duration below min",
			toml: "[c2s]\ntimeout = \"500ms\"\n",
			want: []string{`stoa.toml:2: c2s.timeout: 500ms is below the minimum 1s`},
		},
		{
			name: "duration above max",
			toml: "[c2s]\ntimeout = \"1d1s\"\n",
			want: []string{`stoa.toml:2: c2s.timeout: 24h0m1s is above the maximum 1d`},
		},
		{
			name: "negative time.Duration",
			toml: "[c2s]\nhandshake_timeout = \"-5s\"\n",
			want: []string{`stoa.toml:2: c2s.handshake_timeout: -5s is below the minimum 0s`},
		},
		{
			name: "size below min",
			toml: "[c2s]\nmax_stanza_size = 512\n",
			want: []string{`stoa.toml:2: c2s.max_stanza_size: 512B is below the minimum 1KiB`},
		},
		{
			name: "size above max",
			toml: "[c2s]\nmax_stanza_size = \"1GB\"\n",
			want: []string{`stoa.toml:2: c2s.max_stanza_size: 1GB is above the maximum 16MiB`},
		},
		{
			name: "bad duration",
			toml: "[c2s]\ntimeout = \"5 minutes\"\n",
			want: []string{`stoa.toml:2: c2s.timeout: "5 minutes" is not a valid duration (use e.g. "30s", "5m", "1h30m", "1d")`},
		},
		{
			name: "duration as integer",
			toml: "[c2s]\ntimeout = 30\n",
			want: []string{`stoa.toml:2: c2s.timeout: expected a duration string like "30s", got integer`},
		},
		{
			name: "bad size",
			toml: "[c2s]\nmax_stanza_size = \"10 potatoes\"\n",
			want: []string{`stoa.toml:2: c2s.max_stanza_size: "10 potatoes" is not a valid size (use e.g. "512", "10KB", "256KiB", "1MiB")`},
		},
		{
			name: "negative size",
			toml: "[c2s]\nmax_stanza_size = -1\n",
			want: []string{`stoa.toml:2: c2s.max_stanza_size: -1 is not a valid size (sizes cannot be negative)`},
		},
		{
			name: "size of wrong type",
			toml: "[c2s]\nmax_stanza_size = true\n",
			want: []string{`stoa.toml:2: c2s.max_stanza_size: expected a size like "256KiB" or a number of bytes, got boolean`},
		},
		{
			name: "syntax error",
			toml: "[c2s]\nlisten = [\"a\"\ntimeout = \"5s\"\n",
			want: []string{`stoa.toml:3: syntax error: expected ',' or ']' after array value (column 1)`},
		},
		{
			name: "unclosed table header",
			toml: "[c2s\n",
			want: []string{`stoa.toml:1: syntax error: expected ']' to close table name (column 5)`},
		},
		{
			name: "duplicate key",
			toml: "[log]\nlevel = \"info\"\nlevel = \"warn\"\n",
			want: []string{`stoa.toml:3: log.level: invalid TOML: key level is already defined`},
		},
		{
			name: "table defined twice",
			toml: "[log]\nlevel = \"info\"\n\n[log]\nformat = \"json\"\n",
			want: []string{`stoa.toml:4: log: invalid TOML: table log already exists`},
		},
		{
			name: "duplicate key in a sub-table",
			toml: "[log]\n[c2s.tls]\ncert_file = \"a\"\ncert_file = \"b\"\n",
			want: []string{`stoa.toml:4: c2s.tls.cert_file: invalid TOML: key cert_file is already defined`},
		},
		{
			name: "validate: field errors with lines, plain error without",
			toml: "[server]\nhosts = []\nadmins = [\n  \"ok@example.org\",\n  \"nobody\",\n]\nmotd = \"forbidden\"\n",
			want: []string{
				`stoa.toml:2: server.hosts: at least one host is required`,
				`stoa.toml:5: server.admins[1]: "nobody" is not a bare JID`,
				`stoa.toml: server: the motd must not be forbidden`,
			},
		},
		{
			name: "validate is skipped for a section with decode errors",
			toml: "[server]\nhosts = []\nmotd = 1\n",
			want: []string{`stoa.toml:3: server.motd: expected a string, got integer`},
		},
		{
			name: "all problems together, in file order",
			toml: "[log]\nlevel = \"loud\"\n[c2s]\nlisen = []\nmax_sessions = \"3\"\n[c2s.tls]\nmin_version = \"1.0\"\n",
			want: []string{
				`stoa.toml:2: log.level: "loud" is not one of debug, info, warn, error`,
				`stoa.toml:4: c2s.lisen: unknown key (did you mean "listen"?)`,
				`stoa.toml:5: c2s.max_sessions: expected an integer, got string`,
				`stoa.toml:7: c2s.tls.min_version: "1.0" is not one of 1.2, 1.3`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse("stoa.toml", []byte(tt.toml), sampleSections())
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors:\n%s", f, strings.Join(tt.want, "\n"))
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			if len(cerr.Problems) != len(tt.want) {
				t.Errorf("%d problems, want %d", len(cerr.Problems), len(tt.want))
			}
		})
	}
}

func TestValidateKeyNotInFile(t *testing.T) {
	t.Parallel()
	sections := []Section{{Name: "server", Help: "h", Defaults: sampleServer{}}}
	tests := map[string]string{
		"# nothing\n\n[server]\nmotd = \"x\"\n": "stoa.toml:3: server.hosts: at least one host is required",
		"":                                      "stoa.toml: server.hosts: at least one host is required",
	}
	for doc, want := range tests {
		_, err := Parse("stoa.toml", []byte(doc), sections)
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %s", doc, err, want)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	f, err := Parse("empty.toml", nil, sampleSections())
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != "empty.toml" {
		t.Errorf("Path = %q", f.Path)
	}
	for _, s := range sampleSections() {
		got := f.Section(s.Name)
		if !reflect.DeepEqual(got, normalised(s.Defaults)) {
			t.Errorf("section %s = %+v, want defaults %+v", s.Name, got, s.Defaults)
		}
	}
	if f.Section("nope") != nil {
		t.Error("unknown section is not nil")
	}
}

// normalised is the defaults as a File holds them: empty slices and maps nil.
func normalised(v any) any { return deepCopy(reflect.ValueOf(v)).Interface() }

func TestParseMergesDefaults(t *testing.T) {
	t.Parallel()
	doc := `
[c2s]
listen = ["0.0.0.0:5222", "[::]:5222"]
timeout = "1h30m"
max_stanza_size = 65536

[c2s.tls]
cert_file = "/x.pem"

[c2s.labels]
only = "this"
`
	f, err := Parse("stoa.toml", []byte(doc), sampleSections())
	if err != nil {
		t.Fatal(err)
	}
	want := sampleC2SDefaults()
	want.Listen = []string{"0.0.0.0:5222", "[::]:5222"}
	want.Timeout = Duration(90 * time.Minute)
	want.MaxStanza = 64 << 10
	want.TLS.CertFile = "/x.pem" // key_file and min_version keep their defaults
	want.Labels = map[string]string{"only": "this"}
	if got := Get[sampleC2S](f, "c2s"); !reflect.DeepEqual(got, want) {
		t.Errorf("c2s =\n%+v\nwant\n%+v", got, want)
	}
	if got := Get[sampleLog](f, "log"); got != (sampleLog{Level: "info", Format: "text"}) {
		t.Errorf("absent section log = %+v, want its defaults", got)
	}
}

func TestParseNestedAndArrayTables(t *testing.T) {
	t.Parallel()
	doc := `
[c2s]
features = []
tls = { min_version = "1.3", ciphers = ["a", "b"] }

[[c2s.certificate]]
domain = "one.example"
priority = 2
ocsp.url = "http://o"

[[c2s.certificate]]
domain = "two.example"

[c2s.certificate.ocsp]
refresh = "1m"
ciphers = ["c"]

[upload]
slot = [{ domain = "s", priority = 10 }]
headers = { "X-Frame-Options" = "DENY" }
quota = "1.5KiB"
`
	f, err := Parse("stoa.toml", []byte(doc), sampleSections())
	if err != nil {
		t.Fatal(err)
	}
	c := Get[sampleC2S](f, "c2s")
	if c.Features != nil {
		t.Errorf("features = %#v, want nil for an empty array", c.Features)
	}
	wantTLS := sampleC2SDefaults().TLS
	wantTLS.MinVersion, wantTLS.Ciphers = "1.3", []string{"a", "b"}
	if !reflect.DeepEqual(c.TLS, wantTLS) {
		t.Errorf("tls = %+v, want %+v", c.TLS, wantTLS)
	}
	wantCerts := []sampleCert{
		{Domain: "one.example", Priority: 2, OCSP: sampleOCSP{URL: "http://o"}},
		{Domain: "two.example", OCSP: sampleOCSP{Refresh: Duration(time.Minute), Ciphers: []string{"c"}}},
	}
	if !reflect.DeepEqual(c.Certificates, wantCerts) {
		t.Errorf("certificates =\n%+v\nwant\n%+v", c.Certificates, wantCerts)
	}
	u := Get[sampleUpload](f, "upload")
	if want := []sampleCert{{Domain: "s", Priority: 10}}; !reflect.DeepEqual(u.Slots, want) {
		t.Errorf("slots = %+v, want %+v", u.Slots, want)
	}
	if want := map[string]string{"X-Frame-Options": "DENY"}; !reflect.DeepEqual(u.Headers, want) {
		t.Errorf("headers = %v, want %v", u.Headers, want)
	}
	if u.Quota != 1536 {
		t.Errorf("quota = %d, want 1536", u.Quota)
	}
}

func TestArrayOfTablesRequiredKeys(t *testing.T) {
	t.Parallel()
	type listener struct {
		Address string `toml:"address" help:"Address to bind."`
		Kind    string `toml:"kind" help:"Protocol." enum:"c2s,s2s"`
		Backlog int    `toml:"backlog" help:"Queue length." min:"1"`
		TLS     struct {
			Mode string `toml:"mode" help:"TLS mode." enum:"direct,starttls"`
		} `toml:"tls" help:"TLS."`
	}
	type net struct {
		Listeners []listener `toml:"listener" help:"Listeners."`
	}
	sections := []Section{{Name: "net", Help: "Network.", Defaults: net{}}}
	doc := "[[net.listener]]\naddress = \"x\"\nkind = \"c2s\"\nbacklog = 5\ntls.mode = \"direct\"\n\n[[net.listener]]\naddress = \"y\"\n"
	_, err := Parse("stoa.toml", []byte(doc), sections)
	want := `stoa.toml:7: net.listener[1].backlog: must be set (0 is below the minimum 1)
stoa.toml:7: net.listener[1].kind: must be set ("" is not one of c2s, s2s)
stoa.toml:7: net.listener[1].tls.mode: must be set ("" is not one of direct, starttls)`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error:\n%v\nwant:\n%s", err, want)
	}

	// Describe's commented-out example, uncommented, is a valid config.
	var b strings.Builder
	for _, l := range strings.Split(Describe(sections), "\n") {
		if strings.HasPrefix(l, "# ") && !strings.HasPrefix(l, "# # ") && (strings.HasPrefix(l, "# [") || strings.Contains(l, " = ")) {
			l = strings.TrimPrefix(l, "# ")
		}
		b.WriteString(l + "\n")
	}
	f, err := Parse("example.toml", []byte(b.String()), sections)
	if err != nil {
		t.Fatalf("uncommented example:\n%s\n%v", b.String(), err)
	}
	got := Get[net](f, "net").Listeners
	if len(got) != 1 || got[0].Kind != "c2s" || got[0].Backlog != 1 || got[0].TLS.Mode != "direct" {
		t.Errorf("uncommented example = %+v", got)
	}
	if md := Markdown(sections); !strings.Contains(md, "| `listener[].kind` | string | required | no |") {
		t.Errorf("Markdown does not mark listener[].kind required:\n%s", md)
	}
}

func TestValidatePointerReceiverNormalises(t *testing.T) {
	t.Parallel()
	f, err := Parse("stoa.toml", []byte("[norm]\nname = \"MiXeD\"\n"), sampleSections())
	if err != nil {
		t.Fatal(err)
	}
	if got := Get[sampleNormalise](f, "norm").Name; got != "mixed" {
		t.Errorf("name = %q, want %q", got, "mixed")
	}
}

func TestSectionIsACopy(t *testing.T) {
	t.Parallel()
	f, err := Parse("stoa.toml", nil, sampleSections())
	if err != nil {
		t.Fatal(err)
	}
	c := Get[sampleC2S](f, "c2s")
	c.Listen[0] = "changed"
	c.Labels["env"] = "changed"
	c.Certificates[0].Domain = "changed"
	again := Get[sampleC2S](f, "c2s")
	if !reflect.DeepEqual(again, sampleC2SDefaults()) {
		t.Errorf("mutating a returned section changed the File: %+v", again)
	}
	// Nor may the File share memory with the registry's Defaults.
	if d := sampleSections()[2].Defaults.(sampleC2S); d.Listen[0] != "[::]:5222" {
		t.Errorf("defaults changed: %v", d.Listen)
	}
}

func TestGetPanicsOnWrongType(t *testing.T) {
	t.Parallel()
	f, err := Parse("stoa.toml", nil, sampleSections())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"log", "missing"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Get[sampleC2S](%q) did not panic", name)
				}
			}()
			Get[sampleC2S](f, name)
		}()
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "stoa.toml")
	if err := os.WriteFile(path, []byte("[log]\nlevel = \"debug\"\n\n[log2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, sampleSections())
	if want := path + `:4: log2: unknown section (did you mean "log"?)`; err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}

	if err := os.WriteFile(path, []byte("[log]\nlevel = \"debug\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path, sampleSections())
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != path || Get[sampleLog](f, "log").Level != "debug" {
		t.Errorf("Load = %+v", f)
	}

	_, err = Load(filepath.Join(dir, "missing.toml"), sampleSections())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	type noTag struct {
		A string `help:"x"`
	}
	type noHelp struct {
		A string `toml:"a"`
	}
	type badType struct {
		A *int `toml:"a" help:"x"`
	}
	type enumOnInt struct {
		A int `toml:"a" help:"x" enum:"1,2"`
	}
	type badMin struct {
		A Duration `toml:"a" help:"x" min:"soon"`
	}
	type minOnString struct {
		A string `toml:"a" help:"x" max:"3"`
	}
	type badReload struct {
		A string `toml:"a" help:"x" reload:"yes"`
	}
	type camelKey struct {
		A string `toml:"camelKey" help:"x"`
	}
	type dupKey struct {
		A string `toml:"a" help:"x"`
		B string `toml:"a" help:"y"`
	}
	type unexported struct {
		a string //lint:ignore U1000 the point of the test is an unexported field
	}
	type nestedNoTag struct {
		Sub struct {
			B int
		} `toml:"sub" help:"x"`
	}
	type inEnum struct {
		A string `toml:"a" help:"x" enum:"p,q"`
	}
	type inBounds struct {
		A int `toml:"a" help:"x" min:"1" max:"5"`
	}
	type minAboveMax struct {
		A int `toml:"a" help:"x" min:"5" max:"1"`
	}
	type recursive struct {
		Next []recursive `toml:"next" help:"x"`
	}
	ok := Section{Name: "ok", Help: "fine", Defaults: sampleLog{Level: "info", Format: "text"}}
	tests := []struct {
		name     string
		sections []Section
		want     string // substring of the error; "" for no error
	}{
		{"valid", sampleSections(), ""},
		{"no sections", nil, ""},
		{"missing toml tag", []Section{{Name: "s", Help: "h", Defaults: noTag{}}}, "s (config.noTag.A): missing toml tag"},
		{"missing help", []Section{{Name: "s", Help: "h", Defaults: noHelp{}}}, "s.a (config.noHelp.A): missing help tag"},
		{"unsupported type", []Section{{Name: "s", Help: "h", Defaults: badType{}}}, "unsupported type *int"},
		{"enum on int", []Section{{Name: "s", Help: "h", Defaults: enumOnInt{}}}, "enum tag on a integer field"},
		{"bad min", []Section{{Name: "s", Help: "h", Defaults: badMin{}}}, `min tag: "soon" is not a valid duration`},
		{"min on string", []Section{{Name: "s", Help: "h", Defaults: minOnString{}}}, "max tag: not allowed on a string field"},
		{"bad reload", []Section{{Name: "s", Help: "h", Defaults: badReload{}}}, `reload tag must be "true" or "false"`},
		{"key not snake_case", []Section{{Name: "s", Help: "h", Defaults: camelKey{}}}, `toml key "camelKey" is not snake_case`},
		{"duplicate key", []Section{{Name: "s", Help: "h", Defaults: dupKey{}}}, `duplicate toml key "a"`},
		{"unexported field", []Section{{Name: "s", Help: "h", Defaults: unexported{}}}, "unexported field"},
		{"nested field without tag", []Section{{Name: "s", Help: "h", Defaults: nestedNoTag{}}}, "s.sub (struct { B int }.B): missing toml tag"},
		{"default outside enum", []Section{{Name: "s", Help: "h", Defaults: inEnum{A: "r"}}}, `s.a: default "r" is not one of p, q`},
		{"default outside bounds", []Section{{Name: "s", Help: "h", Defaults: inBounds{}}}, `s.a: default 0 is below the minimum 1`},
		{"min above max", []Section{{Name: "s", Help: "h", Defaults: minAboveMax{A: 3}}}, "min is above max"},
		{"recursive type", []Section{{Name: "s", Help: "h", Defaults: recursive{}}}, "recursive type"},
		{"empty name", []Section{{Help: "h", Defaults: sampleLog{}}}, "section #0: empty name"},
		{"bad name", []Section{{Name: "C2S", Help: "h", Defaults: sampleLog{}}}, "name must be snake_case"},
		{"empty help", []Section{{Name: "s", Defaults: sampleLog{Level: "info", Format: "text"}}}, "empty Help"},
		{"duplicate section", []Section{ok, ok}, `section "ok": registered twice`},
		{"pointer defaults", []Section{{Name: "s", Help: "h", Defaults: &sampleLog{}}}, "Defaults must be a struct value, got *config.sampleLog"},
		{"nil defaults", []Section{{Name: "s", Help: "h"}}, "Defaults must be a struct value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Check(tt.sections)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check = %v, want an error containing %q", err, tt.want)
			}
			if tt.want != "" {
				if _, perr := Parse("x.toml", nil, tt.sections); perr == nil {
					t.Error("Parse accepted an invalid registry")
				}
			}
		})
	}
}

func TestChanged(t *testing.T) {
	t.Parallel()
	sections := sampleSections()
	old, err := Parse("a.toml", []byte("[c2s]\nlisten = [\"x\"]\nfeatures = []\n[server]\nadmins = [\"a@b\"]\n"), sections)
	if err != nil {
		t.Fatal(err)
	}
	next, err := Parse("b.toml", []byte(`
[c2s]
listen = ["y"]
features = []
timeout = "10m"
[c2s.tls]
key_file = "/new.pem"
[[c2s.certificate]]
domain = "z"
[server]
admins = ["a@b"]
motd = "hi"
[log]
level = "debug"
`), sections)
	if err != nil {
		t.Fatal(err)
	}
	reload, restart := Changed(old, next, sections)
	wantReload := []string{"log.level", "c2s.timeout", "c2s.tls.key_file"}
	wantRestart := []string{"server.motd", "c2s.listen", "c2s.certificate"}
	if !reflect.DeepEqual(reload, wantReload) || !reflect.DeepEqual(restart, wantRestart) {
		t.Errorf("Changed = %q, %q; want %q, %q", reload, restart, wantReload, wantRestart)
	}
	if r, s := Changed(next, next, sections); r != nil || s != nil {
		t.Errorf("Changed(f, f) = %q, %q", r, s)
	}
	// A nil File counts as the defaults.
	empty, err := Parse("c.toml", nil, sections)
	if err != nil {
		t.Fatal(err)
	}
	if r, s := Changed(nil, empty, sections); r != nil || s != nil {
		t.Errorf("Changed(nil, defaults) = %q, %q", r, s)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	names := []string{"listen", "timeout", "idle_timeout", "max_stanza_size", "tls"}
	tests := map[string]string{
		"lisen":          ` (did you mean "listen"?)`,
		"Listen":         ` (did you mean "listen"?)`,
		"timeotu":        ` (did you mean "timeout"?)`,
		"idle":           ` (did you mean "idle_timeout"?)`,
		"max-stanza-siz": ` (did you mean "max_stanza_size"?)`,
		"tsl":            ` (did you mean "tls"?)`,
		"log":            "",
		"zzzzzz":         "",
	}
	for in, want := range tests {
		if got := suggest(in, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
