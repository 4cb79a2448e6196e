package app

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"stoa.im/stoa/internal/c2s"
	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod"
	"stoa.im/stoa/internal/s2s"
	"stoa.im/stoa/internal/web"
	"stoa.im/stoa/internal/xmpp/jid"
)

// ServerConfig is the [server] table.
type ServerConfig struct {
	Hosts           []string        `toml:"hosts" help:"Domains this server hosts (the part after @ in its users' addresses). At least one is required."`
	DataDir         string          `toml:"data_dir" help:"Directory for the database, the server secret and the admin socket (stoa.sock). Created with mode 0700 when missing."`
	Admins          []string        `toml:"admins" help:"Bare JIDs (user@domain) of the server's administrators."`
	LoginWorkers    int             `toml:"login_workers" min:"0" help:"Logins hashing a password at the same time (PBKDF2 is CPU-heavy); more wait their turn. 0 means the number of CPUs."`
	ShutdownTimeout config.Duration `toml:"shutdown_timeout" min:"1s" help:"On SIGTERM, time given to write queued stanzas and close client streams before the remaining connections are cut."`
}

// Validate checks the hosts and admins.
func (c ServerConfig) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, &config.FieldError{Key: "hosts", Msg: `at least one host is required, e.g. hosts = ["example.org"]`})
	}
	seen := map[string]bool{}
	for i, h := range c.Hosts {
		j, err := jid.Parse(h)
		if err != nil || !j.IsDomain() {
			errs = append(errs, &config.FieldError{Key: fmt.Sprintf("hosts[%d]", i), Msg: fmt.Sprintf("%q is not a valid domain name", h)})
			continue
		}
		if seen[j.Domain()] {
			errs = append(errs, &config.FieldError{Key: fmt.Sprintf("hosts[%d]", i), Msg: fmt.Sprintf("%q is listed twice", h)})
		}
		seen[j.Domain()] = true
	}
	for i, a := range c.Admins {
		j, err := jid.Parse(a)
		if err != nil || j.Local() == "" || j.Resource() != "" {
			errs = append(errs, &config.FieldError{Key: fmt.Sprintf("admins[%d]", i), Msg: fmt.Sprintf("%q is not a bare JID (expected user@domain)", a)})
		}
	}
	if c.DataDir == "" {
		errs = append(errs, &config.FieldError{Key: "data_dir", Msg: `must not be empty (the default is "/var/lib/stoa")`})
	}
	return errors.Join(errs...)
}

// LogConfig is the [log] table.
type LogConfig struct {
	Level  string `toml:"level" enum:"debug,info,warn,error" reload:"true" help:"Lowest level written: error (the operator must act), warn (degraded), info (lifecycle and every policy decision), debug."`
	Format string `toml:"format" enum:"text,json" help:"Line format on standard error: text (key=value) or json (one object per line)."`
}

// StorageConfig is the [storage] table.
type StorageConfig struct {
	Driver string `toml:"driver" enum:"sqlite" help:"Storage backend. sqlite keeps everything in one file (PostgreSQL support is planned)."`
	Path   string `toml:"path" help:"Path of the SQLite database file; empty means stoa.db in server.data_dir."`
	// RosterCache: see internal/store/rostercache.
	RosterCache int `toml:"roster_cache" min:"0" help:"Rosters kept in memory (about 25 bytes per contact); logins and presence read them from there instead of the database. Every roster change goes through the cache. 0 turns it off."`
}

// TLSConfig is the [tls] table.
type TLSConfig struct {
	Certificates []certs.Pair `toml:"certificates" help:"Certificates to serve, one table per certificate chain. The one whose names match the client's SNI is used, else the first. The files are read again on SIGHUP (after renewal); adding or removing entries needs a restart."`
}

// Validate requires at least one complete certificate pair.
func (c TLSConfig) Validate() error {
	var errs []error
	if len(c.Certificates) == 0 {
		errs = append(errs, &config.FieldError{Key: "certificates", Msg: "at least one certificate is required: add a [[tls.certificates]] table with cert and key paths"})
	}
	for i, p := range c.Certificates {
		if p.Cert == "" {
			errs = append(errs, &config.FieldError{Key: fmt.Sprintf("certificates[%d].cert", i), Msg: "the certificate chain path is missing"})
		}
		if p.Key == "" {
			errs = append(errs, &config.FieldError{Key: fmt.Sprintf("certificates[%d].key", i), Msg: "the private key path is missing"})
		}
	}
	return errors.Join(errs...)
}

// MetricsConfig is the [metrics] table.
type MetricsConfig struct {
	Listen string `toml:"listen" help:"Address of the internal HTTP listener serving /metrics (Prometheus) and /healthz; empty turns it off. Keep it on a loopback or private address."`
	Pprof  bool   `toml:"pprof" help:"Also serve Go's profiler under /debug/pprof/ on this listener (CPU and heap profiles, goroutine dumps; see docs/benchmarks.md). Profiles reveal internals and a CPU profile costs a little CPU while it runs: turn it on to investigate, on a loopback address only."`
}

// Validate checks the listen address.
func (c MetricsConfig) Validate() error {
	if c.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return &config.FieldError{Key: "listen", Msg: fmt.Sprintf("%q is not a host:port address (e.g. \"127.0.0.1:5280\")", c.Listen)}
	}
	return nil
}

// Section names of the core.
const (
	secServer  = "server"
	secLog     = "log"
	secStorage = "storage"
	secTLS     = "tls"
	secMetrics = "metrics"
)

// coreSections are the sections owned by the process wiring.
func coreSections() []config.Section {
	return []config.Section{
		{Name: secServer, Help: "The node: hosted domains, data directory, administrators and process limits.", Defaults: ServerConfig{
			DataDir:         "/var/lib/stoa",
			ShutdownTimeout: config.Duration(10 * time.Second),
		}},
		{Name: secLog, Help: "Logging on standard error (journald adds timestamps under systemd).", Defaults: LogConfig{
			Level:  "info",
			Format: "text",
		}},
		{Name: secStorage, Help: "Where accounts, rosters and messages are stored.", Defaults: StorageConfig{
			Driver: "sqlite", RosterCache: 20000,
		}},
		{Name: secTLS, Help: "TLS certificates for client (and later server) connections. Send SIGHUP after renewing them.", Defaults: TLSConfig{}},
		{Name: secMetrics, Help: "The internal HTTP listener for monitoring.", Defaults: MetricsConfig{
			Listen: "127.0.0.1:5280",
		}},
	}
}

// Sections returns every configuration section in a stable order: the
// core (server, log, storage, tls, metrics), c2s, http, then one section per
// feature with options, in internal/mod order.
func Sections() []config.Section {
	out := append(coreSections(), c2s.Section, s2s.Section, web.Section)
	for _, f := range mod.All() {
		if f.Defaults == nil {
			continue
		}
		out = append(out, config.Section{Name: f.Name, Help: f.Doc, Defaults: f.Defaults})
	}
	return out
}

// storePath is the database file of a configuration.
func storePath(srv ServerConfig, st StorageConfig) string {
	if st.Path != "" {
		return st.Path
	}
	return filepath.Join(srv.DataDir, "stoa.db")
}

// SocketPath is the admin socket of a data directory.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "stoa.sock") }
