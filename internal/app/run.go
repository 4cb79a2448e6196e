// Package app assembles a stoa node from its configuration and runs it:
// the store, the server with every feature of internal/mod, TLS
// certificates, the client listeners, the metrics listener and the admin
// socket; then it reloads on SIGHUP and shuts down gracefully on SIGTERM.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"stoa.im/stoa/internal/adminsock"
	"stoa.im/stoa/internal/c2s"
	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod"
	"stoa.im/stoa/internal/s2s"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/store/rostercache"
	"stoa.im/stoa/internal/store/sqlite"
	"stoa.im/stoa/internal/web"
)

// Options configure Run.
type Options struct {
	// Config is the loaded configuration (config.Load with Sections()).
	Config *config.File
	// Load reads the configuration again on reload. Nil means
	// config.Load(Config.Path, Sections()).
	Load func() (*config.File, error)

	// Logger, when set, is used as is; Level (optional) is then the
	// level its handler reads, set from [log] level at start and reload.
	// When Logger is nil, Run logs to LogOutput (nil: standard error) in
	// the configured [log] format.
	Logger    *slog.Logger
	Level     *slog.LevelVar
	LogOutput io.Writer

	Version string

	// Signals makes Run handle SIGHUP (reload) and SIGTERM/SIGINT
	// (graceful shutdown). Without it only ctx and Reload drive Run.
	Signals bool
	// Reload, when a value arrives, reloads like SIGHUP.
	Reload <-chan struct{}

	// CA is the path of the CA certificate clients must trust (dev
	// mode); it is only reported in Info.
	CA string

	// Ready is called once everything listens.
	Ready func(Info)
}

// Info describes a running node.
type Info struct {
	Hosts       []string
	STARTTLS    []net.Addr // c2s listeners starting in plain text
	DirectTLS   []net.Addr // c2s listeners with direct TLS
	S2S         []net.Addr // s2s listeners starting in plain text
	S2SDirect   []net.Addr // s2s listeners with direct TLS
	Metrics     net.Addr   // nil when off
	Web         net.Addr   // the web listener ([http]); nil when off
	WebURL      string     // the web pages' public URL; "" when off
	DataDir     string
	AdminSocket string
	CA          string // dev mode: the CA certificate to trust
}

// sections holds the decoded core sections of a configuration.
type sections struct {
	server  ServerConfig
	log     LogConfig
	storage StorageConfig
	tls     TLSConfig
	metrics MetricsConfig
	c2s     c2s.Config
	s2s     s2s.Config
	web     web.Config
}

func decode(f *config.File) (s sections, err error) {
	defer func() {
		// Get panics when a section is missing or of the wrong type: the
		// file was not loaded with Sections().
		if r := recover(); r != nil {
			err = fmt.Errorf("app: the configuration was not loaded with app.Sections(): %v", r)
		}
	}()
	if f == nil {
		return s, errors.New("app: no configuration")
	}
	s.server = config.Get[ServerConfig](f, secServer)
	s.log = config.Get[LogConfig](f, secLog)
	s.storage = config.Get[StorageConfig](f, secStorage)
	s.tls = config.Get[TLSConfig](f, secTLS)
	s.metrics = config.Get[MetricsConfig](f, secMetrics)
	s.c2s = config.Get[c2s.Config](f, c2s.Section.Name)
	s.s2s = config.Get[s2s.Config](f, s2s.Section.Name)
	s.web = config.Get[web.Config](f, web.Section.Name)
	return s, nil
}

// parseLevel maps a [log] level to a slog level.
func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo // the enum tag makes this unreachable
	}
	return l
}

