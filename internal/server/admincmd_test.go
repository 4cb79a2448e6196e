package server

import (
	"context"
	"testing"
)

func TestAdminCommandRegistry(t *testing.T) {
	t.Parallel()
	run := func(context.Context, map[string]string) (AdminResult, error) { return AdminResult{Message: "ok"}, nil }
	f := Feature{Name: "probe", Setup: func(s *Setup, _ any) error {
		s.AdminCommand(AdminCommand{Name: "probe.one", Run: run})
		s.AdminCommand(AdminCommand{Name: "probe.two", Run: run})
		return nil
	}}
	srv, err := New(Options{Hosts: []string{"localhost"}, Features: []Feature{f}, PublicURL: "https://chat.example.org/web/"})
	if err != nil {
		t.Fatal(err)
	}
	cmds := srv.AdminCommands()
	if len(cmds) != 2 || cmds[0].Name != "probe.one" || cmds[1].Name != "probe.two" {
		t.Errorf("AdminCommands = %+v", cmds)
	}
	if got := srv.PublicURL(); got != "https://chat.example.org/web" {
		t.Errorf("PublicURL = %q, want it without the trailing slash", got)
	}
	for name, c := range map[string]AdminCommand{
		"duplicate": {Name: "probe.one", Run: run},
		"no name":   {Run: run},
		"no run":    {Name: "probe.three"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: registering %+v did not panic", name, c)
				}
			}()
			_, _ = New(Options{Hosts: []string{"localhost"}, Features: []Feature{f, {Name: "bad", Setup: func(s *Setup, _ any) error {
				s.AdminCommand(c)
				return nil
			}}}})
		}()
	}
}
