package app

import (
	"crypto/x509"
	"fmt"
	"log/slog"

	"stoa.im/stoa/internal/s2s"
	"stoa.im/stoa/internal/server"
)

// newS2S builds the federation service of a node.
func newS2S(cfg s2s.Config, secret []byte, log *slog.Logger) (*s2s.Service, error) {
	svc, err := s2s.New(s2s.Options{Config: cfg, Secret: secret, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("app: %w (check [s2s] in the configuration)", err)
	}
	return svc, nil
}

// inspectS2S returns the federation feature at its defaults, for listing
// hooks; it never connects anywhere (the service is not served).
func inspectS2S() []server.Feature {
	svc, err := s2s.New(s2s.Options{Config: s2s.Defaults, Secret: make([]byte, 32), Roots: emptyRoots()})
	if err != nil {
		return nil
	}
	return []server.Feature{svc.Feature()}
}

func emptyRoots() *x509.CertPool { return x509.NewCertPool() }
