package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Test-local sample sections, standing in for the server's and features'.

type sampleServer struct {
	Hosts  []string `toml:"hosts" help:"Domains served."`
	Admins []string `toml:"admins" help:"Bare JIDs with admin rights." reload:"true"`
	Motd   string   `toml:"motd" help:"Message of the day."`
}

// Validate checks what tags cannot: it uses a value receiver.
func (c sampleServer) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, &FieldError{Key: "hosts", Msg: "at least one host is required"})
	}
	for i, a := range c.Admins {
		if !strings.Contains(a, "@") {
			errs = append(errs, &FieldError{Key: fmt.Sprintf("admins[%d]", i), Msg: fmt.Sprintf("%q is not a bare JID", a)})
		}
	}
	if c.Motd == "forbidden" {
		errs = append(errs, errors.New("the motd must not be forbidden"))
	}
	return errors.Join(errs...)
}

type sampleLog struct {
	Level  string `toml:"level" help:"Lowest level logged." enum:"debug,info,warn,error" reload:"true"`
	Format string `toml:"format" help:"Line format." enum:"text,json"`
}

type sampleTLS struct {
	CertFile   string   `toml:"cert_file" help:"PEM certificate chain."`
	KeyFile    string   `toml:"key_file" help:"PEM private key."`
	MinVersion string   `toml:"min_version" help:"Oldest TLS version accepted." enum:"1.2,1.3"`
	Ciphers    []string `toml:"ciphers" help:"Cipher suites, empty for Go's defaults."`
}

type sampleOCSP struct {
	URL     string   `toml:"url" help:"Responder URL."`
	Refresh Duration `toml:"refresh" help:"How often to refresh." min:"0s"`
	Ciphers []string `toml:"ciphers" help:"An array in a table in an array of tables."`
}

type sampleCert struct {
	Domain   string     `toml:"domain" help:"Domain the certificate is for."`
	CertFile string     `toml:"cert_file" help:"PEM certificate chain."`
	Priority int        `toml:"priority" help:"Higher wins." min:"0" max:"10"`
	OCSP     sampleOCSP `toml:"ocsp" help:"Nested table inside an array of tables."`
}

type sampleC2S struct {
	Listen       []string          `toml:"listen" help:"Addresses to accept client connections on."`
	Timeout      Duration          `toml:"timeout" help:"Close idle streams after this long." min:"1s" max:"1d" reload:"true"`
	Handshake    time.Duration     `toml:"handshake_timeout" help:"Time allowed for the TLS and SASL handshakes." min:"0s"`
	MaxStanza    Size              `toml:"max_stanza_size" help:"Largest stanza accepted." min:"1KiB" max:"16MiB" reload:"true"`
	MaxSessions  int               `toml:"max_sessions" help:"Sessions per account." min:"1" max:"1000"`
	Ratio        float64           `toml:"ratio" help:"A float option." min:"0" max:"1"`
	Compression  bool              `toml:"compression" help:"Offer stream compression."`
	Features     []string          `toml:"features" help:"Optional stream features." enum:"csi,sm,carbons"`
	TLS          sampleTLS         `toml:"tls" help:"TLS for client connections." reload:"true"`
	Certificates []sampleCert      `toml:"certificate" help:"Extra certificates, one table each."`
	Labels       map[string]string `toml:"labels" help:"Free-form labels."`
}

type sampleUpload struct {
	Path    string            `toml:"path" help:"Directory for uploaded files."`
	Quota   Size              `toml:"quota" help:"Per-user quota."`
	Slots   []sampleCert      `toml:"slot" help:"Empty by default: shown commented out."`
	Headers map[string]string `toml:"headers" help:"Extra HTTP headers (empty by default)."`
}

// sampleNormalise has a pointer-receiver Validate that normalises a value.
type sampleNormalise struct {
	Name string `toml:"name" help:"Lower-cased on load."`
}

func (c *sampleNormalise) Validate() error {
	c.Name = strings.ToLower(c.Name)
	return nil
}

func sampleC2SDefaults() sampleC2S {
	return sampleC2S{
		Listen:      []string{"[::]:5222"},
		Timeout:     Duration(5 * time.Minute),
		Handshake:   30 * time.Second,
		MaxStanza:   256 << 10,
		MaxSessions: 10,
		Ratio:       0.5,
		Compression: false,
		Features:    []string{"csi", "sm"},
		TLS: sampleTLS{
			CertFile:   "/etc/stoa/cert.pem",
			KeyFile:    "/etc/stoa/key.pem",
			MinVersion: "1.2",
		},
		Certificates: []sampleCert{
			{Domain: "example.org", CertFile: "a \"quoted\" path\\x.pem", Priority: 3, OCSP: sampleOCSP{Refresh: Duration(time.Hour)}},
			{Domain: "example.net", Priority: 1, OCSP: sampleOCSP{URL: "http://ocsp.example", Ciphers: []string{"x"}}},
		},
		Labels: map[string]string{"env": "test", "odd key": "tab\there"},
	}
}

func sampleSections() []Section {
	return []Section{
		{Name: "server", Help: "Global server settings.", Defaults: sampleServer{Hosts: []string{"localhost"}}},
		{Name: "log", Help: "Logging.", Defaults: sampleLog{Level: "info", Format: "text"}},
		{Name: "c2s", Help: "Client-to-server connections: listeners, limits and TLS.", Defaults: sampleC2SDefaults()},
		{Name: "upload", Help: "HTTP file upload.", Defaults: sampleUpload{Path: "/var/lib/stoa/upload", Quota: 100 * 1000 * 1000}},
		{Name: "norm", Help: "Normalisation by a pointer-receiver Validate.", Defaults: sampleNormalise{Name: "stoa"}},
	}
}
