package adminsock

import (
	"context"
	"errors"
	"strings"
	"testing"

	"stoa.im/stoa/internal/server"
)

// withCommands is fakeAccounts plus commands registered by features.
type withCommands struct {
	*fakeAccounts
	cmds []server.AdminCommand
}

func (w withCommands) AdminCommands() []server.AdminCommand { return w.cmds }

func TestFeatureCommands(t *testing.T) {
	t.Parallel()
	var got map[string]string
	a := withCommands{fakeAccounts: newFake(), cmds: []server.AdminCommand{{
		Name: "thing.do", Args: []string{"what", "how"}, Optional: []string{"how"},
		Run: func(_ context.Context, args map[string]string) (server.AdminResult, error) {
			got = args
			if args["what"] == "fail" {
				return server.AdminResult{}, errors.New("it failed")
			}
			return server.AdminResult{Message: "done", Lines: []string{"a", "b"}}, nil
		},
	}}}
	tests := []struct {
		req   Request
		ok    bool
		error string
	}{
		{Request{Cmd: "thing.do", Args: map[string]string{"what": "x"}}, true, ""},
		{Request{Cmd: "thing.do", Args: map[string]string{"what": "x", "how": "y"}}, true, ""},
		{Request{Cmd: "thing.do"}, false, `missing argument "what"`},
		{Request{Cmd: "thing.do", Args: map[string]string{"what": "x", "why": "z"}}, false, `unknown argument "why"`},
		{Request{Cmd: "thing.do", Args: map[string]string{"what": "fail"}}, false, "it failed"},
		{Request{Cmd: "thing.undo"}, false, "unknown command"},
	}
	for _, tc := range tests {
		got = nil
		resp := Exec(t.Context(), a, tc.req)
		if resp.OK != tc.ok || !strings.Contains(resp.Error, tc.error) {
			t.Errorf("Exec(%+v) = %+v, want ok %v, error containing %q", tc.req, resp, tc.ok, tc.error)
		}
		if tc.ok && (resp.Message != "done" || strings.Join(resp.Lines, ",") != "a,b" || got["what"] != "x") {
			t.Errorf("Exec(%+v) = %+v, ran with %v", tc.req, resp, got)
		}
	}
	// Built-in commands still win, and servers without feature commands work.
	if resp := Exec(t.Context(), a, Request{Cmd: "user.list"}); !resp.OK {
		t.Errorf("user.list: %+v", resp)
	}
	if resp := Exec(t.Context(), newFake(), Request{Cmd: "thing.do", Args: map[string]string{"what": "x"}}); resp.OK {
		t.Errorf("a server without feature commands ran one")
	}
}
