package app

import (
	"context"
	"log/slog"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
)

// reloader applies a new configuration on SIGHUP: the reloadable options
// take effect, the others are reported as needing a restart, and a file
// with errors changes nothing. Certificates are read again in any case,
// since renewing them is the usual reason for a reload.
type reloader struct {
	opts  Options
	log   *slog.Logger
	level *slog.LevelVar
	certs *certs.Store
	// srv gets Reload (features re-read their own files: firewall rules).
	srv *server.Server
	// running is the configuration the node started with (what options
	// that need a restart still use); applied is the last one whose
	// reloadable options were applied.
	running, applied *config.File
}

func (r *reloader) reload() {
	r.log.Info("reloading")
	if r.srv != nil {
		r.srv.Reload(context.Background())
	}
	if err := r.certs.Reload(); err != nil {
		r.log.Error("reload: keeping the old certificates", "err", err)
	} else {
		r.log.Info("certificates reloaded", "names", len(r.certs.Names()))
	}

	load := r.opts.Load
	if load == nil {
		path := r.running.Path
		load = func() (*config.File, error) { return config.Load(path, Sections()) }
	}
	f, err := load()
	if err != nil {
		r.log.Error("reload: the configuration has errors; keeping the running configuration", "err", err)
		return
	}
	cfg, err := decode(f)
	if err != nil {
		r.log.Error("reload: keeping the running configuration", "err", err)
		return
	}
	reloadable, _ := config.Changed(r.applied, f, Sections())
	_, restart := config.Changed(r.running, f, Sections())
	if r.level != nil {
		r.level.Set(parseLevel(cfg.log.Level))
	}
	r.applied = f
	// The restart warning comes first so that "configuration reloaded"
	// is the last line of a reload (tests and operators wait for it).
	if len(restart) > 0 {
		r.log.Warn("these changed options take effect only after a restart", "keys", restart)
	}
	if len(reloadable) > 0 {
		r.log.Info("configuration reloaded", "applied", reloadable)
	} else {
		r.log.Info("configuration reloaded; no reloadable option changed")
	}
}
