package app

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/config"
)

// DevPorts are the ports of a dev node; 0 picks a free port.
type DevPorts struct {
	STARTTLS, DirectTLS, Metrics int
	HTTP                         int // the web listener ([http])
}

// StandardDevPorts are the usual XMPP ports: 5222 (STARTTLS), 5223
// (direct TLS), 5280 (metrics) and 5281 (web pages).
func StandardDevPorts() DevPorts {
	return DevPorts{STARTTLS: 5222, DirectTLS: 5223, Metrics: 5280, HTTP: 5281}
}

// DevConfigFile is where `stoa dev` writes the configuration it runs with.
// Commands given --data DIR read it when the node is not running.
func DevConfigFile(dataDir string) string { return filepath.Join(dataDir, "dev.toml") }

// DevConfig prepares a development node on the standard ports: see
// DevConfigPorts.
func DevConfig(dataDir, domain, listenIP string) (*config.File, certs.DevFiles, error) {
	return DevConfigPorts(dataDir, domain, listenIP, StandardDevPorts())
}

// DevConfigPorts prepares a development node serving domain with its data
// in dataDir: it generates (once) a local CA and a server certificate in
// dataDir/tls, writes the configuration to DevConfigFile(dataDir) and
// loads it with the real loader. Clients must trust the returned CA.
func DevConfigPorts(dataDir, domain, listenIP string, ports DevPorts) (*config.File, certs.DevFiles, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, certs.DevFiles{}, fmt.Errorf("app: dev: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, certs.DevFiles{}, fmt.Errorf("app: dev: creating the data directory: %w", err)
	}
	if net.ParseIP(listenIP) == nil {
		return nil, certs.DevFiles{}, fmt.Errorf("app: dev: %q is not an IP address (e.g. 127.0.0.1 or ::1)", listenIP)
	}
	files, err := certs.GenerateDev(filepath.Join(abs, "tls"), []string{domain})
	if err != nil {
		return nil, certs.DevFiles{}, fmt.Errorf("app: dev: generating certificates: %w", err)
	}
	addr := func(port int) string { return net.JoinHostPort(listenIP, strconv.Itoa(port)) }
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `stoa dev` at every start: edits are lost. Copy it to start a real configuration.\n\n")
	fmt.Fprintf(&b, "[server]\nhosts = [%s]\ndata_dir = %s\n\n", tomlString(domain), tomlString(abs))
	fmt.Fprintf(&b, "[log]\nlevel = \"info\"\n\n")
	fmt.Fprintf(&b, "[[tls.certificates]]\ncert = %s\nkey = %s\n\n", tomlString(files.Cert), tomlString(files.Key))
	fmt.Fprintf(&b, "[metrics]\nlisten = %s\n\n", tomlString(addr(ports.Metrics)))
	fmt.Fprintf(&b, "[http]\nlisten = %s\n\n", tomlString(addr(ports.HTTP)))
	fmt.Fprintf(&b, "[c2s]\nlisten = [%s]\nlisten_tls = [%s]\n", tomlString(addr(ports.STARTTLS)), tomlString(addr(ports.DirectTLS)))
	path := DevConfigFile(abs)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, files, fmt.Errorf("app: dev: writing %s: %w", path, err)
	}
	f, err := config.Load(path, Sections())
	if err != nil {
		return nil, files, fmt.Errorf("app: dev: %w", err)
	}
	return f, files, nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
