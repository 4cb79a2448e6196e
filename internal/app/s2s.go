package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/config"
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

// CheckDNS checks the SRV records and addresses of the configuration's
// hosts against its listeners (`stoa check dns`). res nil means the
// system's DNS.
func CheckDNS(ctx context.Context, f *config.File, res s2s.Resolver) ([]s2s.Finding, error) {
	cfg, err := decode(f)
	if err != nil {
		return nil, err
	}
	c := s2s.DNSCheck{Hosts: cfg.server.Hosts, C2S: cfg.c2s.Listen, C2STLS: cfg.c2s.ListenTLS}
	if cfg.s2s.Enabled {
		c.S2S, c.S2STLS = cfg.s2s.Listen, cfg.s2s.ListenTLS
	}
	return s2s.CheckDNS(ctx, res, c), nil
}

// CheckCerts checks the certificate each host serves (`stoa check certs`).
func CheckCerts(f *config.File, now time.Time) ([]s2s.Finding, error) {
	cfg, err := decode(f)
	if err != nil {
		return nil, err
	}
	cs, err := certs.Load(cfg.tls.Certificates)
	if err != nil {
		return nil, fmt.Errorf("app: %w (check [tls] certificates in the configuration)", err)
	}
	roots, err := s2s.Roots(cfg.s2s)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return s2s.CheckCerts(cfg.server.Hosts, cs.For, roots, now), nil
}