// Run runs a node until ctx ends or, with Options.Signals, SIGTERM or
// SIGINT arrives, then shuts it down within [server] shutdown_timeout. It
// returns nil after a clean shutdown and an error if the node could not
// start or stop cleanly.
func Run(ctx context.Context, opts Options) error {
	cfg, err := decode(opts.Config)
	if err != nil {
		return err
	}
	log, level := opts.Logger, opts.Level
	if log == nil {
		out := opts.LogOutput
		if out == nil {
			out = os.Stderr
		}
		level = new(slog.LevelVar)
		hopts := &slog.HandlerOptions{Level: level}
		if cfg.log.Format == "json" {
			log = slog.New(slog.NewJSONHandler(out, hopts))
		} else {
			log = slog.New(slog.NewTextHandler(out, hopts))
		}
	}
	if level != nil {
		level.Set(parseLevel(cfg.log.Level))
	}

	if ctx.Err() != nil {
		return nil
	}
	stopSignals := func() {}
	if opts.Signals {
		ctx, stopSignals = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stopSignals()
	}
	// Registered before starting: a SIGHUP during startup would otherwise
	// end the process. It is handled once the node runs.
	var hup chan os.Signal
	if opts.Signals {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}

	n, err := start(ctx, opts, cfg, log)
	if err != nil {
		return err
	}
	log.Info("stoa started", "version", opts.Version, "hosts", cfg.server.Hosts, "data_dir", n.dataDir)
	if opts.Ready != nil {
		opts.Ready(n.info(opts.CA))
	}

	r := &reloader{opts: opts, log: log, level: level, running: opts.Config, applied: opts.Config, certs: n.certs, srv: n.srv}
	for {
		select {
		case <-ctx.Done():
			// A second SIGINT or SIGTERM now ends the process at once.
			stopSignals()
			log.Info("shutting down", "timeout", time.Duration(cfg.server.ShutdownTimeout).String())
			return n.stop(time.Duration(cfg.server.ShutdownTimeout))
		case <-hup:
			r.reload()
		case <-opts.Reload:
			r.reload()
		}
	}
}

// node is a started node.
type node struct {
	log     *slog.Logger
	dataDir string
	hosts   []string
	store   store.Store
	srv     *server.Server
	certs   *certs.Store
	c2s     *c2s.Service
	s2s     *s2s.Service
	metrics *metricsServer
	web     *web.Server // nil when [http] listen is empty
	admin   *adminsock.Server
	// stopAccept ends c2s.Serve: its listeners close. It must come before
	// c2s.Shutdown, which waits for Serve's goroutines.
	stopAccept context.CancelFunc
	cancel     context.CancelFunc // ends the admin socket's and the server's contexts
}

// start brings a node up; on error, what was started is stopped again.
func start(ctx context.Context, opts Options, cfg sections, log *slog.Logger) (*node, error) {
	n := &node{log: log, hosts: cfg.server.Hosts}
	ok := false
	var undo []func()
	defer func() {
		if !ok {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	raiseFileLimit(log)

	var err error
	n.dataDir, err = filepath.Abs(cfg.server.DataDir)
	if err != nil {
		return nil, fmt.Errorf("app: data directory: %w", err)
	}
	if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("app: creating the data directory: %w (check server.data_dir and its permissions)", err)
	}
	// The admin socket comes first: it fails when another node runs on
	// this data directory, before anything else is touched.
	n.admin, err = adminsock.Listen(SocketPath(n.dataDir), log)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	undo = append(undo, func() { _ = n.admin.Close() })
	secret, err := loadSecret(filepath.Join(n.dataDir, "secret"), log)
	if err != nil {
		return nil, err
	}

	n.store, err = openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = n.store.Close() })

	// Federation: its feature hooks the pipeline, so it exists before
	// the server; it gets the certificates once they are loaded.
	n.s2s, err = newS2S(cfg.s2s, secret, log)
	if err != nil {
		return nil, err
	}
	n.srv, err = newServer(opts.Config, cfg, n.store, log, opts.Version, n.s2s.Feature())
	if err != nil {
		return nil, err
	}

	n.certs, err = certs.Load(cfg.tls.Certificates)
	if err != nil {
		return nil, fmt.Errorf("app: %w (check [tls] certificates in the configuration)", err)
	}

	n.c2s = c2s.New(n.srv, cfg.c2s, n.certs, secret, log)
	if err := n.c2s.Listen(); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	undo = append(undo, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.c2s.Shutdown(sctx) // closes the listeners
	})
	n.s2s.SetCerts(n.certs)
	if err := n.s2s.Listen(); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	undo = append(undo, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.s2s.Shutdown(sctx)
	})

	if cfg.metrics.Listen != "" {
		n.metrics, err = listenMetrics(cfg.metrics.Listen, cfg.metrics.Pprof, n.srv, log)
		if err != nil {
			return nil, err
		}
	}

	n.web, err = startWeb(opts.Config, cfg.web, n.srv, n.certs, secret, log)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { stopWeb(n.web, time.Second, log) })

	// Everything listens: start serving. The serving context is not
	// cancelled by ctx, so that shutdown can close streams gracefully
	// first; stop cancels it.
	ok = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	acceptCtx, stopAccept := context.WithCancel(runCtx)
	n.stopAccept = stopAccept
	n.srv.Start(runCtx)
	n.c2s.Serve(acceptCtx)
	n.s2s.Serve(runCtx)
	if n.web != nil {
		n.web.Serve(runCtx)
	}
	if n.metrics != nil {
		n.metrics.serve()
	}
	n.admin.Serve(runCtx, n.srv)
	return n, nil
}

