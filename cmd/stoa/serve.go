package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"

	"stoa.im/stoa/internal/adminsock"
	"stoa.im/stoa/internal/app"
	"stoa.im/stoa/internal/config"
)

func runServe(c *call) error {
	fs := c.flags()
	path := fs.String("c", "", "configuration `FILE` (required)")
	if _, err := c.parse(fs, 0, 0); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"the configuration file is required: stoa serve -c /etc/stoa/stoa.toml (start from 'stoa config describe')"}
	}
	f, err := loadConfig(c, *path)
	if err != nil {
		return err
	}
	return app.Run(c.ctx, app.Options{Config: f, Version: c.version, Signals: true})
}

// loadConfig loads a configuration file; problems in it are printed one
// per line.
func loadConfig(c *call, path string) (*config.File, error) {
	f, err := config.Load(path, app.Sections())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (write one with 'stoa config describe > %s' and edit it)", err, path)
	}
	if err != nil {
		return nil, reportConfigError(c.stderr, err)
	}
	return f, nil
}

// reportConfigError prints a config.Error one problem per line and
// returns an exitError; other errors are returned as they are.
func reportConfigError(w io.Writer, err error) error {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return err
	}
	for _, p := range ce.Problems {
		fmt.Fprintln(w, p.Error())
	}
	fmt.Fprintf(w, "%d problem(s) in the configuration; fix them, then check again with 'stoa check config -c FILE'\n", len(ce.Problems))
	return exitError{1}
}

func runDev(c *call) error {
	fs := c.flags()
	data := fs.String("data", "./stoa-dev", "`DIR` for the database, the certificates and dev.toml")
	domain := fs.String("domain", "localhost", "`DOMAIN` to serve")
	listen := fs.String("listen", "127.0.0.1", "`IP` address to listen on")
	if _, err := c.parse(fs, 0, 0); err != nil {
		return err
	}
	// Checked first: DevConfig rewrites DIR/dev.toml.
	if adminsock.Listening(app.SocketPath(*data)) {
		return fmt.Errorf("a server already runs with the data directory %s; stop it first, or give another --data DIR", *data)
	}
	f, files, err := app.DevConfig(*data, *domain, *listen)
	if err != nil {
		return reportConfigError(c.stderr, err)
	}
	return app.Run(c.ctx, app.Options{
		Config: f, Version: c.version, Signals: true, CA: files.CA,
		Ready: func(in app.Info) { printDevBanner(c.stdout, in, *data, *domain, f.Path) },
	})
}

func printDevBanner(w io.Writer, in app.Info, data, domain, configPath string) {
	ports := func(addrs []net.Addr) string {
		var s []string
		for _, a := range addrs {
			s = append(s, a.String())
		}
		return strings.Join(s, ", ")
	}
	user := "alice@" + domain
	fmt.Fprintf(w, "\nstoa dev is running for %s (data in %s).\n\n", domain, in.DataDir)
	fmt.Fprintf(w, "  Trust this CA:   %s\n", in.CA)
	fmt.Fprintf(w, "                   e.g. SSL_CERT_FILE=%s <client>  (Go, OpenSSL and Python clients read it)\n", in.CA)
	fmt.Fprintf(w, "  Add a user:      stoa user add %s --data %s\n", user, data)
	fmt.Fprintf(w, "  Connect:         as %s to %s (STARTTLS) or %s (direct TLS)\n", user, ports(in.STARTTLS), ports(in.DirectTLS))
	if in.Metrics != nil {
		fmt.Fprintf(w, "  Metrics:         http://%s/metrics\n", in.Metrics)
	}
	if in.WebURL != "" {
		fmt.Fprintf(w, "  Web pages:       %s/ (invite someone: stoa invite create --data %s)\n", in.WebURL, data)
	}
	fmt.Fprintf(w, "  Configuration:   %s (rewritten at every start; SIGHUP reloads it)\n", configPath)
	fmt.Fprintf(w, "\nStop with Ctrl-C.\n\n")
}
