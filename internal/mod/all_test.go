package mod

import (
	"context"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store/sqlite"
)

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

func TestRegistry(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for i, f := range All() {
		if !namePattern.MatchString(f.Name) {
			t.Errorf("feature %d: name %q is not one lowercase word", i, f.Name)
		}
		if seen[f.Name] {
			t.Errorf("feature %q is listed twice", f.Name)
		}
		seen[f.Name] = true
		if strings.TrimSpace(f.Doc) == "" {
			t.Errorf("%s: no Doc", f.Name)
		}
		if f.Setup == nil {
			t.Errorf("%s: no Setup", f.Name)
		} else if pkg := setupPackage(f.Setup); !strings.HasSuffix(pkg, "/internal/mod/"+f.Name) {
			// One name everywhere: package = Feature.Name (STYLE.md §7).
			t.Errorf("%s: Setup is in package %s, want internal/mod/%s", f.Name, pkg, f.Name)
		}
		if len(f.XEPs) == 0 {
			t.Errorf("%s: no XEPs (list the RFC sections it implements if it has no XEP)", f.Name)
		}
		for _, x := range f.XEPs {
			checkXEP(t, f.Name, x)
		}
		if f.Defaults != nil {
			typ := reflect.TypeOf(f.Defaults)
			if typ.Kind() != reflect.Struct {
				t.Errorf("%s: Defaults is a %s, want a struct value", f.Name, typ.Kind())
				continue
			}
			checkTags(t, f.Name, typ, make(map[reflect.Type]bool))
		}
	}
}

func checkXEP(t *testing.T, feature string, x server.XEP) {
	t.Helper()
	switch {
	case x.N < 0:
		t.Errorf("%s: XEP number %d", feature, x.N)
	case x.N == 0 && x.Name == "":
		t.Errorf("%s: a specification with no XEP number needs a Name (e.g. \"RFC 6121\")", feature)
	case x.N > 0 && !regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`).MatchString(x.Version):
		t.Errorf("%s: XEP-%04d: version %q is not the XEP's revision number", feature, x.N, x.Version)
	}
	switch x.Status {
	case server.Complete, server.Planned:
	case server.Partial:
		if x.Note == "" {
			t.Errorf("%s: XEP-%04d is partial but its Note does not say what is missing", feature, x.N)
		}
	default:
		t.Errorf("%s: XEP-%04d: status %q", feature, x.N, x.Status)
	}
}

// checkTags checks that every field of a config struct, recursively, has
// a toml and a help tag.
func checkTags(t *testing.T, path string, typ reflect.Type, seen map[reflect.Type]bool) {
	t.Helper()
	if seen[typ] {
		return
	}
	seen[typ] = true
	for i := range typ.NumField() {
		sf := typ.Field(i)
		name := path + "." + sf.Name
		if tag, ok := sf.Tag.Lookup("toml"); !ok || tag == "" || tag == "-" {
			t.Errorf("%s: no toml tag", name)
		}
		if help, ok := sf.Tag.Lookup("help"); !ok || strings.TrimSpace(help) == "" {
			t.Errorf("%s: no help tag", name)
		}
		ft := sf.Type
		for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Map {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "stoa.im/stoa/internal/config" && ft.PkgPath() != "time" {
			checkTags(t, name, ft, seen)
		}
	}
}

// setupPackage returns the import path of the package defining fn.
func setupPackage(fn any) string {
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	// "stoa.im/stoa/internal/mod/ping.init.func1" or "....ping.setup".
	slash := strings.LastIndex(name, "/")
	dot := strings.Index(name[slash+1:], ".")
	if dot < 0 {
		return name
	}
	return name[:slash+1+dot]
}

// TestConfigSections checks the config schema of every feature with the
// config package's own rules (tags, enums, bounds, defaults within them).
func TestConfigSections(t *testing.T) {
	t.Parallel()
	var sections []config.Section
	for _, f := range All() {
		if f.Defaults != nil {
			sections = append(sections, config.Section{Name: f.Name, Help: f.Doc, Defaults: f.Defaults})
		}
	}
	if err := config.Check(sections); err != nil {
		t.Fatal(err)
	}
}

// TestSetup builds a server with every feature, with its defaults: no two
// features claim the same IQ or metric, and every Setup accepts its
// Defaults.
func TestSetup(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(server.Options{Hosts: []string{"localhost"}, Store: st, Features: All()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(srv.Features()), len(All()); got != want {
		t.Errorf("server has %d features, want %d", got, want)
	}
	if _, err := srv.Registry().Gather(); err != nil {
		t.Errorf("metrics: %v", err)
	}
}