func (n *node) info(ca string) Info {
	st, direct := n.c2s.Addrs()
	in := Info{
		Hosts: n.hosts, STARTTLS: st, DirectTLS: direct, DataDir: n.dataDir,
		AdminSocket: n.admin.Path(), CA: ca,
	}
	in.S2S, in.S2SDirect = n.s2s.Addrs()
	if n.metrics != nil {
		in.Metrics = n.metrics.addr()
	}
	if n.web != nil {
		in.Web, in.WebURL = n.web.Addr(), n.web.PublicURL()
	}
	return in
}

// stop shuts the node down: client streams get their queued stanzas and
// system-shutdown, then the admin socket, the server's features, the
// metrics listener and the store close.
func (n *node) stop(timeout time.Duration) error {
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	n.stopAccept()
	if err := n.c2s.Shutdown(sctx); err != nil {
		n.log.Warn("client connections did not close in time; they were cut", "timeout", timeout.String(), "err", err)
	}
	if err := n.s2s.Shutdown(sctx); err != nil {
		n.log.Warn("server-to-server connections did not close in time; they were cut", "timeout", timeout.String(), "err", err)
	}
	stopWeb(n.web, timeout, n.log)
	if err := n.admin.Close(); err != nil {
		errs = append(errs, err)
	}
	n.srv.Stop()
	n.cancel()
	if n.metrics != nil {
		if err := n.metrics.shutdown(sctx); err != nil {
			n.log.Warn("metrics listener did not stop in time", "err", err)
		}
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("app: closing the store: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.log.Info("stoa stopped")
	return nil
}

// openStore opens the configured storage backend.
func openStore(ctx context.Context, cfg sections) (store.Store, error) {
	switch cfg.storage.Driver {
	case "sqlite":
		path := storePath(cfg.server, cfg.storage)
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("app: opening the database %s: %w", path, err)
		}
		return rostercache.Wrap(st, cfg.storage.RosterCache), nil
	}
	return nil, fmt.Errorf("app: storage driver %q is not supported", cfg.storage.Driver)
}

// newServer builds the server with every feature of internal/mod, each
// with its section of f.
func newServer(f *config.File, cfg sections, st store.Store, log *slog.Logger, version string, extra ...server.Feature) (*server.Server, error) {
	srv, err := server.New(server.Options{
		Hosts:        cfg.server.Hosts,
		Admins:       cfg.server.Admins,
		Store:        st,
		Logger:       log,
		Features:     append(mod.All(), extra...),
		Config:       f.Section,
		LoginWorkers: cfg.server.LoginWorkers,
		Version:      version,
		PublicURL:    web.PublicURLOf(cfg.web),
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return srv, nil
}

// Offline opens the store of a configuration and builds its server with
// the same features as Run, and starts it without any listener. The
// command line uses it to run account commands when the node is not
// running, through the same server methods (so the same events fire).
// close stops the server and closes the store.
func Offline(ctx context.Context, f *config.File, log *slog.Logger, version string) (srv *server.Server, close func() error, err error) {
	cfg, err := decode(f)
	if err != nil {
		return nil, nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	srv, err = newServer(f, cfg, st, log, version)
	if err != nil {
		return nil, nil, errors.Join(err, st.Close())
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	srv.Start(runCtx)
	return srv, func() error {
		srv.Stop()
		cancel()
		return st.Close()
	}, nil
}

// Inspect builds the server with every feature at its default
// configuration over a throwaway database, without starting it, for
// listing features and hooks (`stoa features --hooks`).
func Inspect(ctx context.Context, version string) (srv *server.Server, close func() error, err error) {
	dir, err := os.MkdirTemp("", "stoa-inspect-")
	if err != nil {
		return nil, nil, fmt.Errorf("app: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "stoa.db"))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("app: %w", err), os.RemoveAll(dir))
	}
	close = func() error { return errors.Join(st.Close(), os.RemoveAll(dir)) }
	srv, err = server.New(server.Options{
		Hosts: []string{"localhost"}, Store: st, Features: append(mod.All(), inspectS2S()...), Version: version,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("app: %w", err), close())
	}
	return srv, close, nil
}
