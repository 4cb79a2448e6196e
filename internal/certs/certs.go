// Package certs loads the TLS certificates stoa serves, picks one per
// connection by SNI, reloads them on SIGHUP, and generates the local CA and
// certificate used by `stoa dev`.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Pair names a certificate chain file and its private key file (PEM).
type Pair struct {
	Cert string `toml:"cert" help:"Path of the PEM certificate chain (leaf first)."`
	Key  string `toml:"key" help:"Path of the PEM private key."`
}

// Store holds the loaded certificates. It is safe for concurrent use.
type Store struct {
	pairs []Pair

	mu     sync.RWMutex
	certs  []*tls.Certificate
	byName map[string]*tls.Certificate // exact DNS names and "*.example.org"
}

// Load reads every pair; it fails if one cannot be loaded.
func Load(pairs []Pair) (*Store, error) {
	s := &Store{pairs: pairs}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On error the old certificates stay.
func (s *Store) Reload() error {
	var certs []*tls.Certificate
	byName := make(map[string]*tls.Certificate)
	for _, p := range s.pairs {
		c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return fmt.Errorf("certs: loading %s / %s: %w", p.Cert, p.Key, err)
		}
		if c.Leaf == nil {
			if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return fmt.Errorf("certs: parsing %s: %w", p.Cert, err)
			}
		}
		certs = append(certs, &c)
		for _, n := range c.Leaf.DNSNames {
			n = strings.ToLower(n)
			if _, dup := byName[n]; !dup {
				byName[n] = &c
			}
		}
	}
	if len(certs) == 0 {
		return errors.New("certs: no certificate configured")
	}
	s.mu.Lock()
	s.certs, s.byName = certs, byName
	s.mu.Unlock()
	return nil
}

// For returns the certificate for a server name: an exact match, then a
// wildcard, then the first configured certificate.
func (s *Store) For(name string) *tls.Certificate {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c := s.byName[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c := s.byName["*"+name[i:]]; c != nil {
			return c
		}
	}
	return s.certs[0]
}

// Names returns every DNS name covered, for checks and logs.
func (s *Store) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.byName))
	for n := range s.byName {
		out = append(out, n)
	}
	return out
}

// TLSConfig returns a server configuration: TLS 1.2 or newer, the
// certificate chosen by SNI (or by fallback, the XMPP domain the stream
// names cannot be known during the handshake), and the given ALPN protocols.
func (s *Store) TLSConfig(minVersion uint16, alpn ...string) *tls.Config {
	if minVersion < tls.VersionTLS12 {
		minVersion = tls.VersionTLS12
	}
	return &tls.Config{
		MinVersion: minVersion,
		NextProtos: alpn,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.For(h.ServerName), nil
		},
	}
}
