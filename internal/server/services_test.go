package server_test

import (
	"testing"

	"stoa.im/stoa/internal/server"
)

type greeter struct{}

func (greeter) Greet() string { return "hello" }

func TestFindProvidedService(t *testing.T) {
	t.Parallel()
	provider := server.Feature{Name: "provider", Setup: func(s *server.Setup, _ any) error {
		s.Provide(42)
		s.Provide(greeter{})
		return nil
	}}
	srv, err := server.New(server.Options{Hosts: []string{"localhost"}, Features: []server.Feature{provider}})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := server.Find[interface{ Greet() string }](srv)
	if !ok || g.Greet() != "hello" {
		t.Errorf("Find(Greet) = %v, %v", g, ok)
	}
	if _, ok := server.Find[interface{ Missing() }](srv); ok {
		t.Error("Find found a service without the method")
	}
}
