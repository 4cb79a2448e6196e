package servertest

import (
	"context"
	"testing"

	"stoa.im/stoa/internal/server"
)

// NewWithOptions starts a server built from opts (Hosts defaults to
// "localhost", Version to "test"), for tests that need admins or other
// options New does not set.
func NewWithOptions(t testing.TB, opts server.Options) *Env {
	t.Helper()
	if len(opts.Hosts) == 0 {
		opts.Hosts = []string{"localhost"}
	}
	if opts.Version == "" {
		opts.Version = "test"
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	t.Cleanup(func() { srv.Stop(); cancel() })
	return &Env{T: t, Srv: srv, Ctx: ctx}
}
