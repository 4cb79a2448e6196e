package contact

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store/sqlite"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		bad  string // key named in the error; "" = valid
	}{
		{"empty", Config{}, ""},
		{"good", Config{
			Abuse:  []string{"mailto:abuse@example.org", "xmpp:abuse@example.org"},
			Status: []string{"https://status.example.org/"},
		}, ""},
		{"no scheme", Config{Admin: []string{"xmpp:ok@example.org", "admin@example.org"}}, "admin"},
		{"bare word", Config{Support: []string{"support"}}, "support"},
		{"scheme only", Config{Security: []string{"mailto:"}}, "security"},
		{"not a URI", Config{Feedback: []string{"http://[::1"}}, "feedback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.bad+": ") {
				t.Fatalf("Validate = %v, want an error about %s", err, tc.bad)
			}
		})
	}
}

// TestConfigFile checks that a bad address is reported at its line in the
// configuration file.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	sections := []config.Section{{Name: "contact", Help: Feature.Doc, Defaults: Feature.Defaults}}
	_, err := config.Parse("stoa.toml", []byte("[contact]\nabuse = [\"mailto:abuse@example.org\"]\nadmin = [\"admin@example.org\"]\n"), sections)
	if err == nil || !strings.Contains(err.Error(), "stoa.toml:3: contact.admin: ") {
		t.Fatalf("Parse = %v, want an error at stoa.toml:3 about contact.admin", err)
	}
	f, err := config.Parse("stoa.toml", []byte("[contact]\nabuse = [\"mailto:abuse@example.org\"]\n"), sections)
	if err != nil {
		t.Fatal(err)
	}
	if got := config.Get[Config](f, "contact").Abuse; !slices.Equal(got, []string{"mailto:abuse@example.org"}) {
		t.Errorf("abuse = %v", got)
	}
}

func newEnv(t *testing.T, cfg any) (*server.Disco, error) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var d *server.Disco
	probe := server.Feature{Name: "probe", Setup: func(s *server.Setup, _ any) error { d = s.Disco(); return nil }}
	_, err = server.New(server.Options{
		Hosts: []string{"localhost"}, Store: st, Features: []server.Feature{Feature, probe},
		Config: func(name string) any {
			if name == "contact" {
				return cfg
			}
			return nil
		},
	})
	return d, err
}

func TestForm(t *testing.T) {
	t.Parallel()
	d, err := newEnv(t, Config{
		Abuse:   []string{"mailto:abuse@example.org", "xmpp:abuse@example.org"},
		Support: []string{"https://example.org/support"},
	})
	if err != nil {
		t.Fatal(err)
	}
	forms := d.ServerInfo("localhost").Forms
	if len(forms) != 1 {
		t.Fatalf("forms = %v, want one", forms)
	}
	x := forms[0]
	if x.Space != nsData || x.Attr("type") != "result" {
		t.Fatalf("form = %s", x)
	}
	got := map[string][]string{}
	var order []string
	for _, f := range x.Elements() {
		var vals []string
		for _, v := range f.Elements() {
			vals = append(vals, v.Text)
		}
		got[f.Attr("var")] = vals
		order = append(order, f.Attr("var"))
	}
	if want := []string{"FORM_TYPE", "abuse-addresses", "support-addresses"}; !slices.Equal(order, want) {
		t.Errorf("fields = %v, want %v (only configured ones)", order, want)
	}
	if x.Elements()[0].Attr("type") != "hidden" || !slices.Equal(got["FORM_TYPE"], []string{FormType}) {
		t.Errorf("FORM_TYPE field = %s", x.Elements()[0])
	}
	if !slices.Equal(got["abuse-addresses"], []string{"mailto:abuse@example.org", "xmpp:abuse@example.org"}) {
		t.Errorf("abuse-addresses = %v", got["abuse-addresses"])
	}

	// Answers are copies: changing one does not change the next.
	x.Children = nil
	if again := d.ServerInfo("localhost").Forms[0]; len(again.Elements()) != 3 {
		t.Errorf("a caller changed the shared form: %s", again)
	}
}

func TestNoForm(t *testing.T) {
	t.Parallel()
	d, err := newEnv(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if forms := d.ServerInfo("localhost").Forms; len(forms) != 0 {
		t.Errorf("forms = %v, want none when nothing is configured", forms)
	}
}

func TestSetupRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := newEnv(t, Config{Abuse: []string{"abuse@example.org"}}); err == nil || !strings.Contains(err.Error(), "abuse") {
		t.Errorf("New = %v, want an error naming abuse", err)
	}
}
