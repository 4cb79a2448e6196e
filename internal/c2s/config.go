package c2s

import (
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
)

// Config is the [c2s] table.
type Config struct {
	Listen        []string        `toml:"listen" help:"Addresses for client connections that start in plain text and upgrade with STARTTLS (RFC 6120 §5), e.g. \"[::]:5222\"."`
	ListenTLS     []string        `toml:"listen_tls" help:"Addresses for client connections with direct TLS (XEP-0368, ALPN xmpp-client), e.g. \"[::]:5223\"."`
	RequireTLS    bool            `toml:"require_tls" help:"Offer authentication only after TLS. Turning this off sends passwords and messages in clear text; keep it on."`
	MaxStanzaSize config.Size     `toml:"max_stanza_size" min:"10000" help:"Largest stanza an authenticated client may send; a larger one ends the stream with policy-violation."`
	PreAuth       PreAuthConfig   `toml:"pre_auth" help:"Limits for connections that have not logged in yet."`
	IdleTimeout   config.Duration `toml:"idle_timeout" min:"10s" help:"After this long without data from a client, the server sends a whitespace keepalive and an XEP-0199 ping."`
	PingTimeout   config.Duration `toml:"ping_timeout" min:"1s" help:"A client that sends nothing for this long after the ping is disconnected as dead."`
	ParkAfter     config.Duration `toml:"park_after" min:"0s" help:"A logged-in client connection that has been quiet this long gives up its goroutine and waits in the kernel (epoll, Linux only) until data comes; right after the login the session waits this way at once. It saves about 6 KB of memory per idle session and costs two system calls when the client speaks again. 0 keeps a goroutine reading every connection."`
	WriteTimeout  config.Duration `toml:"write_timeout" min:"1s" help:"A write to a client that blocks longer than this ends the connection."`
	MaxQueue      config.Size     `toml:"max_queue" min:"65536" help:"Bytes waiting to be written to one client; a client that reads too slowly and lets this fill is disconnected."`
	LoginBackoff  BackoffConfig   `toml:"login_backoff" help:"Failed logins are throttled per IP address and per account with a delay that doubles on every failure."`
	// StreamManagement is defined in sm.go.
	StreamManagement SMConfig `toml:"stream_management" help:"Stream management (XEP-0198): acknowledgements, and resumption of sessions whose connection dropped."`
}

// PreAuthConfig is the [c2s.pre_auth] table.
type PreAuthConfig struct {
	Timeout       config.Duration `toml:"timeout" min:"1s" help:"Time a connection has to authenticate and bind a resource; slow-loris connections are closed when it runs out."`
	MaxBytes      config.Size     `toml:"max_bytes" min:"4096" help:"Bytes a connection may send before it has authenticated."`
	MaxStanzaSize config.Size     `toml:"max_stanza_size" min:"1024" help:"Largest element accepted before authentication."`
}

// BackoffConfig is the [c2s.login_backoff] table.
type BackoffConfig struct {
	Base   config.Duration `toml:"base" min:"0s" help:"Delay after the first failure; 0 turns the throttle off."`
	Max    config.Duration `toml:"max" min:"0s" help:"Longest delay."`
	Forget config.Duration `toml:"forget" min:"1s" help:"Failures older than this are forgotten."`
}

// Defaults are the [c2s] defaults.
var Defaults = Config{
	Listen:        []string{"[::]:5222"},
	ListenTLS:     []string{"[::]:5223"},
	RequireTLS:    true,
	MaxStanzaSize: 256 << 10,
	PreAuth: PreAuthConfig{
		Timeout:       config.Duration(20 * time.Second),
		MaxBytes:      64 << 10,
		MaxStanzaSize: 10000,
	},
	IdleTimeout:  config.Duration(5 * time.Minute),
	PingTimeout:  config.Duration(60 * time.Second),
	ParkAfter:    config.Duration(5 * time.Second),
	WriteTimeout: config.Duration(30 * time.Second),
	MaxQueue:     1 << 20,
	LoginBackoff: BackoffConfig{
		Base:   config.Duration(time.Second),
		Max:    config.Duration(5 * time.Minute),
		Forget: config.Duration(time.Hour),
	},
	StreamManagement: smDefaults,
}

// Section is the [c2s] config section.
var Section = config.Section{
	Name:     "c2s",
	Help:     "Client-to-server connections (RFC 6120): listeners, TLS policy, limits and timeouts.",
	Defaults: Defaults,
}

// XEPs lists the specifications the client connection layer implements,
// for `stoa features` and docs/features.md.
func XEPs() []server.XEP {
	return []server.XEP{
		{Name: "RFC 6120 XMPP Core (client streams, STARTTLS, SASL, binding, errors)", Version: "RFC 6120", Status: server.Complete},
		{Name: "RFC 7622 addresses (PRECIS)", Version: "RFC 7622", Status: server.Complete},
		{N: 368, Name: "SRV records for XMPP over TLS (direct TLS listener, ALPN xmpp-client)", Version: "1.1.0", Status: server.Complete},
		{N: 440, Name: "SASL Channel-Binding Type Capability", Version: "0.4.2", Status: server.Complete},
		{N: 474, Name: "SASL SCRAM Downgrade Protection", Version: "0.5.0", Status: server.Complete},
		{N: 199, Name: "XMPP Ping (server pings idle clients)", Version: "2.0.1", Status: server.Complete},
		{Name: "RFC 3921 session establishment (legacy, optional)", Version: "RFC 3921", Status: server.Complete},
		{N: 198, Name: "Stream Management (acks, resumption; unacknowledged messages to offline storage)", Version: "1.6.3", Status: server.Complete},
	}
}
