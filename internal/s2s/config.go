package s2s

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/jid"
)

// Config is the [s2s] table.
type Config struct {
	Enabled           bool              `toml:"enabled" help:"Exchange stanzas with other XMPP servers (federation). When off, stanzas to other domains bounce with remote-server-not-found and the listeners below are not opened."`
	Listen            []string          `toml:"listen" help:"Addresses for incoming server connections that start in plain text and upgrade with STARTTLS (RFC 6120), e.g. \"[::]:5269\". Empty: other servers cannot connect; outgoing connections still work, but servers that use dialback cannot verify this one."`
	ListenTLS         []string          `toml:"listen_tls" help:"Addresses for incoming server connections with direct TLS (XEP-0368, ALPN xmpp-server), e.g. \"[::]:5270\"; publish them with _xmpps-server._tcp SRV records."`
	RequireValidCerts bool              `toml:"require_valid_certs" help:"Accept a remote server only with a certificate that is valid for its domain (chain and name, RFC 6125), authenticated with SASL EXTERNAL (XEP-0178). Off: servers with an invalid certificate are authenticated with Server Dialback (XEP-0220) instead, which trusts DNS."`
	SecureDomains     []string          `toml:"secure_domains" help:"Domains that must present a valid certificate even when require_valid_certs is off."`
	InsecureDomains   []string          `toml:"insecure_domains" help:"Domains allowed to authenticate with dialback although their certificate is not valid, when require_valid_certs is on (per-domain exceptions)."`
	BlockedDomains    []string          `toml:"blocked_domains" help:"Domains (and their subdomains) this server never exchanges stanzas with: stanzas to them bounce, their connections are refused."`
	CAFile            string            `toml:"ca_file" help:"PEM file of CA certificates trusted for server certificates in addition to the system's (a private federation, tests)."`
	Routes            map[string]string `toml:"routes" help:"Static routes that replace DNS for some domains: domain = \"host:port\" (STARTTLS) or \"tls://host:port\" (direct TLS). The certificate must still be valid for the domain."`
	Bidi              bool              `toml:"bidi" help:"Use and accept bidirectional server connections (XEP-0288): one TCP connection carries stanzas both ways."`
	ConnectTimeout    config.Duration   `toml:"connect_timeout" min:"1s" help:"Time to resolve, connect, encrypt and authenticate a connection to another server; stanzas queued meanwhile bounce with remote-server-timeout when it runs out. Incoming connections get as long to authenticate."`
	IdleTimeout       config.Duration   `toml:"idle_timeout" min:"10s" help:"A server connection that carried no stanza in either direction for this long is closed (it is opened again when needed)."`
	WriteTimeout      config.Duration   `toml:"write_timeout" min:"1s" help:"A write to another server that blocks longer than this ends the connection."`
	MaxStanzaSize     config.Size       `toml:"max_stanza_size" min:"10000" help:"Largest stanza sent to or accepted from another server; a larger incoming one ends the stream with policy-violation, a larger outgoing one bounces."`
	MaxQueue          config.Size       `toml:"max_queue" min:"65536" help:"Bytes waiting for one remote domain (while its connection is set up, or because it reads slowly); beyond it stanzas bounce with resource-constraint."`
	Notify            NotifyConfig      `toml:"notify" help:"Messages to administrators when connections fail for encryption or certificate reasons (like Prosody's mod_watchuntrusted)."`
}

// NotifyConfig is the [s2s.notify] table.
type NotifyConfig struct {
	Enabled       bool            `toml:"enabled" help:"Tell the administrators (server.admins) by chat message when a connection to or from another server fails for encryption or certificate reasons."`
	Interval      config.Duration `toml:"interval" min:"1m" help:"At most one message per remote domain in this period."`
	IgnoreDomains []string        `toml:"ignore_domains" help:"Remote domains nobody needs to hear about."`
}

// Defaults are the [s2s] defaults.
var Defaults = Config{
	Enabled:           true,
	RequireValidCerts: true,
	Bidi:              true,
	ConnectTimeout:    config.Duration(60 * time.Second),
	IdleTimeout:       config.Duration(10 * time.Minute),
	WriteTimeout:      config.Duration(30 * time.Second),
	MaxStanzaSize:     512 << 10,
	MaxQueue:          4 << 20,
	Notify: NotifyConfig{
		Enabled:  true,
		Interval: config.Duration(24 * time.Hour),
	},
}

// Section is the [s2s] config section.
var Section = config.Section{
	Name:     "s2s",
	Help:     "Server-to-server connections (federation, RFC 6120): listeners, certificate policy, blocked domains, limits and timeouts. Bandwidth limits are the limits feature's bandwidth.s2s_in and bandwidth.s2s_out.",
	Defaults: Defaults,
}

// Validate checks domains, addresses and routes.
func (c *Config) Validate() error {
	var errs []error
	domains := func(key string, list []string) {
		for i, d := range list {
			n, err := normDomain(d)
			if err != nil {
				errs = append(errs, &config.FieldError{Key: fmt.Sprintf("%s[%d]", key, i), Msg: fmt.Sprintf("%q is not a domain name", d)})
				continue
			}
			list[i] = n
		}
	}
	domains("secure_domains", c.SecureDomains)
	domains("insecure_domains", c.InsecureDomains)
	domains("blocked_domains", c.BlockedDomains)
	domains("notify.ignore_domains", c.Notify.IgnoreDomains)
	addrs := func(key string, list []string) {
		for i, a := range list {
			if _, _, err := net.SplitHostPort(a); err != nil {
				errs = append(errs, &config.FieldError{Key: fmt.Sprintf("%s[%d]", key, i), Msg: fmt.Sprintf("%q is not a host:port address (e.g. \"[::]:5269\")", a)})
			}
		}
	}
	addrs("listen", c.Listen)
	addrs("listen_tls", c.ListenTLS)
	for d, r := range c.Routes {
		if _, err := normDomain(d); err != nil {
			errs = append(errs, &config.FieldError{Key: "routes", Msg: fmt.Sprintf("%q is not a domain name", d)})
		}
		if _, err := parseRoute(r); err != nil {
			errs = append(errs, &config.FieldError{Key: "routes", Msg: fmt.Sprintf("%s: %v", d, err)})
		}
	}
	return errors.Join(errs...)
}

// normDomain returns the canonical form of a domain name.
func normDomain(d string) (string, error) {
	j, err := jid.Parse(strings.TrimSuffix(d, "."))
	if err != nil || !j.IsDomain() {
		return "", fmt.Errorf("s2s: %q is not a domain name", d)
	}
	return j.Domain(), nil
}

// XEPs lists the specifications the federation layer implements, for
// `stoa features` and docs/features.md.
func XEPs() []server.XEP {
	return []server.XEP{
		{Name: "RFC 6120 XMPP Core (server streams, STARTTLS, SASL, SRV, errors)", Version: "RFC 6120", Status: server.Complete},
		{Name: "RFC 6125 certificate identity (DNS-ID, SRV-ID, XmppAddr)", Version: "RFC 6125", Status: server.Complete},
		{N: 178, Name: "Best Practices for Use of SASL EXTERNAL with Certificates (server-to-server)", Version: "1.2", Status: server.Complete},
		{N: 220, Name: "Server Dialback (keys HMAC-SHA256 of a secret; a valid certificate skips the verification round trip as in XEP-0344)", Version: "1.1.1", Status: server.Complete},
		{N: 288, Name: "Bidirectional Server-to-Server Connections", Version: "1.0.1", Status: server.Complete},
		{N: 368, Name: "SRV records for XMPP over TLS (_xmpps-server, ALPN xmpp-server)", Version: "1.1.0", Status: server.Complete},
	}
}
